// The DynamoDB task table's schema: key, index and attribute names, shared by the adapter and the CDK construct.

/**
 * One table holds tasks, sessions and session manifests.
 *
 * - Tasks: `task_id` = the task id. Sessions: `task_id` = `session#<session id>` (see `sessionItemKey`). Manifests:
 *   `task_id` = `manifest#<session id>#<first task id>`, one per write batch of a session's tasks, listing their ids
 *   (see `manifestItemKey`), so a session's tasks can be found without indexing every live task.
 * - `session_index` (GSI, KEYS_ONLY, sparse): partition `session_part`, sort `session_sk`. A session's tasks are
 *   spread over `index_shards` partitions (`<session id>#<shard>`, the shard a hash of the task id, written at
 *   creation; 1 to 16 by the session's expected size, see `sessionShardsFor`), so one session's completions are not
 *   capped by one partition's write rate; its manifests live in `<session id>#m`. It holds the manifests as
 *   `M#<first task id>#<count>` and the terminal tasks as `T#<finished at, 15 digits>#<seq, 9
 *   digits>#<s|f|c>#<task id>` (seq: a per-writer counter that orders completions within one millisecond; s/f/c:
 *   succeeded, failed, cancelled), so a session's terminal tasks come back in completion order. Live tasks (pending,
 *   running) have no `session_sk` and stay out: a task costs one index write, when it ends (a key written at creation
 *   would cost one more then and two when it changes at the end). Session items live in one partition of their own,
 *   `#sessions` (no session id starts with `#`), keyed `S#<created at, 15 digits>#<session id>`, so sessions can be
 *   listed newest first (one index write per session).
 * - `lease_index` (GSI, sparse, KEYS_ONLY plus `session_id`): partition `lease_shard`, sort `lease_expires_at`.
 *   Only running tasks carry `lease_shard` (one of `LEASE_SHARDS` values derived from the task id), so the reaper
 *   reads running tasks by lease expiry without a hot partition.
 * - `ttl`: epoch seconds; DynamoDB's TTL deletes finished tasks that long after they ended.
 */
export const TABLE_SCHEMA = {
  partitionKey: 'task_id',
  ttlAttribute: 'ttl',
  sessionIndex: {
    name: 'session_index',
    partitionKey: 'session_part',
    sortKey: 'session_sk',
    projectionType: 'KEYS_ONLY',
    /** Non-key attributes projected into the index (none). */
    projectedAttributes: [],
  },
  leaseIndex: {
    name: 'lease_index',
    partitionKey: 'lease_shard',
    /** Epoch milliseconds. */
    sortKey: 'lease_expires_at',
    projectionType: 'INCLUDE',
    /** Lets `countByState` count a session's running tasks from this index. */
    projectedAttributes: ['session_id'],
  },
} as const;

/** DynamoDB types of the key attributes, for the CDK construct's `attributeDefinitions`. */
export const KEY_ATTRIBUTE_TYPES = {
  task_id: 'S',
  session_part: 'S',
  session_sk: 'S',
  lease_shard: 'S',
  lease_expires_at: 'N',
} as const;

/** Number of lease-index partitions; the reaper queries all of them. */
export const LEASE_SHARDS = 8;

/** Every attribute name the adapter writes. */
export const ATTR = {
  taskId: 'task_id',
  kind: 'kind',
  sessionId: 'session_id',
  sessionPart: 'session_part',
  sessionSk: 'session_sk',
  index: 'idx',
  state: 'state',
  priority: 'priority',
  attempt: 'attempt',
  failures: 'failures',
  maxAttempts: 'max_attempts',
  timeoutMs: 'timeout_ms',
  payload: 'payload',
  result: 'result',
  error: 'error',
  failureReason: 'failure_reason',
  leaseOwner: 'lease_owner',
  leaseExpiresAt: 'lease_expires_at',
  leaseShard: 'lease_shard',
  /**
   * The running attempt's claim, by a nonce of the claim's write: its retry recognises itself by it. On a pending item,
   * a fence: the nonce of a claim whose tries went unanswered, whose writes it refuses (see `settleUnknownClaim` and
   * `withdrawClaims`).
   */
  claimToken: 'claim_token',
  /**
   * On a task's item, the fences of the claims settled or withdrawn at its current attempt (a string set of their
   * nonces): a pending item refuses the writes of every claim whose nonce it holds, however many later claims were
   * fenced or withdrawn since (see `settleUnknownClaim` and `withdrawClaims`). Claims never clear it; the attempt's
   * completion does (no fenced claim's try can land past it).
   */
  claimFences: 'claim_fences',
  submittedAt: 'submitted_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  /** Map from attempt number (as text) to that attempt's record. */
  history: 'history',
  ttl: 'ttl',
  // Session items.
  createdAt: 'created_at',
  nonRetryableErrorTypes: 'non_retryable',
  taskCount: 'task_count',
  indexShards: 'index_shards',
  /** URL of the SQS queue the session's client receives completion notices on (see `completion-notices.ts`). */
  noticeQueue: 'notice_queue',
  // Manifest items.
  taskIds: 'task_ids',
} as const;

/** `task_id` of a session's item. */
export function sessionItemKey(sessionId: string): string {
  return `session#${sessionId}`;
}

/** The session-index partition listing every session (see `sessionListSk`). */
export const SESSION_LIST_PARTITION = '#sessions';

/** Sort key of a session in `SESSION_LIST_PARTITION`: by creation time, then id. */
export function sessionListSk(createdAt: number, sessionId: string): string {
  return `S#${finishKeyPrefix(createdAt)}#${sessionId}`;
}

/** `task_id` of a session manifest: the session and the first task id of the batch it lists. */
export function manifestItemKey(sessionId: string, firstTaskId: string): string {
  return `manifest#${sessionId}#${firstTaskId}`;
}

/** Sort key of a manifest in the session index; carries the number of tasks it lists. */
export function manifestSessionSk(firstTaskId: string, count: number): string {
  return `M#${firstTaskId}#${count}`;
}

/** The task count of a manifest's sort key, or undefined for any other key. */
export function manifestCountOf(sk: string): number | undefined {
  if (!sk.startsWith('M#')) return undefined;
  const count = Number(sk.slice(sk.lastIndexOf('#') + 1));
  return Number.isInteger(count) && count >= 0 ? count : undefined;
}

const FINISH_DIGITS = 15;

/**
 * Sort key of a terminal task in the session index: orders by finish time, then by `seq` (a writer's counter, so
 * one writer's completions within a millisecond keep their order), then task id.
 */
export function terminalSessionSk(finishedAt: number, taskId: string, state: TerminalState, seq = 0): string {
  return `T#${finishKeyPrefix(finishedAt)}#${String(seq % 1e9).padStart(9, '0')}#${STATE_LETTER[state]}#${taskId}`;
}

export type TerminalState = 'succeeded' | 'failed' | 'cancelled';

const STATE_LETTER: Readonly<Record<TerminalState, string>> = { succeeded: 's', failed: 'f', cancelled: 'c' };
const LETTER_STATE: Readonly<Record<string, TerminalState>> = { s: 'succeeded', f: 'failed', c: 'cancelled' };

/** The zero-padded time part of a terminal sort key. */
export function finishKeyPrefix(finishedAt: number): string {
  return String(Math.max(0, Math.floor(finishedAt))).padStart(FINISH_DIGITS, '0');
}

/** Splits a terminal sort key into its time and task id. */
export function parseTerminalSessionSk(
  sk: string,
): { finishedAt: number; seq: number; state: TerminalState; taskId: string } | undefined {
  const match = /^T#(\d{15})#(\d{9})#([sfc])#(.+)$/.exec(sk);
  if (!match) return undefined;
  return { finishedAt: Number(match[1]), seq: Number(match[2]), state: LETTER_STATE[match[3]!]!, taskId: match[4]! };
}

/** The lease-index partition of a task: a stable hash of its id, so all shards fill evenly. */
export function leaseShardOf(taskId: string, shards: number = LEASE_SHARDS): string {
  return String(stableHash(taskId) % shards);
}

/** Most session-index partitions of one session: 16 × ~1,000 index writes/s each. */
export const MAX_SESSION_SHARDS = 16;
/** Expected tasks per session-index partition when sizing a session. */
const TASKS_PER_SESSION_SHARD = 5_000;
/** Partitions of a session whose size is not known up front. */
export const DEFAULT_SESSION_SHARDS = 4;

/**
 * Session-index partitions for a session of `expected` tasks: one per 5,000 tasks, 1 to 16. A small session is read
 * with one query per poll; a large one spreads its completions (a partition takes ~1,000 writes/s) and its extra
 * queries per poll are spread over many tasks.
 */
export function sessionShardsFor(expected: number | undefined): number {
  if (expected === undefined) return DEFAULT_SESSION_SHARDS;
  return Math.max(1, Math.min(MAX_SESSION_SHARDS, Math.ceil(expected / TASKS_PER_SESSION_SHARD)));
}

/** The session-index partition of a task. */
export function sessionPartitionOf(sessionId: string, taskId: string, shards: number): string {
  return `${sessionId}#${stableHash(taskId) % shards}`;
}

/** The session-index partitions holding a session's terminal tasks. */
export function sessionPartitions(sessionId: string, shards: number): string[] {
  return Array.from({ length: shards }, (_, shard) => `${sessionId}#${shard}`);
}

/** The session-index partition holding a session's manifests. */
export function manifestPartition(sessionId: string): string {
  return `${sessionId}#m`;
}

/** FNV-1a: cheap, stable across processes and languages; spreading keys is all it has to do. */
function stableHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
