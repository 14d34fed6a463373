// `htcgrid local up` and the session commands (`submit`, `status`, `results`, `cancel`) against a local grid folder.
import fs from 'node:fs';
import { once } from 'node:events';
import type { GridConfig } from '../../core';
import type { AgentPresence } from '../../ports';
import type { SessionSummaryView } from '../../client';
import { createLogger } from '../../logging';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../local-grid';
import {
  agentsLine,
  diskFullMessage,
  noAgentMessage,
  slotUsageOf,
  waitingForDiskOf,
  watchAgents,
} from '../agent-watch';
import { checkResultsFile, followResults, printFailures } from '../follow-results';
import * as output from '../output';
import { pythonVersionNote, slotsWarning, withStartupProgress } from '../startup-notice';
import { countTasks, readTasks } from '../task-source';
import { UsageError } from '../usage-error';
import { openGridClient, reattachCommand, type GridTargetFlags } from '../grid-target';
import { OutputTails } from '../../http';
import { announceTakeover, writeLocalConfig } from '../grid-folder';
import { bothListeners, workerOutputPrinter } from '../worker-output';
import { defaultResultsOut, noTasksError } from './run';
import { parseHttpAddress, printHttpApi, startLocalHttpApi } from './serve';

export interface LocalUpFlags {
  readonly dir: string;
  readonly worker: string;
  readonly logLevel?: string;
  readonly logFile?: string;
  readonly graceSec?: number;
  /** Serve the HTTP API too (`--http [host:port]`). */
  readonly http?: string | boolean;
}

/** Runs an agent and the reaper on a grid folder until SIGINT/SIGTERM, then drains. */
export async function localUpCommand(config: GridConfig, flags: LocalUpFlags): Promise<number> {
  if (!fs.existsSync(flags.worker))
    throw new UsageError(`worker ${flags.worker} does not exist: pass a worker folder or zip`);
  fs.mkdirSync(flags.dir, { recursive: true });
  // Clients of this grid read the same configuration (payload limits, defaults).
  const logger = createLogger({ level: flags.logLevel ?? 'info', destination: flags.logFile ?? 2 });
  const outputs = flags.http !== undefined ? new OutputTails() : undefined;
  const warning = slotsWarning(config.slots);
  if (warning) output.info(warning);
  const grid = await withStartupProgress(
    `starting ${config.slots} runtime(s)`,
    startEmbeddedGrid({
      dataDir: flags.dir,
      config,
      worker: flags.worker,
      logger,
      onWorkerOutput: bothListeners(workerOutputPrinter(), outputs?.listener),
      claimFolder: true,
      onFolderTakeover: (differences) => announceTakeover(flags.dir, differences),
    }),
  );
  // Clients of this grid read the same configuration (payload limits, defaults); written once the folder is ours.
  writeLocalConfig(flags.dir, config);
  const api = outputs
    ? await startLocalHttpApi({
        dir: flags.dir,
        config,
        grid,
        address: parseHttpAddress(flags.http),
        logger,
        outputs,
      }).catch(async (err: unknown) => {
        await grid.close(0);
        throw err;
      })
    : undefined;
  const python = config.runtime.family === 'python' ? pythonVersionNote(config) : undefined;
  output.info(
    `local grid up in ${flags.dir}: ${config.handler} (${config.runtime.name}${python ? ` with ${python.line}` : ''}) on ${config.slots} slot(s); Ctrl-C drains and stops`,
  );
  if (python?.warning) output.info(python.warning);
  output.info(`submit with: htcgrid submit --dir ${flags.dir} --tasks <file.jsonl>`);
  if (api) printHttpApi(api);
  await waitForSignals(grid, (flags.graceSec ?? 30) * 1000);
  await api?.close();
  output.info(`stopped: ${JSON.stringify(grid.agent?.stats)}`);
  return 0;
}

async function waitForSignals(grid: EmbeddedGrid, graceMs: number, onDrain?: () => void): Promise<void> {
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  onDrain?.();
  output.info(`draining (up to ${graceMs / 1000} s; signal again to stop at once)`);
  const again = (): void => void grid.close(0);
  process.on('SIGINT', again);
  process.on('SIGTERM', again);
  await grid.close(graceMs);
}

export type GridDirFlags = GridTargetFlags;

export interface SubmitFlags extends GridDirFlags {
  readonly tasks: string;
  readonly wait?: boolean;
  readonly out?: string;
  readonly priority?: number;
  readonly maxAttempts?: number;
  readonly timeoutSec?: number;
}

export async function submitCommand(flags: SubmitFlags): Promise<number> {
  // A results file that cannot be written is refused before anything is submitted.
  if (flags.wait) checkResultsFile(flags.out);
  const grid = await openGridClient(flags);
  try {
    // A file is read once ahead: bad lines fail before anything is submitted, and the count sizes the session.
    const expectedTasks = flags.tasks !== '-' ? await countTasks(flags.tasks) : undefined;
    if (expectedTasks === 0) throw noTasksError(flags.tasks);
    const handle = await grid.client.submit(readTasks(flags.tasks), {
      expectedTasks,
      priority: flags.priority,
      maxAttempts: flags.maxAttempts,
      timeoutSec: flags.timeoutSec,
    });
    // Waiting without --out keeps the results like `run` does; on stdout they come alone (the id is on stderr).
    const out = flags.wait ? (flags.out ?? defaultResultsOut()) : undefined;
    if (out !== '-') output.result(handle.sessionId);
    output.info(`submitted ${handle.taskCount} task(s) as session ${handle.sessionId}`);
    if (!flags.wait) return 0;
    if (flags.out === undefined && out !== '-')
      output.info(`results go to ${out} (choose with --out <file>, - for stdout)`);
    // Ctrl-C detaches: the session keeps running on the grid, and the user is told how to get its results back.
    const detached = new AbortController();
    const onSignal = (): void => detached.abort();
    process.once('SIGINT', onSignal);
    const watching = new AbortController();
    const watch = watchAgents(grid.client, flags, watching.signal);
    let summary;
    try {
      summary = await followResults(handle, {
        out,
        signal: detached.signal,
        readAgain: reattachCommand(handle.sessionId, flags),
      });
    } finally {
      process.off('SIGINT', onSignal);
      watching.abort();
      await watch.catch(() => undefined); // the watch only informs: a failed look at the agents never fails the wait
    }
    if (detached.signal.aborted) {
      output.info(`\ndetached: session ${handle.sessionId} keeps running on the grid; its results, whenever you like:`);
      output.info(`  ${reattachCommand(handle.sessionId, flags)}`);
      return EXIT_INTERRUPTED;
    }
    printFailures(summary.failureGroups);
    return summary.counts.succeeded === summary.total ? 0 : 1;
  } finally {
    await grid.close();
  }
}

function slotsOf(agents: readonly AgentPresence[]): number {
  return agents.reduce((sum, a) => sum + a.slots, 0);
}

/**
 * How many of a session's claimed ("running") tasks cannot be executing: beyond the slots of the agents alive, the
 * rest were claimed ahead and wait in an agent for a slot. 0 when the agents are not known.
 */
export function claimedAhead(running: number, agents: readonly AgentPresence[] | undefined): number {
  if (agents === undefined || agents.length === 0) return 0;
  return Math.max(0, running - slotsOf(agents));
}

/** The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const EXIT_INTERRUPTED = 130;

export async function statusCommand(sessionId: string, flags: GridDirFlags & { json?: boolean }): Promise<number> {
  const grid = await openGridClient(flags);
  try {
    const status = await (await grid.client.session(sessionId)).status();
    const agents = await grid.client.aliveAgents();
    const claimed = claimedAhead(status.counts.running, agents);
    const summary = await grid.client.summary(sessionId);
    if (flags.json) {
      const slots = agents === undefined ? null : slotsOf(agents);
      output.result(
        JSON.stringify({
          ...status,
          agents: agents?.length ?? null,
          slots,
          ...(agents && (slotUsageOf(agents) ?? { busySlots: null, idleSlots: null, runtimeRestarts: null })),
          waitingForDisk: agents === undefined ? null : waitingForDiskOf(agents),
          claimedAheadAtLeast: claimed,
          summary,
        }),
      );
    } else {
      const c = status.counts;
      const running =
        claimed > 0 ? `running ${c.running - claimed} + ${claimed} claimed ahead` : `running ${c.running}`;
      output.result(
        `session ${sessionId}: ${status.total ?? '?'} task(s), pending ${c.pending}, ${running}, succeeded ${c.succeeded}, failed ${c.failed}, cancelled ${c.cancelled}${status.done ? ' (done)' : ''}`,
      );
      if (claimed > 0) {
        output.result(`  claimed ahead: held by an agent until one of the grid's ${slotsOf(agents!)} slot(s) is free`);
      }
      if (agents !== undefined) output.result(agents.length > 0 ? agentsLine(agents) : noAgentMessage(flags));
      if (agents !== undefined && waitingForDiskOf(agents) > 0) output.result(`  ${diskFullMessage(agents)}`);
      for (const line of summaryLines(summary)) output.result(line);
    }
    return 0;
  } finally {
    await grid.close();
  }
}

export async function resultsCommand(sessionId: string, flags: GridDirFlags & { out?: string }): Promise<number> {
  checkResultsFile(flags.out);
  const grid = await openGridClient(flags);
  try {
    const handle = await grid.client.session(sessionId);
    // Following a session still under way (say, after `submit --wait` was detached): told as `submit --wait` is when no
    // agent runs it or the agents wait for disk space. A finished session reads back without a word about agents.
    const watching = new AbortController();
    const watch = (await handle.status()).done ? Promise.resolve() : watchAgents(grid.client, flags, watching.signal);
    let summary;
    try {
      summary = await followResults(handle, {
        out: flags.out ?? '-',
        showProgress: Boolean(flags.out),
        readAgain: reattachCommand(sessionId, flags),
      });
    } finally {
      watching.abort();
      await watch.catch(() => undefined); // the watch only informs: a failed look at the agents never fails the read
    }
    printFailures(summary.failureGroups);
    return summary.counts.succeeded === summary.total ? 0 : 1;
  } finally {
    await grid.close();
  }
}

export async function cancelCommand(sessionId: string, flags: GridDirFlags): Promise<number> {
  const grid = await openGridClient(flags);
  try {
    const cancelled = await (await grid.client.session(sessionId)).cancel();
    output.result(`cancelled ${cancelled} task(s) of session ${sessionId}`);
    return 0;
  } finally {
    await grid.close();
  }
}

/** Time queued and running (p50/p95/p99) and failures by error type, as `htcgrid status` prints them. */
export function summaryLines(summary: SessionSummaryView): string[] {
  const ms = (v: number | null): string => (v === null ? '-' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(2)} s`);
  const lines: string[] = [];
  for (const [name, l] of [
    ['queued ', summary.queued],
    ['running', summary.running],
  ] as const) {
    if (l.count > 0)
      lines.push(`  ${name}  p50 ${ms(l.p50Ms)}, p95 ${ms(l.p95Ms)}, p99 ${ms(l.p99Ms)}, max ${ms(l.maxMs)}`);
  }
  for (const f of summary.failures) {
    lines.push(
      `  failed: ${f.errorType} ${f.failedTasks} task(s), ${f.failedAttempts} attempt(s), e.g. ${f.exampleTaskId}: ${f.exampleMessage.split('\n')[0]}`,
    );
  }
  return lines;
}

export async function deleteCommand(sessionId: string, flags: GridDirFlags & { force?: boolean }): Promise<number> {
  const grid = await openGridClient(flags);
  try {
    const { tasks } = await grid.client.deleteSession(sessionId, { force: flags.force });
    output.result(`deleted session ${sessionId}: ${tasks} task(s) and their payload files`);
    return 0;
  } finally {
    await grid.close();
  }
}
