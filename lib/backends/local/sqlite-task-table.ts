// The local grid's task table on SQLite: claims, leases and completions as conditional writes in one transaction.
import type { Statement, Transaction } from 'better-sqlite3';
import { HtcGridError, InvalidCursorError, SessionExistsError } from '../../core/errors';
import type { AttemptOutcome, DataRef, Lease, SessionRecord, TaskError, TaskRecord } from '../../core/task';
import { classifyClaim, isHolderGuard, planCompletion, type CompletionPlan } from '../../core/task-lifecycle';
import {
  emptyStateCounts,
  isTaskState,
  isTerminal,
  LIVE_STATES,
  TERMINAL_STATES,
  type FailureReason,
  type StateCounts,
  type TaskState,
} from '../../core/task-state';
import { silentLogger, type Logger } from '../../logging';
import type {
  BrowsePage,
  ClaimOutcome,
  ClaimRequest,
  Completion,
  CompletionResult,
  LeaseRef,
  LeaseStatus,
  SubmissionPart,
  TaskTable,
  TerminalPage,
} from '../../ports';
import { translateSqliteError } from './errors';
import type { DatabaseChanges } from './database-changes';
import type { WriteLock } from './write-lock';
import { BOUND_LIMIT, openSqliteDatabase, type OpenDatabaseOptions, type SqliteDatabase } from './sqlite-database';
import { SqliteTaskBrowser } from './sqlite-task-browser';

export { InvalidCursorError };

export interface SqliteTaskTableOptions {
  /** Close the database connection in `close()`. @default false */
  readonly ownsDatabase?: boolean;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /**
   * Taken around every write transaction, shared with the other threads of this process that write the database.
   * @default - none: threads wait for each other in SQLite's busy handler
   */
  readonly writeLock?: WriteLock;
  /**
   * Told of the writes that can end a task or session (topic `tasks`), so that results handles of other threads and
   * processes look again. @default - none
   */
  readonly changes?: DatabaseChanges;
}

interface TaskRow {
  task_id: string;
  session_id: string;
  idx: number;
  state: string;
  priority: number;
  attempt: number;
  failures: number;
  max_attempts: number;
  timeout_ms: number;
  payload_inline: string | null;
  payload_key: string | null;
  payload_bytes: number | null;
  result_inline: string | null;
  result_key: string | null;
  result_bytes: number | null;
  error: string | null;
  failure_reason: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  history: string;
  done_seq: number | null;
}

type ClaimedRow = Omit<
  TaskRow,
  | 'task_id'
  | 'state'
  | 'result_inline'
  | 'result_key'
  | 'result_bytes'
  | 'lease_owner'
  | 'lease_expires_at'
  | 'started_at'
  | 'finished_at'
  | 'done_seq'
>;

/** The columns a lease-guarded write needs to check its guard and append to the history. */
interface GuardRow {
  session_id: string;
  state: string;
  attempt: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  started_at: number | null;
  history: string;
}

export interface SessionRow {
  session_id: string;
  created_at: number;
  priority: number;
  max_attempts: number;
  timeout_ms: number;
  non_retryable: string;
  task_count: number | null;
}

type DataRefColumns = [inline: string | null, key: string | null, bytes: number | null];

function dataRefColumns(ref: DataRef | undefined): DataRefColumns {
  if (ref === undefined) return [null, null, null];
  return 'inline' in ref ? [ref.inline, null, null] : [null, ref.key, ref.bytes];
}

function dataRefOf(inline: string | null, key: string | null, bytes: number | null): DataRef | undefined {
  if (inline !== null) return { inline };
  if (key !== null) return { key, bytes: bytes ?? 0 };
  return undefined;
}

function stateOf(value: string): TaskState {
  if (!isTaskState(value)) throw new HtcGridError(`the grid database holds a task in unknown state '${value}'`);
  return value;
}

/** The columns of `TaskRow`, in its order: `RawTaskRow` holds their values by position. */
const TASK_COLUMNS = `task_id, session_id, idx, state, priority, attempt, failures, max_attempts, timeout_ms,
  payload_inline, payload_key, payload_bytes, result_inline, result_key, result_bytes, error, failure_reason,
  lease_owner, lease_expires_at, submitted_at, started_at, finished_at, history, done_seq`;

/** A task row read as an array (no property names to create per row: the results page reads thousands at once). */
export type RawTaskRow = [
  string,
  string,
  number,
  string,
  number,
  number,
  number,
  number,
  number,
  string | null,
  string | null,
  number | null,
  string | null,
  string | null,
  number | null,
  string | null,
  string | null,
  string | null,
  number | null,
  number,
  number | null,
  number | null,
  string,
  number | null,
];

function taskOfRaw(r: RawTaskRow): TaskRecord {
  return taskOf({
    task_id: r[0],
    session_id: r[1],
    idx: r[2],
    state: r[3],
    priority: r[4],
    attempt: r[5],
    failures: r[6],
    max_attempts: r[7],
    timeout_ms: r[8],
    payload_inline: r[9],
    payload_key: r[10],
    payload_bytes: r[11],
    result_inline: r[12],
    result_key: r[13],
    result_bytes: r[14],
    error: r[15],
    failure_reason: r[16],
    lease_owner: r[17],
    lease_expires_at: r[18],
    submitted_at: r[19],
    started_at: r[20],
    finished_at: r[21],
    history: r[22],
    done_seq: r[23],
  });
}

type MutableTask = { -readonly [K in keyof TaskRecord]: TaskRecord[K] };

/** The fields every row of a task has, whatever its state: one mapping of the columns for a read and a claim. */
function storedFieldsOf(row: ClaimedRow, taskId: string, state: TaskState): MutableTask {
  return {
    taskId,
    sessionId: row.session_id,
    index: row.idx,
    state,
    priority: row.priority,
    attempt: row.attempt,
    failures: row.failures,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    payload: dataRefOf(row.payload_inline, row.payload_key, row.payload_bytes) ?? { inline: 'null' },
    submittedAt: row.submitted_at,
    history: JSON.parse(row.history) as TaskRecord['history'],
  };
}

/** Sets the error and failure reason of an earlier attempt, where the row has them. */
function setFailureOf(task: MutableTask, row: Pick<ClaimedRow, 'error' | 'failure_reason'>): void {
  if (row.error !== null) task.error = JSON.parse(row.error) as TaskError;
  if (row.failure_reason !== null) task.failureReason = row.failure_reason as FailureReason;
}

/** Maps a row to a record; optional fields are absent, never null. */
function taskOf(row: TaskRow): TaskRecord {
  const task = storedFieldsOf(row, row.task_id, stateOf(row.state));
  const result = dataRefOf(row.result_inline, row.result_key, row.result_bytes);
  if (result !== undefined) task.result = result;
  setFailureOf(task, row);
  if (row.lease_owner !== null && row.lease_expires_at !== null) {
    task.lease = { owner: row.lease_owner, expiresAt: row.lease_expires_at };
  }
  if (row.started_at !== null) task.startedAt = row.started_at;
  if (row.finished_at !== null) task.finishedAt = row.finished_at;
  return task;
}

/** The record of a task just claimed: the columns the claim did not return are the ones it set. */
function claimedTaskOf(row: ClaimedRow, taskId: string, lease: Lease, startedAt: number): TaskRecord {
  const task: MutableTask = { ...storedFieldsOf(row, taskId, 'running'), lease, startedAt };
  setFailureOf(task, row);
  return task;
}

function sessionOf(row: SessionRow): SessionRecord {
  const session: { -readonly [K in keyof SessionRecord]: SessionRecord[K] } = {
    sessionId: row.session_id,
    createdAt: row.created_at,
    priority: row.priority,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    nonRetryableErrorTypes: JSON.parse(row.non_retryable) as string[],
  };
  if (row.task_count !== null) session.taskCount = row.task_count;
  return session;
}

/** Appends one attempt record to a history kept as JSON text, without re-parsing it. */
function appendHistory(history: string, record: string): string {
  return history.length <= 2 ? `[${record}]` : `${history.slice(0, -1)},${record}]`;
}

function attemptRecord(
  row: GuardRow,
  owner: string,
  finishedAt: number,
  outcome: AttemptOutcome,
  error?: TaskError,
): string {
  const record = { attempt: row.attempt, owner, startedAt: row.started_at ?? finishedAt, finishedAt, outcome };
  return JSON.stringify(error === undefined ? record : { ...record, error });
}

/** `state IN ${TERMINAL_SQL}`: the terminal states, from the one list in core. */
const TERMINAL_SQL = `(${[...TERMINAL_STATES].map((state) => `'${state}'`).join(', ')})`;
const LIVE_SQL = `(${LIVE_STATES.map((state) => `'${state}'`).join(', ')})`;

/**
 * `TaskTable` on one SQLite database, safe to share between processes: every write runs in an IMMEDIATE
 * transaction (the write lock is taken up front, so a read-then-write never fails on a stale snapshot), and every
 * batch is one transaction of prepared statements.
 */
export class SqliteTaskTable implements TaskTable {
  private readonly logger: Logger;
  private readonly ownsDatabase: boolean;
  private readonly writeLock: WriteLock | undefined;
  private readonly changes: DatabaseChanges | undefined;
  private closed = false;

  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly claimTx: Transaction<
    (requests: readonly ClaimRequest[], owner: string, expiresAt: number, now: number) => ClaimOutcome[]
  >;
  private readonly extendTx: Transaction<(leases: readonly LeaseRef[], expiresAt: number) => LeaseStatus[]>;
  private readonly leaseStatusTx: Transaction<(leases: readonly LeaseRef[]) => LeaseStatus[]>;
  private readonly completeTx: Transaction<(completions: readonly Completion[]) => CompletionResult[]>;
  private readonly createTasksTx: Transaction<(tasks: readonly TaskRecord[]) => void>;
  private readonly cancelTx: Transaction<
    (sessionId: string, taskIds: readonly string[] | undefined, now: number) => number
  >;
  private readonly deleteSessionTx: Transaction<(sessionId: string) => void>;
  private readonly submitTx: Transaction<(part: SubmissionPart, send: SendWithin) => void>;
  private readonly completionStatements = new Map<number, CompiledCompletion>();
  private readonly browser: SqliteTaskBrowser;

  /** Opens its own connection to the database file at `dbPath` (created if needed). */
  static open(dbPath: string, options: OpenDatabaseOptions & { logger?: Logger } = {}): SqliteTaskTable {
    return new SqliteTaskTable(openSqliteDatabase(dbPath, options), { ownsDatabase: true, logger: options.logger });
  }

  /** Uses an open database (see `openSqliteDatabase`), typically shared with a `SqliteTaskQueue`. */
  constructor(
    private readonly db: SqliteDatabase,
    options: SqliteTaskTableOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger();
    this.ownsDatabase = options.ownsDatabase ?? false;
    this.writeLock = options.writeLock;
    this.changes = options.changes;
    this.stmt = prepareStatements(db);
    this.browser = new SqliteTaskBrowser(db, { taskColumns: TASK_COLUMNS, taskOfRaw, sessionOf });
    this.claimTx = db.transaction((requests, owner, expiresAt, now) => this.claimAll(requests, owner, expiresAt, now));
    this.extendTx = db.transaction((leases, expiresAt) => this.extendAll(leases, expiresAt));
    this.leaseStatusTx = db.transaction((leases) => leases.map((lease) => this.statusOf(lease)));
    this.completeTx = db.transaction((completions) => this.completeAll(completions));
    this.createTasksTx = db.transaction((tasks) => this.insertAll(tasks));
    this.cancelTx = db.transaction((sessionId, taskIds, now) => this.cancelAll(sessionId, taskIds, now));
    this.submitTx = db.transaction((part, send) => this.submitAll(part, send));
    this.deleteSessionTx = db.transaction((sessionId) => {
      this.stmt.deleteTasksOfSession.run(sessionId);
      // Queue messages of cancelled tasks would otherwise wait for an agent to find their task gone.
      this.stmt.deleteMessagesOfSession.run(sessionId);
      this.stmt.deleteSession.run(sessionId);
    });
  }

  async createSession(session: SessionRecord): Promise<void> {
    const inserted = this.write('createSession', () => this.insertSession(session));
    if (!inserted) throw new SessionExistsError(session.sessionId);
  }

  /**
   * One part of a submission in one write transaction (see `SubmissionWriter`): the session, the tasks, their queue
   * messages (`send` writes them on this table's connection, inside the transaction) and the seal; on any error none
   * of it. Results handles are woken only by a seal that can end a session whose tasks an earlier part wrote: those
   * of a part that creates its session cannot have finished before it.
   */
  writeSubmission(part: SubmissionPart, send: SendWithin): void {
    const sealsEarlierTasks = part.seal !== undefined && part.session === undefined;
    this.write('submit', () => this.submitTx.immediate(part, send), sealsEarlierTasks);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const row = this.stmt.getSession.get(sessionId);
    return row === undefined ? undefined : sessionOf(row);
  }

  async sealSession(sessionId: string, taskCount: number): Promise<void> {
    this.write('sealSession', () => this.stmt.sealSession.run(taskCount, sessionId), true);
  }

  async deleteSession(sessionId: string): Promise<void> {
    this.write('deleteSession', () => this.deleteSessionTx.immediate(sessionId), true);
  }

  async createTasks(tasks: readonly TaskRecord[]): Promise<void> {
    if (tasks.length === 0) return;
    this.write('createTasks', () => this.createTasksTx.immediate(tasks));
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const row = this.stmt.getTask.get(taskId);
    return row === undefined ? undefined : taskOf(row);
  }

  async claim(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<ClaimOutcome[]> {
    if (requests.length === 0) return [];
    return this.write('claim', () => this.claimTx.immediate(requests, lease.owner, lease.expiresAt, now));
  }

  /**
   * `claim` inside a write transaction the caller already holds on this table's connection (the local intake folds
   * receive, claim and acknowledge into one). Synchronous; throws what SQLite throws.
   */
  claimWithinTransaction(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): ClaimOutcome[] {
    return this.claimAll(requests, lease.owner, lease.expiresAt, now);
  }

  async extendLeases(leases: readonly LeaseRef[], expiresAt: number): Promise<LeaseStatus[]> {
    if (leases.length === 0) return [];
    return this.write('extendLeases', () => this.extendTx.immediate(leases, expiresAt));
  }

  async leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    if (leases.length === 0) return [];
    return this.leaseStatusTx.deferred(leases);
  }

  async complete(completions: readonly Completion[]): Promise<CompletionResult[]> {
    if (completions.length === 0) return [];
    return this.write('complete', () => this.completeTx.immediate(completions), true);
  }

  async cancel(sessionId: string, taskIds?: readonly string[], now: number = Date.now()): Promise<number> {
    if (taskIds !== undefined && taskIds.length === 0) return 0;
    const changed = this.write('cancel', () => this.cancelTx.immediate(sessionId, taskIds, now), true);
    this.logger.debug({ sessionId, changed }, 'cancelled tasks');
    return changed;
  }

  async countByState(sessionId: string): Promise<StateCounts> {
    const counts = emptyStateCounts();
    for (const row of this.stmt.countByState.all(sessionId, sessionId)) counts[stateOf(row.state)] += row.n;
    return counts;
  }

  /** Counted in `tasks_by_session` alone (it holds the state): the session's ended entries, never its live ones. */
  async countTerminal(sessionId: string): Promise<number> {
    return this.stmt.countTerminal.get(sessionId, sessionId)?.n ?? 0;
  }

  checkTerminalCursor(cursor: string): void {
    if (!/^\d+$/.test(cursor) || !Number.isSafeInteger(Number(cursor))) throw new InvalidCursorError(cursor);
  }

  async listTerminal(sessionId: string, cursor: string | undefined, limit: number): Promise<TerminalPage> {
    let after = 0;
    if (cursor !== undefined) {
      this.checkTerminalCursor(cursor);
      after = Number(cursor);
    }
    const max = Math.max(1, Math.floor(limit));
    const rows = this.stmt.listTerminal.all(sessionId, after, max);
    const doneSeq = rows[rows.length - 1]?.[23];
    const next = doneSeq === undefined || doneSeq === null ? cursor : String(doneSeq);
    // One read transaction saw every task that had ended: a page short of the limit holds all of them, and a task
    // ending later gets a higher number (see `DONE_SEQ_SQL`), so a reader can wait for news instead of reading on.
    return { tasks: rows.map(taskOfRaw), cursor: next, more: rows.length >= max };
  }

  listSessions(cursor: string | undefined, limit: number): Promise<BrowsePage<SessionRecord>> {
    return this.browser.listSessions(cursor, limit);
  }

  listLive(
    sessionId: string,
    state: 'pending' | 'running',
    cursor: string | undefined,
    limit: number,
  ): Promise<BrowsePage<TaskRecord>> {
    return this.browser.listLive(sessionId, state, cursor, limit);
  }

  async findExpiredLeases(now: number, limit: number): Promise<TaskRecord[]> {
    return this.stmt.findExpired.all(now, Math.max(1, Math.floor(limit))).map(taskOf);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsDatabase && this.db.open) this.db.close();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Transaction bodies: synchronous, run inside one IMMEDIATE transaction each.
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Runs one write transaction; `wakesWaiters` when it can end a task or a session (finish, cancel, seal, delete):
   * results handles waiting on the `tasks` topic then look again. Claims and lease extensions wake nobody.
   */
  private write<T>(what: string, fn: () => T, wakesWaiters = false): T {
    try {
      const written = this.writeLock ? this.writeLock.run(fn) : fn();
      if (wakesWaiters) this.changes?.notify('tasks');
      return written;
    } catch (error) {
      return translateSqliteError(error, what);
    }
  }

  /** Inserts `session` unless its id is taken; false if it was. */
  private insertSession(session: SessionRecord): boolean {
    const inserted = this.stmt.insertSession.run(
      session.sessionId,
      session.createdAt,
      session.priority,
      session.maxAttempts,
      session.timeoutMs,
      JSON.stringify(session.nonRetryableErrorTypes),
      session.taskCount ?? null,
    );
    return inserted.changes > 0;
  }

  private submitAll(part: SubmissionPart, send: SendWithin): void {
    if (part.session !== undefined && !this.insertSession(part.session)) {
      throw new SessionExistsError(part.session.sessionId);
    }
    if (part.tasks.length > 0) {
      this.insertAll(part.tasks);
      send(part.tasks, Date.now());
    }
    if (part.seal !== undefined) this.stmt.sealSession.run(part.seal, part.sessionId);
  }

  private insertAll(tasks: readonly TaskRecord[]): void {
    for (const task of tasks) {
      const [pInline, pKey, pBytes] = dataRefColumns(task.payload);
      const [rInline, rKey, rBytes] = dataRefColumns(task.result);
      this.stmt.insertTask.run(
        task.taskId,
        task.sessionId,
        task.index,
        task.state,
        task.priority,
        task.attempt,
        task.failures,
        task.maxAttempts,
        task.timeoutMs,
        pInline,
        pKey,
        pBytes,
        rInline,
        rKey,
        rBytes,
        task.error === undefined ? null : JSON.stringify(task.error),
        task.failureReason ?? null,
        task.lease?.owner ?? null,
        task.lease?.expiresAt ?? null,
        task.submittedAt,
        task.startedAt ?? null,
        task.finishedAt ?? null,
        JSON.stringify(task.history),
        // An id already taken is ignored (`INSERT OR IGNORE`), its number with it: nothing to give back.
        isTerminal(task.state) ? this.nextDoneSeq(task.sessionId) : null,
      );
    }
  }

  /** The session's next completion number (see `DONE_SEQ_SQL`), inside the writing transaction. */
  private nextDoneSeq(sessionId: string): number {
    return this.stmt.nextDoneSeq.get(sessionId)?.next ?? 1;
  }

  private claimAll(requests: readonly ClaimRequest[], owner: string, expiresAt: number, now: number): ClaimOutcome[] {
    return requests.map((request): ClaimOutcome => {
      const row = this.stmt.claim.get(owner, expiresAt, now, request.taskId, request.attempt);
      if (row !== undefined) {
        const task = claimedTaskOf(row, request.taskId, { owner, expiresAt }, now);
        return { taskId: request.taskId, status: 'claimed', task };
      }
      const current = this.stmt.probe.get(request.taskId);
      // The reaper's scan sees every running task from its claim on, so a claim is never `expired` here. The lease's
      // end tells a reap's message left over by a late heartbeat (see `classifyClaim`).
      const probe = current && {
        state: current.state,
        attempt: current.attempt,
        leaseExpiresAt: current.lease_expires_at ?? undefined,
        leaseVisibleToReaper: true,
      };
      const refusal = classifyClaim(request, probe, now);
      if (refusal.status === 'expired') throw new HtcGridError('the SQLite table never leaves a lease unseen');
      return { taskId: request.taskId, status: refusal.status };
    });
  }

  private statusOf(lease: LeaseRef): LeaseStatus {
    const row = this.stmt.probeLease.get(lease.taskId);
    if (row === undefined) return 'lost';
    if (row.state === 'cancelled') return 'cancelled';
    return row.state === 'running' && row.lease_owner === lease.owner && row.attempt === lease.attempt
      ? 'held'
      : 'lost';
  }

  private extendAll(leases: readonly LeaseRef[], expiresAt: number): LeaseStatus[] {
    return leases.map((lease) => {
      const changed = this.stmt.extend.run(expiresAt, lease.taskId, lease.owner, lease.attempt, expiresAt).changes;
      return changed > 0 ? 'held' : this.statusOf(lease);
    });
  }

  private completeAll(completions: readonly Completion[]): CompletionResult[] {
    return completions.map((completion): CompletionResult => {
      const plan = planCompletion(completion);
      const { statement, bind } = this.completionStatement(plan);
      const changes = statement.run(bind(completionValues(plan))).changes;
      return { taskId: plan.taskId, status: changes > 0 ? 'recorded' : 'stale' };
    });
  }

  /**
   * The one conditional UPDATE that writes plans of this shape (guard in its WHERE, the history appended in SQL, so
   * a completion needs no read of the row first), prepared once per shape.
   */
  private completionStatement(plan: CompletionPlan): CompiledCompletion {
    const shape = completionShape(plan);
    let compiled = this.completionStatements.get(shape);
    if (compiled === undefined) {
      compiled = compileCompletion(this.db, plan);
      this.completionStatements.set(shape, compiled);
    }
    return compiled;
  }

  private cancelAll(sessionId: string, taskIds: readonly string[] | undefined, now: number): number {
    let changed = 0;
    const cancelOne = (taskId: string, row: GuardRow): void => {
      // A running attempt ends here; its agent finds out through its lease and its completion will be stale.
      const history =
        row.state === 'running'
          ? appendHistory(row.history, attemptRecord(row, row.lease_owner ?? '', now, 'cancelled'))
          : row.history;
      this.stmt.cancelTask.run(now, history, taskId);
      changed += 1;
    };
    if (taskIds === undefined) {
      // In chunks, so a session of millions of tasks never sits in memory at once.
      for (;;) {
        const live = this.stmt.liveTasksOfSession.all(sessionId);
        for (const row of live) cancelOne(row.task_id, row);
        if (live.length < LIVE_CHUNK) break;
      }
    } else {
      for (const taskId of taskIds) {
        const row = this.stmt.guardRow.get(taskId);
        if (row === undefined || row.session_id !== sessionId) continue;
        if (!isTerminal(row.state)) cancelOne(taskId, row);
      }
    }
    return changed;
  }
}

const LIVE_CHUNK = 1000;

/**
 * The next completion number of the task's session, for an UPDATE of `tasks`: one more than the session's highest,
 * read from the end of its range in `tasks_by_session`. Writes are serialised, so numbers grow in commit order
 * within a session, which is all a results cursor needs (`listTerminal` reads one session); a counter of its own
 * would write a page of another b-tree at every completion.
 */
const DONE_SEQ_SQL = `(SELECT coalesce(max(d.done_seq), 0) + 1 FROM tasks d
  WHERE d.session_id = tasks.session_id AND d.done_seq IS NOT NULL)`;

/** Sends the queue messages of `tasks` inside the caller's write transaction (see `SqliteTaskQueue.sendWithin`). */
export type SendWithin = (tasks: readonly TaskRecord[], now: number) => void;

type SqlValue = string | number | null;

/** The values a completion's UPDATE binds, computed once per completion. */
interface CompletionValues {
  readonly plan: CompletionPlan;
  /** The attempt record around the owner and start time the row supplies (see `compileCompletion`). */
  readonly head: string;
  readonly tail: string;
  readonly result: DataRefColumns;
}

/** A prepared completion UPDATE and how to bind one completion's values to its positional parameters. */
interface CompiledCompletion {
  readonly statement: Statement<[SqlValue[]]>;
  readonly bind: (values: CompletionValues) => SqlValue[];
}

/**
 * The UPDATE that writes plans of `plan`'s shape. Its guard is the WHERE; the attempt record is appended to the
 * JSON text in `history` as `head || owner || startedAt || tail`, the owner and start time spliced in from the row
 * (the same text as `JSON.stringify` of the record, keys in the same order), so the write needs no read first.
 * Each SQL fragment is listed with the values of its parameters, so SQL and binding cannot drift apart.
 */
function compileCompletion(db: SqliteDatabase, plan: CompletionPlan): CompiledCompletion {
  type Getter = (v: CompletionValues) => SqlValue;
  const holder = isHolderGuard(plan.guard);
  const set: [string, ...Getter[]][] = [
    ['state = ?', (v) => v.plan.to],
    ['lease_owner = NULL, lease_expires_at = NULL'],
  ];
  if (plan.countsFailure) set.push(['failures = failures + 1']);
  if (plan.result !== undefined) {
    set.push([
      'result_inline = ?, result_key = ?, result_bytes = ?, error = NULL, failure_reason = NULL',
      (v) => v.result[0],
      (v) => v.result[1],
      (v) => v.result[2],
    ]);
  }
  if (plan.failure !== undefined) {
    set.push([
      'error = ?, failure_reason = ?',
      (v) => JSON.stringify(v.plan.failure?.error),
      (v) => v.plan.failure?.reason ?? null,
    ]);
  }
  if (plan.terminal) set.push([`finished_at = ?, done_seq = ${DONE_SEQ_SQL}`, (v) => v.plan.at]);
  const owner: [string, ...Getter[]] = holder
    ? ['?', (v) => JSON.stringify((v.plan.guard as { owner: string }).owner)]
    : ["json_quote(coalesce(lease_owner, ''))"];
  set.push([
    `history = (CASE WHEN length(history) <= 2 THEN '[' ELSE substr(history, 1, length(history) - 1) || ',' END)
      || ? || ${owner[0]} || ',"startedAt":' || coalesce(started_at, ?) || ? || ']'`,
    (v) => v.head,
    ...owner.slice(1),
    (v) => String(v.plan.at),
    (v) => v.tail,
  ] as [string, ...Getter[]]);
  const where: [string, ...Getter[]][] = [
    ["task_id = ? AND state = 'running' AND attempt = ?", (v) => v.plan.taskId, (v) => v.plan.guard.attempt],
    holder
      ? ['lease_owner = ?', (v) => (v.plan.guard as { owner: string }).owner]
      : ['lease_expires_at < ?', (v) => (v.plan.guard as { leaseExpiredBefore: number }).leaseExpiredBefore],
  ];
  const sql = `UPDATE tasks SET ${set.map((f) => f[0]).join(', ')} WHERE ${where.map((f) => f[0]).join(' AND ')}`;
  const getters = [...set, ...where].flatMap((f) => f.slice(1) as Getter[]);
  return {
    statement: db.prepare<[SqlValue[]]>(sql),
    bind: (values) => getters.map((get) => get(values)),
  };
}

/** Which `compileCompletion` a plan needs: plans of one shape share a prepared statement. */
function completionShape(plan: CompletionPlan): number {
  // The flags determine the target state too; a number keeps the hot path free of string building.
  return (
    (isHolderGuard(plan.guard) ? 1 : 0) |
    (plan.countsFailure ? 2 : 0) |
    (plan.result !== undefined ? 4 : 0) |
    (plan.failure !== undefined ? 8 : 0) |
    (plan.terminal ? 16 : 0)
  );
}

function completionValues(plan: CompletionPlan): CompletionValues {
  const { guard, record, at } = plan;
  // Keys in `AttemptRecord` order, as `JSON.stringify` of the record would write them.
  const error = record.error === undefined ? '' : `,"error":${JSON.stringify(record.error)}`;
  const run = record.run === undefined ? '' : `,"runStartedAt":${record.run.startedAt},"runMs":${record.run.ms}`;
  return {
    plan,
    head: `{"attempt":${guard.attempt},"owner":`,
    tail: `,"finishedAt":${at},"outcome":${JSON.stringify(record.outcome)}${error}${run}}`,
    result: dataRefColumns(plan.result),
  };
}

function prepareStatements(db: SqliteDatabase) {
  return {
    insertSession: db.prepare<[string, number, number, number, number, string, number | null]>(
      `INSERT OR IGNORE INTO sessions (session_id, created_at, priority, max_attempts, timeout_ms, non_retryable, task_count)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    getSession: db.prepare<[string], SessionRow>('SELECT * FROM sessions WHERE session_id = ?'),
    sealSession: db.prepare<[number, string]>('UPDATE sessions SET task_count = ? WHERE session_id = ?'),
    deleteSession: db.prepare<[string]>('DELETE FROM sessions WHERE session_id = ?'),
    deleteTasksOfSession: db.prepare<[string]>('DELETE FROM tasks WHERE session_id = ?'),
    deleteMessagesOfSession: db.prepare<[string]>('DELETE FROM queue_messages WHERE session_id = ?'),
    // Parameters in `TASK_COLUMNS` order, the same tuple a row is read as.
    insertTask: db.prepare<RawTaskRow>(
      `INSERT OR IGNORE INTO tasks (${TASK_COLUMNS})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    nextDoneSeq: db.prepare<[string], { next: number }>(
      `SELECT coalesce(max(done_seq), 0) + 1 AS next FROM tasks WHERE session_id = ? AND done_seq IS NOT NULL`,
    ),
    getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE task_id = ?'),
    // Returns only the columns the claim did not set: RETURNING costs per column, and this is the hot path.
    claim: db.prepare<[string, number, number, string, number], ClaimedRow>(
      `UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = ?, lease_expires_at = ?, started_at = ?
       WHERE task_id = ? AND state = 'pending' AND attempt = ?
       RETURNING session_id, idx, priority, attempt, failures, max_attempts, timeout_ms, payload_inline, payload_key,
         payload_bytes, error, failure_reason, submitted_at, history`,
    ),
    probe: db.prepare<[string], { state: string; attempt: number; lease_expires_at: number | null }>(
      'SELECT state, attempt, lease_expires_at FROM tasks WHERE task_id = ?',
    ),
    probeLease: db.prepare<[string], { state: string; attempt: number; lease_owner: string | null }>(
      'SELECT state, attempt, lease_owner FROM tasks WHERE task_id = ?',
    ),
    // Never back (a running attempt's lease only moves later): a later lease stays, held all the same.
    extend: db.prepare<[number, string, string, number, number]>(
      `UPDATE tasks SET lease_expires_at = ?
       WHERE task_id = ? AND state = 'running' AND lease_owner = ? AND attempt = ?
         AND (lease_expires_at IS NULL OR lease_expires_at <= ?)`,
    ),
    guardRow: db.prepare<[string], GuardRow>(
      `SELECT session_id, state, attempt, lease_owner, lease_expires_at, started_at, history FROM tasks
       WHERE task_id = ?`,
    ),
    liveTasksOfSession: db.prepare<[string], GuardRow & { task_id: string }>(
      `SELECT task_id, session_id, state, attempt, lease_owner, lease_expires_at, started_at, history FROM tasks
       WHERE session_id = ? AND done_seq IS NULL AND state IN ${LIVE_SQL} LIMIT ${LIVE_CHUNK}`,
    ),
    cancelTask: db.prepare<[number, string, string]>(
      `UPDATE tasks SET state = 'cancelled', finished_at = ?, lease_owner = NULL, lease_expires_at = NULL,
         history = ?, done_seq = ${DONE_SEQ_SQL}
       WHERE task_id = ?`,
    ),
    // The two parts of the session's range in `tasks_by_session`, each counted apart: live tasks (no completion number)
    // come grouped by state in the index, ended ones in completion order.
    countByState: db.prepare<[string, string], { state: string; n: number }>(
      `SELECT state, count(*) AS n FROM tasks WHERE session_id = ? AND done_seq IS NULL GROUP BY state
       UNION ALL
       SELECT state, count(*) AS n FROM tasks WHERE session_id = ? AND done_seq IS NOT NULL GROUP BY state`,
    ),
    // Ended tasks with a completion number, plus any without one (a seek per terminal state): never the live ones.
    countTerminal: db.prepare<[string, string], { n: number }>(
      `SELECT (SELECT count(*) FROM tasks WHERE session_id = ? AND done_seq IS NOT NULL AND state IN ${TERMINAL_SQL})
            + (SELECT count(*) FROM tasks WHERE session_id = ? AND done_seq IS NULL AND state IN ${TERMINAL_SQL}) AS n`,
    ),
    listTerminal: db
      .prepare<[string, number, number], RawTaskRow>(
        `SELECT ${TASK_COLUMNS} FROM tasks WHERE session_id = ? AND done_seq > ? AND state IN ${TERMINAL_SQL}
         ORDER BY done_seq LIMIT ${BOUND_LIMIT}`,
      )
      .raw(true),
    findExpired: db.prepare<[number, number], TaskRow>(
      `SELECT * FROM tasks WHERE state = 'running' AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ${BOUND_LIMIT}`,
    ),
  };
}
