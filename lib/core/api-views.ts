// The HTTP API's answers as types, one definition for the server (lib/http, lib/client) and the dashboard (ui/): this
// file and what it imports stay free of dependencies and of Node, since the dashboard's bundle includes them.
// lib/http/openapi.yaml documents the same shapes; the API tests check every answer against it.
import type { StateCounts, TaskState } from './task-state';

export { TASK_STATES, type StateCounts, type TaskState } from './task-state';

/** A latency distribution (ms) in fixed log-scale buckets. */
export interface LatencyView {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  /** Non-empty buckets: `count` values at most `le` ms (and above the previous bucket's `le`). */
  readonly buckets: readonly { le: number; count: number }[];
}

export interface FailureGroup {
  readonly errorType: string;
  /** Tasks that ended failed with this error type. */
  readonly failedTasks: number;
  /** Attempts that failed with this error type, retried ones included. */
  readonly failedAttempts: number;
  /** Failed attempts per reason (error, timeout, runtime-crash, lease-expired). */
  readonly reasons: Readonly<Record<string, number>>;
  /** A task that failed with it, to open. */
  readonly exampleTaskId: string;
  readonly exampleMessage: string;
}

export interface SessionSummaryView {
  readonly sessionId: string;
  /** Terminal tasks summarised. */
  readonly tasks: number;
  readonly failures: readonly FailureGroup[];
  /** From submission to the first claim. */
  readonly queued: LatencyView;
  /** From the claim to the end of the last attempt, for tasks that ran. */
  readonly running: LatencyView;
  readonly firstFinishedAt: number | null;
  readonly lastFinishedAt: number | null;
}

export interface SessionStatusView {
  readonly sessionId: string;
  readonly createdAt: number;
  readonly sealed: boolean;
  readonly taskCount: number | null;
  readonly counts: StateCounts;
  readonly done: boolean;
  readonly priority: number;
  readonly maxAttempts: number;
  readonly timeoutSec: number;
  readonly nonRetryableErrorTypes: readonly string[];
}

/** `GET /v1/sessions/{sessionId}/summary`. */
export interface SessionSummaryAnswer extends SessionSummaryView {
  readonly status: SessionStatusView;
}

export interface SessionLiveView extends SessionStatusView {
  /** Tasks that ended per second since the previous event of this stream (0 in the first). */
  readonly completionsPerSec: number;
}

/**
 * What an agent counted since it started: attempts claimed, and how those that ended were recorded. Its heartbeat
 * carries it (`AgentPresence.tasks`) and the API shows it as it is (`AgentView.stats`).
 */
export interface AgentTaskCounts {
  readonly claimed: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly retried: number;
  readonly released: number;
  readonly dropped: number;
}

/** @deprecated The same as `AgentTaskCounts` (one type since 2026-12-06); kept so code naming it still compiles. */
export type AgentStatsView = AgentTaskCounts;

/**
 * What a full disk is, in every message about it: `DiskFullError`, the agent's log, the CLI and the dashboard, where an
 * agent tells it waits for disk space (`AgentView.waitingForDisk`).
 */
export const DISK_FULL_PROBLEM = 'the disk holding the grid folder is full';
/** How to fix a full disk, likewise. */
export const DISK_FULL_FIX =
  'free space on that file system or delete finished sessions (htcgrid delete <session>); nothing recorded was lost and the grid carries on once there is space';

export interface AgentView {
  /** The agent's lease owner name (`host:pid:id`), as task histories show it. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly state: 'alive' | 'draining';
  /** Slots (runtimes) it runs tasks in. */
  readonly slots: number;
  /** Slots running a task at its last heartbeat; null when the agent does not tell (an earlier version). */
  readonly busySlots: number | null;
  /** `slots - busySlots`; null with `busySlots`. */
  readonly idleSlots: number | null;
  /** Runtimes restarted since it started (timeouts, crashes, interrupted tasks); null when not told. */
  readonly runtimeRestarts: number | null;
  readonly handler: string;
  readonly runtime: string;
  readonly startedAt: number;
  /** Epoch ms of its last heartbeat: the busy slots and counts are as of then. */
  readonly heartbeatAt: number;
  /** Attempts counted since it started; null when not told. */
  readonly stats: AgentTaskCounts | null;
  /**
   * Waiting for disk space: the disk holding the grid folder is full, so it takes no new task and keeps its finished
   * results until they can be recorded (false when not told).
   */
  readonly waitingForDisk: boolean;
}

export interface AgentsView {
  /**
   * Where the list comes from. `registry`: the grid's agent registry (every agent that heartbeats, whatever process
   * or host runs it). `none`: the API has no registry to read.
   */
  readonly source: 'registry' | 'none';
  readonly agents: readonly AgentView[];
  /** How fresh the figures are, or what is not known. */
  readonly note: string;
}

/** The `data` of an `overview` event of `GET /v1/events`. */
export interface GridOverview {
  /** Epoch ms of this snapshot. */
  readonly at: number;
  /** The most recent sessions, newest first. */
  readonly sessions: readonly SessionLiveView[];
  /** Sums over those sessions: `backlog` is pending plus running. */
  readonly totals: StateCounts & { readonly backlog: number; readonly completionsPerSec: number };
  readonly agents: AgentsView;
}

/** A task in `GET /v1/sessions/{sessionId}/tasks` and `GET /v1/sessions/{sessionId}/failures`. */
export interface TaskSummaryView {
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

export interface TaskPageView {
  readonly tasks: readonly TaskSummaryView[];
  readonly cursor: string | null;
  readonly more: boolean;
}

export interface TaskErrorView {
  readonly type: string;
  readonly message: string;
  readonly stack: readonly string[];
}

export interface AttemptRecordView {
  readonly attempt: number;
  readonly owner: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly outcome: string;
  readonly error?: TaskErrorView;
}

/** What a task printed during one attempt: the last bytes of each stream. */
export interface AttemptOutput {
  readonly attempt: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Earlier output of the attempt was dropped to keep only its tail. */
  readonly truncated: boolean;
}

/** `GET /v1/tasks/{taskId}` (payload and result as the worker's runtime wrote them). */
export interface TaskDetailView {
  readonly taskId: string;
  readonly sessionId: string;
  readonly index: number;
  readonly state: TaskState;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly submittedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly error: TaskErrorView | null;
  readonly reason: string | null;
  readonly history: readonly AttemptRecordView[];
  readonly output: {
    readonly available: boolean;
    readonly note?: string;
    readonly attempts?: readonly AttemptOutput[];
  };
  readonly payload: unknown;
  readonly result: unknown;
}
