// Pure rules turning what the runtime returned into what the task table records.
import { decideAfterFailure, type FailureReason, type TaskError, type TaskRecord } from '../../core';
import type { CompletionOutcome, InvokeResult } from '../../ports';
import { timeoutError } from '../invoke-results';

/** Why the agent itself interrupted an attempt, if it did. */
export type AbortCause = 'cancelled' | 'lost' | 'drain' | 'deadline';

/** What to do once an attempt returned: write an outcome, or nothing (the task is no longer ours). */
export type AttemptDecision = { readonly write: CompletionOutcome } | { readonly write: undefined };

export interface DecideOptions {
  readonly nonRetryableErrorTypes: readonly string[];
  readonly taskTimeoutMs: number;
}

/**
 * Maps an invocation's result to a completion outcome. A handler error is never a success; a task we stopped
 * because it was cancelled or taken over is left alone; a drained or busy attempt goes back to pending for free.
 */
export function decideAttempt(
  task: Pick<TaskRecord, 'failures' | 'maxAttempts' | 'timeoutMs'>,
  result: InvokeResult,
  abortCause: AbortCause | undefined,
  options: DecideOptions,
): AttemptDecision {
  if (result.ok) {
    if (abortCause === 'cancelled' || abortCause === 'lost') return { write: undefined };
    return { write: { kind: 'succeeded', result: { inline: result.resultJson } } };
  }
  if (result.reason === 'cancelled') {
    if (abortCause === 'deadline') return failure(task, 'timeout', timeoutError(task.timeoutMs), true, options);
    if (abortCause === 'drain') return { write: { kind: 'released' } };
    return { write: undefined };
  }
  if (abortCause === 'cancelled' || abortCause === 'lost') return { write: undefined };
  if (result.reason === 'busy') return { write: { kind: 'released' } };
  return failure(task, result.reason, result.error, isRetryable(result.error), options);
}

/** Failure outcome for a task whose attempt failed, deciding retry or final failure. */
export function failure(
  task: Pick<TaskRecord, 'failures' | 'maxAttempts'>,
  reason: FailureReason,
  error: TaskError,
  retryable: boolean,
  options: Pick<DecideOptions, 'nonRetryableErrorTypes'>,
): AttemptDecision {
  const decision = decideAfterFailure(task, reason, error, {
    nonRetryableErrorTypes: options.nonRetryableErrorTypes,
    retryable,
  });
  return { write: { kind: decision.next === 'retry' ? 'retry' : 'failed', reason, error } };
}

/** Errors that would fail again the same way on another attempt. */
const DETERMINISTIC_ERROR_TYPES = new Set(['Runtime.MarshalError', 'Runtime.ResultTooLarge', 'Runtime.PayloadMissing']);

function isRetryable(error: TaskError): boolean {
  return !DETERMINISTIC_ERROR_TYPES.has(error.type);
}
