// Streams a session's results to a JSON Lines sink while keeping a progress bar and a summary up to date.
import fs from 'node:fs';
import { once } from 'node:events';
import { emptyStateCounts, type StateCounts } from '../core';
import { resultLine, type SessionHandle, type TaskResult } from '../client';
import * as output from './output';

export interface FollowOptions {
  /** File to write one JSON line per task to; `-` for stdout. */
  readonly out?: string;
  readonly showProgress?: boolean;
  readonly label?: string;
  readonly signal?: AbortSignal;
}

export interface FollowSummary {
  readonly counts: StateCounts;
  readonly total: number;
  /** A few failed tasks, to show the user what went wrong. */
  readonly firstFailures: readonly TaskResult[];
  readonly latenciesMs: readonly number[];
}

const MAX_FAILURES_SHOWN = 5;

export async function followResults(handle: SessionHandle, options: FollowOptions = {}): Promise<FollowSummary> {
  const file = options.out && options.out !== '-' ? fs.createWriteStream(options.out, { encoding: 'utf8' }) : undefined;
  const bar = output.progress(options.label ?? 'tasks', options.showProgress ?? true);
  bar.setTotal(handle.taskCount ?? 0);
  const counts = emptyStateCounts();
  const firstFailures: TaskResult[] = [];
  const latencies: number[] = [];
  let done = 0;
  try {
    for await (const r of handle.results({ signal: options.signal })) {
      counts[r.state]++;
      done++;
      if (r.state !== 'succeeded' && firstFailures.length < MAX_FAILURES_SHOWN) firstFailures.push(r);
      if (r.finishedAt !== undefined && latencies.length < 1_000_000) latencies.push(r.finishedAt - r.submittedAt);
      if (options.out === '-') output.result(resultLine(r));
      else if (file && !file.write(`${resultLine(r)}\n`)) await once(file, 'drain');
      if (done % 64 === 0 || done === handle.taskCount) bar.update(done, counts);
    }
    bar.update(done, counts);
  } finally {
    bar.stop();
    if (file) {
      file.end();
      await once(file, 'finish');
    }
  }
  return { counts, total: handle.taskCount ?? done, firstFailures, latenciesMs: latencies };
}

export function printFailures(failures: readonly TaskResult[]): void {
  if (failures.length === 0) return;
  output.info('');
  output.info('first failures:');
  for (const f of failures) {
    const what = f.error ? `${f.error.type}: ${f.error.message.split('\n')[0]}` : f.state;
    output.info(
      `  task #${f.index} (${f.taskId}) ${f.state}${f.failureReason ? ` [${f.failureReason}]` : ''} after ${f.attempts} attempt(s): ${what}`,
    );
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
