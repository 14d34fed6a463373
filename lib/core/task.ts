// The task model shared by every backend, and the pure rules that decide what happens after an attempt.
import type { FailureReason, TaskState } from './task-state';

/**
 * Where a payload or result lives: inline as JSON text when small, or in the payload store under `key`.
 * JSON is kept as text end to end so the hot path never re-parses it.
 */
export type DataRef = { readonly inline: string } | { readonly key: string; readonly bytes: number };

/** An error as Lambda reports it, kept for the last failed attempt. */
export interface TaskError {
  readonly type: string;
  readonly message: string;
  readonly stack: readonly string[];
}

/** The outcome of one attempt. */
export type AttemptOutcome = 'succeeded' | 'cancelled' | 'released' | FailureReason;

export interface AttemptRecord {
  readonly attempt: number;
  readonly owner: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly outcome: AttemptOutcome;
  readonly error?: TaskError;
  /**
   * When the handler's run began (epoch ms): the invocation's start in the runtime, after any wait in the agent or
   * behind another invocation. Absent when the handler never ran (handed back before it started, reaped).
   */
  readonly runStartedAt?: number;
  /** The handler's own time, from `runStartedAt` to the invocation's end (ms). Absent with `runStartedAt`. */
  readonly runMs?: number;
}

/** Who holds a running task, for which attempt, and until when (epoch ms). */
export interface Lease {
  readonly owner: string;
  readonly expiresAt: number;
}

export interface TaskRecord {
  readonly taskId: string;
  readonly sessionId: string;
  /** Position of the task in its session's submission, from 0. */
  readonly index: number;
  readonly state: TaskState;
  /** Higher runs first. */
  readonly priority: number;
  /**
   * Number of times the task was claimed. The claim fences on it: a queue message carries the value it expects
   * and a claim moves it to `attempt + 1`, so a duplicate or stale message can never claim the task again.
   */
  readonly attempt: number;
  /** Attempts that ended in a failure; retries stop when it reaches `maxAttempts`. Released attempts don't count. */
  readonly failures: number;
  readonly maxAttempts: number;
  readonly timeoutMs: number;
  readonly payload: DataRef;
  readonly result?: DataRef;
  readonly error?: TaskError;
  readonly failureReason?: FailureReason;
  readonly lease?: Lease;
  readonly submittedAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly history: readonly AttemptRecord[];
}

export interface SessionRecord {
  readonly sessionId: string;
  readonly createdAt: number;
  readonly priority: number;
  readonly maxAttempts: number;
  readonly timeoutMs: number;
  /** Error types (exception class names) that are never retried. */
  readonly nonRetryableErrorTypes: readonly string[];
  /** Set once every task of the session was written. */
  readonly taskCount?: number;
  /**
   * How many tasks the client expects to submit, when it knows up front (an array, a counted file). Adapters may size
   * their indexes by it (the DynamoDB table spreads a large session's results over more index partitions).
   */
  readonly expectedTaskCount?: number;
}

export function taskIdOf(sessionId: string, index: number): string {
  return `${sessionId}_${index}`;
}

/** The index of a task of `sessionId` from its id (see `taskIdOf`); undefined when it is not one of its ids. */
export function taskIndexOf(sessionId: string, taskId: string): number | undefined {
  if (!taskId.startsWith(`${sessionId}_`)) return undefined;
  const digits = taskId.slice(sessionId.length + 1);
  if (!/^(0|[1-9]\d*)$/.test(digits)) return undefined;
  const index = Number(digits);
  return Number.isSafeInteger(index) ? index : undefined;
}

/**
 * How long a task's last attempt waited and ran (ms), for result lines and task views. `queuedMs`: from submission to
 * the start of the handler's run (its claim, where the run was not recorded); `runMs`: the handler's own time;
 * `durationMs`: from the claim to the result (a wait in the agent included). `null` where unknown.
 */
export function taskTimings(task: TaskRecord): {
  queuedMs: number | null;
  runMs: number | null;
  durationMs: number | null;
} {
  const last = task.history.findLast((h) => h.attempt === task.attempt);
  const start = last?.runStartedAt ?? task.startedAt;
  return {
    queuedMs: start !== undefined ? start - task.submittedAt : null,
    runMs: last?.runMs ?? null,
    durationMs: task.startedAt !== undefined && task.finishedAt !== undefined ? task.finishedAt - task.startedAt : null,
  };
}

export function isInline(ref: DataRef): ref is { readonly inline: string } {
  return 'inline' in ref;
}

/** A new task as a backend stores it: pending, never claimed. */
export function newTask(
  session: SessionRecord,
  index: number,
  payload: DataRef,
  now: number,
  overrides: { priority?: number; maxAttempts?: number; timeoutMs?: number } = {},
): TaskRecord {
  return {
    taskId: taskIdOf(session.sessionId, index),
    sessionId: session.sessionId,
    index,
    state: 'pending',
    priority: overrides.priority ?? session.priority,
    attempt: 0,
    failures: 0,
    maxAttempts: overrides.maxAttempts ?? session.maxAttempts,
    timeoutMs: overrides.timeoutMs ?? session.timeoutMs,
    payload,
    submittedAt: now,
    history: [],
  };
}

/** What to do with a task after one of its attempts failed. */
export type FailureDecision = { readonly next: 'retry' } | { readonly next: 'fail' };

/**
 * Retry while attempts remain and the failure is retryable. A handler error is not retried when its type is
 * listed as non-retryable or the error itself says so (e.g. a result too large: it would fail again);
 * timeouts, crashes and expired leases are always retried while attempts remain.
 */
export function decideAfterFailure(
  task: Pick<TaskRecord, 'failures' | 'maxAttempts'>,
  reason: FailureReason,
  error: TaskError | undefined,
  options: { nonRetryableErrorTypes: readonly string[]; retryable?: boolean },
): FailureDecision {
  const failures = task.failures + 1;
  if (failures >= task.maxAttempts) return { next: 'fail' };
  if (reason === 'error' && options.retryable === false) return { next: 'fail' };
  if (reason === 'error' && error && options.nonRetryableErrorTypes.includes(error.type)) return { next: 'fail' };
  return { next: 'retry' };
}
