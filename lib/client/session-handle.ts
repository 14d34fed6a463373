// A submitted session: stream its results in completion order, wait for it, count its states, cancel it.
import type { Logger } from 'pino';
import { isTerminal, type SessionRecord, type StateCounts, type TaskRecord } from '../core';
import { silentLogger } from '../logging';
import type { PayloadStore, TaskTable } from '../ports';
import { sleep } from '../timing';
import { DeliveredTasks, lackedBy } from './delivered-tasks';
import { MISSING_RESULTS_CHECK_MS, MissingResultsCheck } from './missing-results-check';
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
  /**
   * True once a change after `since` happened (at once if one did), false after `timeoutMs` or on abort. With
   * `sessionId`, a feed that tells sessions apart (AWS completion notices) counts only that session's changes; one
   * that cannot (a local grid's database changes) counts every change.
   */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal, sessionId?: string): Promise<boolean>;
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

export interface ResultsOptions extends WatchOptions {
  /** Tasks read per page. @default 1000 */
  readonly pageSize?: number;
  /**
   * While results are missing and none came for this long, the stream counts the session's ended tasks in the table,
   * and again after twice as long each time none comes (up to 5 minutes); when the table counts more than the stream
   * delivered, it reads them all again from the start and delivers those it missed (see `results`). `Infinity` turns
   * the check off.
   * @default - the handle's (`GridClientOptions.missingResultsCheckMs`, 20 s)
   */
  readonly missingResultsCheckMs?: number;
}

/** What a `GridClient` gives the handles it opens. */
export interface SessionHandleOptions {
  readonly table: TaskTable;
  readonly store: PayloadStore;
  /** How often to look for news when nothing is ready (see `GridClientOptions.pollIntervalMs`). */
  readonly pollMs: number;
  readonly changes?: ChangeFeed;
  readonly minPollMs?: number;
  /** The feed's `version` read before this session was written (see `ChangeFeed.announcesEveryEnd`). */
  readonly writtenAtVersion?: number;
  /** See `ResultsOptions.missingResultsCheckMs`. @default 20 s */
  readonly missingResultsCheckMs?: number;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /** What the count checks of results streams are timed by (see `GridClientOptions.clock`). @default Date.now */
  readonly clock?: () => number;
}

export class SessionHandle {
  private readonly table: TaskTable;
  private readonly store: PayloadStore;
  private readonly defaultPollMs: number;
  private readonly changes: ChangeFeed | undefined;
  private readonly minPollMs: number | undefined;
  private readonly writtenAtVersion: number | undefined;
  private readonly missingResultsCheckMs: number;
  private readonly logger: Logger;
  private readonly clock: () => number;

  constructor(
    private session: SessionRecord,
    options: SessionHandleOptions,
  ) {
    this.table = options.table;
    this.store = options.store;
    this.defaultPollMs = options.pollMs;
    this.changes = options.changes;
    this.minPollMs = options.minPollMs;
    this.writtenAtVersion = options.writtenAtVersion;
    this.missingResultsCheckMs = options.missingResultsCheckMs ?? MISSING_RESULTS_CHECK_MS;
    this.logger = options.logger ?? silentLogger();
    this.clock = options.clock ?? Date.now;
  }

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
   * Every task's outcome, in completion order, as tasks finish, each task once. Ends when all tasks are terminal.
   * Memory stays bounded by one page, plus one bit per task (which tasks were delivered), whatever the session's size.
   *
   * Results come from the table's listing of ended tasks, read on from where the last read ended (woken by the
   * change feed: a local grid's database changes, or AWS completion notices). A result that listing cannot bring
   * (its notice lost and its listing key behind where the reading is, say after a write applied late) would be waited
   * for forever. So while results are missing and none came for `missingResultsCheckMs`, the stream asks the table
   * how many of the session's tasks ended (`countTerminal`: one cheap count, nothing while results flow), reads what
   * the listing has, and if the table still counts more than it delivered, reads every ended task again from the
   * start and delivers those it had not, logging a warning with how many (index lag on DynamoDB, a lost notice, or a
   * defect). A count that finds nothing missing doubles the wait before the next (up to
   * `MISSING_RESULTS_CHECK_MAX_MS`, 5 minutes; a result brings the period back), and a re-read that leaves the table
   * counting more than it returns is repeated only once the table counts more missing still, or once every 5 minutes
   * while the gap lasts (a read not consistent yet brings them later): a long stall costs a few counts an hour and a
   * re-read every 5 minutes at most, never one every period.
   */
  async *results(options: ResultsOptions = {}): AsyncGenerator<TaskResult> {
    const poll = options.pollIntervalMs ?? this.defaultPollMs;
    const pageSize = options.pageSize ?? 1000;
    const now = this.clock;
    const check = new MissingResultsCheck(options.missingResultsCheckMs ?? this.missingResultsCheckMs, now());
    const delivered = new DeliveredTasks();
    let cursor: string | undefined;
    let waits = 0;
    // The table's count of ended tasks, taken before the reads since (what they should have brought), and how many
    // the stream had delivered when it was taken.
    let counted: { readonly ended: number; readonly delivered: number } | undefined;
    // Nothing ended since the session was written: its first page would be empty (one look less per round trip).
    const quiet = this.quietSinceWritten();
    if (quiet !== undefined) {
      await this.pause(Math.min(this.pollDelay(waits++, poll), check.untilDue(now())), quiet, options.signal);
    }
    for (;;) {
      if (options.signal?.aborted) return;
      const since = this.changes?.version;
      const page = await this.table.listTerminal(this.sessionId, cursor, pageSize);
      cursor = page.cursor ?? cursor;
      for (const task of page.tasks) {
        if (!isTerminal(task.state) || !delivered.add(task.index)) continue;
        check.progressed(now());
        yield await toTaskResult(task, this.store);
      }
      // The last result of a sealed session ends the stream at once: one more empty page would only confirm it.
      const known = this.session.taskCount;
      if (known !== undefined && delivered.size >= known) return;
      // Tasks found: read on at once, unless the table says the page held every task that had ended (then the next
      // look waits for news like after an empty page: reading on would bring a few tasks a request).
      if (page.tasks.length > 0 && page.more !== false) continue;
      const total = await this.total();
      if (total !== undefined && delivered.size >= total) return;
      if (counted !== undefined) {
        // The listing brought all it had since the count: tasks counted as ended but not delivered were missed.
        if (check.missing(counted.ended, delivered.size, now())) {
          yield* this.recoverMissed(delivered, counted.ended, pageSize, check, options.signal);
        }
        // Nothing came since the count (the listing's reads, a re-read): the next count waits longer.
        if (delivered.size === counted.delivered) check.checked(now());
        counted = undefined;
        if (total !== undefined && delivered.size >= total) return;
      } else if (check.due(now())) {
        // Counted first, then read: a task ending between the two is brought by the read, not taken for missed.
        counted = { ended: await this.table.countTerminal(this.sessionId), delivered: delivered.size };
        continue;
      }
      await this.pause(Math.min(this.pollDelay(waits++, poll), check.untilDue(now())), since, options.signal);
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

  /**
   * Reads every ended task of the session from the start and delivers those not delivered yet: the table counted
   * `counted` ended tasks, more than the listing brought. Logs a warning naming how many were recovered this way, and
   * one when the table still counts more than were delivered (the re-read is then not repeated until it counts more).
   */
  private async *recoverMissed(
    delivered: DeliveredTasks,
    counted: number,
    pageSize: number,
    check: MissingResultsCheck,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<TaskResult> {
    const before = delivered.size;
    const examples: string[] = [];
    const pages = this.table.readTerminalWanted
      ? this.table.readTerminalWanted(this.sessionId, lackedBy(this.sessionId, delivered), pageSize)
      : this.listAllTerminal(pageSize);
    for await (const tasks of pages) {
      if (signal?.aborted) return;
      for (const task of tasks) {
        if (!isTerminal(task.state) || !delivered.add(task.index)) continue;
        if (examples.length < 10) examples.push(task.taskId);
        check.progressed(this.clock());
        yield await toTaskResult(task, this.store);
      }
    }
    const recovered = delivered.size - before;
    if (recovered > 0) {
      this.logger.warn(
        { sessionId: this.sessionId, recovered, counted, deliveredBefore: before, taskIds: examples },
        'results recovered by a full re-read: the table counted more ended tasks than the results stream had ' +
          'delivered, and neither a change notice nor the listing brought them (index lag between the count and ' +
          'the listing, a lost notice, or a defect: please report it if it recurs)',
      );
    }
    const unreachable = check.reReadEnded(counted, delivered.size, this.clock());
    if (unreachable > 0) {
      this.logger.warn(
        { sessionId: this.sessionId, counted, delivered: delivered.size, unreachable },
        'the table counts more ended tasks than a full re-read of the session returns (a count and listing that ' +
          'disagree, or a read not consistent yet): the results stream reads again once it counts more, or after ' +
          'five minutes while the gap lasts',
      );
    }
  }

  /** Every terminal task of the session, read through the listing from the start. */
  private async *listAllTerminal(pageSize: number): AsyncGenerator<readonly TaskRecord[]> {
    let cursor: string | undefined;
    for (;;) {
      // The listing's cursor of a results stream never ends: an empty page does.
      const page = await this.table.listTerminal(this.sessionId, cursor, pageSize);
      if (page.tasks.length === 0) return;
      cursor = page.cursor ?? cursor;
      yield page.tasks;
    }
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
    if (this.changes && since !== undefined) await this.changes.waitForChange(since, ms, signal, this.sessionId);
    else await sleep(ms, signal);
  }

  private async total(): Promise<number | undefined> {
    if (this.session.taskCount === undefined) {
      this.session = (await this.table.getSession(this.sessionId)) ?? this.session;
    }
    return this.session.taskCount;
  }
}
