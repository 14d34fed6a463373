// The failures every invoker reports besides the handler's own errors (timeout, exit, cancel, busy), built in one
// place and worded as Lambda and lambda-rie word them.
import type { TaskError } from '../core/task';
import type { InvokeResult } from '../ports';

/** `Task timed out after 3.00 seconds`, as lambda-rie says it; the span is rounded up to the next 10 ms. */
export function timeoutError(timeoutMs: number): TaskError {
  const seconds = (Math.ceil(Math.max(0, timeoutMs) / 10) / 100).toFixed(2);
  return { type: 'Sandbox.Timedout', message: `Task timed out after ${seconds} seconds`, stack: [] };
}

export function timeoutResult(timeoutMs: number): InvokeResult {
  return failure('timeout', timeoutError(timeoutMs));
}

const SIGNAL_WORDS: Readonly<Record<string, string>> = {
  SIGKILL: 'killed',
  SIGSEGV: 'segmentation fault',
  SIGABRT: 'aborted',
  SIGTERM: 'terminated',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGILL: 'illegal instruction',
  SIGINT: 'interrupt',
};

/** How the runtime process ended, as Go's `exec.ExitError` prints it (what Lambda shows). */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal) return `signal: ${SIGNAL_WORDS[signal] ?? signal} (${signal})`;
  return `exit status ${code ?? 'unknown'}`;
}

/** The runtime process died while running the task. */
export function crashResult(code: number | null, signal: string | null): InvokeResult {
  return failure('runtime-crash', {
    type: 'Runtime.ExitError',
    message: `Runtime exited with error: ${describeExit(code, signal)}`,
    stack: [],
  });
}

/** The runtime could not be (re)started for this task. */
export function unavailableResult(error: Error & { errorType?: string }): InvokeResult {
  return failure('runtime-crash', {
    type: error.errorType ?? 'Runtime.Unavailable',
    message: error.message,
    stack: [],
  });
}

/** Why `signal` aborted, in words for a cancelled result. */
export function abortReason(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason.message;
  if (typeof reason === 'string') return reason;
  return 'the invocation was aborted';
}

export function cancelledResult(why: string): InvokeResult {
  return failure('cancelled', { type: 'Runtime.Cancelled', message: `Invocation cancelled: ${why}`, stack: [] });
}

/**
 * An invocation stopped before it started (it waited behind another in the same runtime): nothing ran, so it is
 * reported like a busy runtime, which the agent hands back without charging an attempt.
 */
export function notStartedResult(why: string): InvokeResult {
  return failure('busy', {
    type: 'Runtime.NotStarted',
    message: `Invocation stopped before it started: ${why}`,
    stack: [],
  });
}

/**
 * An invocation written ahead to a runtime and taken back before it started (see `WorkerInvoker.withdrawQueued`):
 * nothing ran; the caller runs it elsewhere. A busy result, so a caller that does not know it hands the task back.
 */
export function withdrawnResult(): InvokeResult {
  return failure('busy', {
    type: 'Runtime.Withdrawn',
    message: 'the invocation was taken back before it started (it waited behind a long one)',
    stack: [],
  });
}

/** True for `withdrawnResult()`. */
export function isWithdrawn(result: InvokeResult): boolean {
  return !result.ok && result.reason === 'busy' && result.error.type === 'Runtime.Withdrawn';
}

export function busyResult(): InvokeResult {
  return failure('busy', {
    type: 'Runtime.Busy',
    message: 'the runtime is already running an invocation (one invocation per slot at a time)',
    stack: [],
  });
}

/** Turns a runtime's error document (`errorType`, `errorMessage`, `stackTrace` or Node's `trace`) into a result. */
export function handlerErrorResult(errorJson: string, fallbackType = 'Unhandled'): InvokeResult {
  return failure('error', parseErrorDocument(errorJson, fallbackType));
}

export function parseErrorDocument(text: string, fallbackType = 'Unhandled'): TaskError {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { type: fallbackType, message: text, stack: [] };
  }
  if (typeof doc !== 'object' || doc === null) return { type: fallbackType, message: text, stack: [] };
  const fields = doc as Record<string, unknown>;
  const stack = Array.isArray(fields.stackTrace) ? fields.stackTrace : Array.isArray(fields.trace) ? fields.trace : [];
  return {
    type: typeof fields.errorType === 'string' && fields.errorType ? fields.errorType : fallbackType,
    message: typeof fields.errorMessage === 'string' ? fields.errorMessage : JSON.stringify(fields.errorMessage ?? ''),
    stack: stack.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))),
  };
}

function failure(reason: Exclude<InvokeResult, { ok: true }>['reason'], error: TaskError): InvokeResult {
  return { ok: false, reason, error };
}
