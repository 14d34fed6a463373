// A submitted session: stream its results in completion order, wait for it, count its states, cancel it.
import { isTerminal, type SessionRecord, type StateCounts } from '../core';
import type { PayloadStore, TaskTable } from '../ports';
import { sleep } from '../timing';
import { toTaskResult, type TaskResult } from './task-result';

export interface SessionStatus {
  readonly sessionId: string;
  /** Tasks in the session (undefined while the submission is still being written). */
  readonly total: number | undefined;
  readonly counts: StateCounts;
  /** Every task is in a terminal state. */
  readonly done: boolean;
}

/**
 * Changes of the grid's task table as they happen (a local grid's `DatabaseChanges`): a handle waiting for results
 * looks again at each one instead of at its next poll.
 */
export interface ChangeFeed {
  /** Changes seen so far; read before looking at the table. */
  readonly version: number;
  /** True once a change after `since` happened (at once if one did), false after `timeoutMs` or on abort. */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** False while the feed cannot deliver changes: handles then poll with back-off as without one. @default true */
  readonly live?: boolean;
  /**
   * While live, the longest wait between two looks (the poll that finds what a lost change would have told).
   * @default - the handle's poll interval
   */
  readonly fallbackPollMs?: number;
  /**
   * Every write that ends a task raises `version` (a local grid's `DatabaseChanges` while it watches): a session
   * written after the feed showed `version` v has no result to read while the feed still shows v, so a handle's first
   * look can wait for a change instead of reading an empty page. @default false
   */
  readonly announcesEveryEnd?: boolean;
}

/**
 * How long a handle without a change feed waits for news the `waits`-th time since it started watching: `minMs`,
 * doubling up to `maxMs`. A result that comes soon after the handle starts (an interactive task) is seen within about
 * its own time again, while a long session costs a handful more looks than polling every `maxMs`, each still reading
 * a full page (results found do not bring the wait back down: that would read them a few at a time).
 */
export function pollBackoff(waits: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(waits, 30));
}

export interface WatchOptions {
  /** How often to look for news when nothing is ready (with a change feed: at most this long between looks). */
  readonly pollIntervalMs?: number;
  readonly signal?: AbortSignal;
}

export class SessionHandle {
  constructor(
    private session: SessionRecord,
    private readonly table: TaskTable,
    private readonly store: PayloadStore,
    private readonly defaultPollMs: number,
    private readonly changes?: ChangeFeed,
    private readonly minPollMs?: number,
    /** The feed's `version` read before this session was written (see `ChangeFeed.announcesEveryEnd`). */
    private readonly writtenAtVersion?: number,
  ) {}

  get sessionId(): string {
    return this.session.sessionId;
  }

  get taskCount(): number | undefined {
    return this.session.taskCount;
  }

  async status(): Promise<SessionStatus> {
    const counts = await this.table.countByState(this.sessionId);
    const total = await this.total();
    const finished = counts.succeeded + counts.failed + counts.cancelled;
    return { sessionId: this.sessionId, total, counts, done: total !== undefined && finished >= total };
  }

  /**
   * Every task's outcome, in completion order, as tasks finish. Ends when all tasks are terminal. Memory stays bounded
   * by one page whatever the session's size.
   */
  async *results(options: WatchOptions & { pageSize?: number } = {}): AsyncGenerator<TaskResult> {
    const poll = options.pollIntervalMs ?? this.defaultPollMs;
    let cursor: string | undefined;
    let seen = 0;
    let waits = 0;
    // Nothing ended since the session was written: its first page would be empty (one look less per round trip).
    const quiet = this.quietSinceWritten();
    if (quiet !== undefined) await this.pause(this.pollDelay(waits++, poll), quiet, options.signal);
    for (;;) {
      if (options.signal?.aborted) return;
      const since = this.changes?.version;
      const page = await this.table.listTerminal(this.sessionId, cursor, options.pageSize ?? 1000);
      cursor = page.cursor ?? cursor;
      for (const task of page.tasks) {
        if (!isTerminal(task.state)) continue;
        seen++;
        yield await toTaskResult(task, this.store);
      }
      // The last result of a sealed session ends the stream at once: one more empty page would only confirm it.
      const known = this.session.taskCount;
      if (known !== undefined && seen >= known) return;
      // Tasks found: read on at once, unless the table says the page held every task that had ended (then the next
      // look waits for news like after an empty page: reading on would bring a few tasks a request).
      if (page.tasks.length > 0 && page.more !== false) continue;
      const total = await this.total();
      if (total !== undefined && seen >= total) return;
      await this.pause(this.pollDelay(waits++, poll), since, options.signal);
    }
  }

  /** Resolves with the final counts once every task is terminal. */
  async wait(options: WatchOptions = {}): Promise<StateCounts> {
    const poll = options.pollIntervalMs ?? this.defaultPollMs;
    let waits = 0;
    for (;;) {
      const since = this.changes?.version;
      const status = await this.status();
      if (status.done || options.signal?.aborted) return status.counts;
      await this.pause(this.pollDelay(waits++, poll), since, options.signal);
    }
  }

  /**
   * Cancels the session (or some of its tasks): pending tasks never start, running ones are interrupted by their
   * agent within about a second. Returns how many tasks were cancelled.
   */
  async cancel(taskIds?: readonly string[]): Promise<number> {
    return this.table.cancel(this.sessionId, taskIds, Date.now());
  }

  /** The feed's version when it still shows the one the session was written at and announces every end. */
  private quietSinceWritten(): number | undefined {
    const feed = this.changes;
    if (feed?.announcesEveryEnd !== true || feed.live === false || this.writtenAtVersion === undefined)
      return undefined;
    // A session without tasks has ended already: its (empty) results need no wait.
    if (this.session.taskCount === 0) return undefined;
    const version = feed.version;
    return version === this.writtenAtVersion ? version : undefined;
  }

  /** The handle's `waits`-th wait for news since it started watching (see `pollBackoff`). */
  private pollDelay(waits: number, poll: number): number {
    if (this.changes !== undefined && this.changes.live !== false) return this.changes.fallbackPollMs ?? poll;
    return this.minPollMs === undefined ? poll : pollBackoff(waits, this.minPollMs, poll);
  }

  /** Until the table changes after `since` (when a feed tells), at most `ms`. */
  private async pause(ms: number, since: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (this.changes && since !== undefined) await this.changes.waitForChange(since, ms, signal);
    else await sleep(ms, signal);
  }

  private async total(): Promise<number | undefined> {
    if (this.session.taskCount === undefined) {
      this.session = (await this.table.getSession(this.sessionId)) ?? this.session;
    }
    return this.session.taskCount;
  }
}
