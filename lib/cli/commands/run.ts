// `htcgrid run`: an embedded grid for one batch of tasks from a JSON Lines file, results to a JSON Lines file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GridConfig } from '../../core';
import { createLogger } from '../../logging';
import { startEmbeddedGrid } from '../embedded-grid';
import { followResults, percentile, printFailures } from '../follow-results';
import * as output from '../output';
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
  if (flags.tasks !== '-') await countTasks(flags.tasks);
  return runBatch({ ...flags, config, events: readTasks(flags.tasks) });
}

/** Runs a batch on a fresh embedded grid; returns the exit status (0 all succeeded, 1 otherwise). */
export async function runBatch(input: BatchInput): Promise<number> {
  const { config } = input;
  const dataDir = input.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-run-'));
  const logger = createLogger({ level: input.logLevel ?? 'error', destination: input.logFile ?? 2 });
  const started = Date.now();
  const grid = await startEmbeddedGrid({ dataDir, config, worker: input.worker, logger });
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
    const interpreter = config.runtime.family === 'python' ? ` with ${config.pythonExecutable}` : '';
    output.info(
      `running ${config.handler} (${config.runtime.name} runtime${interpreter}) on ${config.slots} slot(s) from ${grid.taskRoot}`,
    );
    const handle = await grid.client.submit(input.events, { priority: input.priority });
    sessionCancel = () => handle.cancel();
    if (interrupted.signal.aborted) await handle.cancel();
    const summary = await followResults(handle, {
      out: input.out,
      showProgress: input.progress ?? true,
      label: input.label ?? 'tasks',
    });
    const elapsed = Date.now() - started;
    const sorted = [...summary.latenciesMs].sort((a, b) => a - b);
    output.summary(summary.counts, elapsed, {
      'p50 (ms)': percentile(sorted, 50),
      'p99 (ms)': percentile(sorted, 99),
      ...(input.out && input.out !== '-' ? { results: input.out } : {}),
    });
    printFailures(summary.firstFailures);
    return summary.counts.succeeded === summary.total ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await grid.close(interrupted.signal.aborted ? 2_000 : 30_000);
    if (!input.dataDir && !input.keep) fs.rmSync(dataDir, { recursive: true, force: true });
    else output.info(`grid data kept in ${dataDir}`);
  }
}
