// The `htcgrid` command line: parses arguments, runs a command, maps errors to readable messages and exit codes.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  ConfigError,
  GridFolderInUseError,
  HtcGridError,
  InvalidTaskError,
  SessionExistsError,
  UnknownSessionError,
  WorkerInitError,
} from '../core';
import { bundleCommand, type BundleFlags } from './commands/bundle';
import { demoCommand } from './commands/demo';
import {
  cancelCommand,
  deleteCommand,
  localUpCommand,
  resultsCommand,
  statusCommand,
  submitCommand,
  type SubmitFlags,
} from './commands/local';
import { DEFAULT_GRID_DIR, type GridTargetFlags } from './grid-target';
import { runCommand } from './commands/run';
import { serveCommand, type ServeFlags } from './commands/serve';
import { uiCommand, type UiFlags } from './commands/ui';
import { loadGridConfig, type ConfigFlags } from './config-loader';
import * as output from './output';
import { UsageError } from './usage-error';

const EXIT_USAGE = 2;

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}"`);
    return n;
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

function configOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'grid configuration JSON (HTC-Grid keys, e.g. python_runtime_grid_config.json)')
    .option('--handler <file.function>', 'handler (default from the configuration: lambda_function.lambda_handler)')
    .addOption(new Option('--runtime <name>', 'worker runtime: python, node, provided or a Lambda runtime name'))
    .option('--slots <n>', 'concurrent tasks (one runtime process each; default: number of CPUs)', integer(1))
    .option('--timeout-sec <s>', 'per-task timeout in seconds (default 900)', positive)
    .option('--max-attempts <n>', 'attempts per task before it fails (default 3)', integer(1))
    .option('--python <path>', 'Python executable for Python workers (default python3)')
    .option('--log-level <level>', 'structured log level: trace, debug, info, warn, error')
    .option('--log-file <file>', 'write structured logs to this file instead of stderr');
}

function targetOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'local grid folder', DEFAULT_GRID_DIR)
    .addOption(new Option('--grid <kind>', 'local grid folder or deployed AWS grid').choices(['local', 'aws']))
    .option('--stack <name>', 'AWS: CloudFormation stack of the grid (implies --grid aws)')
    .option('--outputs <file>', 'AWS: `cdk deploy --outputs-file` JSON instead of reading the stack')
    .option('--region <region>', 'AWS region (default: the stack output or your AWS configuration)');
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('htcgrid')
    .description('High-throughput compute grid: run Lambda-style workers over many tasks, locally or on AWS')
    .showHelpAfterError()
    .exitOverride();

  addRunCommands(program, setExit);
  addLocalGridCommands(program, setExit);
  addSessionCommands(program, setExit);
  addBundleCommand(program, setExit);
  return program;
}

type SetExit = (code: number) => void;

/** `run` and `demo`: a whole run on an embedded grid that lives as long as the command. */
function addRunCommands(program: Command, setExit: SetExit): void {
  configOptions(
    program
      .command('run')
      .description('run every task of a JSON Lines file on an embedded grid and write the results')
      .requiredOption('--worker <dir|zip>', 'worker folder or Lambda zip')
      .requiredOption('--tasks <file.jsonl|->', 'one JSON event per line; - reads stdin')
      .option('--out <file>', 'write one JSON line per task here (- for stdout)')
      .option('--priority <n>', 'session priority (0 = lowest)', integer(0))
      .option('--data-dir <dir>', 'keep the grid database here (default: a temporary folder)')
      .option('--keep', 'keep the temporary grid folder')
      .option('--no-progress', 'no progress bar'),
  ).action(
    async (
      opts: ConfigFlags & {
        worker: string;
        tasks: string;
        out?: string;
        dataDir?: string;
        keep?: boolean;
        logLevel?: string;
        logFile?: string;
        progress?: boolean;
        priority?: number;
      },
    ) => {
      setExit(await runCommand(loadGridConfig(opts), opts));
    },
  );

  program
    .command('demo')
    .description('the mock-compute worker over 1,000 tasks on the embedded grid (what `npm start` runs)')
    .option('--tasks <n>', 'number of tasks', integer(1), 1000)
    .option('--slots <n>', 'concurrent tasks', integer(1))
    .option('--python <path>', 'Python executable')
    .action(async (opts: { tasks: number; slots?: number; python?: string }) => {
      setExit(await demoCommand(opts));
    });
}

/** `local up`, `serve` and `ui`: a long-running grid on a folder, its HTTP API, a deployed grid's dashboard. */
function addLocalGridCommands(program: Command, setExit: SetExit): void {
  const local = program
    .command('local')
    .description('a long-running grid on a local folder, shared by several clients');
  configOptions(
    local
      .command('up')
      .description('run an agent and the reaper on a grid folder until Ctrl-C (which drains)')
      .requiredOption('--worker <dir|zip>', 'worker folder or Lambda zip')
      .option('--dir <dir>', 'grid folder', DEFAULT_GRID_DIR)
      .option('--grace-sec <s>', 'drain grace period on stop', positive, 30)
      .option('--http [host:port]', 'serve the HTTP API too (default 127.0.0.1:8642; a token is printed and required)'),
  ).action(
    async (
      opts: ConfigFlags & {
        worker: string;
        dir: string;
        graceSec: number;
        logLevel?: string;
        logFile?: string;
        http?: string | boolean;
      },
    ) => {
      setExit(await localUpCommand(loadGridConfig(opts), opts));
    },
  );

  program
    .command('serve')
    .description('serve the HTTP API of a local grid folder that `htcgrid local up` runs')
    .option('--dir <dir>', 'grid folder', DEFAULT_GRID_DIR)
    .option('--http [host:port]', 'address to listen on (default 127.0.0.1:8642; a token is printed and required)')
    .option('--log-level <level>', 'structured log level: trace, debug, info, warn, error')
    .option('--log-file <file>', 'write structured logs to this file instead of stderr')
    .action(async (opts: ServeFlags) => {
      setExit(await serveCommand(opts));
    });

  program
    .command('ui')
    .description('the dashboard of a deployed grid, on loopback: its API calls are signed with your AWS credentials')
    .option('--stack <name>', 'CloudFormation stack of the grid')
    .option('--outputs <file>', '`cdk deploy --outputs-file` JSON instead of reading the stack')
    .option('--region <region>', 'AWS region (default: the stack output)')
    .option('--listen <host:port>', 'address of the dashboard (default 127.0.0.1:8643)')
    .option('--log-level <level>', 'structured log level: trace, debug, info, warn, error')
    .action(async (opts: UiFlags) => {
      setExit(await uiCommand(opts));
    });
}

/** `submit`, `status`, `results`, `cancel` and `delete`: a session on a grid folder or a deployed grid. */
function addSessionCommands(program: Command, setExit: SetExit): void {
  targetOptions(
    program
      .command('submit')
      .description('submit a session of tasks to a grid (local folder or AWS); prints its session id')
      .requiredOption('--tasks <file.jsonl|->', 'one JSON event per line; - reads stdin')
      .option('--wait', 'wait for the results')
      .option('--out <file>', 'with --wait: write one JSON line per task here (- for stdout)')
      .option('--priority <n>', 'session priority (0 = lowest)', integer(0))
      .option('--max-attempts <n>', 'attempts per task', integer(1))
      .option('--timeout-sec <s>', 'per-task timeout', positive),
  ).action(async (opts: SubmitFlags) => {
    setExit(await submitCommand(opts));
  });

  targetOptions(
    program
      .command('status <session>')
      .description("counts of a session's tasks per state")
      .option('--json', 'print JSON'),
  ).action(async (session: string, opts: GridTargetFlags & { json?: boolean }) => {
    setExit(await statusCommand(session, opts));
  });

  targetOptions(
    program
      .command('results <session>')
      .description("stream a session's results as JSON lines until every task has finished")
      .option('--out <file>', 'write here instead of stdout'),
  ).action(async (session: string, opts: GridTargetFlags & { out?: string }) => {
    setExit(await resultsCommand(session, opts));
  });

  targetOptions(
    program
      .command('cancel <session>')
      .description('cancel a session: pending tasks never start, running ones are interrupted'),
  ).action(async (session: string, opts: GridTargetFlags) => {
    setExit(await cancelCommand(session, opts));
  });

  targetOptions(
    program
      .command('delete <session>')
      .description('delete a finished session now: its tasks and its payload files (finished ones expire on their own)')
      .option('--force', 'cancel the session first if tasks are still pending or running'),
  ).action(async (session: string, opts: GridTargetFlags & { force?: boolean }) => {
    setExit(await deleteCommand(session, opts));
  });
}

/** `bundle`: the Lambda zip of a worker folder. */
function addBundleCommand(program: Command, setExit: SetExit): void {
  program
    .command('bundle <dir>')
    .description('build the Lambda zip of a worker folder (Python with requirements, Node/TypeScript with esbuild)')
    .requiredOption('-o, --out <zip>', 'zip to write')
    .option('--runtime <family>', 'python, node or provided (default: detected)')
    .option('--python <path>', 'Python executable for pip')
    .option(
      '--lambda-platform <arch>',
      'install Python requirements for AWS Lambda on x86_64 or arm64, not this machine',
    )
    .option('--lambda-runtime <name>', 'with --lambda-platform: the Lambda Python runtime (default python3.12)')
    .action(async (dir: string, opts: BundleFlags) => {
      setExit(await bundleCommand(dir, opts));
    });
}

/** Runs the CLI; resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander already printed the message (and help); --help and --version are not errors.
    return err.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (
    err instanceof UsageError ||
    err instanceof ConfigError ||
    err instanceof InvalidTaskError ||
    err instanceof UnknownSessionError ||
    err instanceof SessionExistsError ||
    err instanceof GridFolderInUseError
  ) {
    output.error(err.message);
    return EXIT_USAGE;
  }
  if (err instanceof WorkerInitError) {
    output.error(`the worker could not be loaded (${err.errorType}): ${err.message}`);
    return EXIT_USAGE;
  }
  if (err instanceof HtcGridError) {
    output.error(err.message);
    return 1;
  }
  output.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 1;
}
