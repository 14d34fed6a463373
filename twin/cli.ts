// `npm run twin -- [--worker DIR] [--slots N] [--agents M] [--tasks K] [-c key=value ...]`: deploys the synthesized
// grid onto this machine as close to AWS as it allows, runs a session through it, and prints a JSON summary last.
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { TwinUnsupportedError } from './errors';
import { runTwin } from './run-twin';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

function contextPair(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** A task event every example worker understands: mock compute's arguments and the pi estimator's samples. */
export function defaultEvent(durationMs: number): (i: number) => unknown {
  return (i) => ({ worker_arguments: [durationMs, 0, 0], samples: 2000, seed: i + 1 });
}

async function main(): Promise<number> {
  const program = new Command('twin')
    .description(
      'run the synthesized grid stack locally: ECS tasks in namespaces, AWS services on emulators, IAM checked, scaling simulated',
    )
    .option('--worker <dir>', 'worker folder (-c worker=)', 'workers/python/mock-compute')
    .option('--slots <n>', 'Lambda containers per ECS task (-c slots=)', integer)
    .option('--agents <n>', 'ECS tasks to run', integer, 2)
    .option('--tasks <n>', 'tasks to submit', integer, 200)
    .option('--task-ms <ms>', 'mock compute: how long each task runs', (v) => Number(v), 20)
    .option('--event <json>', 'the event of every task (default: one the example workers understand)')
    .option('--timeout-sec <s>', 'longest wait for the results', integer, 600)
    .option(
      '-c, --context <key=value>',
      'CDK context, as with cdk deploy (repeatable)',
      contextPair,
      {} as Record<string, string>,
    )
    .showHelpAfterError();
  program.parse(process.argv);
  const opts = program.opts<{
    worker: string;
    slots?: number;
    agents: number;
    tasks: number;
    taskMs: number;
    event?: string;
    timeoutSec: number;
    context: Record<string, string>;
  }>();
  const repoRoot = path.resolve(__dirname, '..');
  const context: Record<string, string> = { worker: opts.worker, ...opts.context };
  if (opts.slots !== undefined) context.slots = String(opts.slots);
  const fixed = opts.event === undefined ? undefined : (JSON.parse(opts.event) as unknown);
  const started = Date.now();
  const progress = (line: string) =>
    process.stderr.write(`[twin ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  const summary = await runTwin({
    repoRoot,
    context,
    agents: opts.agents,
    tasks: opts.tasks,
    event: fixed === undefined ? defaultEvent(opts.taskMs) : () => fixed,
    timeoutSec: opts.timeoutSec,
    progress,
  }).catch((error: unknown) => {
    if (error instanceof TwinUnsupportedError) {
      progress(`skipped: ${error.message}`);
      return undefined;
    }
    throw error;
  });
  if (!summary) {
    process.stdout.write(`${JSON.stringify({ ok: false, skipped: true })}\n`);
    return 3;
  }
  for (const f of summary.failures) progress(`FAIL: ${f}`);
  const { iam, ...rest } = summary;
  process.stderr.write(`${JSON.stringify({ iam }, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(rest)}\n`);
  return summary.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`twin failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
