// How tasks and sessions are laid out as DynamoDB items, and back: pure mapping, no I/O.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { HtcGridError } from '../../core/errors';
import type { AttemptOutcome, AttemptRecord, DataRef, SessionRecord, TaskError, TaskRecord } from '../../core/task';
import { isTaskState, isTerminal, type FailureReason, type TaskState } from '../../core/task-state';
import {
  ATTR,
  leaseShardOf,
  manifestItemKey,
  manifestPartition,
  manifestSessionSk,
  sessionPartitionOf,
  sessionItemKey,
  sessionListSk,
  SESSION_LIST_PARTITION,
  terminalSessionSk,
  LEASE_SHARDS,
} from './table-schema';

/** One attempt as stored: written at claim (owner, start), completed at finish. */
export interface HistoryEntry {
  readonly owner: string;
  readonly startedAt: number;
  readonly finishedAt?: number;
  readonly outcome?: AttemptOutcome;
  readonly error?: TaskError;
  readonly runStartedAt?: number;
  readonly runMs?: number;
}

/** A task item as the document client reads and writes it. */
export interface TaskItem {
  readonly task_id: string;
  readonly session_id: string;
  /** The task's session-index partition, written at creation; the task enters the index with `session_sk`. */
  readonly session_part: string;
  /** Only on terminal tasks: the session index is sparse. */
  readonly session_sk?: string;
  readonly idx: number;
  readonly state: TaskState;
  readonly priority: number;
  readonly attempt: number;
  readonly failures: number;
  readonly max_attempts: number;
  readonly timeout_ms: number;
  readonly payload: DataRef;
  readonly result?: DataRef;
  readonly error?: TaskError;
  readonly failure_reason?: FailureReason;
  readonly lease_owner?: string;
  readonly lease_expires_at?: number;
  readonly lease_shard?: string;
  readonly submitted_at: number;
  readonly started_at?: number;
  readonly finished_at?: number;
  /** Attempt number (as text) → record. */
  readonly history: Readonly<Record<string, HistoryEntry>>;
  readonly ttl?: number;
}

export interface SessionItem {
  readonly task_id: string;
  readonly kind: 'session';
  readonly session_id: string;
  readonly created_at: number;
  readonly priority: number;
  readonly max_attempts: number;
  readonly timeout_ms: number;
  readonly non_retryable: readonly string[];
  readonly task_count?: number;
  /** `SESSION_LIST_PARTITION` and `sessionListSk`: sessions are listed from the session index. */
  readonly session_part: string;
  readonly session_sk: string;
  /** Session-index partitions of its tasks (absent: 1). */
  readonly index_shards: number;
}

/** The table holds something the adapter did not write. */
export class CorruptTaskItemError extends HtcGridError {}

export function ttlOf(finishedAt: number, retentionSec: number): number {
  return Math.floor(finishedAt / 1000) + retentionSec;
}

/** The item for a new task (or any record, for imports and tests). */
export function taskItemOf(
  task: TaskRecord,
  options: { retentionSec: number; leaseShards?: number; sessionShards: number },
): TaskItem {
  const history: Record<string, HistoryEntry> = {};
  for (const h of task.history) {
    history[String(h.attempt)] = {
      owner: h.owner,
      startedAt: h.startedAt,
      finishedAt: h.finishedAt,
      outcome: h.outcome,
      ...(h.error ? { error: h.error } : {}),
      ...(h.runMs !== undefined ? { runStartedAt: h.runStartedAt, runMs: h.runMs } : {}),
    };
  }
  const running = task.state === 'running' && task.lease !== undefined;
  if (running && history[String(task.attempt)] === undefined) {
    history[String(task.attempt)] = { owner: task.lease.owner, startedAt: task.startedAt ?? task.submittedAt };
  }
  const terminal = isTerminal(task.state);
  const finishedAt = task.finishedAt ?? task.submittedAt;
  return {
    task_id: task.taskId,
    session_id: task.sessionId,
    session_part: sessionPartitionOf(task.sessionId, task.taskId, options.sessionShards),
    session_sk: terminal ? terminalSessionSk(finishedAt, task.taskId, task.state) : undefined,
    idx: task.index,
    state: task.state,
    priority: task.priority,
    attempt: task.attempt,
    failures: task.failures,
    max_attempts: task.maxAttempts,
    timeout_ms: task.timeoutMs,
    payload: task.payload,
    result: task.result,
    error: task.error,
    failure_reason: task.failureReason,
    lease_owner: task.lease?.owner,
    lease_expires_at: task.lease?.expiresAt,
    lease_shard: running ? leaseShardOf(task.taskId, options.leaseShards ?? LEASE_SHARDS) : undefined,
    submitted_at: task.submittedAt,
    started_at: task.startedAt,
    finished_at: task.finishedAt,
    history,
    ttl: terminal ? ttlOf(finishedAt, options.retentionSec) : undefined,
  };
}

function dataRefOf(value: unknown): DataRef | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { inline?: unknown; key?: unknown; bytes?: unknown };
  if (typeof v.inline === 'string') return { inline: v.inline };
  if (typeof v.key === 'string') return { key: v.key, bytes: Number(v.bytes ?? 0) };
  return undefined;
}

function taskErrorOf(value: unknown): TaskError | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { type?: unknown; message?: unknown; stack?: unknown };
  return {
    type: typeof v.type === 'string' ? v.type : '',
    message: typeof v.message === 'string' ? v.message : '',
    stack: Array.isArray(v.stack) ? v.stack.map(String) : [],
  };
}

/** The record of a task item. Optional fields are absent, never undefined-valued. */
export function taskRecordOf(item: Record<string, unknown>): TaskRecord {
  const state = item[ATTR.state];
  if (!isTaskState(state)) {
    throw new CorruptTaskItemError(`task item '${String(item[ATTR.taskId])}' has unknown state '${String(state)}'`);
  }
  const finishedAt = item[ATTR.finishedAt] === undefined ? undefined : Number(item[ATTR.finishedAt]);
  const task: { -readonly [K in keyof TaskRecord]: TaskRecord[K] } = {
    taskId: String(item[ATTR.taskId]),
    sessionId: String(item[ATTR.sessionId]),
    index: Number(item[ATTR.index]),
    state,
    priority: Number(item[ATTR.priority]),
    attempt: Number(item[ATTR.attempt]),
    failures: Number(item[ATTR.failures]),
    maxAttempts: Number(item[ATTR.maxAttempts]),
    timeoutMs: Number(item[ATTR.timeoutMs]),
    payload: dataRefOf(item[ATTR.payload]) ?? { inline: 'null' },
    submittedAt: Number(item[ATTR.submittedAt]),
    history: historyOf(item[ATTR.history], state, finishedAt),
  };
  const result = dataRefOf(item[ATTR.result]);
  if (result) task.result = result;
  const error = taskErrorOf(item[ATTR.error]);
  if (error) task.error = error;
  if (typeof item[ATTR.failureReason] === 'string') task.failureReason = item[ATTR.failureReason] as FailureReason;
  const owner = item[ATTR.leaseOwner];
  if (typeof owner === 'string' && item[ATTR.leaseExpiresAt] !== undefined) {
    task.lease = { owner, expiresAt: Number(item[ATTR.leaseExpiresAt]) };
  }
  if (item[ATTR.startedAt] !== undefined) task.startedAt = Number(item[ATTR.startedAt]);
  if (finishedAt !== undefined) task.finishedAt = finishedAt;
  return task;
}

/**
 * Finished attempts in order. The running attempt's entry has no outcome yet and is left out, unless the task was
 * cancelled while it ran: then that attempt ended `cancelled` when the task did.
 */
function historyOf(value: unknown, state: TaskState, finishedAt: number | undefined): AttemptRecord[] {
  if (typeof value !== 'object' || value === null) return [];
  const out: AttemptRecord[] = [];
  for (const [key, raw] of Object.entries(value as Record<string, HistoryEntry>)) {
    const attempt = Number(key);
    let outcome = raw.outcome;
    let end = raw.finishedAt;
    if (outcome === undefined) {
      if (state !== 'cancelled') continue;
      outcome = 'cancelled';
      end = finishedAt ?? raw.startedAt;
    }
    const record: AttemptRecord = {
      attempt,
      owner: String(raw.owner),
      startedAt: Number(raw.startedAt),
      finishedAt: Number(end ?? raw.startedAt),
      outcome,
      ...(raw.error ? { error: taskErrorOf(raw.error)! } : {}),
      ...(raw.runStartedAt !== undefined && raw.runMs !== undefined
        ? { runStartedAt: Number(raw.runStartedAt), runMs: Number(raw.runMs) }
        : {}),
    };
    out.push(record);
  }
  return out.sort((a, b) => a.attempt - b.attempt);
}

/** Lists the ids of one write batch of a session's tasks (see `table-schema.ts`). */
export interface ManifestItem {
  readonly task_id: string;
  readonly kind: 'manifest';
  readonly session_id: string;
  readonly session_part: string;
  readonly session_sk: string;
  readonly task_ids: readonly string[];
}

/** The manifest of a batch of one session's task ids (non-empty). */
export function manifestItemOf(sessionId: string, taskIds: readonly [string, ...string[]]): ManifestItem {
  return {
    task_id: manifestItemKey(sessionId, taskIds[0]),
    kind: 'manifest',
    session_id: sessionId,
    session_part: manifestPartition(sessionId),
    session_sk: manifestSessionSk(taskIds[0], taskIds.length),
    task_ids: [...taskIds],
  };
}

export function sessionItemOf(session: SessionRecord, indexShards: number): SessionItem {
  return {
    task_id: sessionItemKey(session.sessionId),
    kind: 'session',
    session_id: session.sessionId,
    created_at: session.createdAt,
    priority: session.priority,
    max_attempts: session.maxAttempts,
    timeout_ms: session.timeoutMs,
    non_retryable: [...session.nonRetryableErrorTypes],
    task_count: session.taskCount,
    session_part: SESSION_LIST_PARTITION,
    session_sk: sessionListSk(session.createdAt, session.sessionId),
    index_shards: indexShards,
  };
}

export function sessionRecordOf(item: Record<string, unknown>): SessionRecord {
  const session: { -readonly [K in keyof SessionRecord]: SessionRecord[K] } = {
    sessionId: String(item[ATTR.sessionId]),
    createdAt: Number(item[ATTR.createdAt]),
    priority: Number(item[ATTR.priority]),
    maxAttempts: Number(item[ATTR.maxAttempts]),
    timeoutMs: Number(item[ATTR.timeoutMs]),
    nonRetryableErrorTypes: Array.isArray(item[ATTR.nonRetryableErrorTypes])
      ? (item[ATTR.nonRetryableErrorTypes] as unknown[]).map(String)
      : [],
  };
  if (item[ATTR.taskCount] !== undefined) session.taskCount = Number(item[ATTR.taskCount]);
  return session;
}

/** The few attributes of a raw (un-marshalled) item that classify a failed conditional write. */
export function probeOf(item: Record<string, AttributeValue> | undefined):
  | {
      state: string | undefined;
      attempt: number | undefined;
      owner: string | undefined;
      leaseExpiresAt: number | undefined;
      /** Whether the task is in the lease index (its lease was extended at least once). */
      leaseIndexed: boolean;
    }
  | undefined {
  if (item === undefined || Object.keys(item).length === 0) return undefined;
  const attempt = item[ATTR.attempt]?.N;
  const expiresAt = item[ATTR.leaseExpiresAt]?.N;
  return {
    state: item[ATTR.state]?.S,
    attempt: attempt === undefined ? undefined : Number(attempt),
    owner: item[ATTR.leaseOwner]?.S,
    leaseExpiresAt: expiresAt === undefined ? undefined : Number(expiresAt),
    leaseIndexed: item[ATTR.leaseShard] !== undefined,
  };
}
