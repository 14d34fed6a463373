// A Lambda function the template runs on an EventBridge schedule (the reaper), run as Lambda would run it: its code
// from its asset in the bootstrap bucket, its handler, runtime, timeout, memory and environment from the template,
// its role's credentials, invoked at the rule's rate with a scheduled event.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../lib/runtime/local';
import type { WorkerInvoker } from '../../lib/ports';
import { TwinTemplateError } from '../errors';
import { s3CodeOf, unpackFunctionCode, type FunctionCode } from './function-code';
import { resourcesOfType, text, type CfnTemplate } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';

export interface ScheduledFunction {
  readonly ruleId: string;
  readonly functionId: string;
  readonly roleId: string;
  readonly rateMs: number;
  readonly handler: string;
  readonly runtime: string;
  readonly timeoutSec: number;
  readonly memoryMb: number;
  readonly environment: Readonly<Record<string, string>>;
  readonly code: FunctionCode;
}

/** Rules with a `rate(...)` schedule and the function each targets, read without resolving anything. */
export function scheduleTargets(
  template: CfnTemplate,
): { ruleId: string; functionId: string; roleId?: string; rateMs: number }[] {
  const out: { ruleId: string; functionId: string; roleId?: string; rateMs: number }[] = [];
  for (const [ruleId, rule] of resourcesOfType(template, 'AWS::Events::Rule')) {
    const expression = text(rule.Properties?.ScheduleExpression ?? '');
    const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
    if (!rate) continue;
    const unitMs = rate[2]!.startsWith('minute') ? 60_000 : rate[2]!.startsWith('hour') ? 3_600_000 : 86_400_000;
    for (const target of (rule.Properties?.Targets ?? []) as { Arn: { 'Fn::GetAtt'?: [string, string] } }[]) {
      const functionId = target.Arn['Fn::GetAtt']?.[0];
      const fn = functionId ? template.Resources[functionId] : undefined;
      if (!functionId || fn?.Type !== 'AWS::Lambda::Function') continue;
      const roleId = (fn.Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];
      out.push({ ruleId, functionId, roleId, rateMs: Number(rate[1]) * unitMs });
    }
  }
  return out;
}

/** Functions targeted by `rate(...)` rules of the template, their properties resolved. */
export function scheduledFunctions(stack: DeployedStack): ScheduledFunction[] {
  return scheduleTargets(stack.template).map(({ ruleId, functionId, roleId, rateMs }) => {
    const props = stack.properties(functionId);
    if (!roleId) throw new TwinTemplateError(`${functionId}: the twin runs functions with a role of the template`);
    return {
      ruleId,
      functionId,
      roleId,
      rateMs,
      handler: String(props.Handler),
      runtime: String(props.Runtime),
      timeoutSec: Number(props.Timeout ?? 3),
      memoryMb: Number(props.MemorySize ?? 128),
      environment: (props.Environment as { Variables?: Record<string, string> } | undefined)?.Variables ?? {},
      code: s3CodeOf(functionId, props.Code),
    };
  });
}

export interface FunctionRunStats {
  invocations: number;
  errors: number;
  lastError?: string;
}

export class ScheduledFunctionRunner {
  readonly stats: FunctionRunStats = { invocations: 0, errors: 0 };
  private timer: NodeJS.Timeout | undefined;
  private invoker: WorkerInvoker | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly fn: ScheduledFunction,
    private readonly options: {
      readonly stack: DeployedStack;
      readonly dir: string;
      readonly adminS3: S3Client;
      /** Role credentials and the twin's endpoints. */
      readonly env: Readonly<Record<string, string>>;
      readonly repoRoot: string;
      readonly log: (line: string) => void;
    },
  ) {}

  /** Unpacks the code, then invokes now and at every rate (EventBridge's first run falls within one period). */
  async start(): Promise<void> {
    const taskRoot = await unpackFunctionCode(this.options.adminS3, this.fn.code, this.options.dir, this.fn.functionId);
    const functionName = String(this.options.stack.ref(this.fn.functionId, this.fn.functionId));
    this.invoker = createLocalInvoker({
      taskRoot,
      handler: this.fn.handler,
      runtime: resolveRuntime(this.fn.runtime),
      functionName,
      memorySizeMb: this.fn.memoryMb,
      env: {
        ...this.fn.environment,
        ...this.options.env,
        // The Node.js runtime provides the AWS SDK v3 (the function's bundle leaves @aws-sdk/* external).
        NODE_PATH: path.join(this.options.repoRoot, 'node_modules'),
      },
      onOutput: (_task, _stream, chunk) => {
        for (const line of chunk.split('\n')) if (line.trim()) this.options.log(line);
      },
    });
    this.tick();
    this.timer = setInterval(() => this.tick(), this.fn.rateMs);
  }

  /** Waits for a run in progress, then stops the schedule. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.invoker?.close();
  }

  private tick(): void {
    if (this.running || !this.invoker) return;
    const event = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: this.options.stack.env.account,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: this.options.stack.env.region,
      resources: [String(this.options.stack.getAtt(this.fn.ruleId, 'Arn', this.fn.ruleId))],
      detail: {},
    };
    const invoker = this.invoker;
    this.running = invoker
      .invoke({
        requestId: randomUUID(),
        taskId: '',
        sessionId: '',
        attempt: 1,
        eventJson: JSON.stringify(event),
        deadline: Date.now() + this.fn.timeoutSec * 1000,
      })
      .then((result) => {
        this.stats.invocations++;
        if (!result.ok) {
          this.stats.errors++;
          this.stats.lastError = `${result.error.type}: ${result.error.message}`;
          this.options.log(`invocation failed: ${this.stats.lastError}`);
        }
      })
      .finally(() => {
        this.running = undefined;
      });
  }
}
