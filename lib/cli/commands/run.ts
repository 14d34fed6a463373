// `htcgrid run`: an embedded grid for one batch of tasks from a JSON Lines file, results to a JSON Lines file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GridConfig } from '../../core';
import { createLogger, type Logger } from '../../logging';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../local-grid';
import { checkResultsFile, followResults, percentile, printFailures, type FollowSummary } from '../follow-results';
import * as output from '../output';
import { pythonVersionNote, slotsWarning, withStartupProgress } from '../startup-notice';
import { announceTakeover, writeLocalConfig } from '../grid-folder';
import { reattachCommand } from '../grid-target';
import { workerOutputPrinter } from '../worker-output';
import { countTasks, readTasks } from '../task-source';
import { UsageError } from '../usage-error';

export interface RunFlags {
  readonly worker: string;
  readonly tasks: string;
  readonly out?: string;
  readonly dataDir?: string;
  readonly keep?: boolean;
  readonly logLevel?: string;
  readonly logFile?: string;
  readonly progress?: boolean;
  readonly priority?: number;
}

/** A batch to run: the flags of `htcgrid run`, with the events instead of the task file. */
export interface BatchInput extends Omit<RunFlags, 'tasks'> {
  readonly config: GridConfig;
  readonly events: AsyncIterable<unknown> | Iterable<unknown>;
  /** Label of the progress bar. */
  readonly label?: string;
}

export async function runCommand(config: GridConfig, flags: RunFlags): Promise<number> {
  if (!fs.existsSync(flags.worker))
    throw new UsageError(`worker ${flags.worker} does not exist: pass a worker folder or zip`);
  // Validate the whole file first so a bad line submits nothing (stdin is validated as it streams).
  if (flags.tasks !== '-' && (await countTasks(flags.tasks)) === 0) throw noTasksError(flags.tasks);
  const out = flags.out ?? defaultResultsOut();
  checkResultsFile(out);
  if (flags.out === undefined && out !== '-')
    output.info(`results go to ${out} (choose with --out <file>, - for stdout)`);
  const code = await runBatch({ ...flags, out, config, events: readTasks(flags.tasks) });
  if (code === NO_TASKS) throw noTasksError(flags.tasks);
  return code;
}

/** The exit status of a command stopped by a signal before it could finish, as shells report Ctrl-C (128 + 2). */
const EXIT_INTERRUPTED = 130;

/** What runBatch answers when the events held no task at all (an empty stdin). */
const NO_TASKS = -1;

export function noTasksError(tasks: string): UsageError {
  const where = tasks === '-' ? 'stdin' : `task file ${tasks}`;
  return new UsageError(`${where} holds no tasks: write one JSON event per line (JSON Lines)`);
}

/**
 * Where `run` keeps results when `--out` is not given: piped or redirected, on stdout (`htcgrid run ... | jq`); in a
 * terminal, a new `htcgrid-results-<date>-<time>.jsonl` in the current folder, never discarded and never overwriting.
 */
export function defaultResultsOut(
  now = new Date(),
  dir = process.cwd(),
  stdoutIsTty = process.stdout.isTTY === true,
): string {
  if (!stdoutIsTty) return '-';
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  for (let n = 1; ; n++) {
    const file = path.join(dir, `htcgrid-results-${stamp}${n > 1 ? `-${n}` : ''}.jsonl`);
    if (!fs.existsSync(file)) return path.relative(process.cwd(), file) || file;
  }
}

/** Runs a batch on a fresh embedded grid; returns the exit status (0 all succeeded, 1 otherwise). */
export async function runBatch(input: BatchInput): Promise<number> {
  const { config } = input;
  const dataDir = input.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-run-'));
  const removeTemporary = (): void => {
    if (!input.dataDir && !input.keep) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const logger = createLogger({ level: input.logLevel ?? 'error', destination: input.logFile ?? 2 });
  const started = Date.now();
  const warning = slotsWarning(config.slots);
  if (warning) output.info(warning);
  const grid = await startBatchGrid(input, dataDir, logger, removeTemporary);
  if (input.dataDir !== undefined) writeLocalConfig(dataDir, config);
  const interrupted = new AbortController();
  let sessionCancel: (() => Promise<unknown>) | undefined;
  const onSignal = (): void => {
    if (interrupted.signal.aborted) {
      void grid.close(0);
      return;
    }
    output.info('\ninterrupted: cancelling the session (press Ctrl-C again to stop at once)');
    interrupted.abort();
    void sessionCancel?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    announceRun(config, grid.taskRoot);
    const handle = await grid.client.submit(input.events, { priority: input.priority });
    sessionCancel = () => handle.cancel();
    if (interrupted.signal.aborted) await handle.cancel();
    const kept = input.dataDir !== undefined || input.keep === true;
    const summary = await followResults(handle, {
      out: input.out,
      showProgress: input.progress ?? true,
      label: input.label ?? 'tasks',
      readAgain: kept ? reattachCommand(handle.sessionId, { dir: dataDir }) : undefined,
    });
    reportSummary(summary, Date.now() - started, input.out);
    printFailures(summary.failureGroups);
    if (summary.total === 0) return NO_TASKS;
    return summary.counts.succeeded === summary.total ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await grid.close(interrupted.signal.aborted ? 2_000 : 30_000);
    removeTemporary();
    if (input.dataDir || input.keep) output.info(`grid data kept in ${dataDir}`);
  }
}

/**
 * Starts the batch's embedded grid with a progress line. A signal meanwhile (a worker importing for long, say) stops
 * at once: nothing was submitted yet, and the temporary folder goes, as it does when start-up fails.
 */
function startBatchGrid(
  input: BatchInput,
  dataDir: string,
  logger: Logger,
  removeTemporary: () => void,
): Promise<EmbeddedGrid> {
  const { config } = input;
  // Runtimes still loading see their input close and exit.
  const onStartupSignal = (signal: NodeJS.Signals): void => {
    output.info(`\ninterrupted while starting (${signal}): stopping`);
    removeTemporary();
    process.exit(EXIT_INTERRUPTED);
  };
  process.once('SIGINT', onStartupSignal);
  process.once('SIGTERM', onStartupSignal);
  return withStartupProgress(
    `starting ${config.slots} runtime(s)`,
    startEmbeddedGrid({
      dataDir,
      config,
      worker: input.worker,
      logger,
      onWorkerOutput: workerOutputPrinter(),
      // A kept folder is a grid folder like any other: the session commands read it, no other grid shares it.
      claimFolder: input.dataDir !== undefined,
      onFolderTakeover: (differences) => announceTakeover(dataDir, differences),
    }),
  )
    .catch((err: unknown) => {
      // A failed start-up (the handler cannot load, ...) leaves no temporary grid folder behind.
      removeTemporary();
      throw err;
    })
    .finally(() => {
      process.off('SIGINT', onStartupSignal);
      process.off('SIGTERM', onStartupSignal);
    });
}

/** The line that says what runs where (and the Python interpreter, with its warning if any). */
function announceRun(config: GridConfig, taskRoot: string | undefined): void {
  const python = config.runtime.family === 'python' ? pythonVersionNote(config) : undefined;
  const interpreter = python ? ` with ${python.line}` : '';
  output.info(
    `running ${config.handler} (${config.runtime.name} runtime${interpreter}) on ${config.slots} slot(s) from ${taskRoot}`,
  );
  if (python?.warning) output.info(python.warning);
}

/** The summary of a finished batch: counts, elapsed time, latency percentiles and where the results went. */
function reportSummary(summary: FollowSummary, elapsed: number, out: string | undefined): void {
  const sorted = [...summary.latenciesMs].sort((a, b) => a - b);
  output.summary(summary.counts, elapsed, {
    // Per task, from its submission to its result: time queued and claimed ahead included, not only the run.
    'submit→result p50 (ms)': percentile(sorted, 50),
    'submit→result p99 (ms)': percentile(sorted, 99),
    ...(out && out !== '-' ? { results: out } : {}),
  });
}
