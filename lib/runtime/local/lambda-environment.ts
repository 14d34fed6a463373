// The environment variables and identifiers Lambda gives a function, computed for one local runtime slot.
import { randomBytes } from 'node:crypto';
import type { WorkerRuntime } from '../../core/runtime-kind';

/** The account id local ARNs carry (no real account is involved). */
export const LOCAL_ACCOUNT_ID = '000000000000';
const DEFAULT_REGION = 'us-east-1';

export interface LambdaIdentity {
  readonly functionName: string;
  readonly memorySizeMb: number;
  readonly region: string;
  readonly functionArn: string;
  readonly logGroupName: string;
  readonly logStreamName: string;
}

/** Names the function like Lambda does: log group `/aws/lambda/<fn>`, stream `YYYY/MM/DD/[$LATEST]<32 hex>`. */
export function lambdaIdentity(
  functionName: string,
  memorySizeMb: number,
  env: Readonly<Record<string, string | undefined>>,
  now = new Date(),
): LambdaIdentity {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? DEFAULT_REGION;
  const day = now.toISOString().slice(0, 10).replace(/-/g, '/');
  return {
    functionName,
    memorySizeMb,
    region,
    functionArn: `arn:aws:lambda:${region}:${LOCAL_ACCOUNT_ID}:function:${functionName}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
  };
}

export interface EnvironmentInput {
  readonly identity: LambdaIdentity;
  readonly runtime: WorkerRuntime;
  readonly handler: string;
  readonly taskRoot: string;
  readonly runtimeDir: string;
  /** The environment of the host process (PATH, HOME, credentials...). */
  readonly inherited: Readonly<Record<string, string | undefined>>;
  /** The function's own variables. */
  readonly configured: Readonly<Record<string, string>>;
  /** `host:port` of the Runtime API, for `provided` runtimes. */
  readonly runtimeApi?: string;
}

/**
 * The runtime process's environment: inherited, then the function's variables, then Lambda's reserved variables,
 * which (as in Lambda) the function cannot override.
 */
export function lambdaEnvironment(input: EnvironmentInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.inherited)) if (v !== undefined) env[k] = v;
  Object.assign(env, input.configured);
  const id = input.identity;
  const reserved: Record<string, string> = {
    _HANDLER: input.handler,
    AWS_REGION: id.region,
    AWS_DEFAULT_REGION: env.AWS_DEFAULT_REGION ?? id.region,
    AWS_LAMBDA_FUNCTION_NAME: id.functionName,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(id.memorySizeMb),
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_LOG_GROUP_NAME: id.logGroupName,
    AWS_LAMBDA_LOG_STREAM_NAME: id.logStreamName,
    LAMBDA_TASK_ROOT: input.taskRoot,
    LAMBDA_RUNTIME_DIR: input.runtimeDir,
    LANG: env.LANG ?? 'en_US.UTF-8',
    TZ: ':UTC',
  };
  if (input.runtime.family !== 'provided') reserved.AWS_EXECUTION_ENV = `AWS_Lambda_${input.runtime.name}`;
  else delete env.AWS_EXECUTION_ENV;
  if (input.runtimeApi) reserved.AWS_LAMBDA_RUNTIME_API = input.runtimeApi;
  else delete env.AWS_LAMBDA_RUNTIME_API;
  delete env._X_AMZN_TRACE_ID;
  return Object.assign(env, reserved);
}

export { clientContextOf } from '../client-context';

/** An X-Ray style trace id (`Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`). */
export function traceIdOf(now = Date.now()): string {
  const epoch = Math.floor(now / 1000).toString(16);
  return `Root=1-${epoch}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0`;
}
