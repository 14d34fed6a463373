// Stand-in for the Lambda base image's /usr/local/bin/aws-lambda-rie. It reads lambda-rie's flags as lambda-rie does
// (aws-lambda-runtime-interface-emulator `internal/lambda/rie/run.go`: go-flags, unknown flags ignored; the first
// positional argument and the rest are the bootstrap command, the last one the handler), binds what lambda-rie binds
// (the Runtime API on `--runtime-api-address`, default 127.0.0.1:9001 from `rapidcore/sandbox_builder.go`, and the
// invoke API on `--runtime-interface-emulator-address`, default 0.0.0.0:8080), and dies as lambda-rie dies when an
// address is taken (a panic, exit status 2). Behind the invoke API the bootstrap runs as rapid runs it.
import { RuntimeApiServer } from '../../lib/runtime/local';
import { RIE_ADDRESS_FLAG } from '../../lib/runtime/rie/runtime-killer';
import { RapidRuntime } from './rapid-runtime';
import { RieServer } from './rie-server';

export interface RieArguments {
  readonly logLevel?: string;
  readonly initCaching: boolean;
  readonly runtimeApiAddress?: string;
  readonly emulatorAddress: string;
  /** Positional arguments after the program: the bootstrap command, its last element the handler. */
  readonly positional: readonly string[];
}

const DEFAULT_EMULATOR_ADDRESS = '0.0.0.0:8080';
/** rapidcore.NewSandboxBuilder: RuntimeAPIHost 127.0.0.1, RuntimeAPIPort 9001. */
const DEFAULT_RUNTIME_API_ADDRESS = '127.0.0.1:9001';
const VALUE_FLAGS: Readonly<Record<string, keyof RieArguments>> = {
  '--log-level': 'logLevel',
  '--runtime-api-address': 'runtimeApiAddress',
  [RIE_ADDRESS_FLAG]: 'emulatorAddress',
};

/** go-flags with `IgnoreUnknown`: long options anywhere (`--flag value` or `--flag=value`), the rest positional. */
export function parseRieArguments(argv: readonly string[]): RieArguments {
  const values: Record<string, string> = {};
  const positional: string[] = [];
  let initCaching = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    const [name, inline] = arg.startsWith('--') ? splitFlag(arg) : [arg, undefined];
    if (name === '--enable-init-caching') initCaching = true;
    else if (name in VALUE_FLAGS) values[VALUE_FLAGS[name]!] = inline ?? argv[++i] ?? '';
    else if (!arg.startsWith('--')) positional.push(arg);
  }
  return {
    logLevel: values.logLevel,
    initCaching,
    runtimeApiAddress: values.runtimeApiAddress,
    emulatorAddress: values.emulatorAddress ?? DEFAULT_EMULATOR_ADDRESS,
    positional,
  };
}

function splitFlag(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

/** Go's net.SplitHostPort, for the forms lambda-rie accepts. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

/** logrus' text format, as lambda-rie logs without a terminal. */
function log(level: string, msg: string, fields: Record<string, string> = {}): void {
  const extra = Object.entries(fields)
    .map(([k, v]) => ` ${k}=${JSON.stringify(v)}`)
    .join('');
  process.stderr.write(
    `time=${JSON.stringify(new Date().toISOString())} level=${level} msg=${JSON.stringify(msg)}${extra}\n`,
  );
}

function panic(msg: string, error: NodeJS.ErrnoException, address: string): never {
  const syscall = error.code === 'EADDRINUSE' ? 'bind: address already in use' : (error.message ?? String(error));
  log('panic', msg, { error: `listen tcp ${address}: ${syscall}` });
  process.stderr.write(`panic: ${msg}\n\ngoroutine 1 [running]:\n`);
  process.exit(2);
}

function fatal(msg: string): never {
  log('fatal', msg);
  process.exit(1);
}

async function main(): Promise<void> {
  const opts = parseRieArguments(process.argv.slice(2));
  if (opts.runtimeApiAddress !== undefined && !splitHostPort(opts.runtimeApiAddress)) {
    fatal(
      `The command line value for "--runtime-api-address" is not a valid network address "${opts.runtimeApiAddress}".`,
    );
  }
  const emulator = splitHostPort(opts.emulatorAddress);
  if (!emulator) {
    fatal(`The command line value for "${RIE_ADDRESS_FLAG}" is not a valid network address "${opts.emulatorAddress}".`);
  }
  const runtimeApiAddress = opts.runtimeApiAddress ?? DEFAULT_RUNTIME_API_ADDRESS;
  const runtimeApi = splitHostPort(runtimeApiAddress)!;

  // Without a bootstrap argument lambda-rie looks for /var/task/bootstrap, /opt/bootstrap, /var/runtime/bootstrap.
  const bootstrap = opts.positional.length > 0 ? opts.positional : ['/var/runtime/bootstrap'];
  const handler = opts.positional.length > 1 ? opts.positional[opts.positional.length - 1]! : '';
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // rapid's defaults for the function's reserved variables, where the container does not set them.
  env.AWS_LAMBDA_FUNCTION_NAME ??= 'test_function';
  env.AWS_LAMBDA_FUNCTION_VERSION ??= '$LATEST';
  env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ??= '3008';
  env.AWS_LAMBDA_LOG_GROUP_NAME ??= '/aws/lambda/Functions';
  env.AWS_LAMBDA_LOG_STREAM_NAME ??= '$LATEST';
  if (handler) env._HANDLER = handler;

  // rapid.Start binds the Runtime API first; a taken address panics the process ("Runtime API Server failed to listen").
  const server = new RuntimeApiServer();
  try {
    await server.listen({ host: runtimeApi.host, port: runtimeApi.port });
  } catch (error) {
    panic('Runtime API Server failed to listen', error as NodeJS.ErrnoException, runtimeApiAddress);
  }
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const runtime = new RapidRuntime({
    bootstrap,
    cwd: process.cwd(),
    env,
    server,
    runtimeApi: runtimeApiAddress,
    functionArn: `arn:aws:lambda:${region}:012345678912:function:${env.AWS_LAMBDA_FUNCTION_NAME}`,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  const timeoutSec = Number(env.AWS_LAMBDA_FUNCTION_TIMEOUT ?? '300');
  let rie: RieServer;
  try {
    rie = await RieServer.start({
      invoker: runtime,
      host: emulator.host || '0.0.0.0',
      port: emulator.port,
      functionTimeoutSec: Number.isFinite(timeoutSec) && timeoutSec > 0 ? timeoutSec : 300,
      onClientGone: 'run-on',
    });
  } catch (error) {
    panic(`listen tcp ${opts.emulatorAddress}`, error as NodeJS.ErrnoException, opts.emulatorAddress);
  }
  log('info', `exec '${bootstrap[0]}' (cwd=${process.cwd()}, handler=${handler})`);
  const shutdown = (signal: string) => {
    log('info', 'Received signal', { signal });
    log('info', 'Shutting down...');
    void rie.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('terminated'));
  process.once('SIGINT', () => shutdown('interrupt'));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    log('fatal', String(error));
    process.exit(1);
  });
}
