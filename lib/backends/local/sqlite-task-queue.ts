// The local grid's task queue: a table in the grid's SQLite database with SQS-like visibility and receipts.
import { BroadcastChannel } from 'node:worker_threads';
import type { Transaction } from 'better-sqlite3';
import { InvalidReceiptError } from '../../core/errors';
import { silentLogger, type Logger } from '../../logging';
import type { TaskRecord } from '../../core/task';
import type { ClaimOutcome, ClaimRequest, QueueMessage, ReceivedMessage, ReceiveOptions, TaskQueue } from '../../ports';
import { translateSqliteError } from './errors';
import type { DatabaseChanges } from './database-changes';
import type { WriteLock } from './write-lock';
import { BOUND_LIMIT, openSqliteDatabase, type OpenDatabaseOptions, type SqliteDatabase } from './sqlite-database';

export { InvalidReceiptError };

export interface SqliteTaskQueueOptions {
  /** Close the database connection in `close()`. @default false */
  readonly ownsDatabase?: boolean;
  /**
   * While long-polling an empty queue, how often the table is looked at again. Sends from this process wake a
   * waiting receive at once; sends from other processes too when `changes` watches the database, else they are
   * seen within this period.
   * @default 1000 when `changes` watches the database, else 10
   */
  readonly pollIntervalMs?: number;
  /**
   * Told of this queue's writes that make messages visible (topic `queue`); those of other threads and processes wake
   * a long-polling receive.
   * @default - none: those are polled for
   */
  readonly changes?: DatabaseChanges;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /**
   * Taken around every write transaction, shared with the other threads of this process that write the database.
   * @default - none: threads wait for each other in SQLite's busy handler
   */
  readonly writeLock?: WriteLock;
}

/** Claims the tasks of received messages inside the receiving transaction; one outcome per request, in order. */
export type Claimer = (requests: readonly ClaimRequest[], now: number) => ClaimOutcome[];

interface MessageRow {
  id: number;
  task_id: string;
  session_id: string;
  attempt: number;
  priority: number;
  receive_count: number;
  lease_expired_before: number | null;
}

/** Wakes long polls in this thread when a message becomes visible, per database file. */
const wakers = new Map<string, Set<() => void>>();
const ONCE = { once: true } as const;

function wakeHere(dbName: string): void {
  const set = wakers.get(dbName);
  if (set === undefined) return;
  for (const waker of [...set]) waker();
}

/** Carries wakes to the other threads of this process (an embedded grid's agent thread has its own connection). */
let threadWakes: BroadcastChannel | undefined;

function threadWakeChannel(): BroadcastChannel {
  if (threadWakes === undefined) {
    threadWakes = new BroadcastChannel('htcgrid:sqlite-queue-wake');
    threadWakes.onmessage = (event) => {
      const dbName = (event as { data?: unknown }).data;
      if (typeof dbName === 'string') wakeHere(dbName);
    };
    // Never keeps the process alive: the long poll's own timer does while it waits.
    threadWakes.unref();
  }
  return threadWakes;
}

function wake(dbName: string): void {
  wakeHere(dbName);
  threadWakeChannel().postMessage(dbName);
}

/**
 * `TaskQueue` on the grid's SQLite database.
 *
 * - Order: strict priority, then within a priority the order in which messages became visible (send order for new
 *   messages; a redelivered or released message queues up at the time it became visible again). A lower priority
 *   is only received while no higher-priority message is visible: a steady stream of high-priority work starves
 *   lower priorities, by design (the same rule as one SQS queue per priority level, polled highest first).
 * - Receipts: every receive hands out a new receipt (`id:receiveCount:attempt:taskId`). Once a message was received
 *   again, the receipts of earlier receives are stale and `ack`/`release`/`extend` ignore them, as they ignore receipts
 *   of messages already acknowledged. Ids are rowids, which come back once the newest message is gone: the task and
 *   attempt keep an old receipt from matching a message of another task or attempt that took its id. A copy of the
 *   same task and attempt that took the id and was received as many times would match it: an `ack` through the old
 *   receipt then deletes that copy (the attempt's message, already acknowledged once), a `release` or `extend` moves
 *   its visibility under whoever holds it. The grid's agents claim through `receiveClaimed`, which uses no receipts;
 *   a direct user of `receive` must not keep receipts past their `ack`.
 * - Long poll: an empty queue is looked at again every `pollIntervalMs` (sleeping in between, never spinning)
 *   until a message is visible, `waitMs` passed or the signal aborted; an aborted receive returns `[]`.
 */
export class SqliteTaskQueue implements TaskQueue {
  private readonly logger: Logger;
  private readonly ownsDatabase: boolean;
  private readonly writeLock: WriteLock | undefined;
  private readonly pollIntervalMs: number;
  private readonly changes: DatabaseChanges | undefined;
  private closed = false;
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly sendTx: Transaction<(messages: readonly QueueMessage[], now: number) => void>;
  private readonly receiveTx: Transaction<(limit: number, now: number, invisibleUntil: number) => MessageRow[]>;
  private readonly receiveClaimedTx: Transaction<
    (limit: number, now: number, busyVisibleAt: number, claim: Claimer) => TaskRecord[]
  >;
  private readonly ackTx: Transaction<(receipts: readonly Receipt[]) => number>;
  private readonly setVisibilityTx: Transaction<(receipts: readonly Receipt[], visibleAt: number) => number>;

  /** Opens its own connection to the database file at `dbPath` (created if needed). */
  static open(dbPath: string, options: OpenDatabaseOptions & Omit<SqliteTaskQueueOptions, 'ownsDatabase'> = {}) {
    return new SqliteTaskQueue(openSqliteDatabase(dbPath, options), { ...options, ownsDatabase: true });
  }

  /** Uses an open database (see `openSqliteDatabase`), typically shared with a `SqliteTaskTable`. */
  constructor(
    private readonly db: SqliteDatabase,
    options: SqliteTaskQueueOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger();
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.writeLock = options.writeLock;
    this.changes = options.changes;
    this.pollIntervalMs = Math.max(1, options.pollIntervalMs ?? (this.changes?.watching ? 1_000 : 10));
    this.stmt = prepareStatements(db);
    this.sendTx = db.transaction((messages, now) => this.sendWithin(messages, now));
    this.receiveTx = db.transaction((limit, now, invisibleUntil) => this.takeVisible(limit, now, invisibleUntil));
    this.receiveClaimedTx = db.transaction((limit, now, busyVisibleAt, claim) =>
      this.takeClaimed(limit, now, busyVisibleAt, claim),
    );
    this.ackTx = db.transaction((receipts) => {
      let changed = 0;
      for (const r of receipts) changed += this.stmt.delete.run(r.id, r.receiveCount, r.attempt, r.taskId).changes;
      return changed;
    });
    this.setVisibilityTx = db.transaction((receipts, visibleAt) => {
      let changed = 0;
      for (const r of receipts) {
        changed += this.stmt.setVisibleAt.run(visibleAt, r.id, r.receiveCount, r.attempt, r.taskId).changes;
      }
      return changed;
    });
  }

  async send(messages: readonly QueueMessage[]): Promise<void> {
    if (messages.length === 0) return;
    this.write('send', () => this.sendTx.immediate(messages, Date.now()), true);
    this.wakeReceivers();
  }

  /**
   * Inserts `messages` (a task record carries all a message needs) inside a write transaction the caller holds on
   * this queue's connection. Synchronous; throws what SQLite throws. After the commit, `send`'s caller wakes the
   * receivers itself; others call `sent`.
   */
  sendWithin(messages: readonly QueueMessage[], now: number): void {
    for (const m of messages) {
      this.stmt.insert.run(m.taskId, m.sessionId, m.attempt, m.priority, now, m.leaseExpiredBefore ?? null);
    }
  }

  /** Wakes the receivers of messages a committed `sendWithin` made visible. */
  sent(): void {
    this.changes?.notify('queue');
    this.wakeReceivers();
  }

  async receive(max: number, options: ReceiveOptions): Promise<ReceivedMessage[]> {
    const limit = Math.max(1, Math.floor(max));
    return this.poll(options, () => this.receiveNow(limit, options.visibilityMs));
  }

  /**
   * Receives up to `max` messages and, in the same write transaction, hands them to `claim` (which must write on
   * this queue's connection) and settles each by its outcome: the messages of claimed, stale and missing tasks are
   * deleted, busy ones become visible again after `busyDelayMs`. Long-polls as `receive` does. Returns the claimed
   * tasks in receive order.
   */
  async receiveClaimed(
    max: number,
    options: ReceiveOptions & { readonly busyDelayMs: number },
    claim: Claimer,
  ): Promise<TaskRecord[]> {
    const limit = Math.max(1, Math.floor(max));
    return this.poll(options, () => {
      const now = Date.now();
      // Look without the write lock first: an empty look then writes nothing and keeps no other thread waiting.
      if (!this.anyVisible(now)) return [];
      const busyVisibleAt = now + Math.max(0, options.busyDelayMs);
      return this.write('receive', () => this.receiveClaimedTx.immediate(limit, now, busyVisibleAt, claim));
    });
  }

  async ack(receipts: readonly string[]): Promise<void> {
    if (receipts.length === 0) return;
    const parsed = receipts.map(parseReceipt);
    const deleted = this.write('ack', () => this.ackTx.immediate(parsed));
    if (deleted < parsed.length) this.logger.debug({ stale: parsed.length - deleted }, 'ignored stale queue receipts');
  }

  async release(receipts: readonly string[], delayMs: number): Promise<void> {
    if (receipts.length === 0) return;
    const parsed = receipts.map(parseReceipt);
    this.write(
      'release',
      () => this.setVisibilityTx.immediate(parsed, Date.now() + Math.max(0, delayMs)),
      delayMs <= 0,
    );
    if (delayMs <= 0) this.wakeReceivers();
  }

  async extend(receipts: readonly string[], visibilityMs: number): Promise<void> {
    if (receipts.length === 0) return;
    const parsed = receipts.map(parseReceipt);
    this.write('extend', () => this.setVisibilityTx.immediate(parsed, Date.now() + Math.max(0, visibilityMs)));
  }

  /** Messages visible now and in flight (received, not yet acknowledged, or delayed): the local backlog. */
  async countMessages(now: number = Date.now()): Promise<{ visible: number; invisible: number }> {
    const row = this.stmt.count.get(now, now);
    return { visible: row?.visible ?? 0, invisible: row?.invisible ?? 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    wake(this.db.name);
    if (this.ownsDatabase && this.db.open) this.db.close();
  }

  /** Looks for messages with `take` until it finds some, `waitMs` passed or the signal aborted (then `[]`). */
  private async poll<T>(options: ReceiveOptions, take: () => T[]): Promise<T[]> {
    const deadline = Date.now() + Math.max(0, options.waitMs);
    for (;;) {
      if (options.signal?.aborted === true || this.closed) return [];
      // Read before looking: a commit after the look then ends the pause, one before it is in the look.
      const since = this.changes?.queue.version;
      const received = take();
      const remaining = deadline - Date.now();
      if (received.length > 0 || remaining <= 0) return received;
      await this.pause(Math.min(this.pollIntervalMs, remaining), options.signal, since);
    }
  }

  /** Claimed, stale and missing tasks' messages are done with: deleted at once, never marked received first. */
  private takeClaimed(limit: number, now: number, busyVisibleAt: number, claim: Claimer): TaskRecord[] {
    const rows = this.visibleRows(limit, now);
    if (rows.length === 0) return [];
    const outcomes = claim(
      rows.map((row) =>
        row.lease_expired_before === null
          ? { taskId: row.task_id, attempt: row.attempt }
          : { taskId: row.task_id, attempt: row.attempt, leaseExpiredBefore: row.lease_expired_before },
      ),
      now,
    );
    const claimed: TaskRecord[] = [];
    rows.forEach((row, i) => {
      const outcome = outcomes[i];
      if (outcome?.status === 'busy') {
        this.stmt.markReceived.run(busyVisibleAt, row.id);
        return;
      }
      this.stmt.deleteById.run(row.id);
      if (outcome?.status === 'claimed') claimed.push(outcome.task);
    });
    return claimed;
  }

  private receiveNow(limit: number, visibilityMs: number): ReceivedMessage[] {
    const now = Date.now();
    // Look without the write lock first: an empty look then writes nothing and keeps no other thread waiting.
    if (!this.anyVisible(now)) return [];
    const rows = this.write('receive', () => this.receiveTx.immediate(limit, now, now + Math.max(0, visibilityMs)));
    return rows.map((row) => ({
      message: messageOf(row),
      receipt: `${row.id}:${row.receive_count + 1}:${row.attempt}:${row.task_id}`,
      receiveCount: row.receive_count + 1,
    }));
  }

  /**
   * Walks the priority levels present, highest first (each step one index seek), taking the messages visible at
   * `now` in the order they became visible. In-flight messages are never scanned, however many there are.
   */
  private takeVisible(limit: number, now: number, invisibleUntil: number): MessageRow[] {
    const rows = this.visibleRows(limit, now);
    for (const row of rows) this.stmt.markReceived.run(invisibleUntil, row.id);
    return rows;
  }

  /** Up to `limit` messages visible at `now`, highest priority first, read without changing them. */
  private visibleRows(limit: number, now: number): MessageRow[] {
    let rows: MessageRow[] = [];
    let level = this.stmt.topPriority.get()?.p ?? null;
    while (level !== null && rows.length < limit) {
      const found = this.stmt.visibleAt.all(level, now, limit - rows.length);
      rows = rows.length === 0 ? found : rows.concat(found);
      level = this.stmt.priorityBelow.get(level)?.p ?? null;
    }
    return rows;
  }

  private anyVisible(now: number): boolean {
    let level = this.stmt.topPriority.get()?.p ?? null;
    while (level !== null) {
      if (this.stmt.visibleAt.all(level, now, 1).length > 0) return true;
      level = this.stmt.priorityBelow.get(level)?.p ?? null;
    }
    return false;
  }

  /** Sleeps `ms` unless a send in this process, a commit elsewhere (after `since`) or the signal ends it first. */
  private pause(ms: number, signal: AbortSignal | undefined, since: number | undefined): Promise<void> {
    threadWakeChannel();
    const queueChanges = since === undefined ? undefined : this.changes?.queue;
    return new Promise((resolve) => {
      const name = this.db.name;
      let set = wakers.get(name);
      if (set === undefined) {
        set = new Set();
        wakers.set(name, set);
      }
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        if (waiters.size === 0 && wakers.get(name) === waiters) wakers.delete(name);
        queueChanges?.stopWaking(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, ONCE);
      waiters.add(done);
      // Registered directly with the topic: an AbortController per wait, aborted at each wake-up, cost the agent
      // thread an abort error with its stack trace and a second timer per task (bench/README.md, sixth pass).
      if (queueChanges !== undefined && !queueChanges.wakeOnChange(since!, done)) done();
    });
  }

  /**
   * Wakes the receives waiting for messages just made visible: this thread's at once; those of other threads and
   * processes through the `queue` topic file when it is watched (`write` touched it), else through the channel of
   * this process's threads. Not both: each carries a wake-up of the receiving thread (the same cost either way,
   * bench/README.md), and the second one only had it look at the queue again.
   */
  private wakeReceivers(): void {
    if (this.changes?.watching === true) wakeHere(this.db.name);
    else wake(this.db.name);
  }

  /** Runs one write transaction; `wakesReceivers` when it made messages visible (agents waiting then look). */
  private write<T>(what: string, fn: () => T, wakesReceivers = false): T {
    try {
      const written = this.writeLock ? this.writeLock.run(fn) : fn();
      if (wakesReceivers) this.changes?.notify('queue');
      return written;
    } catch (error) {
      return translateSqliteError(error, what);
    }
  }
}

/** The message a row holds; `leaseExpiredBefore` only when it has one (a reap's message), as SQS bodies have it. */
function messageOf(row: MessageRow): QueueMessage {
  const message = { taskId: row.task_id, sessionId: row.session_id, attempt: row.attempt, priority: row.priority };
  return row.lease_expired_before === null ? message : { ...message, leaseExpiredBefore: row.lease_expired_before };
}

interface Receipt {
  readonly id: number;
  readonly receiveCount: number;
  readonly attempt: number;
  readonly taskId: string;
}

function parseReceipt(receipt: string): Receipt {
  // The task id is last: it may hold any character, ':' included.
  const match = /^(\d+):(\d+):(\d+):([\s\S]+)$/.exec(receipt);
  if (match === null) throw new InvalidReceiptError(receipt);
  return { id: Number(match[1]), receiveCount: Number(match[2]), attempt: Number(match[3]), taskId: match[4]! };
}

function prepareStatements(db: SqliteDatabase) {
  return {
    insert: db.prepare<[string, string, number, number, number, number | null]>(
      `INSERT INTO queue_messages (task_id, session_id, attempt, priority, visible_at, lease_expired_before)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    topPriority: db.prepare<[], { p: number | null }>('SELECT max(priority) AS p FROM queue_messages'),
    priorityBelow: db.prepare<[number], { p: number | null }>(
      'SELECT max(priority) AS p FROM queue_messages WHERE priority < ?',
    ),
    visibleAt: db.prepare<[number, number, number], MessageRow>(
      `SELECT id, task_id, session_id, attempt, priority, receive_count, lease_expired_before FROM queue_messages
       WHERE priority = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ${BOUND_LIMIT}`,
    ),
    markReceived: db.prepare<[number, number]>(
      'UPDATE queue_messages SET visible_at = ?, receive_count = receive_count + 1 WHERE id = ?',
    ),
    delete: db.prepare<[number, number, number, string]>(
      'DELETE FROM queue_messages WHERE id = ? AND receive_count = ? AND attempt = ? AND task_id = ?',
    ),
    deleteById: db.prepare<[number]>('DELETE FROM queue_messages WHERE id = ?'),
    setVisibleAt: db.prepare<[number, number, number, number, string]>(
      'UPDATE queue_messages SET visible_at = ? WHERE id = ? AND receive_count = ? AND attempt = ? AND task_id = ?',
    ),
    count: db.prepare<[number, number], { visible: number | null; invisible: number | null }>(
      `SELECT sum(visible_at <= ?) AS visible, sum(visible_at > ?) AS invisible FROM queue_messages`,
    ),
  };
}
