// The grid's task table on DynamoDB: claims, leases and completions as single conditional UpdateItems.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import { newDynamoDbClient } from './aws-clients';
import { MAX_CARRIED_PER_SEND, noticeOutcomeOf, type FinishedTask, type NoticedTask } from './completion-notice-body';
import { CompletionNoticeSender, type CompletionNoticeSenderOptions } from './completion-notices';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type BatchWriteCommandInput,
  type QueryCommandInput,
  type UpdateCommandInput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { DEFAULT_TASK_RETENTION_SEC } from '../../core/config';
import { HtcGridError, InvalidCursorError, SessionExistsError, SessionWriteUnknownError } from '../../core/errors';
import { taskIdOf, type SessionRecord, type TaskRecord } from '../../core/task';
import { classifyClaim, isHolderGuard, planCompletion, type CompletionPlan } from '../../core/task-lifecycle';
import { emptyStateCounts, isTerminal, type StateCounts } from '../../core/task-state';
import { silentLogger, type Logger } from '../../logging';
import type {
  BrowsePage,
  ClaimOutcome,
  ClaimRequest,
  Completion,
  CompletionResult,
  LeaseRef,
  LeaseStatus,
  TaskTable,
  TerminalPage,
} from '../../ports';
import { backoffDelay, chunk, isDefiniteRefusal, mapLimit, withRetry, type RetryPolicy } from './aws-retry';
import { sleep } from '../../timing';
import {
  manifestItemOf,
  probeOf,
  sessionItemOf,
  sessionRecordOf,
  taskItemOf,
  taskRecordOf,
  ttlOf,
  type HistoryEntry,
} from './dynamodb-items';
import {
  ATTR,
  LEASE_SHARDS,
  TABLE_SCHEMA,
  finishKeyPrefix,
  leaseShardOf,
  manifestCountOf,
  manifestItemKey,
  manifestPartition,
  parseTerminalSessionSk,
  sessionPartitions,
  sessionShardsFor,
  sessionItemKey,
  SESSION_LIST_PARTITION,
  terminalSessionSk,
} from './table-schema';
import { updateExpressionOf, type AttributePath, type Comparison, type SetAction } from './update-expression';
import { browsePageSize, decodeBrowseCursor, encodeBrowseCursor } from '../browse-cursor';

/** Most tasks one `listLive` call reads (live tasks are found by reading the session's tasks). */
const LIVE_READ_BUDGET = 2000;

function isStartKey(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string')
  );
}

function isManifestPosition(value: unknown): value is { m: string; o: number } {
  const v = value as { m?: unknown; o?: unknown } | null;
  return (
    typeof v === 'object' && v !== null && typeof v.m === 'string' && Number.isSafeInteger(v.o) && Number(v.o) >= 0
  );
}

export interface DynamoDbTaskTableOptions {
  readonly tableName: string;
  /** The SDK client; the table destroys it in `close()` only if it created it. @default - a new client from env */
  readonly client?: DynamoDBClient;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /** Back-off for throttling and 5xx. */
  readonly retry?: RetryPolicy;
  /** Lease-index partitions; must match what wrote the running tasks. @default LEASE_SHARDS (8) */
  readonly leaseShards?: number;
  /**
   * How long finished tasks are kept before DynamoDB's TTL deletes them (`task_retention_sec`).
   * @default DEFAULT_TASK_RETENTION_SEC (7 days)
   */
  readonly retentionSec?: number;
  /**
   * How long after its finish time a terminal task may take to become visible in the session index (GSI
   * propagation plus agent clock skew). `listTerminal` re-reads that window behind its cursor, so a late item is
   * not skipped. @default 5000
   */
  readonly settleMs?: number;
  /** Conditional writes in flight at once per call. @default 16 */
  readonly concurrency?: number;
  /**
   * Task ids a session-wide `cancel` or `deleteSession` holds at once: it reads the session's manifests that many ids
   * at a time and ends each page before reading the next, so its memory does not grow with the session. At least
   * `MANIFEST_SIZE` (24). @default 1008 (42 manifests)
   */
  readonly sessionPageTasks?: number;
  /** Clock for terminal-key times and the settle window. @default Date.now */
  readonly now?: () => number;
  /**
   * A client's notice queue (`CompletionNoticeQueue.queueUrl`): sessions this table creates name it, so agents tell
   * the client when their tasks finish. @default - none: the sessions' clients poll
   */
  readonly noticeQueue?: () => Promise<string | undefined>;
  /**
   * Tasks of a session that completion notices named since the last call (`CompletionNoticeQueue.takeNoticed`):
   * `listTerminal` returns them first, from the outcomes the notices carried, reading the others by key (one
   * consistent BatchGetItem) instead of querying the session index.
   * @default - none: `listTerminal` always reads the index
   */
  readonly noticedTasks?: (sessionId: string) => readonly NoticedTask[];
  /**
   * Told after each write that ends tasks (an agent's or the reaper's `complete`), to notify the sessions' clients.
   * @default - none: nobody is told
   */
  readonly noticeSender?: Omit<CompletionNoticeSenderOptions, 'lookup' | 'logger'>;
}

/**
 * Task ids per manifest item: 24 ids of up to ~40 characters keep a manifest within one 1 KB write unit, and a
 * manifest per 24 tasks adds ≈ 0.08 WRU per task (item and index).
 */
const MANIFEST_SIZE = 24;

/** Task ids a session-wide cancel or delete holds at once, by default: 42 manifests. */
const SESSION_PAGE_TASKS = 42 * MANIFEST_SIZE;

/** Items in one BatchWriteItem request (DynamoDB's limit). */
const BATCH_WRITE_MAX = 25;

/** The seen-set cursor of `listTerminal` (see there). */
interface TerminalCursor {
  /** Watermark: every terminal key at or below it was returned or is older than the settle window. */
  readonly w: string;
  /** Keys above the watermark already returned. */
  readonly s: readonly string[];
}

/**
 * What `claimMessages` answers: a port `ClaimOutcome`, a `busy` with its retry delay, an unseen expired claim, a
 * claim that `failed` (the service's error after the retries, kept as `error`: it did not land, nor ever will), or one
 * still `unsettled` (it may have landed or still land: to be withdrawn, see `withdrawClaims`).
 */
export type MessageClaimOutcome =
  | ClaimOutcome
  | { readonly taskId: string; readonly status: 'busy'; readonly retryAfterMs?: number }
  | { readonly taskId: string; readonly status: 'expired'; readonly task: TaskRecord }
  | { readonly taskId: string; readonly status: 'failed'; readonly error: unknown }
  | { readonly taskId: string; readonly status: 'unsettled'; readonly error: unknown; readonly claim: UnsettledClaim };

/**
 * A claim none of whose writes was answered and whose fence was not answered either (see `claimMessages`): its write
 * may have landed, or may land later. The holder of its message withdraws it (`withdrawClaims`) before letting the
 * message go.
 */
export interface UnsettledClaim {
  readonly taskId: string;
  /** The attempt the claim was made from (the task's `attempt` while pending). */
  readonly attempt: number;
  readonly owner: string;
  /** The claim's nonce (see `ATTR.claimToken`). */
  readonly token: string;
}

/**
 * What `withdrawClaims` did with an unsettled claim: `withdrawn`, the task is pending at the claimed attempt under
 * that claim's fence (a landed try undone, or none landed), and no try of it lands any more; `moot`, the attempt moved
 * on without it (another claim took it, it was reaped or ended, the task is gone); `unknown`, no answer again.
 */
export type ClaimWithdrawal = 'withdrawn' | 'moot' | 'unknown';

/** A message whose claimed attempt has expired unseen must not be dropped by a plain `claim` caller: it is busy. */
function portStatusOf(
  outcome: Exclude<MessageClaimOutcome, { status: 'claimed' | 'failed' | 'unsettled' }>,
): 'busy' | 'stale' | 'missing' {
  return outcome.status === 'expired' ? 'busy' : outcome.status;
}

/**
 * `TaskTable` on one DynamoDB table (schema in `table-schema.ts`).
 *
 * Every lease-guarded write is one conditional UpdateItem: the claim returns the new item (`ALL_NEW`), and a failed
 * condition returns the old one (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), so a claim or heartbeat is
 * classified (busy, stale, missing, cancelled, lost) without an extra read.
 */

/** The terminal state a terminal completion plan writes. */
function terminalStateOf(plan: CompletionPlan): 'succeeded' | 'failed' {
  return plan.to === 'succeeded' ? 'succeeded' : 'failed';
}

/** How many requests the SDK sent for a call that failed (its retries included). */
function sdkAttemptsOf(error: unknown): number {
  return (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
}

/** Name of the error of a terminal write abandoned by `sendWithin` (the service may still apply it). */
const TERMINAL_WRITE_TIMEOUT = 'TerminalWriteTimeout';

/**
 * A claim's condition (see `DynamoDbTaskTable.claimMessages`): the task pending at the claimed attempt, or this very
 * claim landed already (a retry after a lost answer), no later. Never over a later lease, nor over its own fence (its
 * nonce among the item's fences, or its token where an earlier version fenced it). A task without fences is said
 * outright (`attribute_not_exists`), not left to how `NOT contains` reads a missing set.
 */
const CLAIM_CONDITION =
  '(#state = :pending AND #attempt = :attempt AND ' +
  '(attribute_not_exists(#fences) OR NOT contains(#fences, :token)) AND ' +
  '(attribute_not_exists(#token) OR #token <> :token)) OR ' +
  '(#state = :running AND #attempt = :next AND #owner = :owner AND #token = :token AND ' +
  'attribute_not_exists(#shard) AND #exp <= :exp)';

/** A claim's nonce (see `ATTR.claimToken`): 72 random bits, unique to the write that carries it. */
function newClaimToken(): string {
  return randomBytes(9).toString('base64url');
}

/** A lease's status from its task's item (`probeOf`): held while the attempt runs under its owner. */
function leaseStatusOf(found: ReturnType<typeof probeOf>, lease: LeaseRef): LeaseStatus {
  if (found?.state === 'cancelled') return 'cancelled';
  return found?.state === 'running' && found.attempt === lease.attempt && found.owner === lease.owner ? 'held' : 'lost';
}

export class DynamoDbTaskTable implements TaskTable {
  /**
   * A claim leaves the task out of the lease index and its first extension puts it in: a task shorter than the lease
   * refresh period costs no lease-index write at all (two fewer write units), while its queue message guards it.
   */
  private readonly doc: DynamoDBDocumentClient;
  private readonly ownsClient: boolean;
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly logger: Logger;
  private readonly retryPolicy: RetryPolicy;
  private readonly leaseShards: number;
  private readonly retentionSec: number;
  private readonly settleMs: number;
  private readonly concurrency: number;
  /** Manifests read per page of a session-wide cancel or delete (see `sessionPageTasks`). */
  private readonly pageManifests: number;
  private readonly clock: () => number;
  private closed = false;
  private seq = 0;
  private readonly shardCache = new Map<string, number>();
  /** Index shards of sessions whose item is being written (never evicted: tasks written beside it rely on them). */
  private readonly creatingShards = new Map<string, number>();
  private readonly noticeQueue: (() => Promise<string | undefined>) | undefined;
  private readonly noticedTasks: ((sessionId: string) => readonly NoticedTask[]) | undefined;
  /** The agent's notices of finished tasks (see `noticeSender`). */
  readonly notices: CompletionNoticeSender | undefined;

  constructor(options: DynamoDbTaskTableOptions) {
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? newDynamoDbClient();
    this.doc = DynamoDBDocumentClient.from(this.client, {
      marshallOptions: { removeUndefinedValues: true, convertEmptyValues: false },
    });
    this.tableName = options.tableName;
    this.logger = options.logger ?? silentLogger();
    this.retryPolicy = options.retry ?? {};
    this.leaseShards = options.leaseShards ?? LEASE_SHARDS;
    this.retentionSec = options.retentionSec ?? DEFAULT_TASK_RETENTION_SEC;
    this.settleMs = options.settleMs ?? 5000;
    this.concurrency = options.concurrency ?? 16;
    const pageTasks = options.sessionPageTasks ?? SESSION_PAGE_TASKS;
    if (!Number.isSafeInteger(pageTasks) || pageTasks < MANIFEST_SIZE) {
      throw new HtcGridError(
        `DynamoDbTaskTable: sessionPageTasks must be a whole number of at least ${MANIFEST_SIZE} (one manifest's ` +
          `tasks), got ${String(pageTasks)}; leave it out for the default ${SESSION_PAGE_TASKS}`,
      );
    }
    this.pageManifests = Math.floor(pageTasks / MANIFEST_SIZE);
    this.clock = options.now ?? Date.now;
    this.noticeQueue = options.noticeQueue;
    this.noticedTasks = options.noticedTasks;
    this.notices = options.noticeSender
      ? new CompletionNoticeSender({
          ...options.noticeSender,
          lookup: (sessionId) => this.noticeQueueOf(sessionId),
          logger: this.logger,
        })
      : undefined;
  }

  // --- sessions ------------------------------------------------------------------------------------------------

  /**
   * Creates the session item. Its index shards are known before the first request and kept until it ends, so
   * `createTasks` of the same session may run beside it (a client does so for a session id it drew, see
   * `GridClient.submit`).
   */
  async createSession(session: SessionRecord): Promise<void> {
    const shards = sessionShardsFor(session.expectedTaskCount);
    this.creatingShards.set(session.sessionId, shards);
    try {
      await this.putSession(session, shards);
      this.rememberShards(session.sessionId, shards);
    } finally {
      this.creatingShards.delete(session.sessionId);
    }
  }

  private async putSession(session: SessionRecord, shards: number): Promise<void> {
    const noticeQueue = await this.noticeQueue?.();
    try {
      await this.retry('createSession', () =>
        this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...sessionItemOf(session, shards), ...(noticeQueue ? { [ATTR.noticeQueue]: noticeQueue } : {}) },
            ConditionExpression: 'attribute_not_exists(#pk)',
            ExpressionAttributeNames: { '#pk': TABLE_SCHEMA.partitionKey },
          }),
        ),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new SessionExistsError(session.sessionId);
      throw error;
    }
    // Its notice queue is known (a cancellation through this table tells the client without reading it back).
    this.notices?.remember(session.sessionId, noticeQueue);
  }

  /**
   * What `createSealedSession` takes: the session item, one manifest and its tasks are 26 of a transaction's 100
   * items, and their inline payloads stay well inside its 4 MB.
   */
  readonly sealedSessionLimits = { tasks: MANIFEST_SIZE, inlineBytes: 1024 * 1024 };

  /**
   * `TaskTable.createSealedSession`: one TransactWriteItems of puts on keys that must not exist (the session item with
   * its task count, the manifest, the tasks), under one client token, so a retry whose first try landed is answered
   * as a success within DynamoDB's idempotency window (10 minutes) and refused (`SessionExistsError`) after it. One
   * request where `createSession`, `createTasks` and `sealSession` take three; transactional puts cost two write
   * units each where those cost one.
   *
   * It ends only once the write's outcome is known, or rejects with `SessionWriteUnknownError`: a try that was not
   * answered (or answered with a 5xx) may land later, so the same token goes again with back-off, also while DynamoDB
   * says the first try is still under way (`TransactionInProgressException`), until it is answered as a success
   * (landed), refused for a taken key (landed before, or the id is taken: `SessionExistsError`) or the tries run out;
   * then a fence on the session's key settles it (see `fenceUnlanded`: landed, `SessionExistsError`; or never will,
   * the last error), and only when the fence cannot be written either, `SessionWriteUnknownError` (a caller must not
   * clean up, which could race that try). Any other error is a 4xx refusal of every try: nothing was written.
   */
  async createSealedSession(session: SessionRecord, tasks: readonly TaskRecord[]): Promise<void> {
    const first = tasks[0];
    const limits = this.sealedSessionLimits;
    const inlineBytes = tasks.reduce(
      (n, t) => n + ('inline' in t.payload ? Buffer.byteLength(t.payload.inline) : 0),
      0,
    );
    if (first === undefined || tasks.length > limits.tasks || inlineBytes > limits.inlineBytes) {
      throw new HtcGridError(
        `createSealedSession takes 1 to ${limits.tasks} tasks of at most ${limits.inlineBytes} inline payload bytes ` +
          `in all (got ${tasks.length} tasks, ${inlineBytes} bytes): write larger sessions with createSession and ` +
          'createTasks',
      );
    }
    const foreign = tasks.find((t) => t.sessionId !== session.sessionId);
    if (foreign) throw new HtcGridError(`task ${foreign.taskId} is not of session ${session.sessionId}`);
    const shards = sessionShardsFor(session.expectedTaskCount);
    this.creatingShards.set(session.sessionId, shards);
    try {
      const noticeQueue = await this.noticeQueue?.();
      const sealed = { ...session, taskCount: tasks.length };
      const items: Record<string, unknown>[] = [
        { ...sessionItemOf(sealed, shards), ...(noticeQueue ? { [ATTR.noticeQueue]: noticeQueue } : {}) },
        manifestItemOf(session.sessionId, tasks.map((t) => t.taskId) as [string, ...string[]]) as unknown as Record<
          string,
          unknown
        >,
        ...tasks.map(
          (task) =>
            taskItemOf(task, {
              retentionSec: this.retentionSec,
              leaseShards: this.leaseShards,
              sessionShards: shards,
            }) as unknown as Record<string, unknown>,
        ),
      ];
      const token = randomUUID();
      // Set once a try's outcome is unknown (no answer, a 5xx, the first try still under way): that try may land, so
      // only the same token may go again, and the call ends only once it is known to have landed or not.
      let unknown = false;
      try {
        await this.retry('createSealedSession', async () => {
          try {
            return await this.doc.send(
              new TransactWriteCommand({
                ClientRequestToken: token,
                TransactItems: items.map((Item) => ({
                  Put: {
                    TableName: this.tableName,
                    Item,
                    ConditionExpression: 'attribute_not_exists(#pk)',
                    ExpressionAttributeNames: { '#pk': TABLE_SCHEMA.partitionKey },
                  },
                })),
              }),
            );
          } catch (error) {
            // A refusal after the SDK's own retries may follow a try that went unanswered (its `attempts`).
            if (!isDefiniteRefusal(error) || sdkAttemptsOf(error) > 1) unknown = true;
            throw error;
          }
        });
      } catch (error) {
        // Task ids are the session's: any of these keys taken means the session was (or is) there.
        if (
          error instanceof TransactionCanceledException &&
          error.CancellationReasons?.some((r) => r.Code === 'ConditionalCheckFailed')
        ) {
          // After a try of unknown outcome, this is that try's write (past the token's 10 minutes): known as well.
          if (unknown) this.remember(session.sessionId, shards, noticeQueue);
          throw new SessionExistsError(session.sessionId);
        }
        if (!unknown) throw error;
        // Not one try's outcome is known: the fence settles it (or rejects with SessionWriteUnknownError).
        if (await this.fenceUnlanded(session.sessionId, error)) throw error;
        this.remember(session.sessionId, shards, noticeQueue);
        throw new SessionExistsError(session.sessionId);
      }
      this.remember(session.sessionId, shards, noticeQueue);
    } finally {
      this.creatingShards.delete(session.sessionId);
    }
  }

  /**
   * Settles the outcome of a sealed session's write that no try saw answered: puts a fence on the session item's key
   * where nothing is. Once the fence is in, the write has not landed and never will (its own put there needs the key
   * free, and a transaction under way would have refused the fence, which is then retried): the fence is deleted again
   * and `true` returned, so the caller may clean up. Refused for a taken key (not this fence, whose put may have been
   * retried after a lost answer): the session is there, `false`. The fence carries an hour's TTL in case its delete
   * fails. Rejects with `SessionWriteUnknownError` when the fence cannot be written either.
   */
  private async fenceUnlanded(sessionId: string, cause: unknown): Promise<boolean> {
    const key = { task_id: sessionItemKey(sessionId) };
    const fence = randomUUID();
    try {
      await this.retry('fence an unanswered session write', () =>
        this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...key, kind: 'fence', fence, [ATTR.ttl]: ttlOf(this.clock(), 3600) },
            ConditionExpression: 'attribute_not_exists(#pk)',
            ExpressionAttributeNames: { '#pk': TABLE_SCHEMA.partitionKey },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        ),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw new SessionWriteUnknownError(sessionId, { cause });
      if (error.Item?.fence?.S !== fence) return false;
    }
    try {
      await this.retry('delete a session write fence', () =>
        this.doc.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: key,
            ConditionExpression: '#fence = :fence',
            ExpressionAttributeNames: { '#fence': 'fence' },
            ExpressionAttributeValues: { ':fence': fence },
          }),
        ),
      );
    } catch (err) {
      this.logger.warn(
        { err, sessionId },
        'deleting the fence of a session write that did not land failed; its TTL will',
      );
    }
    return true;
  }

  /** What a session's own write tells this table: its index shards, and where its tasks' ends are told. */
  private remember(sessionId: string, shards: number, noticeQueue: string | undefined): void {
    this.rememberShards(sessionId, shards);
    this.notices?.remember(sessionId, noticeQueue);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const out = await this.retry('getSession', () =>
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { task_id: sessionItemKey(sessionId) },
          ConsistentRead: true,
        }),
      ),
    );
    if (out.Item === undefined || this.isExpired(out.Item)) return undefined;
    // The agent reads each session's settings before running its tasks: its notices need no read of their own.
    const noticeQueue: unknown = out.Item[ATTR.noticeQueue];
    this.notices?.remember(sessionId, typeof noticeQueue === 'string' ? noticeQueue : undefined);
    return sessionRecordOf(out.Item);
  }

  /**
   * The notice queue the session's client named, if any (one consistent read of the session item: looked up right
   * after a claim, an eventually consistent read could miss a session written a moment before, see
   * `createSealedSession`, and its 'nobody waits' would be remembered).
   */
  private async noticeQueueOf(sessionId: string): Promise<string | undefined> {
    const out = await this.retry('getSession', () =>
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { task_id: sessionItemKey(sessionId) },
          ConsistentRead: true,
          ProjectionExpression: '#q',
          ExpressionAttributeNames: { '#q': ATTR.noticeQueue },
        }),
      ),
    );
    const url: unknown = out.Item?.[ATTR.noticeQueue];
    return typeof url === 'string' ? url : undefined;
  }

  async sealSession(sessionId: string, taskCount: number): Promise<void> {
    await this.updateUnlessRefused('sealSession', {
      Key: { task_id: sessionItemKey(sessionId) },
      UpdateExpression: 'SET #n = :n',
      ConditionExpression: 'attribute_exists(#pk)',
      ExpressionAttributeNames: { '#n': ATTR.taskCount, '#pk': TABLE_SCHEMA.partitionKey },
      ExpressionAttributeValues: { ':n': taskCount },
    });
  }

  /**
   * Deletes the session's tasks a page of manifests at a time (see `sessionPageTasks`): the page's tasks first, then
   * the manifests that name them, the session item last. Every task not deleted yet is still named by a manifest, so
   * a delete that fails half-way can be run again.
   *
   * The session index may not show yet a manifest written a moment before (a submission cleaned up right after its
   * write): the first batch's manifest, whose key follows from the session id (a sealed session's only one), is read
   * by key as well, consistently, and its tasks deleted (one read of an item the pages usually deleted already).
   */
  async deleteSession(sessionId: string): Promise<void> {
    const deleteTasks = async (taskIds: readonly string[], manifestKeys: readonly string[]): Promise<void> => {
      await this.batchWrite(taskIds.map((taskId) => ({ DeleteRequest: { Key: { task_id: taskId } } })));
      await this.batchWrite(manifestKeys.map((key) => ({ DeleteRequest: { Key: { task_id: key } } })));
    };
    for await (const page of this.sessionTaskPages(sessionId)) await deleteTasks(page.taskIds, page.manifestKeys);
    const firstKey = manifestItemKey(sessionId, taskIdOf(sessionId, 0));
    const [first] = await this.batchGet([firstKey], [ATTR.taskId, ATTR.taskIds]);
    const ids = first?.[ATTR.taskIds];
    if (first) await deleteTasks(Array.isArray(ids) ? ids.map(String) : [], [firstKey]);
    await this.batchWrite([{ DeleteRequest: { Key: { task_id: sessionItemKey(sessionId) } } }]);
  }

  /**
   * Gives finished sessions a TTL (the reaper's sweep): a session with no TTL yet that is sealed and has no pending
   * or running task gets `ttl = now + task_retention_sec` on its manifests, then on its own item (a sweep that fails
   * half-way is run again; the session item is written last and only it is checked). A running session never gets
   * one. Walks every kept session, oldest first, 100 at a time, until `stop()` says so; costs about one read unit
   * per two sessions kept, and for each sealed session without a TTL its counts, then one write per 24 tasks.
   */
  async expireFinishedSessions(stop: () => boolean = () => false): Promise<{ examined: number; expiring: string[] }> {
    let examined = 0;
    const expiring: string[] = [];
    let keys: string[] = [];
    const examine = async (): Promise<void> => {
      const items = await this.batchGet(keys, [ATTR.sessionId, ATTR.taskCount, ATTR.ttl], false);
      keys = [];
      examined += items.length;
      for (const item of items) {
        if (item[ATTR.ttl] !== undefined || item[ATTR.taskCount] === undefined) continue;
        if (await this.expireIfFinished(String(item[ATTR.sessionId]), Number(item[ATTR.taskCount]))) {
          expiring.push(String(item[ATTR.sessionId]));
        }
      }
    };
    for await (const item of this.querySessionIndex(SESSION_LIST_PARTITION)) {
      if (stop()) break;
      keys.push(String(item[ATTR.taskId]));
      if (keys.length >= 100) await examine();
    }
    if (keys.length > 0 && !stop()) await examine();
    if (expiring.length > 0) {
      this.logger.info({ sessions: expiring.slice(0, 20), count: expiring.length }, 'finished sessions will expire');
    }
    return { examined, expiring };
  }

  /** Sets the TTL of a sealed session of `taskCount` tasks (manifests first) if none is pending or running. */
  private async expireIfFinished(sessionId: string, taskCount: number): Promise<boolean> {
    const counts = await this.countByState(sessionId);
    const total = counts.succeeded + counts.failed + counts.cancelled + counts.pending + counts.running;
    // The index is eventually consistent: a session whose manifests are not all visible yet waits for a later sweep.
    if (counts.pending + counts.running > 0 || total < taskCount) return false;
    const ttl = ttlOf(this.clock(), this.retentionSec);
    // A page of manifests at a time (see `sessionPageTasks`): a session of millions of tasks is never held in memory.
    for await (const page of this.manifestPages(sessionId)) {
      await mapLimit(page.items, this.concurrency, (m) => this.setTtl(String(m[ATTR.taskId]), ttl));
    }
    await this.setTtl(sessionItemKey(sessionId), ttl);
    return true;
  }

  /** Sets `ttl` on an item that has none (a deleted item stays deleted). */
  private async setTtl(key: string, ttl: number): Promise<void> {
    await this.updateUnlessRefused('setTtl', {
      Key: { task_id: key },
      UpdateExpression: 'SET #ttl = :ttl',
      ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(#ttl)',
      ExpressionAttributeNames: { '#ttl': ATTR.ttl, '#pk': TABLE_SCHEMA.partitionKey },
      ExpressionAttributeValues: { ':ttl': ttl },
    });
  }

  /** An UpdateItem that does nothing when its condition refuses it (the item is gone, or already as wanted). */
  private async updateUnlessRefused(operation: string, update: Omit<UpdateCommandInput, 'TableName'>): Promise<void> {
    try {
      await this.retry(operation, () => this.doc.send(new UpdateCommand({ TableName: this.tableName, ...update })));
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  /** DynamoDB deletes expired items up to days late: readers treat an item past its TTL as gone. */
  private isExpired(item: Record<string, unknown>): boolean {
    const ttl = item[ATTR.ttl];
    return typeof ttl === 'number' && ttl * 1000 <= this.clock();
  }

  /**
   * Whether the session's item carries a TTL (the sweep found it finished: its tasks expire before it, since each
   * task's TTL counts from its own finish) and whether that TTL has passed.
   */
  private async sessionRetention(sessionId: string): Promise<{ finished: boolean; expired: boolean }> {
    const out = await this.retry('getSession', () =>
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { task_id: sessionItemKey(sessionId) },
          ProjectionExpression: '#ttl',
          ExpressionAttributeNames: { '#ttl': ATTR.ttl },
        }),
      ),
    );
    const finished = out.Item !== undefined && out.Item[ATTR.ttl] !== undefined;
    return { finished, expired: finished && this.isExpired(out.Item!) };
  }

  // --- tasks ---------------------------------------------------------------------------------------------------

  /**
   * Writes the tasks (BatchWriteItem, 25 a request), after the manifests that list their ids (one per
   * `MANIFEST_SIZE` tasks of a session): live tasks are not in the session index, so `cancel` and `deleteSession`
   * find a session's tasks through its manifests. Manifests go first so that a batch that fails half-way leaves no
   * task that `deleteSession` cannot find (a manifest may name a task that was never written; readers skip it). A
   * batch that fits in one request with its manifests (25 items) is written in one, and deleted again if that fails.
   */
  async createTasks(tasks: readonly TaskRecord[]): Promise<void> {
    if (tasks.length === 0) return;
    // The session is new (createSession refuses an existing one; a client writes a named session's tasks only after
    // creating it, and an id it drew is new) and no message was sent yet, so plain puts are safe: a retried batch
    // rewrites the same pending rows and nothing can have started.
    const fresh = [...new Map(tasks.map((t) => [t.taskId, t])).values()];
    const bySession = new Map<string, string[]>();
    for (const task of fresh) {
      const ids = bySession.get(task.sessionId);
      if (ids) ids.push(task.taskId);
      else bySession.set(task.sessionId, [task.taskId]);
    }
    const manifests = [...bySession].flatMap(([sessionId, ids]) =>
      chunk(ids, MANIFEST_SIZE).map((group) => ({
        PutRequest: {
          Item: manifestItemOf(sessionId, group as [string, ...string[]]) as unknown as Record<string, unknown>,
        },
      })),
    );
    const shards = new Map<string, number>();
    for (const sessionId of bySession.keys()) shards.set(sessionId, await this.shardsOf(sessionId));
    const items = fresh.map((task) => ({
      PutRequest: {
        Item: taskItemOf(task, {
          retentionSec: this.retentionSec,
          leaseShards: this.leaseShards,
          sessionShards: shards.get(task.sessionId) ?? 1,
        }) as unknown as Record<string, unknown>,
      },
    }));
    if (manifests.length + items.length > BATCH_WRITE_MAX) {
      await this.batchWrite(manifests);
      await this.batchWrite(items);
      return;
    }
    // A small batch (an interactive task) goes in one request with its manifest; should that fail half-way, the
    // tasks are deleted again, so none is left that a manifest does not name.
    try {
      await this.batchWrite([...manifests, ...items]);
    } catch (error) {
      await this.batchWrite(fresh.map((task) => ({ DeleteRequest: { Key: { task_id: task.taskId } } }))).catch(
        (cleanup: unknown) => this.logger.warn({ err: cleanup }, 'could not delete the tasks of a failed batch'),
      );
      throw error;
    }
  }

  /**
   * A session's manifests a page at a time (one index query of `pageManifests` keys), each page with the task ids
   * its manifests list (deduplicated within the page; a task named by two manifests may come twice, and some may
   * never have been written). The next page is read only when the caller asks for it: one page is held at a time.
   */
  private async *sessionTaskPages(
    sessionId: string,
  ): AsyncGenerator<{ readonly taskIds: string[]; readonly manifestKeys: string[] }> {
    for await (const page of this.manifestPages(sessionId)) {
      const manifestKeys = page.items.map((item) => String(item[ATTR.taskId]));
      if (manifestKeys.length === 0) continue;
      const manifests = await this.batchGet(manifestKeys, [ATTR.taskId, ATTR.taskIds]);
      const taskIds = new Set<string>();
      for (const manifest of manifests) {
        const ids = manifest[ATTR.taskIds];
        if (Array.isArray(ids)) for (const id of ids) taskIds.add(String(id));
      }
      yield { taskIds: [...taskIds], manifestKeys };
    }
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const out = await this.retry('getTask', () =>
      this.doc.send(new GetCommand({ TableName: this.tableName, Key: { task_id: taskId }, ConsistentRead: true })),
    );
    if (out.Item === undefined || out.Item[ATTR.kind] !== undefined) return undefined;
    return taskRecordOf(out.Item);
  }

  /**
   * `claim` as the port has it: a message whose claimed attempt only it guards is `busy` (see `claimMessages` for
   * what the intake learns besides). Rejects with the first error when any claim failed, once all were tried (the
   * port has no outcome for it): a caller that must keep its siblings' claims uses `claimMessages`.
   */
  async claim(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<ClaimOutcome[]> {
    const outcomes = await this.claimMessages(requests, lease, now);
    return outcomes.map((o): ClaimOutcome => {
      // An unsettled claim is left as a restarted agent leaves one (see `withdrawClaims`): no message is held here.
      if (o.status === 'failed' || o.status === 'unsettled') throw o.error;
      return o.status === 'claimed' ? o : { taskId: o.taskId, status: portStatusOf(o) };
    });
  }

  /**
   * Claims as `claim` does, and says more of a refused message whose claimed attempt only the message guards (this
   * table's lease index holds a task only once its lease was extended, see `extendLeases`): while that lease lives,
   * `busy` with `retryAfterMs` (just after it would expire); once it expired, `expired` with the task, to be reaped by
   * the intake holding the message, as no reaper will find it. Each request ends on its own: one whose write fails
   * (after the retries) is `failed` with its error, and the call still resolves with every other outcome, so claims
   * made for the siblings are never lost with it.
   *
   * A claim recognises its own write whose answer was lost (a timeout, a reset, a 5xx after the write was applied):
   * each claim writes a fresh nonce (`ATTR.claimToken`) with the lease, and its condition also holds for the task
   * running the attempt it claims under this owner with that nonce and a lease never extended. The SDK's and this
   * table's retries of that write resend it and get the claimed task, instead of a refusal that would leave it
   * running under a lease nobody holds until the lease expired (a lease term and an attempt lost). A claim none of
   * whose tries was answered (a definite 4xx refusal is an answer) is settled at once by `settleUnknownClaim`'s fence:
   * a landed try is handed over `claimed` by this very call (the message kept as the guard, as for any claim); one
   * that did not land is fenced off for good, the claim `failed` and its message free for any agent. When the fence
   * is not answered either (or finds a landed try whose lease has run out), the claim is `unsettled`: the caller
   * holding its message withdraws it with `withdrawClaims` before the message goes (see `SqsDynamoDbTaskIntake`).
   * Nothing runs twice: a nonce is drawn for one claim call and matches only its own writes; a later claim of the
   * attempt, by this agent or another, carries another. A try of a claim may still be on its way and land after a
   * later claim (the service applies it late): that claim took the task, so the try's condition fails; and a nonce's
   * write never lands on a later lease than its own (`#exp <= :exp`), nor do lease extensions move a lease back.
   */
  async claimMessages(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<MessageClaimOutcome[]> {
    return mapLimit(requests, this.concurrency, async (request): Promise<MessageClaimOutcome> => {
      const next = request.attempt + 1;
      const entry: HistoryEntry = { owner: lease.owner, startedAt: now };
      const token = newClaimToken();
      // Set once a try's outcome is unknown (no answer, a 5xx, a refusal after the SDK's own unanswered tries): that
      // try may have landed, or may still land.
      let unknown = false;
      let claimed: Record<string, unknown>;
      try {
        const out = await this.retry('claim', async () => {
          try {
            return await this.doc.send(
              new UpdateCommand({
                TableName: this.tableName,
                Key: { task_id: request.taskId },
                UpdateExpression:
                  'SET #state = :running, #attempt = :next, #owner = :owner, #exp = :exp, #started = :now, ' +
                  '#history.#a = :entry, #token = :token',
                ConditionExpression: CLAIM_CONDITION,
                ExpressionAttributeNames: {
                  '#state': ATTR.state,
                  '#attempt': ATTR.attempt,
                  '#owner': ATTR.leaseOwner,
                  '#exp': ATTR.leaseExpiresAt,
                  '#started': ATTR.startedAt,
                  '#history': ATTR.history,
                  '#a': String(next),
                  '#token': ATTR.claimToken,
                  '#shard': ATTR.leaseShard,
                  '#fences': ATTR.claimFences,
                },
                ExpressionAttributeValues: {
                  ':running': 'running',
                  ':pending': 'pending',
                  ':attempt': request.attempt,
                  ':next': next,
                  ':owner': lease.owner,
                  ':exp': lease.expiresAt,
                  ':now': now,
                  ':entry': entry,
                  ':token': token,
                },
                ReturnValues: 'ALL_NEW',
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              }),
            );
          } catch (error) {
            if (!isDefiniteRefusal(error) || sdkAttemptsOf(error) > 1) unknown = true;
            throw error;
          }
        });
        claimed = out.Attributes ?? {};
      } catch (error) {
        // Its own outcome: a rejection here would lose the siblings' claims, left running under this lease unheld.
        if (!(error instanceof ConditionalCheckFailedException)) {
          if (!unknown) return { taskId: request.taskId, status: 'failed', error };
          const settled = await this.settleUnknownClaim(request, lease, token);
          if (settled === 'fenced') return { taskId: request.taskId, status: 'failed', error };
          if (settled === 'unsettled') {
            const claim = { taskId: request.taskId, attempt: request.attempt, owner: lease.owner, token };
            return { taskId: request.taskId, status: 'unsettled', error, claim };
          }
          claimed = settled.item;
        } else {
          const found = probeOf(error.Item);
          const probe = found && { ...found, leaseVisibleToReaper: found.leaseIndexed };
          const refusal = classifyClaim(request, probe, now);
          if (refusal.status !== 'expired') return { taskId: request.taskId, ...refusal };
          // Claimed from this very message, never extended and expired: the caller reaps it as the reaper would.
          return { taskId: request.taskId, status: 'expired', task: taskRecordOf(unmarshall(error.Item ?? {})) };
        }
      }
      // Where to tell of its end is looked up while it runs (nothing when known already). Only once claimed: a
      // message sent beside its session's write may come before it (see `createSealedSession`), and a lookup then
      // would find no session and remember that nobody waits.
      this.notices?.claimed([request.taskId]);
      return { taskId: request.taskId, status: 'claimed', task: taskRecordOf(claimed) };
    });
  }

  /**
   * Settles a claim none of whose tries was answered (see `claimMessages`) with one conditional write, its fence: the
   * claim's nonce put on the task's item while it is still pending at the claimed attempt. A pending item carrying a
   * claim's nonce refuses that claim's writes, so once the fence is in no try of the claim lands, even one the network
   * still holds: `fenced`, the claim did not land and never will (its message may go to anyone). The fence is itself
   * a retry-safe write (applied twice it writes the same); it adds the nonce to the item's fences (`ATTR.claimFences`),
   * which later fences and withdrawals of the attempt add to and claims keep, so it holds until the attempt ends.
   * Refused, its item (`ALL_OLD`, the one the condition was checked against) says whether a try landed: the attempt
   * running under this owner with this nonce, a lease never extended and still alive, is the claim's (`claimed`, its
   * item); one whose lease ran out meanwhile is `unsettled`, to be withdrawn (`withdrawClaims`) rather than run or
   * reaped. `unsettled` too when the fence's write failed (no answer: it may have landed or not).
   * Anything else (another claim took the task, it ended or is gone) is `fenced` as far as the claim goes: it did not
   * land, and its message, released, is settled by its next receive.
   */
  private async settleUnknownClaim(
    request: ClaimRequest,
    lease: { owner: string; expiresAt: number },
    token: string,
  ): Promise<{ item: Record<string, unknown> } | 'fenced' | 'unsettled'> {
    try {
      await this.retry('fence an unanswered claim', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { task_id: request.taskId },
            UpdateExpression: 'SET #token = :token ADD #fences :fence',
            ConditionExpression: '#state = :pending AND #attempt = :attempt',
            ExpressionAttributeNames: {
              '#token': ATTR.claimToken,
              '#fences': ATTR.claimFences,
              '#state': ATTR.state,
              '#attempt': ATTR.attempt,
            },
            ExpressionAttributeValues: {
              ':token': token,
              ':fence': new Set([token]),
              ':pending': 'pending',
              ':attempt': request.attempt,
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        ),
      );
      return 'fenced';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) {
        this.logger.warn({ err: error, taskId: request.taskId }, 'fencing an unanswered claim failed; to be withdrawn');
        return 'unsettled';
      }
      const found = probeOf(error.Item);
      const landed =
        found?.state === 'running' &&
        found.attempt === request.attempt + 1 &&
        found.owner === lease.owner &&
        error.Item?.[ATTR.claimToken]?.S === token &&
        !found.leaseIndexed;
      if (!landed) return 'fenced';
      // Alive now, not at the claim's start: its tries and the fence may have taken longer than a lease term.
      return (found.leaseExpiresAt ?? 0) > this.clock() ? { item: unmarshall(error.Item ?? {}) } : 'unsettled';
    }
  }

  /**
   * Withdraws claims left `unsettled` (see `claimMessages`), one conditional write each, never rejecting: the task is
   * put back pending at the claimed attempt with the claim's nonce as its fence, whether a try of the claim landed
   * (running that attempt under its owner with its nonce, a lease never extended: nobody was handed it, its message
   * is held by the caller) or not (pending at the claimed attempt). Either way no try of the claim lands afterwards,
   * and the caller lets the message go for any agent to claim (`withdrawn`). A landed try's history entry and lease go
   * with it; its start time stays until the next claim writes its own. Refused, the attempt moved on without the
   * claim (`moot`): the message's next receive settles it. `unknown` when the write failed again: try later. One try
   * each, without the table's retries (the caller's schedule retries: see `SqsDynamoDbTaskIntake`), so a failing or
   * throttling table gets one write a claim a round, and a round ends within one request's time.
   */
  async withdrawClaims(claims: readonly UnsettledClaim[]): Promise<ClaimWithdrawal[]> {
    return mapLimit(claims, this.concurrency, async (claim): Promise<ClaimWithdrawal> => {
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { task_id: claim.taskId },
            UpdateExpression:
              'SET #state = :pending, #attempt = :attempt, #token = :token ADD #fences :fence ' +
              'REMOVE #owner, #exp, #history.#a',
            ConditionExpression:
              '(#state = :pending AND #attempt = :attempt) OR (#state = :running AND #attempt = :next AND ' +
              '#owner = :owner AND #token = :token AND attribute_not_exists(#shard))',
            ExpressionAttributeNames: {
              '#state': ATTR.state,
              '#attempt': ATTR.attempt,
              '#token': ATTR.claimToken,
              '#owner': ATTR.leaseOwner,
              '#exp': ATTR.leaseExpiresAt,
              '#shard': ATTR.leaseShard,
              '#history': ATTR.history,
              '#a': String(claim.attempt + 1),
              '#fences': ATTR.claimFences,
            },
            ExpressionAttributeValues: {
              ':pending': 'pending',
              ':running': 'running',
              ':attempt': claim.attempt,
              ':next': claim.attempt + 1,
              ':owner': claim.owner,
              ':token': claim.token,
              ':fence': new Set([claim.token]),
            },
          }),
        );
        return 'withdrawn';
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return 'moot';
        this.logger.warn({ err: error, taskId: claim.taskId }, 'withdrawing an unsettled claim failed; trying later');
        return 'unknown';
      }
    });
  }

  /**
   * Extends each lease to `expiresAt`, never back: a lease that already ends later (an extension sent after this one
   * landed first, as a keeper's full refresh beside its tick's makes; or a claim's longer term) stays, and is `held`
   * all the same. Reaps rely on it (a running attempt's lease only moves later, see `classifyClaim`). The refusal's
   * item (`ALL_OLD`) is the one its condition was checked against, so it says which: no second read.
   */
  async extendLeases(leases: readonly LeaseRef[], expiresAt: number): Promise<LeaseStatus[]> {
    return mapLimit(leases, this.concurrency, (lease) => this.writeLease(lease, expiresAt));
  }

  /**
   * One lease's write (see `extendLeases`): extends it to `expiresAt`, never back, and puts the task into the lease
   * index (claims leave it out, see `claim`); without `expiresAt`, only puts it there as it stands. Its status.
   */
  private async writeLease(lease: LeaseRef, expiresAt?: number): Promise<LeaseStatus> {
    const extending = expiresAt !== undefined;
    try {
      await this.retry('extendLeases', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { task_id: lease.taskId },
            UpdateExpression: extending ? 'SET #exp = :exp, #shard = :shard' : 'SET #shard = :shard',
            ConditionExpression:
              '#state = :running AND #attempt = :attempt AND #owner = :owner' + (extending ? ' AND #exp <= :exp' : ''),
            ExpressionAttributeNames: {
              '#shard': ATTR.leaseShard,
              '#state': ATTR.state,
              '#attempt': ATTR.attempt,
              '#owner': ATTR.leaseOwner,
              ...(extending ? { '#exp': ATTR.leaseExpiresAt } : {}),
            },
            ExpressionAttributeValues: {
              ':shard': leaseShardOf(lease.taskId, this.leaseShards),
              ':running': 'running',
              ':attempt': lease.attempt,
              ':owner': lease.owner,
              ...(extending ? { ':exp': expiresAt } : {}),
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        ),
      );
      return 'held';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const found = probeOf(error.Item);
      const status = leaseStatusOf(found, lease);
      // Held under a later lease its claim wrote (never extended): into the lease index all the same.
      return extending && status === 'held' && found?.leaseIndexed !== true ? this.writeLease(lease) : status;
    }
  }

  async leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    if (leases.length === 0) return [];
    const items = await this.batchGet(
      leases.map((l) => l.taskId),
      [ATTR.taskId, ATTR.state, ATTR.attempt, ATTR.leaseOwner],
    );
    const byId = new Map(items.map((item) => [String(item[ATTR.taskId]), item]));
    return leases.map((lease) => {
      const item = byId.get(lease.taskId);
      if (item === undefined) return 'lost';
      if (item[ATTR.state] === 'cancelled') return 'cancelled';
      return item[ATTR.state] === 'running' &&
        item[ATTR.leaseOwner] === lease.owner &&
        Number(item[ATTR.attempt]) === lease.attempt
        ? 'held'
        : 'lost';
    });
  }

  async complete(completions: readonly Completion[]): Promise<CompletionResult[]> {
    const ended: FinishedTask[] = [];
    const results = await mapLimit(completions, this.concurrency, async (completion): Promise<CompletionResult> => {
      const seq = this.nextSeq();
      const plan = planCompletion(completion);
      let abandoned = false;
      try {
        // Built per try: the terminal key carries the time of the write (see `listTerminal`).
        const out = await this.retry('complete', () =>
          this.sendWithin(this.completionUpdate(plan, seq, this.clock())).catch((error: unknown) => {
            if ((error as Error | undefined)?.name === TERMINAL_WRITE_TIMEOUT) abandoned = true;
            throw error;
          }),
        );
        if (plan.terminal) ended.push(this.finishedTask(plan.taskId, out));
        return { taskId: completion.taskId, status: 'recorded' };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        // A try given up on may have landed after all (the service applied it late), with the time of that try in its
        // listing key: a reader whose watermark passed it would never list the task, and no notice named it.
        const landed = plan.terminal && abandoned ? await this.restampLanded(plan, seq) : undefined;
        if (landed === undefined) return { taskId: completion.taskId, status: 'stale' };
        ended.push(this.finishedTask(plan.taskId, landed));
        return { taskId: completion.taskId, status: 'recorded' };
      }
    });
    if (ended.length > 0) this.notices?.finished(ended);
    return results;
  }

  /**
   * After a terminal write whose try was abandoned (`sendWithin`) and whose next try found the task no longer running:
   * if the abandoned try is what ended it (same terminal state, attempt and finish time, which only that completion
   * writes), gives its listing key a fresh time so that readers list it, and returns the item; else undefined (the
   * task ended otherwise: cancelled, or its lease taken over).
   */
  private async restampLanded(plan: CompletionPlan, seq: number): Promise<UpdateCommandOutput | undefined> {
    const state = terminalStateOf(plan);
    try {
      return await this.retry('complete', () =>
        this.sendWithin({
          TableName: this.tableName,
          Key: { task_id: plan.taskId },
          ...updateExpressionOf({
            set: [{ path: [ATTR.sessionSk], value: terminalSessionSk(this.clock(), plan.taskId, state, seq) }],
            remove: [],
            condition: [
              { path: [ATTR.state], op: '=', value: state },
              { path: [ATTR.attempt], op: '=', value: plan.guard.attempt },
              { path: [ATTR.finishedAt], op: '=', value: plan.at },
            ],
          }),
          ReturnValues: 'ALL_NEW',
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /**
   * Sends a terminal write within half the settle window, SDK retries included: a request that hangs (a dropped
   * connection waits out the 30 s request timeout, then the SDK sends the very same request again) would otherwise
   * land with a key time the readers' watermark has passed, and the task would never be listed. Past that time it
   * is abandoned and sent again, built with a fresh time.
   */
  private async sendWithin(input: UpdateCommandInput): Promise<UpdateCommandOutput> {
    const limitMs = Math.max(1, Math.floor(this.settleMs / 2));
    const signal = AbortSignal.timeout(limitMs);
    try {
      return await this.doc.send(new UpdateCommand(input), { abortSignal: signal });
    } catch (error) {
      if (!signal.aborted || error instanceof ConditionalCheckFailedException) throw error;
      throw Object.assign(new Error(`a task's terminal write took over ${limitMs} ms; sent again with a fresh time`), {
        name: TERMINAL_WRITE_TIMEOUT,
        $retryable: {},
        cause: error,
      });
    }
  }

  /**
   * A task whose terminal write succeeded, with the item the write returned (`ALL_NEW`: no read units, the response
   * only grows), which its completion notice may carry to the client.
   */
  private finishedTask(taskId: string, out: UpdateCommandOutput): FinishedTask {
    return out.Attributes === undefined ? { taskId } : { taskId, outcome: noticeOutcomeOf(out.Attributes) };
  }

  /** The conditional UpdateItem that writes `plan` (see `planCompletion`); a terminal one returns the new item. */
  private completionUpdate(plan: CompletionPlan, seq: number, writtenAt: number): UpdateCommandInput {
    const { guard, record, at } = plan;
    // The attempt's history entry (owner and start written by the claim) gets how it ended.
    const entry = [ATTR.history, String(guard.attempt)];
    const set: SetAction[] = [
      { path: [ATTR.state], value: plan.to },
      { path: [...entry, 'finishedAt'], value: at },
      { path: [...entry, 'outcome'], value: record.outcome },
    ];
    if (record.error !== undefined) set.push({ path: [...entry, 'error'], value: record.error });
    if (record.run !== undefined) {
      set.push({ path: [...entry, 'runStartedAt'], value: record.run.startedAt });
      set.push({ path: [...entry, 'runMs'], value: record.run.ms });
    }
    // The lease ends with the attempt, and with it the task's place in the lease index.
    // So do the fences of claims of the attempt before it (see `ATTR.claimFences`).
    const remove: AttributePath[] = [
      [ATTR.leaseOwner],
      [ATTR.leaseExpiresAt],
      [ATTR.leaseShard],
      [ATTR.claimToken],
      [ATTR.claimFences],
    ];
    if (plan.countsFailure) set.push({ path: [ATTR.failures], increment: 1 });
    if (plan.failure !== undefined) {
      set.push({ path: [ATTR.error], value: plan.failure.error });
      set.push({ path: [ATTR.failureReason], value: plan.failure.reason });
    }
    if (plan.result !== undefined) {
      set.push({ path: [ATTR.result], value: plan.result });
      remove.push([ATTR.error], [ATTR.failureReason]);
    }
    if (plan.terminal) {
      const state = terminalStateOf(plan);
      set.push(
        { path: [ATTR.finishedAt], value: at },
        { path: [ATTR.sessionSk], value: terminalSessionSk(writtenAt, plan.taskId, state, seq) },
        { path: [ATTR.ttl], value: ttlOf(at, this.retentionSec) },
      );
    }
    const condition: Comparison[] = [
      { path: [ATTR.state], op: '=', value: 'running' },
      { path: [ATTR.attempt], op: '=', value: guard.attempt },
      isHolderGuard(guard)
        ? { path: [ATTR.leaseOwner], op: '=', value: guard.owner }
        : { path: [ATTR.leaseExpiresAt], op: '<', value: guard.leaseExpiredBefore },
    ];
    return {
      TableName: this.tableName,
      Key: { task_id: plan.taskId },
      ...updateExpressionOf({ set, remove, condition }),
      ...(plan.terminal ? { ReturnValues: 'ALL_NEW' as const } : {}),
    };
  }

  /**
   * Cancels the named tasks, or every live task of the session a page of its manifests at a time (see
   * `sessionPageTasks`): the states of a page's tasks are read, its live ones cancelled and their client told, then
   * the next page is read. The count is of the tasks this call moved to `cancelled`.
   */
  async cancel(sessionId: string, taskIds?: readonly string[], now: number = Date.now()): Promise<number> {
    let count = 0;
    if (taskIds !== undefined) {
      // A notice carries outcomes only for sends of a few tasks: past that, the items would be held for nothing.
      const carried = taskIds.length <= MAX_CARRIED_PER_SEND;
      for (const group of chunk(taskIds, this.pageManifests * MANIFEST_SIZE)) {
        count += await this.cancelTasks(sessionId, group, now, carried);
      }
    } else {
      // Live ids wait while there are at most MAX_CARRIED_PER_SEND of them: a session with no more live tasks than
      // that is cancelled with their outcomes carried, as if they had been named; past that, page by page.
      let held: string[] = [];
      let carried = true;
      for await (const page of this.sessionTaskPages(sessionId)) {
        // Only tasks that are still live: a conditional write that fails still costs a write unit.
        const states = await this.batchGet(page.taskIds, [ATTR.taskId, ATTR.state]);
        let live = states
          .filter((item) => item[ATTR.state] === 'pending' || item[ATTR.state] === 'running')
          .map((item) => String(item[ATTR.taskId]));
        if (carried) {
          held.push(...live);
          if (held.length <= MAX_CARRIED_PER_SEND) continue;
          carried = false;
          live = held;
          held = [];
        }
        count += await this.cancelTasks(sessionId, live, now, false);
      }
      if (held.length > 0) count += await this.cancelTasks(sessionId, held, now, true);
    }
    this.logger.debug({ sessionId, changed: count }, 'cancelled tasks');
    return count;
  }

  /**
   * Cancels `ids` of the session (each a conditional UpdateItem, `concurrency` at once) and tells its client; `carried`:
   * the writes return the items for the notice to carry. Returns how many were live.
   */
  private async cancelTasks(sessionId: string, ids: readonly string[], now: number, carried: boolean): Promise<number> {
    const ended: FinishedTask[] = [];
    const changed = await mapLimit(ids, this.concurrency, async (taskId) => {
      const seq = this.nextSeq();
      try {
        const out = await this.retry('cancel', () =>
          this.sendWithin({
            TableName: this.tableName,
            Key: { task_id: taskId },
            UpdateExpression:
              'SET #state = :cancelled, #finished = :now, #sk = :sk, #ttl = :ttl REMOVE #owner, #exp, #shard',
            ConditionExpression: '#sid = :sid AND #state IN (:pending, :running)',
            ExpressionAttributeNames: {
              '#state': ATTR.state,
              '#finished': ATTR.finishedAt,
              '#sk': ATTR.sessionSk,
              '#ttl': ATTR.ttl,
              '#owner': ATTR.leaseOwner,
              '#exp': ATTR.leaseExpiresAt,
              '#shard': ATTR.leaseShard,
              '#sid': ATTR.sessionId,
            },
            ExpressionAttributeValues: {
              ':cancelled': 'cancelled',
              ':now': now,
              ':sk': terminalSessionSk(this.clock(), taskId, 'cancelled', seq),
              ':ttl': ttlOf(now, this.retentionSec),
              ':sid': sessionId,
              ':pending': 'pending',
              ':running': 'running',
            },
            ...(carried ? { ReturnValues: 'ALL_NEW' as const } : {}),
          }),
        );
        ended.push(this.finishedTask(taskId, out));
        return 1;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return 0;
        throw error;
      }
    });
    // Its client is told as of a completion (a running task's agent is refused its write and tells nobody), before
    // cancel resolves: the caller may be a CLI command about to exit or the API Lambda about to freeze.
    if (ended.length > 0 && this.notices) {
      this.notices.finished(ended);
      await this.notices.flush([sessionId]);
    }
    return changed.reduce<number>((a, b) => a + b, 0);
  }

  /**
   * Terminal counts and the number of tasks written come from the session index (keys only: the state letter is in
   * a terminal key, the count in a manifest key); running tasks are counted on the lease index, and pending = written
   * - terminal - running. The reads are not one snapshot: a task that moves between them may be off by one for a
   * moment.
   */
  async countByState(sessionId: string): Promise<StateCounts> {
    const counts = emptyStateCounts();
    const retention = await this.sessionRetention(sessionId);
    if (retention.expired) return counts;
    let written = 0;
    const partitions = [manifestPartition(sessionId), ...sessionPartitions(sessionId, await this.shardsOf(sessionId))];
    // Counted as the keys come, a page at a time: a session of millions of tasks is never held in memory.
    await mapLimit(partitions, 8, async (partition) => {
      for await (const item of this.querySessionIndex(partition)) {
        const sk = String(item[ATTR.sessionSk]);
        const listed = manifestCountOf(sk);
        if (listed !== undefined) written += listed;
        else {
          const parsed = parseTerminalSessionSk(sk);
          if (parsed) counts[parsed.state] += 1;
        }
      }
    });
    // A session given its TTL had no live task left: tasks missing from the index expired (each TTL counts from
    // the task's own finish) and are not counted as pending.
    const live = retention.finished ? 0 : Math.max(0, written - counts.succeeded - counts.failed - counts.cancelled);
    if (live > 0) {
      const shards = Array.from({ length: this.leaseShards }, (_, i) => String(i));
      const perShard = await mapLimit(shards, 8, async (shard) => {
        let n = 0;
        const pages = this.queryPages('count running', {
          IndexName: TABLE_SCHEMA.leaseIndex.name,
          KeyConditionExpression: '#shard = :shard',
          FilterExpression: '#sid = :sid',
          ExpressionAttributeNames: { '#shard': ATTR.leaseShard, '#sid': ATTR.sessionId },
          ExpressionAttributeValues: { ':shard': shard, ':sid': sessionId },
          Select: 'COUNT',
        });
        for await (const page of pages) n += page.count;
        return n;
      });
      counts.running = Math.min(
        live,
        perShard.reduce((a, b) => a + b, 0),
      );
      counts.pending = live - counts.running;
    }
    return counts;
  }

  /**
   * Counts the session's terminal keys in the session index: one Query per index partition of the session (1 to 16,
   * see `sessionShardsFor`) with `Select: COUNT`, plus one per further MB of keys read. Keys only, no item read: an
   * index entry is about 180 bytes, so a count costs about 22 read request units per 1,000 ended tasks (eventually
   * consistent reads; DynamoDB Local reported 22 for 1,000 and 219 for 10,000), 22,000 and ~180 Queries for a
   * million. Eventually consistent like the listing it checks: a task that ended just now may not be counted yet.
   */
  async countTerminal(sessionId: string): Promise<number> {
    const partitions = sessionPartitions(sessionId, await this.shardsOf(sessionId));
    const perPartition = await mapLimit(partitions, 8, async (partition) => {
      let n = 0;
      const pages = this.queryPages('count terminal', {
        IndexName: TABLE_SCHEMA.sessionIndex.name,
        KeyConditionExpression: '#part = :part AND begins_with(#sk, :terminal)',
        ExpressionAttributeNames: { '#part': ATTR.sessionPart, '#sk': ATTR.sessionSk },
        ExpressionAttributeValues: { ':part': partition, ':terminal': 'T#' },
        Select: 'COUNT',
      });
      for await (const page of pages) n += page.count;
      return n;
    });
    return perPartition.reduce((a, b) => a + b, 0);
  }

  /**
   * The session's terminal tasks that `wanted` takes: the terminal keys of each session-index partition (keys only,
   * about 22 keys per read unit, as `countTerminal` reads), then only the items wanted, by BatchGetItem (eventually
   * consistent; one not terminal yet on its replica is read again consistently, as `listTerminal` does). `stop` is
   * asked before each page of keys (and each partition): true ends the pages.
   */
  async *readTerminalWanted(
    sessionId: string,
    wanted: (taskId: string) => boolean,
    limit: number,
    stop?: () => boolean,
  ): AsyncGenerator<readonly TaskRecord[]> {
    const size = Math.max(1, Math.floor(limit));
    for (const partition of sessionPartitions(sessionId, await this.shardsOf(sessionId))) {
      if (stop?.()) return;
      for await (const page of this.sessionIndexPages(partition, 'T#')) {
        const ids = page.items.map((item) => String(item[ATTR.taskId])).filter((taskId) => wanted(taskId));
        for (const group of chunk(ids, size)) {
          const items = await this.batchGet(group, undefined, false);
          const ended = new Set(items.filter(isTerminalItem).map((item) => String(item[ATTR.taskId])));
          const behind = group.filter((taskId) => !ended.has(taskId));
          const fresh = behind.length > 0 ? await this.batchGet(behind) : [];
          const tasks = [...items.filter(isTerminalItem), ...fresh.filter(isTerminalItem)].map(taskRecordOf);
          if (tasks.length > 0) yield tasks;
        }
        if (page.more && stop?.()) return;
      }
    }
  }

  /**
   * Terminal tasks in completion order (finish time, then task id), read from the session index.
   *
   * The index is eventually consistent, so a task may appear in it a little after tasks that finished later. Its key
   * carries the time of the write that ended it (taken on each try, so a write delayed by throttling back-off gets a
   * fresh time, and a try that hangs is abandoned within half the window, see `sendWithin`; agents' clocks are
   * NTP-synchronised). The cursor therefore holds a watermark that trails the clock by
   * `settleMs`, plus the keys already returned above it: each call re-reads from the watermark and skips those keys.
   * A task is never returned twice, and never skipped as long as it becomes visible within `settleMs` of its finish
   * time. The cursor's size is bounded by the tasks that finish within `settleMs`. Tasks a completion notice named
   * are read by key first and may come before tasks that ended earlier (see `noticedPage`).
   */
  async listTerminal(sessionId: string, cursor: string | undefined, limit: number): Promise<TerminalPage> {
    const state = cursor === undefined ? { w: 'T#', s: [] } : decodeCursor(cursor);
    const seen = new Set(state.s);
    const want = Math.max(1, Math.floor(limit));
    const noticed = this.noticedTasks?.(sessionId) ?? [];
    if (noticed.length > 0) {
      const page = await this.noticedPage(sessionId, noticed, state, seen, want);
      if (page !== undefined) return page;
    }
    const pageSize = Math.min(1000, want + seen.size + 1);
    const partitions = sessionPartitions(sessionId, await this.shardsOf(sessionId));
    const pages = await mapLimit(partitions, 8, (partition) =>
      this.queryPage(partition, state.w, pageSize, want, seen),
    );
    // Keys are ordered across partitions (finish time first). Past the last key read from a partition that has more,
    // that partition may hold earlier keys not read yet: stop there.
    let bound: string | undefined;
    for (const page of pages) {
      const last = page.keys[page.keys.length - 1];
      if (!page.complete && last !== undefined && (bound === undefined || last.sk < bound)) bound = last.sk;
    }
    const merged = pages
      .flatMap((page) => page.keys)
      .filter((key) => bound === undefined || key.sk <= bound)
      .sort((a, b) => (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0));
    const picked: { taskId: string; sk: string }[] = [];
    let lastExamined = state.w;
    let exhausted = pages.every((page) => page.complete);
    for (const key of merged) {
      if (picked.length >= want) {
        exhausted = false;
        break;
      }
      lastExamined = key.sk;
      if (seen.has(key.sk)) continue;
      picked.push(key);
    }
    if (picked.length === 0) {
      // Nothing new, but the watermark still moves on past what this cursor returned (tasks a notice named, read by
      // key), so its seen set keeps only the keys within the settle window.
      const moved = advanceCursor(state, [], exhausted, lastExamined, this.horizon());
      return { tasks: [], cursor: moved.w === state.w ? cursor : encodeCursor(moved) };
    }
    // The index only lists a task after its terminal write, so an eventually consistent read (half the read units)
    // almost always sees that write too; the rare replica that has not yet is read again, consistently.
    const items = await this.batchGet(
      picked.map((p) => p.taskId),
      undefined,
      false,
    );
    const byId = new Map(items.map((item) => [String(item[ATTR.taskId]), item]));
    const behind = picked.filter((p) => !isTerminalItem(byId.get(p.taskId))).map((p) => p.taskId);
    if (behind.length > 0) {
      for (const item of await this.batchGet(behind)) byId.set(String(item[ATTR.taskId]), item);
    }
    const tasks: TaskRecord[] = [];
    for (const p of picked) {
      const item = byId.get(p.taskId);
      // Gone: deleted by TTL or with its session between the two reads.
      if (item !== undefined) tasks.push(taskRecordOf(item));
    }
    const next = advanceCursor(
      state,
      picked.map((p) => p.sk),
      exhausted,
      lastExamined,
      this.horizon(),
    );
    return { tasks, cursor: encodeCursor(next), more: !exhausted };
  }

  checkTerminalCursor(cursor: string): void {
    decodeCursor(cursor);
  }

  /** The newest finish key a reader may pass for good: keys older than the settle window are all in the index. */
  private horizon(): string {
    return `T#${finishKeyPrefix(this.clock() - this.settleMs)}`;
  }

  /**
   * The tasks notices named that have ended and that this cursor has not returned: from the outcomes the notices
   * carried (the items their completion writes left), the others read by key (consistently: a notice is sent after
   * its tasks' terminal writes). Their keys join the cursor's seen set exactly as if the index had listed them, so
   * the index never returns them again, nor a notice delivered twice. They come before tasks that ended earlier but
   * that no notice named yet (those follow at the next call, which reads the index). Undefined when none is new.
   */
  private async noticedPage(
    sessionId: string,
    noticed: readonly NoticedTask[],
    state: TerminalCursor,
    seen: ReadonlySet<string>,
    want: number,
  ): Promise<TerminalPage | undefined> {
    const isNew = (item: Record<string, unknown>): boolean => {
      const sk = item[ATTR.sessionSk];
      return (
        item[ATTR.sessionId] === sessionId &&
        isTerminalItem(item) &&
        typeof sk === 'string' &&
        sk.startsWith('T#') &&
        sk > state.w &&
        !seen.has(sk)
      );
    };
    const items: Record<string, unknown>[] = [];
    const unread: string[] = [];
    for (const task of noticed) {
      if (task.outcome === undefined) unread.push(task.taskId);
      else if (isNew(task.outcome)) items.push(task.outcome);
    }
    if (unread.length > 0) items.push(...(await this.batchGet(unread.slice(0, 100))).filter(isNew));
    const picked = items
      .map((item) => ({ item, sk: String(item[ATTR.sessionSk]) }))
      .sort((a, b) => (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0))
      .slice(0, want);
    if (picked.length === 0) return undefined;
    return {
      tasks: picked.map((p) => taskRecordOf(p.item)),
      cursor: encodeCursor({ w: state.w, s: [...state.s, ...picked.map((p) => p.sk)] }),
    };
  }

  // --- browsing (read-only, for people watching the grid) -------------------------------------------------------

  /** Newest first, from the sessions' own partition of the session index (keys only), then their items. */
  async listSessions(cursor: string | undefined, limit: number): Promise<BrowsePage<SessionRecord>> {
    const startKey = decodeBrowseCursor(cursor, isStartKey);
    const want = browsePageSize(limit);
    const out = await this.retry('listSessions', () =>
      this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: TABLE_SCHEMA.sessionIndex.name,
          KeyConditionExpression: '#part = :part',
          ExpressionAttributeNames: { '#part': ATTR.sessionPart },
          ExpressionAttributeValues: { ':part': SESSION_LIST_PARTITION },
          ScanIndexForward: false,
          Limit: want,
          ExclusiveStartKey: startKey,
        }),
      ),
    );
    const keys = (out.Items ?? []).map((item) => String(item[ATTR.taskId]));
    const items = keys.length === 0 ? [] : await this.batchGet(keys, undefined, false);
    const byKey = new Map(items.map((item) => [String(item[ATTR.taskId]), item]));
    const sessions = keys.flatMap((key) => {
      const item = byKey.get(key);
      return item === undefined || this.isExpired(item) ? [] : [sessionRecordOf(item)];
    });
    const next = out.LastEvaluatedKey as Record<string, string> | undefined;
    return { items: sessions, cursor: next === undefined ? undefined : encodeBrowseCursor(next) };
  }

  /**
   * Live tasks are not indexed (that would cost index writes per task): they are found by walking the session's
   * manifests in key order and reading their tasks, at most `LIVE_READ_BUDGET` tasks per call. A page may therefore
   * come back short, or empty, with a cursor to read on. Reading costs about one read unit per 2 tasks walked.
   */
  async listLive(
    sessionId: string,
    state: 'pending' | 'running',
    cursor: string | undefined,
    limit: number,
  ): Promise<BrowsePage<TaskRecord>> {
    const from = decodeBrowseCursor(cursor, isManifestPosition) ?? { m: '', o: 0 };
    const want = browsePageSize(limit);
    const found: TaskRecord[] = [];
    let budget = LIVE_READ_BUDGET;
    const manifests = this.queryPages('query session index', {
      IndexName: TABLE_SCHEMA.sessionIndex.name,
      KeyConditionExpression: '#part = :part AND #sk >= :from',
      ExpressionAttributeNames: { '#part': ATTR.sessionPart, '#sk': ATTR.sessionSk },
      ExpressionAttributeValues: { ':part': manifestPartition(sessionId), ':from': from.m === '' ? 'M#' : from.m },
    });
    for await (const page of manifests) {
      for (const key of page.items) {
        const sk = String(key[ATTR.sessionSk]);
        const [manifest] = await this.batchGet([String(key[ATTR.taskId])], [ATTR.taskId, ATTR.taskIds], false);
        const ids = Array.isArray(manifest?.[ATTR.taskIds]) ? (manifest[ATTR.taskIds] as unknown[]).map(String) : [];
        let offset = sk === from.m ? from.o : 0;
        while (offset < ids.length) {
          if (found.length >= want || budget <= 0) {
            return { items: found, cursor: encodeBrowseCursor({ m: sk, o: offset }) };
          }
          const group = ids.slice(offset, offset + Math.min(100, budget));
          offset += group.length;
          budget -= group.length;
          const items = await this.batchGet(group, undefined, false);
          const byId = new Map(items.map((item) => [String(item[ATTR.taskId]), item]));
          for (const id of group) {
            const item = byId.get(id);
            if (item !== undefined && item[ATTR.kind] === undefined && item[ATTR.state] === state) {
              found.push(taskRecordOf(item));
            }
          }
        }
      }
    }
    return { items: found, cursor: undefined };
  }

  async findExpiredLeases(now: number, limit: number): Promise<TaskRecord[]> {
    const want = Math.max(1, Math.floor(limit));
    const shards = Array.from({ length: this.leaseShards }, (_, i) => String(i));
    const perShard = await mapLimit(shards, 8, async (shard) => {
      const found: { taskId: string; expiresAt: number }[] = [];
      const pages = this.queryPages('findExpiredLeases', {
        IndexName: TABLE_SCHEMA.leaseIndex.name,
        KeyConditionExpression: '#shard = :shard AND #exp < :now',
        ExpressionAttributeNames: { '#shard': ATTR.leaseShard, '#exp': ATTR.leaseExpiresAt },
        ExpressionAttributeValues: { ':shard': shard, ':now': now },
        Limit: want,
      });
      for await (const page of pages) {
        for (const item of page.items) {
          found.push({ taskId: String(item[ATTR.taskId]), expiresAt: Number(item[ATTR.leaseExpiresAt]) });
        }
        if (found.length >= want) break;
      }
      return found;
    });
    const oldest = perShard
      .flat()
      .sort((a, b) => a.expiresAt - b.expiresAt)
      .slice(0, want);
    if (oldest.length === 0) return [];
    const items = await this.batchGet(oldest.map((o) => o.taskId));
    return items
      .map(taskRecordOf)
      .filter((t) => t.state === 'running' && t.lease !== undefined && t.lease.expiresAt < now)
      .sort((a, b) => a.lease!.expiresAt - b.lease!.expiresAt);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.notices?.close();
    if (this.ownsClient) this.client.destroy();
  }

  // --- helpers -------------------------------------------------------------------------------------------------

  /** Orders this writer's completions within one millisecond (see `terminalSessionSk`). */
  private nextSeq(): number {
    this.seq = (this.seq + 1) % 1e9;
    return this.seq;
  }

  private retry<T>(what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(`DynamoDB ${what} on ${this.tableName}`, call, this.retryPolicy);
  }

  /**
   * A partition's terminal keys after `after`, read on until `want` of them are not in `seen` or the partition ends
   * (`complete`). Keys already returned are read again while they sit in the settle window, so a read that stopped
   * at `limit` keys could see only those and never move on.
   */
  private async queryPage(
    partition: string,
    after: string,
    limit: number,
    want: number,
    seen: ReadonlySet<string>,
  ): Promise<{ keys: { taskId: string; sk: string }[]; complete: boolean }> {
    const keys: { taskId: string; sk: string }[] = [];
    let fresh = 0;
    const pages = this.queryPages('query session index', {
      IndexName: TABLE_SCHEMA.sessionIndex.name,
      KeyConditionExpression: '#part = :part AND #sk > :after',
      ExpressionAttributeNames: { '#part': ATTR.sessionPart, '#sk': ATTR.sessionSk },
      ExpressionAttributeValues: { ':part': partition, ':after': after },
      Limit: limit,
    });
    for await (const page of pages) {
      for (const item of page.items) {
        const sk = String(item[ATTR.sessionSk]);
        keys.push({ taskId: String(item[ATTR.taskId]), sk });
        if (!seen.has(sk)) fresh++;
      }
      if (!page.more) return { keys, complete: true };
      if (fresh >= want) break;
    }
    return { keys, complete: false };
  }

  /** Session-index partitions of a session (1 for an unknown one). Sessions never change it, so it is cached. */
  private async shardsOf(sessionId: string): Promise<number> {
    const cached = this.creatingShards.get(sessionId) ?? this.shardCache.get(sessionId);
    if (cached !== undefined) return cached;
    const out = await this.retry('getSession', () =>
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { task_id: sessionItemKey(sessionId) },
          // A reader in another process right after `createSession` must not take a new session for a one-partition
          // one and skip the others.
          ConsistentRead: true,
          ProjectionExpression: '#shards',
          ExpressionAttributeNames: { '#shards': ATTR.indexShards },
        }),
      ),
    );
    if (out.Item === undefined) return 1;
    const shards = Number(out.Item[ATTR.indexShards] ?? 1);
    this.rememberShards(sessionId, shards);
    return shards;
  }

  private rememberShards(sessionId: string, shards: number): void {
    // Bounded: a long-lived client may see many sessions.
    if (this.shardCache.size >= 1024) this.shardCache.delete(this.shardCache.keys().next().value!);
    this.shardCache.set(sessionId, shards);
  }

  /** The keys of a session's manifests in the session index, `pageManifests` a page (see `sessionPageTasks`). */
  private manifestPages(sessionId: string): AsyncGenerator<{ items: Record<string, unknown>[]; more: boolean }> {
    return this.sessionIndexPages(manifestPartition(sessionId), 'M#', this.pageManifests);
  }

  /** Items of one session-index partition (keys only), in key order. */
  private async *querySessionIndex(partition: string): AsyncGenerator<Record<string, unknown>> {
    for await (const page of this.sessionIndexPages(partition)) yield* page.items;
  }

  /** Pages of one session-index partition (keys only), in key order, under `prefix`, `limit` items a page. */
  private sessionIndexPages(
    partition: string,
    prefix?: string,
    limit?: number,
  ): AsyncGenerator<{ items: Record<string, unknown>[]; more: boolean }> {
    return this.queryPages('query session index', {
      IndexName: TABLE_SCHEMA.sessionIndex.name,
      KeyConditionExpression: prefix === undefined ? '#part = :part' : '#part = :part AND begins_with(#sk, :prefix)',
      ExpressionAttributeNames: {
        '#part': ATTR.sessionPart,
        ...(prefix === undefined ? {} : { '#sk': ATTR.sessionSk }),
      },
      ExpressionAttributeValues: { ':part': partition, ...(prefix === undefined ? {} : { ':prefix': prefix }) },
      ...(limit === undefined ? {} : { Limit: limit }),
    });
  }

  /** The pages of one Query on this table, following `LastEvaluatedKey`; `more`: another page follows. */
  private async *queryPages(
    what: string,
    input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey'>,
  ): AsyncGenerator<{ items: Record<string, unknown>[]; count: number; more: boolean }> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.retry(what, () =>
        this.doc.send(new QueryCommand({ ...input, TableName: this.tableName, ExclusiveStartKey: startKey })),
      );
      startKey = out.LastEvaluatedKey;
      yield { items: out.Items ?? [], count: out.Count ?? 0, more: startKey !== undefined };
    } while (startKey !== undefined);
  }

  /** Consistent BatchGetItem in requests of 100, retrying unprocessed keys with back-off. */
  private async batchGet(
    taskIds: readonly string[],
    attributes?: readonly string[],
    consistent = true,
  ): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    const unique = [...new Set(taskIds)];
    await mapLimit(chunk(unique, 100), 4, async (group) => {
      let keys: Record<string, unknown>[] = group.map((taskId) => ({ task_id: taskId }));
      for (let round = 1; keys.length > 0; round++) {
        const names = attributes ? Object.fromEntries(attributes.map((a, i) => [`#p${i}`, a])) : undefined;
        const res = await this.retry('batchGet', () =>
          this.doc.send(
            new BatchGetCommand({
              RequestItems: {
                [this.tableName]: {
                  Keys: keys,
                  ConsistentRead: consistent,
                  ProjectionExpression: names ? Object.keys(names).join(', ') : undefined,
                  ExpressionAttributeNames: names,
                },
              },
            }),
          ),
        );
        out.push(...(res.Responses?.[this.tableName] ?? []));
        keys = (res.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, unknown>[];
        if (keys.length > 0) await this.backoff('batchGet', round, keys.length);
      }
    });
    return out;
  }

  /** BatchWriteItem in requests of 25, retrying unprocessed items with back-off. */
  private async batchWrite(requests: NonNullable<BatchWriteCommandInput['RequestItems']>[string]): Promise<void> {
    await mapLimit(chunk(requests, BATCH_WRITE_MAX), 4, async (group) => {
      let pending = group;
      for (let round = 1; pending.length > 0; round++) {
        const res = await this.retry('batchWrite', () =>
          this.doc.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } })),
        );
        pending = res.UnprocessedItems?.[this.tableName] ?? [];
        if (pending.length > 0) await this.backoff('batchWrite', round, pending.length);
      }
    });
  }

  private async backoff(what: string, round: number, left: number): Promise<void> {
    const maxRounds = this.retryPolicy.maxAttempts ?? 8;
    if (round >= maxRounds) {
      throw new HtcGridError(
        `DynamoDB ${what} on ${this.tableName}: ${left} items still unprocessed after ${round} tries`,
      );
    }
    const delay = backoffDelay(round, this.retryPolicy);
    this.logger.debug({ what, round, left, delay }, 'unprocessed items, backing off');
    await (this.retryPolicy.sleep ?? sleep)(delay);
  }
}

function isTerminalItem(item: Record<string, unknown> | undefined): boolean {
  return isTerminal(item?.[ATTR.state]);
}

/**
 * The cursor after a read of the session index that examined keys up to `lastExamined` (all of them when
 * `exhausted`) and returned `picked`: the watermark moves up to the settle horizon, and the seen set keeps only the
 * keys above it.
 */
function advanceCursor(
  state: TerminalCursor,
  picked: readonly string[],
  exhausted: boolean,
  lastExamined: string,
  horizon: string,
): TerminalCursor {
  const reach = exhausted ? horizon : lastExamined < horizon ? lastExamined : horizon;
  const watermark = reach > state.w ? reach : state.w;
  return { w: watermark, s: [...state.s, ...picked].filter((sk) => sk > watermark) };
}

function encodeCursor(cursor: TerminalCursor): string {
  // Keys are stored without their common `T#` prefix to keep the cursor short.
  const compact = { w: cursor.w.slice(2), s: cursor.s.map((k) => k.slice(2)) };
  return Buffer.from(JSON.stringify(compact)).toString('base64url');
}

function decodeCursor(cursor: string): TerminalCursor {
  try {
    const raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { w?: unknown; s?: unknown };
    if (typeof raw.w !== 'string' || !Array.isArray(raw.s) || !raw.s.every((k) => typeof k === 'string')) {
      throw new Error('shape');
    }
    return { w: `T#${raw.w}`, s: raw.s.map((k) => `T#${k}`) };
  } catch {
    throw new InvalidCursorError(cursor);
  }
}
