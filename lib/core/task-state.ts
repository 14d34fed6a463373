// The task lifecycle: state names, which transitions are allowed, and what a failure reason means.

/** Every state a task can be in. `pending` and `running` are live; the others are terminal. */
export const TASK_STATES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>(['succeeded', 'failed', 'cancelled']);

export type TerminalState = 'succeeded' | 'failed' | 'cancelled';

/** Whether `state` is one of the terminal states (accepts any value, e.g. a state read from a store). */
export function isTerminal(state: unknown): state is TerminalState {
  return (TERMINAL_STATES as ReadonlySet<unknown>).has(state);
}

/** The live states (a task in one of them will still change), e.g. for a store's `state IN (...)` filter. */
export const LIVE_STATES: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_STATES.has(s));

/**
 * Why an attempt failed.
 * - `error`: the handler raised (or returned something that cannot be serialised).
 * - `timeout`: the attempt ran past its deadline and was killed.
 * - `runtime-crash`: the runtime process died mid-task (segfault, `os._exit`, OOM kill).
 * - `lease-expired`: the agent holding the task stopped heartbeating (it died or lost its host).
 */
export const FAILURE_REASONS = ['error', 'timeout', 'runtime-crash', 'lease-expired'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  // pending -> failed: the reaper fails a task whose last lease expired before it was re-queued.
  pending: ['running', 'cancelled', 'failed'],
  // running -> pending: a retry, a released lease (drain) or a re-queue by the reaper.
  running: ['pending', 'succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

/** Counts of a session's tasks per state. */
export type StateCounts = Record<TaskState, number>;

export function emptyStateCounts(): StateCounts {
  return { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
}
