// One request of an HTTP API results stream (`GET /v1/sessions/{id}/results`): the NDJSON lines it sends, resumed from
// the cursor the previous request ended with, and the cursors it hands on.
import { mapLimit } from '../backends/aws/aws-retry';
import type { ChangeFeed } from '../client';
import { DeliveredTasks, lackedBy } from '../client/delivered-tasks';
import { MissingResultsCheck } from '../client/missing-results-check';
import { isTerminal, type SessionRecord, type TaskRecord } from '../core';
import type { Logger } from '../logging';
import type { PayloadStore, TaskTable } from '../ports';
import { sleep } from '../timing';
import { encodeResultsCursor, packSentTasks, type ReRead, type ResultsCursor } from './results-cursor';
import { resultLine } from './task-views';

/** What a results stream reads and how it paces itself: the API handlers' ports and settings. */
export interface ResultsStreamContext {
  readonly table: TaskTable;
  readonly store: PayloadStore;
  /** Changes of the task table: a waiting stream looks again at each instead of at its next poll. */
  readonly changes: ChangeFeed | undefined;
  readonly pollMs: number;
  /** See `ApiHandlersOptions.missingResultsCheckMs`. */
  readonly missingResultsCheckMs: number;
  /** See `ApiHandlersOptions.maxSentSetBytes`. */
  readonly maxSentSetBytes: number;
  readonly logger: Logger;
  readonly clock: () => number;
}

/** What one request of a stream may do: how many results it sends, and until when it reads. */
export interface ResultsRequestBounds {
  readonly limit: number;
  /** Until when it waits for results (epoch ms): `waitSec`, ended a little before a Lambda's deadline. */
  readonly waitUntil: number;
  /**
   * Until when it reads on over rows of tasks the client has (epoch ms; see `SKIPPED_ROWS_READ_MS`): past it, a page
   * that held any such row ends the request.
   */
  readonly skipUntil: number;
  /**
   * When the request must end, sending or not (epoch ms; a little before a Lambda's deadline, Infinity without one):
   * asked after every chunk.
   */
  readonly endBy: number;
  readonly signal: AbortSignal | undefined;
}

/**
 * The chunks of one request of a results stream (see `ResultsStream`). Lazy, as a generator is: nothing is read, nor
 * the clock, until the server asks for the first chunk.
 */
export async function* resultChunks(
  context: ResultsStreamContext,
  session: SessionRecord,
  from: ResultsCursor,
  bounds: ResultsRequestBounds,
): AsyncGenerator<string> {
  yield* new ResultsStream(context, session, from, bounds).chunks();
}

/** What a step of the stream leaves it to do: read on, end the request `paused`, or stop (ended or aborted). */
type Step = 'next' | 'pause' | 'stop';

/**
 * The NDJSON chunks of a results stream: one line per terminal task in completion order, the last line of each chunk
 * carrying the cursor to resume after it, then one `{"end": ...}` line: `complete` when every task of a sealed
 * session was delivered, `paused` when `limit` or `waitSec` was reached first.
 *
 * A result the listing cannot bring (its listing key behind the cursor, say after a write applied late) would be
 * waited for forever. So while results are missing and none came for `missingResultsCheckMs` (counted across the
 * requests that resume the stream), the stream counts the session's ended tasks, reads what the listing has, and if
 * the table still counts more than it delivered, reads again from the session's first result, sending only the
 * results it had not sent: the cursor carries the task indexes the stream sent, one bit each, compressed (see
 * `MAX_SENT_SET_BYTES`; a set too large to carry is left out, and the lines of the next read from the first result
 * then all come again, clients skipping them by `index`, as the document says, until that read rebuilt the set; a set
 * left out during such a read makes the cursor restart it). Rows the client has do not count against `limit`, so a
 * read that passes them ends at its own deadline (`waitSec` within 1-20 s: after the first page holding any of them
 * once it passed), `paused` with a cursor past them. Before a Lambda's deadline (`endBy`), a request ends after the
 * chunk it is sending, however many results are left. The
 * server logs a warning (index lag on DynamoDB, a lost notice, or a defect). Like the SDK's stream, a count that finds
 * nothing missing doubles the wait before the next (up to `MISSING_RESULTS_CHECK_MAX_MS`), and a read from the first
 * result that leaves the table counting more than it brought is repeated only once the table counts more missing, or
 * once that cap passed while the gap lasts; all of it rides in the cursor.
 *
 * Where the table reads tasks by key (`readTerminalWanted`, DynamoDB) and the cursor carries the set, that read reads
 * the session's keys and only the items the set lacks, keeping the listing's place, rather than every item from the
 * first result (see `readLacking`).
 *
 * A session deleted and created again under the same id is another session, whose tasks have the same ids: before it
 * sends the lines of a page, and before it says `complete`, the stream reads the session record again (one
 * consistent read; the tasks it sends were read before it, and a new session's tasks are written after its record,
 * which is written after the old one is deleted, so a record unchanged then means tasks of the request's session). A
 * record gone or of another `createdAt` ends the request `paused`, its cursor naming the session the request started
 * with: the next request is refused (400) or finds no session (404), never resumes the old stream on the new session.
 */
class ResultsStream {
  private session: SessionRecord;
  /** When the session the request resumes was created: its cursors name it (see `sameSession`). */
  private readonly createdAt: number;
  /** The table's listing cursor (undefined: from the first result). */
  private listing: string | undefined;
  private delivered: number;
  /** The tasks the client had from this stream, when known: a task is sent once, whichever read finds it. */
  private sentTasks: DeliveredTasks | undefined;
  /** Results sent in this request, against `limit`. */
  private sent = 0;
  private readonly check: MissingResultsCheck;
  /**
   * The table's count of ended tasks, taken before the reads since (what they should have brought), and `delivered`
   * then.
   */
  private counted: { readonly ended: number; readonly delivered: number } | undefined;
  /** While reading again from the first result: the count that made it, and what had been delivered before it. */
  private reRead: ReRead | undefined;
  private readonly readsByKey: boolean;
  /** Whether the read by key under way had this request's whole time (resumed from the cursor), or started in it. */
  private wholeRequest: boolean;
  /** Whether a read by key sent tasks the listing has not passed (see `ResultsCursor.outOfOrder`). */
  private outOfOrder: boolean;
  /** Sets of sent tasks too large for the cursor (see `resumeCursor`). */
  private readonly uncarried = new WeakSet<DeliveredTasks>();

  constructor(
    private readonly context: ResultsStreamContext,
    initial: SessionRecord,
    from: ResultsCursor,
    private readonly bounds: ResultsRequestBounds,
  ) {
    this.session = initial;
    this.createdAt = initial.createdAt;
    this.listing = from.listing;
    this.delivered = from.delivered;
    this.sentTasks = from.sent;
    this.check = MissingResultsCheck.resume(context.missingResultsCheckMs, context.clock(), from.check);
    this.reRead = from.reRead;
    this.readsByKey = context.table.readTerminalWanted !== undefined;
    this.wholeRequest = this.reRead?.byKeys === true;
    this.outOfOrder = from.outOfOrder === true;
  }

  /** The request's chunks, its `{"end": ...}` line last (none when the request is aborted). */
  async *chunks(): AsyncGenerator<string> {
    for (;;) {
      if (this.bounds.signal?.aborted) return;
      const room = this.bounds.limit - this.sent;
      if (room <= 0) break;
      const reRead = this.reRead;
      const step =
        reRead?.byKeys === true ? yield* this.readByKeysStep(reRead, room) : yield* this.readListingStep(room);
      if (step === 'stop') return;
      if (step === 'pause') break;
    }
    yield this.endLine('paused');
  }

  private endLine(end: 'complete' | 'paused'): string {
    return `{"end":"${end}","cursor":${JSON.stringify(this.resumeCursor())},"delivered":${this.delivered}}\n`;
  }

  /** A step of a read by key under way: sends what it read, and ends it, or hands it over to the listing. */
  private async *readByKeysStep(reRead: ReRead, room: number): AsyncGenerator<string, Step> {
    const read = yield* this.readLacking(reRead, {
      room,
      until: this.bounds.skipUntil,
      wholeRequest: this.wholeRequest,
    });
    if (read === 'aborted') return 'stop';
    if (read === 'paused') return 'pause';
    if (read === 'ended') {
      this.reReadEnded(reRead);
      this.reRead = undefined;
      return 'next';
    }
    this.reRead = { counted: reRead.counted, before: reRead.before };
    this.listing = undefined;
    if (this.sentTasks === undefined) {
      this.delivered = 0;
      this.sentTasks = new DeliveredTasks();
    }
    return 'next';
  }

  /**
   * A step of the listing: sends the page it brings, or, at its end, ends the stream, checks for missed results or
   * waits.
   */
  private async *readListingStep(room: number): AsyncGenerator<string, Step> {
    const since = this.context.changes?.version;
    const page = await this.context.table.listTerminal(this.session.sessionId, this.listing, Math.min(1000, room));
    if (page.tasks.length > 0) return yield* this.sendListed(page.tasks, page.cursor);
    return yield* this.atListingEnd(since);
  }

  /** Sends the ended tasks of a page of the listing the client lacks. */
  private async *sendListed(listed: readonly TaskRecord[], next: string | undefined): AsyncGenerator<string, Step> {
    const ended = listed.filter((t) => isTerminal(t.state));
    const sentTasks = this.sentTasks;
    const lacking = sentTasks === undefined ? ended : ended.filter((t) => !sentTasks.has(t.index));
    if (lacking.length > 0 && !(await this.sameSession())) return 'pause';
    const tasks = sentTasks === undefined ? ended : lacking.filter((t) => sentTasks.add(t.index));
    this.listing = next ?? this.listing;
    // Rows the client has do not count against `limit`: a deadline bounds them, whether the page sent others or not
    // (a read from the first result may bring one new row among a thousand sent); the `paused` cursor is past them.
    const skipped = tasks.length < ended.length;
    if (tasks.length === 0) return this.context.clock() < this.bounds.skipUntil ? 'next' : 'pause';
    this.delivered += tasks.length;
    this.sent += tasks.length;
    // Lines sent again after a restart are no news; those past what was delivered before it are.
    if (this.reRead === undefined || this.delivered > this.reRead.before) this.check.progressed(this.context.clock());
    yield await this.linesOf(tasks, this.resumeCursor());
    const now = this.context.clock();
    return now >= this.bounds.endBy || (skipped && now >= this.bounds.skipUntil) ? 'pause' : 'next';
  }

  /** The result lines of `tasks`, the last carrying `cursor`. */
  private async linesOf(tasks: readonly TaskRecord[], cursor: string): Promise<string> {
    const last = tasks.length - 1;
    const lines = await mapLimit(tasks, 8, (task, i) =>
      resultLine(task, this.context.store, i === last ? cursor : undefined),
    );
    return lines.join('');
  }

  /**
   * The listing brought nothing: the stream ends complete once every task of a sealed session was delivered; else a
   * read from the first result ends, a count taken is judged, a count due is taken, or it waits for results.
   */
  private async *atListingEnd(since: number | undefined): AsyncGenerator<string, Step> {
    const { table, changes, clock } = this.context;
    // An unsealed session is read again at each end of the listing (it may have been sealed since). A sealed one is
    // not read before it is said complete: every line counted in `delivered` was sent after the page's own read found
    // the session with this `createdAt` (`this.session` is only replaced by such a record), so `delivered` reaching
    // its task count proves every task of this session was sent, whatever became of the record since (one deleted at
    // that moment would else end a stream that sent everything `paused`, and its next request a 404).
    if (this.session.taskCount === undefined && !(await this.sameSession())) return 'pause';
    if (this.session.taskCount !== undefined && this.delivered >= this.session.taskCount) {
      yield this.endLine('complete');
      return 'stop';
    }
    if (this.reRead !== undefined) {
      this.reReadEnded(this.reRead);
      this.reRead = undefined;
      return 'next';
    }
    if (this.counted !== undefined) {
      this.judgeCount(this.counted);
      this.counted = undefined;
      return 'next';
    }
    if (this.check.due(clock())) {
      // Counted first, then read: a task ending between the two is brought by the read, not taken for missed.
      this.counted = { ended: await table.countTerminal(this.session.sessionId), delivered: this.delivered };
      return 'next';
    }
    const deadline = this.bounds.waitUntil;
    if (clock() >= deadline) return 'pause';
    const waitMs = Math.min(this.context.pollMs, Math.max(0, deadline - clock()), this.check.untilDue(clock()));
    if (changes && since !== undefined)
      await changes.waitForChange(since, waitMs, this.bounds.signal, this.session.sessionId);
    else await sleep(waitMs, this.bounds.signal);
    return 'next';
  }

  /**
   * After the reads that followed a count: when the table counted more than they brought, starts reading again what
   * the stream lacks; when they brought nothing and nothing is missing, the next check waits longer.
   */
  private judgeCount(counted: { readonly ended: number; readonly delivered: number }): void {
    const clock = this.context.clock;
    if (this.check.missing(counted.ended, this.delivered, clock())) {
      // With the set of sent tasks, a table that reads tasks by key reads only those the set lacks; the listing keeps
      // its place.
      // Only with a set the cursor carries: without it, what a read by key sent past the listing's place could not be
      // told from what the listing brings next.
      const byKeys = this.sentTasks !== undefined && this.readsByKey && !this.uncarried.has(this.sentTasks);
      this.reReadStarts(counted.ended, this.sentTasks === undefined, byKeys);
      this.reRead = { counted: counted.ended, before: this.delivered, ...(byKeys ? { byKeys } : {}) };
      this.wholeRequest = false;
      if (!byKeys) this.listing = undefined;
      if (this.sentTasks === undefined) {
        // No record of what the client had: every line comes again (it skips them by index), counted from 0, and
        // this read builds the record anew, so later reads from the first result send only what it lacks.
        this.delivered = 0;
        this.sentTasks = new DeliveredTasks();
      }
    } else if (this.delivered === counted.delivered) {
      this.check.checked(clock());
    }
  }

  /**
   * The lines of a read by key of the ended tasks the set of sent tasks lacks (see `ReRead.byKeys`), at most
   * `budget.room`, each chunk's tasks counted as sent. The keys it reads without sending are bounded as rows the
   * client has are (`budget.until`, see `SKIPPED_ROWS_READ_MS`). Returns `ended` once it read all, `paused` when
   * `room` is full or its time ran out in a request it started in (the next gives it its whole time), `listing` when
   * it cannot be made here (no set, a table without such a read) or did not end within a whole request (a session of
   * many millions of keys, or a short `waitSec`): the listing from the first result, whose cursor keeps its place from
   * request to request, reads instead.
   */
  private async *readLacking(
    reRead: ReRead,
    budget: { readonly room: number; readonly until: number; readonly wholeRequest: boolean },
  ): AsyncGenerator<string, 'ended' | 'paused' | 'listing' | 'aborted'> {
    const { table, clock } = this.context;
    const { signal } = this.bounds;
    const sessionId = this.session.sessionId;
    const sent = this.sentTasks;
    if (sent === undefined || table.readTerminalWanted === undefined) return 'listing';
    let stopped = false;
    const stop = (): boolean => (stopped ||= signal?.aborted === true || clock() >= budget.until);
    let room = budget.room;
    for await (const page of table.readTerminalWanted(
      sessionId,
      lackedBy(sessionId, sent),
      Math.min(1000, room),
      stop,
    )) {
      const lacking: TaskRecord[] = [];
      for (const task of page) {
        // What the page holds past `room` stays out of the set: the next request's read brings it.
        if (lacking.length >= room) break;
        if (isTerminal(task.state) && !sent.has(task.index)) lacking.push(task);
      }
      if (lacking.length > 0 && !(await this.sameSession())) return 'paused';
      const tasks = lacking.filter((task) => sent.add(task.index));
      if (tasks.length > 0) {
        room -= tasks.length;
        yield await this.linesOf(tasks, this.sentByKey(tasks));
      }
      if (room <= 0 || clock() >= this.bounds.endBy) return 'paused';
    }
    if (signal?.aborted) return 'aborted';
    if (!stopped) return 'ended';
    if (!budget.wholeRequest) return 'paused';
    this.context.logger.warn(
      { sessionId, counted: reRead.counted, before: reRead.before },
      "a results stream's read by key of the tasks it had not sent did not end within a request: it reads again " +
        'from the first result through the listing instead, which resumes from request to request',
    );
    return 'listing';
  }

  /**
   * Whether the session is still the one the request started with: its record read again (consistently) has the same
   * `createdAt`, and becomes the stream's (an unsealed session may have been sealed since). False when it is gone or
   * was created again (logged): the request ends `paused`, its cursor naming the session it started with.
   */
  private async sameSession(): Promise<boolean> {
    const { sessionId } = this.session;
    const now = await this.context.table.getSession(sessionId);
    if (now !== undefined && now.createdAt === this.createdAt) {
      this.session = now;
      return true;
    }
    this.context.logger.info(
      { sessionId, createdAt: this.createdAt, now: now?.createdAt ?? null },
      now === undefined
        ? 'the session of a results stream was deleted during a request: the request ends paused'
        : 'the session of a results stream was deleted and created again during a request: the request ends ' +
            'paused, and its cursor, of the deleted session, is refused by the next',
    );
    return false;
  }

  /** Counts the tasks of a chunk a read by key sends; returns the chunk's cursor. */
  private sentByKey(tasks: readonly TaskRecord[]): string {
    this.delivered += tasks.length;
    this.sent += tasks.length;
    this.outOfOrder = true;
    this.check.progressed(this.context.clock());
    return this.resumeCursor();
  }

  /**
   * The cursor to resume after what the stream sent so far. A set of sent tasks that packed past the cap once is not
   * packed again (it only grows; `uncarried` holds it): the request goes on with it all the same, sending and counting
   * each task once, and its cursors hold no set. One within a read from the first result restarts that read, as one
   * that does not know what it sent (every line again, counted from 0): its place and count mid-read are only right
   * with the set, `delivered` not counting the lines the read skipped.
   */
  private resumeCursor(): string {
    const { createdAt } = this;
    const { sessionId } = this.session;
    const sent = this.sentTasks;
    const packed = sent !== undefined && !this.uncarried.has(sent) ? this.packSent(sessionId, sent) : undefined;
    const cursor = {
      createdAt,
      listing: this.listing,
      delivered: this.delivered,
      check: this.check.state,
      reRead: this.reRead,
      outOfOrder: this.outOfOrder,
    };
    if (packed === undefined && sent !== undefined) {
      this.uncarried.add(sent);
      // A listing place and a count without the set would send again what a re-read (or a read by key, past that
      // place) sent: the cursor restarts from the first result, counted from 0.
      if (cursor.reRead !== undefined || cursor.outOfOrder)
        return encodeResultsCursor({ ...cursor, listing: undefined, delivered: 0, outOfOrder: false }, undefined);
    }
    return encodeResultsCursor(cursor, packed);
  }

  /** The set of tasks the stream sent, packed for its cursor; undefined when too large to carry (logged). */
  private packSent(sessionId: string, sent: DeliveredTasks): Buffer | undefined {
    const packed = packSentTasks(sent, this.context.maxSentSetBytes);
    if (packed === undefined) {
      this.context.logger.debug(
        { sessionId, delivered: sent.size },
        'the set of tasks a results stream sent is too large for its cursor: the stream goes on without it, and ' +
          'sends every line again at its next read from the first result',
      );
    }
    return packed;
  }

  private reReadStarts(counted: number, sendsAgain: boolean, byKeys: boolean): void {
    this.context.logger.warn(
      { sessionId: this.session.sessionId, counted, delivered: this.delivered, sendsAgain, byKeys },
      (byKeys
        ? 'a results stream reads again, by key, the ended tasks it had not sent'
        : 'a results stream reads again from the first result') +
        ': the table counted more ended tasks than the stream had delivered, and its listing did not bring them ' +
        '(index lag between the count and the listing, a lost notice, or a defect: please report it if it recurs)',
    );
  }

  /**
   * A read from the first result brought all the listing has: what the table counted beyond it, the listing cannot
   * bring, and is not read again for until the table counts more (logged once, here).
   */
  private reReadEnded(reRead: ReRead): void {
    const { delivered } = this;
    const clock = this.context.clock;
    const unreachable = this.check.reReadEnded(reRead.counted, delivered, clock());
    if (unreachable > 0) {
      this.context.logger.warn(
        { sessionId: this.session.sessionId, counted: reRead.counted, delivered, unreachable },
        'the table counts more ended tasks than a results stream read from the first result brought (a count ' +
          'and listing that disagree, or a read not consistent yet): it reads again once the table counts more, or ' +
          'after five minutes while the gap lasts',
      );
    }
    if (delivered <= reRead.before) this.check.checked(clock());
  }
}
