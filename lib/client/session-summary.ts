// Failures by error type and time queued / time running of a session, kept up to date from its terminal tasks.
import { type LatencyView, type SessionSummaryView, type TaskRecord } from '../core';

export type { FailureGroup, LatencyView, SessionSummaryView } from '../core';
import type { TaskTable } from '../ports';
import { DeliveredTasks, lackedBy } from './delivered-tasks';
import { ReReadGate } from './missing-results-check';

/** Bucket bounds (ms) of the latency histograms: 1 ms to about 12 days, four buckets per doubling. */
const BOUNDS: readonly number[] = Array.from({ length: 4 * 30 + 1 }, (_, i) => Math.round(2 ** (i / 4)));

/** A latency distribution in fixed log-scale buckets: constant memory whatever the number of tasks. */
export class LatencyHistogram {
  private readonly counts = new Array<number>(BOUNDS.length + 1).fill(0);
  private n = 0;
  private sum = 0;
  private max = 0;

  add(ms: number): void {
    const value = Math.max(0, ms);
    let lo = 0;
    let hi = BOUNDS.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (BOUNDS[mid]! >= value) hi = mid;
      else lo = mid + 1;
    }
    this.counts[lo]! += 1;
    this.n += 1;
    this.sum += value;
    this.max = Math.max(this.max, value);
  }

  /** The upper bound of the bucket holding the p-th percentile (at most the largest value seen). */
  percentile(p: number): number | null {
    if (this.n === 0) return null;
    const rank = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(BOUNDS[i] ?? this.max, this.max);
    }
    return this.max;
  }

  view(): LatencyView {
    const buckets: { le: number; count: number }[] = [];
    this.counts.forEach((count, i) => {
      if (count > 0) buckets.push({ le: BOUNDS[i] ?? this.max, count });
    });
    return {
      count: this.n,
      meanMs: this.n === 0 ? null : Math.round(this.sum / this.n),
      p50Ms: this.percentile(50),
      p95Ms: this.percentile(95),
      p99Ms: this.percentile(99),
      maxMs: this.n === 0 ? null : this.max,
      buckets,
    };
  }
}

interface MutableGroup {
  failedTasks: number;
  failedAttempts: number;
  reasons: Record<string, number>;
  exampleTaskId: string;
  exampleMessage: string;
}

/**
 * Follows one session's terminal tasks from a cursor; each `update` reads only what finished since. A task the listing
 * passed (see `SessionHandle.results`) is caught up when `update` is given the table's count of terminal tasks: once
 * the listing is read to its end and the table counts more than the summary holds, it reads the session again from
 * its first terminal task and adds those it lacks (one bit per task tells), once per rise of that gap, and once
 * every 5 minutes while the gap lasts (a read not consistent yet brings a task later; see `ReReadGate`).
 */
export class SessionSummary {
  private cursor: string | undefined;
  private readonly summarised = new DeliveredTasks();
  private readonly groups = new Map<string, MutableGroup>();
  private readonly queued = new LatencyHistogram();
  private readonly running = new LatencyHistogram();
  private firstFinishedAt: number | null = null;
  private lastFinishedAt: number | null = null;
  private updating: Promise<void> | undefined;
  private readonly gate = new ReReadGate();
  /** A read from the first terminal task under way: where it is, and the count that called for it. */
  private reRead: { cursor: string | undefined; readonly counted: number } | undefined;

  /** @param clock the time the catch-up's re-read gate goes by (see `ReReadGate`) */
  constructor(
    readonly sessionId: string,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Reads terminal tasks finished since the last update (at most `maxTasks` per call, so an answer stays quick).
   * `counted`: the table's count of the session's terminal tasks, taken before this call (see the class).
   */
  update(table: TaskTable, maxTasks = 200_000, counted?: number): Promise<void> {
    this.updating ??= this.read(table, maxTasks, counted).finally(() => (this.updating = undefined));
    return this.updating;
  }

  view(): SessionSummaryView {
    const failures = [...this.groups]
      .map(([errorType, g]) => ({ errorType, ...g }))
      .sort((a, b) => b.failedTasks - a.failedTasks || b.failedAttempts - a.failedAttempts);
    return {
      sessionId: this.sessionId,
      tasks: this.summarised.size,
      failures,
      queued: this.queued.view(),
      running: this.running.view(),
      firstFinishedAt: this.firstFinishedAt,
      lastFinishedAt: this.lastFinishedAt,
    };
  }

  private async read(table: TaskTable, maxTasks: number, counted: number | undefined): Promise<void> {
    let read = 0;
    for (;;) {
      if (read >= maxTasks) return;
      const page = await table.listTerminal(this.sessionId, this.cursor, 1000);
      this.cursor = page.cursor ?? this.cursor;
      for (const task of page.tasks) this.add(task);
      read += page.tasks.length;
      if (page.tasks.length === 0) break;
    }
    // Read to the end of the listing: what the table counted beyond it, the listing passed.
    if (
      this.reRead === undefined &&
      counted !== undefined &&
      this.gate.missing(counted, this.summarised.size, this.clock())
    ) {
      if (table.readTerminalWanted) {
        // The table reads keys and fetches only the tasks lacking: cheap enough to finish within this update.
        const lacking = lackedBy(this.sessionId, this.summarised);
        for await (const tasks of table.readTerminalWanted(this.sessionId, lacking, 1000)) {
          for (const task of tasks) this.add(task);
        }
        this.gate.reReadEnded(counted, this.summarised.size, this.clock());
        return;
      }
      this.reRead = { cursor: undefined, counted };
    }
    while (this.reRead !== undefined && read < maxTasks) {
      const page = await table.listTerminal(this.sessionId, this.reRead.cursor, 1000);
      this.reRead.cursor = page.cursor ?? this.reRead.cursor;
      for (const task of page.tasks) this.add(task);
      read += page.tasks.length;
      if (page.tasks.length === 0) {
        this.gate.reReadEnded(this.reRead.counted, this.summarised.size, this.clock());
        this.reRead = undefined;
      }
    }
  }

  private add(task: TaskRecord): void {
    if (!this.summarised.add(task.index)) return;
    const firstClaim = task.history[0]?.startedAt ?? task.startedAt;
    if (firstClaim !== undefined) this.queued.add(firstClaim - task.submittedAt);
    if (task.state !== 'cancelled' && task.startedAt !== undefined && task.finishedAt !== undefined) {
      this.running.add(task.finishedAt - task.startedAt);
    }
    if (task.finishedAt !== undefined) {
      this.firstFinishedAt = Math.min(this.firstFinishedAt ?? task.finishedAt, task.finishedAt);
      this.lastFinishedAt = Math.max(this.lastFinishedAt ?? task.finishedAt, task.finishedAt);
    }
    for (const attempt of task.history) {
      if (!attempt.error || attempt.outcome === 'succeeded' || attempt.outcome === 'cancelled') continue;
      const group = this.group(attempt.error.type, task, attempt.error.message);
      group.failedAttempts += 1;
      group.reasons[attempt.outcome] = (group.reasons[attempt.outcome] ?? 0) + 1;
    }
    if (task.state === 'failed' && task.error) this.group(task.error.type, task, task.error.message).failedTasks += 1;
  }

  private group(type: string, task: TaskRecord, message: string): MutableGroup {
    let group = this.groups.get(type);
    if (!group) {
      group = { failedTasks: 0, failedAttempts: 0, reasons: {}, exampleTaskId: task.taskId, exampleMessage: message };
      this.groups.set(type, group);
    }
    return group;
  }
}
