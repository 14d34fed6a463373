// The lifecycle rules every task table applies: how a refused claim is classified and what a completion writes.
// Pure; the adapters only translate a classification or a plan into their store's conditional writes.
import { decideAfterFailure, type AttemptOutcome, type DataRef, type TaskError, type TaskRecord } from './task';
import { canTransition, isTerminal, type FailureReason, type TaskState } from './task-state';

// ---------------------------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------------------------

/** What a claim's conditional write found in the row when its condition (`pending` at the attempt) failed. */
export interface ClaimProbe {
  readonly state: string | undefined;
  readonly attempt: number | undefined;
  readonly leaseExpiresAt: number | undefined;
  /**
   * Whether the reaper can find this running task by its lease. A table whose reaper finds leases only once
   * extended (DynamoDB's lease index) says `false` until the first extension; then the claimed queue message is
   * the task's only guard.
   */
  readonly leaseVisibleToReaper: boolean;
}

/**
 * Why a claim was refused. `busy`, `stale` and `missing` are the refusals of the `ClaimOutcome` port type (see
 * there); `retryAfterMs` and `expired` arise only where the reaper cannot see a lease yet, and stay inside that
 * backend's intake (see `TaskIntake`).
 */
export type ClaimRefusal =
  | { readonly status: 'busy'; readonly retryAfterMs?: number }
  | { readonly status: 'expired' }
  | { readonly status: 'stale' | 'missing' };

/** A message offered again this long after a lease only it guards would expire, so the lease is surely gone. */
export const UNGUARDED_LEASE_RETRY_MARGIN_MS = 1_000;

/**
 * A queue message may be sent beside its task's write where that write can never overwrite a task (a session and its
 * tasks created in one conditional write, `TaskTable.createSealedSession`): the message may then arrive before its
 * task exists. A claim that finds no task keeps such a message (releases it, to be offered again) while it is younger
 * than this by the queue's send time, or the queue has offered it fewer than `EARLY_MESSAGE_RECEIVES` times, and drops
 * it after both: the task was never written, or was deleted.
 */
export const EARLY_MESSAGE_GRACE_MS = 5_000;

/**
 * Times a message of a missing task is offered (received) before it may be dropped (see `EARLY_MESSAGE_GRACE_MS`):
 * the first receive, then the releases for 1 s, 2 s and 4 s, which the queue times itself, so an agent whose clock
 * runs ahead of the queue's cannot drop a message while its task is still being written.
 */
export const EARLY_MESSAGE_RECEIVES = 4;

/**
 * A submitter that sent messages beside a write that took longer than this sends them again once the write is done:
 * its first messages may have been dropped as missing while the write was still landing (no sooner than the queue's
 * 1 + 2 + 4 s of releases, `EARLY_MESSAGE_RECEIVES`, and `EARLY_MESSAGE_GRACE_MS` after their send).
 */
export const RESEND_EARLY_MESSAGES_AFTER_MS = 2_000;

/**
 * Classifies a refused claim of the message for `requested.attempt` from what the row holds (`undefined`: no row).
 * - the task is pending at that attempt (refused all the same): the message is kept (`busy`);
 * - the task is not running otherwise: the message is outdated (`stale`);
 * - the attempt the message names still runs: its holder has not written its retry yet, the message is early
 *   (`busy`); but a reap's message (`requested.leaseExpiredBefore`, see `QueueMessage`) whose attempt runs under a
 *   lease ending at or after that time is left over from a reap that lost to a late heartbeat, and whose write can
 *   never land (the lease of a running attempt only moves later): `stale`;
 * - the attempt claimed from this very message runs and the reaper cannot see its lease: a live lease keeps the
 *   message (`busy`, worth offering again just after the lease would expire); an expired one is reaped by the
 *   caller (`expired`), as no reaper will find it;
 * - anything else was claimed past that attempt (`stale`).
 */
export function classifyClaim(
  requested: { readonly attempt: number; readonly leaseExpiredBefore?: number },
  found: ClaimProbe | undefined,
  now: number,
): ClaimRefusal {
  const requestedAttempt = requested.attempt;
  if (found === undefined) return { status: 'missing' };
  // Pending at the very attempt the message names, and yet refused (a claim meeting its own fence, which a nonce drawn
  // per claim no longer allows, see DynamoDbTaskTable): the message is the task's only way back, so it is kept, never
  // taken for outdated.
  if (found.state === 'pending' && found.attempt === requestedAttempt) return { status: 'busy' };
  if (found.state !== 'running') return { status: 'stale' };
  if (found.attempt === requestedAttempt) {
    const reapedBefore = requested.leaseExpiredBefore;
    const reapLost =
      reapedBefore !== undefined && found.leaseExpiresAt !== undefined && found.leaseExpiresAt >= reapedBefore;
    return { status: reapLost ? 'stale' : 'busy' };
  }
  if (found.attempt === requestedAttempt + 1 && !found.leaseVisibleToReaper) {
    if (found.leaseExpiresAt === undefined) return { status: 'busy' };
    if (found.leaseExpiresAt >= now) {
      return { status: 'busy', retryAfterMs: found.leaseExpiresAt - now + UNGUARDED_LEASE_RETRY_MARGIN_MS };
    }
    return { status: 'expired' };
  }
  return { status: 'stale' };
}

// ---------------------------------------------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------------------------------------------

/** The condition a completion is written under. */
export type CompletionGuard =
  /** The agent holding the lease. */
  | { readonly owner: string; readonly attempt: number }
  /** The reaper: the lease of that attempt must have expired before `now`. */
  | { readonly leaseExpiredBefore: number; readonly attempt: number };

/** How an attempt ended, as written to the table. */
export type CompletionOutcome =
  | { readonly kind: 'succeeded'; readonly result: DataRef }
  /** Terminal failure. */
  | { readonly kind: 'failed'; readonly reason: FailureReason; readonly error: TaskError }
  /** Failed, back to `pending` for another attempt (`failures + 1`). The caller enqueues the message first. */
  | { readonly kind: 'retry'; readonly reason: FailureReason; readonly error: TaskError }
  /** Handed back unfinished (drain): back to `pending`, the attempt does not count as a failure. */
  | { readonly kind: 'released' };

export interface Completion {
  readonly taskId: string;
  readonly guard: CompletionGuard;
  readonly outcome: CompletionOutcome;
  /** When the attempt ended (epoch ms). */
  readonly at: number;
  /** The handler's run, when it ran (see `AttemptRecord.runStartedAt`/`runMs`), stored in the attempt's record. */
  readonly run?: AttemptRun;
}

/** When the handler's run of an attempt began (epoch ms) and how long it took (ms), as the agent measured it. */
export interface AttemptRun {
  readonly startedAt: number;
  readonly ms: number;
}

/**
 * Everything one completion writes, in one conditional write guarded by `guard` (the task is `running` at
 * `guard.attempt` and held by its owner, or its lease expired before `leaseExpiredBefore`). Every completion also
 * drops the lease and appends `record` to the history (owner and start time come from the lease it ends).
 */
export interface CompletionPlan {
  readonly taskId: string;
  readonly guard: CompletionGuard;
  readonly to: Extract<TaskState, 'pending' | 'succeeded' | 'failed'>;
  /** Terminal: the task gets a finish time (`at`) and a place in its session's completion order. */
  readonly terminal: boolean;
  /** `failures + 1`. */
  readonly countsFailure: boolean;
  /** The result to store (a success); a success also clears the error and failure reason of earlier attempts. */
  readonly result: DataRef | undefined;
  /** The error and reason to store on the task (a failure, terminal or retried). */
  readonly failure: { readonly reason: FailureReason; readonly error: TaskError } | undefined;
  /** The appended attempt record's outcome, error and handler run. */
  readonly record: {
    readonly outcome: AttemptOutcome;
    readonly error: TaskError | undefined;
    readonly run: AttemptRun | undefined;
  };
  /** When the attempt ended (epoch ms). */
  readonly at: number;
}

const TARGET_STATE = { succeeded: 'succeeded', failed: 'failed', retry: 'pending', released: 'pending' } as const;

/** What a completion writes (see `CompletionPlan`). Pure; the same plan for every table. */
export function planCompletion(completion: Completion): CompletionPlan {
  const { taskId, guard, outcome, at } = completion;
  const to = TARGET_STATE[outcome.kind];
  // Guarded completions always end a running attempt.
  if (!canTransition('running', to)) throw new Error(`no transition from running to ${to}`);
  const failure = outcome.kind === 'failed' || outcome.kind === 'retry' ? outcome : undefined;
  return {
    taskId,
    guard,
    to,
    terminal: isTerminal(to),
    countsFailure: failure !== undefined,
    result: outcome.kind === 'succeeded' ? outcome.result : undefined,
    failure: failure === undefined ? undefined : { reason: failure.reason, error: failure.error },
    record: {
      outcome: failure?.reason ?? (outcome.kind === 'succeeded' ? 'succeeded' : 'released'),
      error: failure?.error,
      run: completion.run,
    },
    at,
  };
}

/** Whether the completion is written by the lease holder (the agent) rather than the reaper. */
export function isHolderGuard(guard: CompletionGuard): guard is { readonly owner: string; readonly attempt: number } {
  return 'owner' in guard;
}

// ---------------------------------------------------------------------------------------------------------------
// Expired leases
// ---------------------------------------------------------------------------------------------------------------

/**
 * What the reaper writes for a running task whose lease expired before `now`: a retry while attempts remain (an
 * expired lease is never the handler's fault), else a failure; `requeue` says its queue message must be sent first.
 * Fenced on the attempt and on the lease still being expired at `now`, so a late heartbeat wins.
 */
export function planLeaseExpiry(task: TaskRecord, now: number): { completion: Completion; requeue: boolean } {
  const error = leaseExpiredError(task);
  const decision = decideAfterFailure(task, 'lease-expired', error, { nonRetryableErrorTypes: [] });
  const requeue = decision.next === 'retry';
  return {
    completion: {
      taskId: task.taskId,
      guard: { leaseExpiredBefore: now, attempt: task.attempt },
      outcome: { kind: requeue ? 'retry' : 'failed', reason: 'lease-expired', error },
      at: now,
    },
    requeue,
  };
}

function leaseExpiredError(task: TaskRecord): TaskError {
  const expiredAt = task.lease ? new Date(task.lease.expiresAt).toISOString() : 'unknown';
  return {
    type: 'LeaseExpired',
    message: `attempt ${task.attempt} of task ${task.taskId} stopped heartbeating (agent ${task.lease?.owner ?? 'unknown'} died or lost its host); lease expired at ${expiredAt}`,
    stack: [],
  };
}
