// Streams a session's results to a JSON Lines sink while keeping a progress bar and a summary up to date.
import fs from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { emptyStateCounts, HtcGridError, type StateCounts } from '../core';
import { resultLine, type SessionHandle, type TaskResult } from '../client';
import * as output from './output';
import { UsageError } from './usage-error';

export interface FollowOptions {
  /** File to write one JSON line per task to; `-` for stdout. */
  readonly out?: string;
  readonly showProgress?: boolean;
  readonly label?: string;
  readonly signal?: AbortSignal;
  /**
   * The command line that reads the session's results again from its grid (`reattachCommand`), told when the file
   * cannot be written.
   * @default - the results are not kept once the command ends (a batch on a temporary grid folder)
   */
  readonly readAgain?: string;
}

export interface FollowSummary {
  readonly counts: StateCounts;
  readonly total: number;
  /** A few failed tasks, to show the user what went wrong. */
  readonly firstFailures: readonly TaskResult[];
  /** Tasks that did not succeed, by error type (or `cancelled`), most frequent first, with one example each. */
  readonly failureGroups: readonly FailureGroup[];
  /** Per task, submission to finish (queued, claimed ahead, run, retried: all of it). */
  readonly latenciesMs: readonly number[];
}

export interface FailureGroup {
  /** The last attempt's error type (`PricingError`, `Sandbox.Timedout`, ...), or `cancelled`. */
  readonly type: string;
  readonly count: number;
  readonly example: TaskResult;
}

const MAX_FAILURES_SHOWN = 5;
/** Distinct error types kept apart; beyond, they count under `other types`. */
const MAX_FAILURE_GROUPS = 50;

/**
 * Checks that a results file can be written before anything runs: its folder exists and is writable (nothing is
 * created). Throws a `UsageError` naming the file otherwise; `-` (stdout) always passes.
 */
export function checkResultsFile(out: string | undefined): void {
  if (out === undefined || out === '-') return;
  const dir = path.dirname(path.resolve(out));
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === 'ENOENT'
        ? `folder ${dir} does not exist (create it, or choose another --out)`
        : code === 'ENOTDIR'
          ? `${dir} is not a folder (a part of that path is a file): choose another --out`
          : `${dir} is not writable (${code ?? 'access denied'}): make it writable, or choose another --out`;
    throw new UsageError(`cannot write the results file ${out}: ${why}`);
  }
}

export async function followResults(handle: SessionHandle, options: FollowOptions = {}): Promise<FollowSummary> {
  const file = options.out && options.out !== '-' ? fs.createWriteStream(options.out, { encoding: 'utf8' }) : undefined;
  // A file that cannot be opened or written (its folder went, the disk is full) ends the follow with that error.
  let fileError: Error | undefined;
  file?.on('error', (err) => (fileError ??= err));
  const bar = output.progress(options.label ?? 'tasks', options.showProgress ?? true);
  bar.setTotal(handle.taskCount ?? 0);
  const counts = emptyStateCounts();
  const firstFailures: TaskResult[] = [];
  const groups = new Map<string, { count: number; example: TaskResult }>();
  const latencies: number[] = [];
  let done = 0;
  try {
    for await (const r of handle.results({ signal: options.signal })) {
      counts[r.state]++;
      done++;
      if (r.state !== 'succeeded') {
        if (firstFailures.length < MAX_FAILURES_SHOWN) firstFailures.push(r);
        const type = failureType(r);
        const key = groups.has(type) || groups.size < MAX_FAILURE_GROUPS ? type : 'other types';
        const group = groups.get(key);
        if (group) group.count++;
        else groups.set(key, { count: 1, example: r });
      }
      if (r.finishedAt !== undefined && latencies.length < 1_000_000) latencies.push(r.finishedAt - r.submittedAt);
      if (fileError) break;
      if (options.out === '-') output.result(resultLine(r));
      else if (file && !file.write(`${resultLine(r)}\n`)) await once(file, 'drain').catch(() => undefined);
      if (done % 64 === 0 || done === handle.taskCount) bar.update(done, counts);
    }
    bar.update(done, counts);
  } finally {
    bar.stop();
    if (file && !fileError) {
      file.end();
      await once(file, 'finish').catch((err: Error) => (fileError ??= err));
    }
  }
  if (fileError) {
    throw new HtcGridError(`could not write the results file ${options.out}: ${fileError.message}`, {
      cause: fileError,
      hint:
        options.readAgain !== undefined
          ? `the session keeps its results: read them again with ${options.readAgain}`
          : 'the results were not kept (the grid folder of this batch is temporary): run it again with an --out ' +
            'that can be written, and add --keep to keep the grid folder',
    });
  }
  const failureGroups = [...groups].map(([type, g]) => ({ type, ...g })).sort((a, b) => b.count - a.count);
  return { counts, total: handle.taskCount ?? done, firstFailures, failureGroups, latenciesMs: latencies };
}

function failureType(r: TaskResult): string {
  return r.state === 'cancelled' ? 'cancelled' : (r.error?.type ?? r.failureReason ?? r.state);
}

/** Failures grouped by error type, most frequent first, each with its count and one example task. */
export function printFailures(groups: readonly FailureGroup[]): void {
  if (groups.length === 0) return;
  output.info('');
  output.info('failures by type:');
  const width = Math.max(...groups.map((g) => g.type.length));
  for (const { type, count, example: f } of groups) {
    const message = f.error ? `: ${f.error.message.split('\n')[0]}` : '';
    output.info(
      `  ${type.padEnd(width)}  ${count} task(s), e.g. task #${f.index} (${f.taskId})${f.failureReason ? ` [${f.failureReason}]` : ''} after ${f.attempts} attempt(s)${message}`,
    );
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
