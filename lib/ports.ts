// The seams between the grid's logic and the services it runs on. Every adapter passes the same contract tests.
import type { AgentTaskCounts } from './core/api-views';
import type { Completion } from './core/task-lifecycle';
import type { SessionRecord, TaskError, TaskRecord } from './core/task';
import type { StateCounts } from './core/task-state';

// ---------------------------------------------------------------------------------------------------------------
// Task table: the source of truth for who runs a task. All lease-guarded writes are conditional.
// ---------------------------------------------------------------------------------------------------------------

/** Ask to claim a task that a queue message said is pending at `attempt`. */
export interface ClaimRequest {
  readonly taskId: string;
  readonly attempt: number;
  /** The message's `QueueMessage.leaseExpiredBefore`, when it has one. */
  readonly leaseExpiredBefore?: number;
}

/**
 * - `claimed`: the task is now `running` under the caller's lease at `attempt + 1`; `task` is the new record.
 * - `busy`: the message may still be needed: the attempt it names is still running (its holder has not written its
 *   retry yet), or the attempt claimed from it runs under a lease only the message guards (see `TaskIntake`).
 *   Release the message with a delay, don't drop it.
 * - `stale`: the message is a duplicate or outdated (task terminal, or claimed past that attempt, or sent by a reap
 *   of the attempt that still runs under a lease now lasting past the reap's `leaseExpiredBefore`): drop it.
 * - `missing`: no such task: drop it.
 */
export type ClaimOutcome =
  | { readonly taskId: string; readonly status: 'claimed'; readonly task: TaskRecord }
  | { readonly taskId: string; readonly status: 'busy' | 'stale' | 'missing' };

/** Identifies the lease an agent believes it holds. */
export interface LeaseRef {
  readonly taskId: string;
  readonly owner: string;
  readonly attempt: number;
}

/** `held`: still ours. `cancelled`: the task was cancelled, stop it. `lost`: someone else owns it now, stop it. */
export type LeaseStatus = 'held' | 'cancelled' | 'lost';

export type { Completion, CompletionGuard, CompletionOutcome } from './core/task-lifecycle';

/** `recorded`: written. `stale`: rejected because the guard no longer holds (nothing was written). */
export type CompletionResult = { readonly taskId: string; readonly status: 'recorded' | 'stale' };

export interface TerminalPage {
  readonly tasks: readonly TaskRecord[];
  /** Pass back to continue after the last task returned; stable across calls. */
  readonly cursor: string | undefined;
  /**
   * False when the page holds every task that had ended when it was read: reading again at once would only bring the
   * few that ended meanwhile (a request or more each), so a reader waits for news first.
   * @default - unknown: a reader reads on at once after a page with tasks
   */
  readonly more?: boolean;
}

/** A page of live tasks or of sessions; `cursor` is undefined once there is nothing more to read. */
export interface BrowsePage<T> {
  readonly items: readonly T[];
  /** Pass back to read on. A page may hold fewer items than asked (even none) and still have a cursor. */
  readonly cursor: string | undefined;
}

/**
 * Read-only queries for people watching the grid (the dashboard, `GET /v1/sessions`, task listings by state). Kept
 * apart from the lifecycle methods: nothing here writes, and each call reads a bounded amount.
 */
export interface TaskBrowser {
  /** Sessions, newest first (by `createdAt`, then id). */
  listSessions(cursor: string | undefined, limit: number): Promise<BrowsePage<SessionRecord>>;
  /**
   * A session's `pending` or `running` tasks, in an order stable across calls. A task that changes state between
   * pages may be missed or seen twice: it is a live view, not a snapshot.
   */
  listLive(
    sessionId: string,
    state: 'pending' | 'running',
    cursor: string | undefined,
    limit: number,
  ): Promise<BrowsePage<TaskRecord>>;
}

export interface TaskTable extends TaskBrowser {
  /** Creates a session; rejects with `SessionExistsError` if one with that id exists. */
  createSession(session: SessionRecord): Promise<void>;
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /** Records that every task of the session was written. */
  sealSession(sessionId: string, taskCount: number): Promise<void>;
  /** Removes a session and all its tasks (used to roll back a submission that failed half-way). */
  deleteSession(sessionId: string): Promise<void>;

  /**
   * Writes new pending tasks of a session this caller just created, before any of their queue messages is sent.
   * Batched by the adapter; writing the same batch again (a retry) leaves one pending task per id.
   */
  createTasks(tasks: readonly TaskRecord[]): Promise<void>;
  /**
   * Creates a session already sealed with its tasks (within `sealedSessionLimits`) in one atomic write that never
   * overwrites anything: afterwards the session and all its tasks exist, or none of them does; rejects with
   * `SessionExistsError` if the session exists (a retry after an answer that was lost included), and with
   * `SessionWriteUnknownError` when whether it landed could not be settled (it may still land: the caller must not
   * clean up).
   * Since no task it writes can be overwritten once running, its queue messages may be sent beside it: one that
   * arrives first finds no task, and the intake keeps it for `EARLY_MESSAGE_GRACE_MS` (see there).
   * @default - not offered: the session, its tasks and its seal are written one after the other
   */
  createSealedSession?(session: SessionRecord, tasks: readonly TaskRecord[]): Promise<void>;
  /** The most tasks, and inline payload bytes of them all, `createSealedSession` takes. */
  readonly sealedSessionLimits?: { readonly tasks: number; readonly inlineBytes: number };
  getTask(taskId: string): Promise<TaskRecord | undefined>;

  /** Claims each task if it is `pending` at the given attempt; one outcome per request, in order. */
  claim(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<ClaimOutcome[]>;
  /**
   * Pushes the lease expiry of held tasks to `expiresAt`, never back (a lease already ending later stays, `held`: an
   * extension overtaken by a later one, so a running attempt's lease only moves later); reports the ones no longer
   * held.
   */
  extendLeases(leases: readonly LeaseRef[], expiresAt: number): Promise<LeaseStatus[]>;
  /** Reads lease status without writing (cheap cancellation check). */
  leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]>;
  /** Writes completions, each conditional on its guard; one result per completion, in order. */
  complete(completions: readonly Completion[]): Promise<CompletionResult[]>;

  /** Cancels pending and running tasks of a session (or only `taskIds`). Returns how many changed. */
  cancel(sessionId: string, taskIds?: readonly string[], now?: number): Promise<number>;
  countByState(sessionId: string): Promise<StateCounts>;
  /**
   * How many of the session's tasks are terminal, counted by the table itself rather than read through
   * `listTerminal`: what a results stream that waits for results still missing compares with what it delivered, to
   * find a result its listing missed (see `SessionHandle.results`). Cheaper than `countByState`: terminal tasks only.
   */
  countTerminal(sessionId: string): Promise<number>;
  /** Terminal tasks of a session in completion order, after `cursor`. Never skips a task that ends later. */
  listTerminal(sessionId: string, cursor: string | undefined, limit: number): Promise<TerminalPage>;
  /**
   * Throws `InvalidCursorError` when `cursor` is not one `listTerminal` hands out (reads nothing): a reader that keeps
   * it inside a cursor of its own (the HTTP API's results stream) refuses a bad one before it answers.
   */
  checkTerminalCursor(cursor: string): void;
  /**
   * Every terminal task of the session whose id `wanted` accepts, in pages of at most `limit`, in no set order: the
   * full re-read of a reader that lacks a few of them (see `SessionHandle.results`), fetching only those. DynamoDB
   * reads the session index's keys (what a count reads) and then only the items wanted, where `listTerminal` from
   * the start would read every item again. `stop`, when given, is asked before each read of keys: once it returns
   * true the pages end there (the reader that bounds its time tells a finished read from a stopped one by asking it).
   * @default - not offered: the reader reads every terminal task again through `listTerminal`
   */
  readTerminalWanted?(
    sessionId: string,
    wanted: (taskId: string) => boolean,
    limit: number,
    stop?: () => boolean,
  ): AsyncGenerator<readonly TaskRecord[]>;
  /**
   * Running tasks whose lease expired before `now`, oldest first. A table may see a claimed task here only once its
   * lease was extended (DynamoDB, which saves an index write per short task): until then its intake keeps the task's
   * queue message as its guard (see `TaskIntake`).
   */
  findExpiredLeases(now: number, limit: number): Promise<TaskRecord[]>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Task queue: at-least-once delivery of "task X is pending at attempt N". The table decides who runs it.
// ---------------------------------------------------------------------------------------------------------------

export interface QueueMessage {
  readonly taskId: string;
  readonly sessionId: string;
  /** The task's `attempt` when the message was sent; the claim fences on it. */
  readonly attempt: number;
  /** 0 is the lowest. Higher priorities are received first. */
  readonly priority: number;
  /**
   * Sent by a reap of the attempt `attempt` (see `reapMessageOf`): the reap's write back to pending holds only while
   * that attempt's lease ends before this time (its `leaseExpiredBefore` guard, epoch ms). A claim that finds the
   * attempt still running under a lease ending at or after it knows the reap lost to a late heartbeat and never
   * lands (a running attempt's lease only moves later), so the message is `stale`, not `busy`.
   */
  readonly leaseExpiredBefore?: number;
}

/** The message that tells of `task` at its present attempt. */
export function queueMessageOf(task: TaskRecord): QueueMessage {
  return { taskId: task.taskId, sessionId: task.sessionId, attempt: task.attempt, priority: task.priority };
}

/**
 * The message a reap sends ahead of its write that puts `task` (whose lease expired) back to pending, guarded by
 * `leaseExpiredBefore` (see `QueueMessage.leaseExpiredBefore`). Without the mark, a reap that lost to a late heartbeat
 * would leave a message of the running attempt, released as busy at every receive until the attempt ended, and sent to
 * the dead-letter queue by SQS after `maxReceiveCount` receives of a long task.
 */
export function reapMessageOf(task: TaskRecord, leaseExpiredBefore: number): QueueMessage {
  return { ...queueMessageOf(task), leaseExpiredBefore };
}

export interface ReceivedMessage {
  readonly message: QueueMessage;
  /** Opaque handle for ack/release/extend. */
  readonly receipt: string;
  readonly receiveCount: number;
  /** When the queue took the message (epoch ms, the queue's clock), where the queue tells. */
  readonly sentAt?: number;
}

export interface ReceiveOptions {
  /** Long-poll wait when the queue is empty. */
  readonly waitMs: number;
  /** How long received messages stay invisible to other receivers. */
  readonly visibilityMs: number;
  readonly signal?: AbortSignal;
}

export interface TaskQueue {
  send(messages: readonly QueueMessage[]): Promise<void>;
  receive(max: number, options: ReceiveOptions): Promise<ReceivedMessage[]>;
  /** Deletes handled messages. */
  ack(receipts: readonly string[]): Promise<void>;
  /** Makes messages visible again after `delayMs`. */
  release(receipts: readonly string[], delayMs: number): Promise<void>;
  /** Keeps messages invisible for `visibilityMs` more. */
  extend(receipts: readonly string[], visibilityMs: number): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Task intake: how an agent takes tasks. Receive, claim, settle the messages, recover claims nobody else can see.
// ---------------------------------------------------------------------------------------------------------------

/** What `TaskIntake.receiveAndClaim` needs besides the receive options. */
export interface IntakeOptions extends ReceiveOptions {
  /** Lease owner written into claimed tasks. */
  readonly owner: string;
  /** The lease of a claimed task expires this long after the claim. */
  readonly leaseMs: number;
  /** A message whose attempt is still running (`busy`) becomes visible again after at least this delay. */
  readonly busyDelayMs: number;
  /**
   * Takes tasks claimed before the call returns: an intake that waits on some messages of a batch (see
   * `EARLY_MESSAGE_GRACE_MS`) hands the batch's other tasks over at once, and returns only the rest.
   * @default - every claimed task is returned
   */
  readonly onClaimed?: (tasks: readonly TaskRecord[]) => void;
}

/**
 * How an agent takes tasks from its backends: one receive claims the tasks of the messages it got and settles every
 * message: those of stale and missing tasks are deleted, busy ones come back later, and the claimed tasks' messages
 * are deleted as soon as the task's lease guards it.
 *
 * Where the reaper finds a claimed task from its claim on (SQLite), a claimed task's message goes at once. Where it
 * finds it only once its lease was extended (DynamoDB's lease index, which saves a write per short task), the intake
 * keeps the claimed message in flight as the task's guard until `leaseExtended` or `settle`; a message that
 * reappears meanwhile (its holder died before the first extension) is recognised, and the intake reaps that attempt
 * itself (re-queue or fail, as the reaper would). The agent sees none of this: only tasks, and two notices.
 */
export interface TaskIntake {
  /**
   * Receives up to `max` messages (long-polling like `TaskQueue.receive`), claims their tasks and settles the
   * messages. Returns the claimed tasks (`running`, leased to `options.owner`), in receive order. Once
   * `options.signal` is aborted it returns `[]` and leaves what it received for others. Rejects when the queue or
   * the table fails, and then holds no task it claimed (a task claimed in the table is handed over even when its
   * siblings' claims failed: their messages come back); messages it could not settle reappear after their
   * visibility timeout.
   */
  receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]>;
  /** The lease of a task this intake claimed was extended: the reaper sees it now, its message can go. */
  leaseExtended(task: TaskRecord): void;
  /**
   * The agent is done with a task this intake claimed. `done`: its attempt's end was written (or the task was
   * cancelled or taken over): its message can go. `abandoned`: writing the end failed; the task stays `running`
   * under a lease that will expire, and whatever guards it (its message, or the reaper) must stay.
   */
  settle(task: TaskRecord, how: 'done' | 'abandoned'): void;
  /**
   * Resolves once the settlements so far were written (batched message deletes); never rejects. Work that may wait
   * on a failing service (the AWS intake's withdrawals of unsettled claims) is given up when `signal` aborts (the
   * agent's grace ended).
   */
  drain(signal?: AbortSignal): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Submission writer: where the table and the queue share one store, a submission's writes as one transaction.
// ---------------------------------------------------------------------------------------------------------------

/** One step of a submission, written all at once or not at all (see `SubmissionWriter`). */
export interface SubmissionPart {
  readonly sessionId: string;
  /** Created in the same write; the write fails with `SessionExistsError` (and writes nothing) if the id is taken. */
  readonly session?: SessionRecord;
  /** Tasks to create (`pending`), each sent to the queue in the same write. */
  readonly tasks: readonly TaskRecord[];
  /** The session's number of tasks, when this is its last part (as `TaskTable.sealSession`). */
  readonly seal?: number;
}

/**
 * Writes a submission in as few atomic steps as it can (the local grid's table and queue share one SQLite database):
 * a session whose tasks fit one batch is created, filled, enqueued and sealed in one transaction instead of four,
 * and a failed write leaves nothing of its part behind. What it writes is what `createSession`, `createTasks`,
 * `TaskQueue.send` and `sealSession` would have written, in that order.
 */
export interface SubmissionWriter {
  writeSubmission(part: SubmissionPart): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Payload store: payloads and results too big to travel inline.
// ---------------------------------------------------------------------------------------------------------------

export interface PayloadStore {
  put(key: string, data: string | Buffer): Promise<void>;
  /** Throws if the key does not exist. */
  get(key: string): Promise<Buffer>;
  delete(keys: readonly string[]): Promise<void>;
  /** Removes every key under a prefix (`sessions/<id>/`), where the store can do so cheaply. */
  deletePrefix?(prefix: string): Promise<void>;
  close(): Promise<void>;
}

/** Keys of the payload store, under a session prefix. */
export const payloadKeys = {
  input: (sessionId: string, taskId: string) => `sessions/${sessionId}/${taskId}/input.json`,
  result: (sessionId: string, taskId: string, attempt: number) =>
    `sessions/${sessionId}/${taskId}/result-${attempt}.json`,
  sessionPrefix: (sessionId: string) => `sessions/${sessionId}/`,
};

// ---------------------------------------------------------------------------------------------------------------
// Worker invoker: runs one task in a Lambda-compatible runtime.
// ---------------------------------------------------------------------------------------------------------------

export interface Invocation {
  /** Lambda request id (`context.aws_request_id`). */
  readonly requestId: string;
  readonly taskId: string;
  readonly sessionId: string;
  readonly attempt: number;
  /** The event as JSON text, exactly as submitted. */
  readonly eventJson: string;
  /** Epoch ms after which the attempt is killed (`context.get_remaining_time_in_millis()` counts down to it). */
  readonly deadline: number;
}

export type InvokeFailureReason = 'error' | 'timeout' | 'runtime-crash' | 'cancelled' | 'busy';

export type InvokeResult =
  | { readonly ok: true; readonly resultJson: string }
  | {
      readonly ok: false;
      readonly reason: InvokeFailureReason;
      readonly error: TaskError;
    };

export interface WorkerInvoker {
  /** Loads the worker; rejects with `WorkerInitError` when its handler cannot be imported. */
  start(): Promise<void>;
  /**
   * Runs one invocation. Never rejects for a task's own failure: errors, timeouts and crashes come back as
   * `ok: false`. Aborting `signal` kills the invocation (reason `cancelled`) and the invoker restarts its runtime.
   * An invoker may accept an invocation while another runs and start it after that one (the local Python runtime
   * does): it then calls `onStarted` when the invocation starts, and the time to its deadline (`deadline` minus the
   * time of the call) counts from there. Such an invocation is in flight: its request may already be in the runtime.
   */
  invoke(invocation: Invocation, signal?: AbortSignal, onStarted?: () => void): Promise<InvokeResult>;
  /**
   * Takes back the invocations accepted behind the running one that have not started (where the invoker can: the
   * local Python runtime asks the runtime process, which decides). Each one taken back resolves `busy` with the error
   * type `Runtime.Withdrawn` (`isWithdrawn`) and never runs; one that started meanwhile gives its own result.
   */
  withdrawQueued?(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Request ledger: requests already handled, so a retried request is answered from its record, never applied twice.
// ---------------------------------------------------------------------------------------------------------------

/**
 * - `new`: the key is now held by the caller (for `holdMs`): apply the request, then `finish` or `release` it.
 * - `done`: a request with this key was applied; `response` is what it answered.
 * - `busy`: a request with this key is being applied right now (or its holder died less than `holdMs` ago).
 * `fingerprint` (of `done` and `busy`) identifies the request that took the key, so a different request reusing it
 * can be refused.
 */
export type LedgerEntry =
  | { readonly status: 'new' }
  | { readonly status: 'done'; readonly fingerprint: string; readonly response: string }
  | { readonly status: 'busy'; readonly fingerprint: string };

export interface RequestLedger {
  /** Takes `key` for the request with `fingerprint`, unless it is done or held by a live holder. */
  begin(key: string, fingerprint: string, now: number, holdMs: number): Promise<LedgerEntry>;
  /** Records the answer of the request holding `key`; later `begin`s get it back as `done`. */
  finish(key: string, response: string): Promise<void>;
  /** Lets go of `key` after the request failed, so a retry applies it afresh. */
  release(key: string): Promise<void>;
  close(): Promise<void>;
}

/** What an agent says of itself when it heartbeats: who it is, what it runs, and until when it counts as alive. */
export interface AgentPresence {
  /** Unique per agent process (`host:pid:random`). */
  readonly agentId: string;
  readonly host: string;
  readonly pid: number;
  /** Slots (runtimes) it runs tasks in. */
  readonly slots: number;
  readonly handler: string;
  /** Lambda runtime name of its worker. */
  readonly runtime: string;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  /** Epoch ms after which, without a newer heartbeat, the agent is taken for gone. */
  readonly expiresAt: number;
  /** `draining` once it stopped taking tasks. */
  readonly state: 'alive' | 'draining';
  /**
   * Slots running a task at the last heartbeat (the rest are idle).
   * @default - not told (an agent of an earlier version)
   */
  readonly busySlots?: number;
  /**
   * Times its slots' runtimes were restarted since it started (after a timeout, a crash or an interrupted task).
   * @default - not told
   */
  readonly runtimeRestarts?: number;
  /**
   * Attempts counted since it started.
   * @default - not told
   */
  readonly tasks?: AgentTaskCounts;
  /**
   * Waiting for disk space at the last heartbeat: the disk holding the grid folder is full, so the agent takes no new
   * task and keeps the results it finished in memory until they can be recorded. Told from the moment it finds the
   * disk full until space has been back for a second (`DISK_WAIT_HOLD_MS`; the entry is written again then), so a disk
   * that fills again at once reads as one wait.
   * @default false - an agent of an earlier version does not tell
   */
  readonly waitingForDisk?: boolean;
}

/** Where agents register and heartbeat, so clients can tell whether any agent will run their tasks. */
export interface AgentRegistry {
  /** Records the agent or refreshes its heartbeat. */
  heartbeat(presence: AgentPresence): Promise<void>;
  /** Forgets the agent at once (a clean stop). */
  remove(agentId: string): Promise<void>;
  /** The agents alive at `now`: a heartbeat not yet expired (and, where the registry can tell, a living process). */
  listAlive(now: number): Promise<AgentPresence[]>;
}
