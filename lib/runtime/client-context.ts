// The Lambda client context the grid passes with each task: the one place its shape is written.
import type { Invocation } from '../ports';

/** The grid's identity of a task in `custom` (`context.client_context.custom` in the worker). */
export interface GridClientContext {
  readonly custom: { readonly session_id: string; readonly task_id: string; readonly attempt: number };
}

export function clientContextOf(task: Pick<Invocation, 'sessionId' | 'taskId' | 'attempt'>): GridClientContext {
  return { custom: { session_id: task.sessionId, task_id: task.taskId, attempt: task.attempt } };
}
