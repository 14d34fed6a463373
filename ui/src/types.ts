// The HTTP API's answers as the dashboard reads them (lib/http/openapi.yaml is the source of truth).

export type TaskState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TASK_STATES: readonly TaskState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

export type StateCounts = Record<TaskState, number>;

export interface SessionStatus {
  readonly sessionId: string;
  readonly createdAt: number;
  readonly sealed: boolean;
  readonly taskCount: number | null;
  readonly counts: StateCounts;
  readonly done: boolean;
  readonly maxAttempts: number;
}

export interface SessionLive extends SessionStatus {
  readonly completionsPerSec: number;
}

export interface AgentView {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly state: 'alive' | 'draining';
  readonly slots: number;
  readonly busySlots: number | null;
  readonly idleSlots: number | null;
  readonly runtimeRestarts: number | null;
  readonly handler: string;
  readonly runtime: string;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  readonly stats: Record<'claimed' | 'succeeded' | 'failed' | 'retried' | 'released' | 'dropped', number> | null;
}

export interface AgentsView {
  readonly source: 'registry' | 'none';
  readonly agents: readonly AgentView[];
  readonly note: string;
}

export interface GridOverview {
  readonly at: number;
  readonly sessions: readonly SessionLive[];
  readonly totals: StateCounts & { readonly backlog: number; readonly completionsPerSec: number };
  readonly agents: AgentsView;
}

export interface Latency {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  readonly buckets: readonly { le: number; count: number }[];
}

export interface FailureGroup {
  readonly errorType: string;
  readonly failedTasks: number;
  readonly failedAttempts: number;
  readonly reasons: Readonly<Record<string, number>>;
  readonly exampleTaskId: string;
  readonly exampleMessage: string;
}

export interface SessionSummary {
  readonly sessionId: string;
  readonly tasks: number;
  readonly failures: readonly FailureGroup[];
  readonly queued: Latency;
  readonly running: Latency;
  readonly firstFinishedAt: number | null;
  readonly lastFinishedAt: number | null;
  readonly status: SessionStatus;
}

export interface TaskSummary {
  readonly taskId: string;
  readonly index: number;
  readonly state: TaskState;
  readonly attempts: number;
  readonly errorType: string | null;
  readonly errorMessage: string | null;
  readonly reason: string | null;
  readonly submittedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

export interface TaskPage {
  readonly tasks: readonly TaskSummary[];
  readonly cursor: string | null;
  readonly more: boolean;
}

export interface TaskError {
  readonly type: string;
  readonly message: string;
  readonly stack: readonly string[];
}

export interface AttemptRecord {
  readonly attempt: number;
  readonly owner: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly outcome: string;
  readonly error?: TaskError;
}

export interface TaskDetail {
  readonly taskId: string;
  readonly sessionId: string;
  readonly index: number;
  readonly state: TaskState;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly submittedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly error: TaskError | null;
  readonly reason: string | null;
  readonly history: readonly AttemptRecord[];
  readonly output: {
    readonly available: boolean;
    readonly note?: string;
    readonly attempts?: readonly { attempt: number; stdout: string; stderr: string; truncated: boolean }[];
  };
  readonly payload: unknown;
  readonly result: unknown;
}
