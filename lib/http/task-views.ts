// How tasks and sessions look on the wire: result lines (result text spliced in as stored), details, session status.
import {
  isInline,
  resultJsonForLine,
  taskTimings,
  type DataRef,
  type SessionRecord,
  type AttemptOutput,
  type SessionStatusView,
  type StateCounts,
  type TaskRecord,
} from '../core';
import type { PayloadStore } from '../ports';

/** A stored value's JSON text, exactly as the runtime wrote it (raw line breaks, only ever whitespace, as spaces). */
export async function storedText(ref: DataRef, store: PayloadStore): Promise<string> {
  const text = isInline(ref) ? ref.inline : (await store.get(ref.key)).toString('utf8');
  return resultJsonForLine(text);
}

function terminalState(task: TaskRecord): 'succeeded' | 'failed' | 'cancelled' {
  return task.state === 'succeeded' || task.state === 'failed' ? task.state : 'cancelled';
}

/**
 * One NDJSON line of a results stream (with its newline). The result is the stored text, never parsed: NaN,
 * Infinity, -0.0 and integers beyond 2^53 reach the client as the worker's runtime wrote them.
 */
export async function resultLine(task: TaskRecord, store: PayloadStore, cursor?: string): Promise<string> {
  const state = terminalState(task);
  let body = '';
  if (state === 'succeeded' && task.result) body = `,"result":${await storedText(task.result, store)}`;
  else if (task.error) {
    body = `,"error":${JSON.stringify(task.error)}`;
    if (state === 'failed' && task.failureReason) body += `,"reason":"${task.failureReason}"`;
  }
  const { queuedMs, runMs, durationMs } = taskTimings(task);
  return (
    `{"index":${task.index},"taskId":${JSON.stringify(task.taskId)},"state":"${state}"${body}` +
    `,"attempts":${task.attempt},"failures":${task.failures},"queuedMs":${queuedMs},"runMs":${runMs}` +
    `,"durationMs":${durationMs}` +
    `,"submittedAt":${task.submittedAt},"startedAt":${task.startedAt ?? null},"finishedAt":${task.finishedAt ?? null}` +
    `${cursor !== undefined ? `,"cursor":${JSON.stringify(cursor)}` : ''}}\n`
  );
}

/** A task as `GET /v1/tasks/{taskId}` shows it, as JSON text (payload and result spliced in as stored). */
export async function taskDetailJson(
  task: TaskRecord,
  store: PayloadStore,
  output: readonly AttemptOutput[] | undefined,
  outputNote: string,
): Promise<string> {
  const fields: Record<string, unknown> = {
    taskId: task.taskId,
    sessionId: task.sessionId,
    index: task.index,
    state: task.state,
    priority: task.priority,
    attempt: task.attempt,
    failures: task.failures,
    maxAttempts: task.maxAttempts,
    timeoutSec: task.timeoutMs / 1000,
    submittedAt: task.submittedAt,
    startedAt: task.startedAt ?? null,
    finishedAt: task.finishedAt ?? null,
    lease: task.lease ?? null,
    error: task.error ?? null,
    reason: task.failureReason ?? null,
    history: task.history,
    output: output === undefined ? { available: false, note: outputNote } : { available: true, attempts: output },
  };
  const json = JSON.stringify(fields);
  const payload = await storedText(task.payload, store);
  const result = task.result && task.state === 'succeeded' ? await storedText(task.result, store) : 'null';
  return `${json.slice(0, -1)},"payload":${payload},"result":${result}}`;
}

export type { AttemptOutput, SessionStatusView } from '../core';

export function sessionStatusView(session: SessionRecord, counts: StateCounts): SessionStatusView {
  const finished = counts.succeeded + counts.failed + counts.cancelled;
  return {
    sessionId: session.sessionId,
    createdAt: session.createdAt,
    sealed: session.taskCount !== undefined,
    taskCount: session.taskCount ?? null,
    counts,
    done: session.taskCount !== undefined && finished >= session.taskCount,
    priority: session.priority,
    maxAttempts: session.maxAttempts,
    timeoutSec: session.timeoutMs / 1000,
    nonRetryableErrorTypes: session.nonRetryableErrorTypes,
  };
}
