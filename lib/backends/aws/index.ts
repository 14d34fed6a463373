// The grid's AWS backends (DynamoDB task table, SQS queues, S3 payload store), opened from the stack's resources.
import { retentionSecOf, type GridConfig } from '../../core/config';
import type { AwsGridResources } from '../../core/grid-resources';
import { silentLogger, type Logger } from '../../logging';
import type { AgentRegistry, PayloadStore, TaskIntake, TaskQueue } from '../../ports';
import { DynamoDbAgentRegistry } from './dynamodb-agent-registry';
import { newDynamoDbClient, newS3Client, newSqsClient, type AwsClients } from './aws-clients';
import { CompletionNoticeQueue } from './completion-notices';
import { DynamoDbTaskTable, type DynamoDbTaskTableOptions } from './dynamodb-task-table';
import { DEFAULT_PAYLOAD_PREFIX, S3PayloadStore } from './s3-payload-store';
import { SqsDynamoDbTaskIntake } from './sqs-dynamodb-task-intake';
import { SqsTaskQueue } from './sqs-task-queue';

export * from './aws-clients';
export * from './aws-retry';
export * from './completion-notice-body';
export * from './completion-notices';
export * from './dynamodb-agent-registry';
export * from './dynamodb-request-ledger';
export * from './dynamodb-task-table';
export * from './s3-payload-store';
export * from './sqs-dynamodb-task-intake';
export * from './sqs-message-text';
export * from './sqs-task-queue';
export * from './table-schema';

export interface OpenAwsBackendsOptions {
  /** Clients to use (and not destroy). @default - clients built by `createAwsClients` */
  readonly clients?: AwsClients;
  readonly logger?: Logger;
  /**
   * The grid configuration: its `task_retention_sec` is how long finished tasks stay in the table (their TTL), so every
   * writer of a terminal task (client, agent, reaper, API) must pass it.
   * @default - the default configuration (7 days)
   */
  readonly config?: Pick<GridConfig, 'retentionMs'>;
  /** Extra task-table options (settle window, lease shards; a `retentionSec` here wins over `config`). */
  readonly table?: Omit<DynamoDbTaskTableOptions, 'tableName' | 'client' | 'logger'>;
  /** Prefix of payload-store keys; must match the stack's data prefix (IAM is scoped to it). @default 'data/' */
  readonly payloadPrefix?: string;
  /**
   * Open as a client that receives completion notices: its own SQS queue (named with the stack's
   * `noticeQueuePrefix`), created at its first session and deleted by `close`, wakes its results handles when agents
   * finish tasks (`changes`). Needs `resources.noticeQueuePrefix`; without it, handles poll.
   * @default false
   */
  readonly receiveNotices?: boolean;
  /**
   * Send completion notices after each write that ends tasks, to the queues their sessions' clients named (agents, the
   * reaper). @default true
   */
  readonly sendNotices?: boolean;
  /**
   * Unsettled claims the agent's intake may hold while it withdraws them (see `SqsDynamoDbTaskIntake`).
   * @default 1000
   */
  readonly maxUnsettledClaims?: number;
  /**
   * How long the agent's intake keeps an unsettled claim's message in flight (see `SqsDynamoDbTaskIntake`).
   * @default 120000
   */
  readonly maxClaimHoldMs?: number;
}

export interface AwsBackends {
  readonly table: DynamoDbTaskTable;
  readonly queue: TaskQueue;
  readonly store: PayloadStore;
  /** How an agent takes tasks: SQS receives, DynamoDB claims, the claimed message kept until the lease is extended. */
  readonly intake: TaskIntake;
  /** Where the grid's agents register and heartbeat (items of the task table). */
  readonly agents: AgentRegistry;
  /** With `receiveNotices`: completion notices as they arrive, what a `GridClient`'s handles wait on. */
  readonly changes?: CompletionNoticeQueue;
  /** Closes the adapters and destroys the clients this call created. Idempotent. */
  close(): Promise<void>;
}

export function openAwsBackends(resources: AwsGridResources, options: OpenAwsBackendsOptions = {}): AwsBackends {
  const logger = options.logger ?? silentLogger();
  const made: { destroy(): void }[] = [];
  const own = <C extends { destroy(): void }>(client: C): C => {
    made.push(client);
    return client;
  };
  const clientOptions = { region: resources.region };
  const clients: Required<AwsClients> = {
    dynamodb: options.clients?.dynamodb ?? own(newDynamoDbClient(clientOptions)),
    sqs: options.clients?.sqs ?? own(newSqsClient(clientOptions)),
    s3: options.clients?.s3 ?? own(newS3Client(clientOptions)),
  };
  const changes =
    options.receiveNotices && resources.noticeQueuePrefix
      ? new CompletionNoticeQueue({
          client: clients.sqs,
          namePrefix: resources.noticeQueuePrefix,
          logger: logger.child({ component: 'completion-notices' }),
        })
      : undefined;
  const table = new DynamoDbTaskTable({
    ...(options.config ? { retentionSec: retentionSecOf(options.config) } : {}),
    ...options.table,
    tableName: resources.tableName,
    client: clients.dynamodb,
    logger: logger.child({ component: 'dynamodb-task-table' }),
    ...(changes
      ? { noticeQueue: () => changes.queueUrl(), noticedTasks: (sessionId: string) => changes.takeNoticed(sessionId) }
      : {}),
    ...(options.sendNotices === false ? {} : { noticeSender: { client: clients.sqs } }),
  });
  const queue = new SqsTaskQueue({
    queueUrls: resources.queueUrls,
    client: clients.sqs,
    logger: logger.child({ component: 'sqs-task-queue' }),
  });
  const store = new S3PayloadStore({
    bucket: resources.dataBucket,
    prefix: options.payloadPrefix ?? DEFAULT_PAYLOAD_PREFIX,
    client: clients.s3,
    logger: logger.child({ component: 's3-payload-store' }),
  });
  const intake = new SqsDynamoDbTaskIntake({
    queue,
    table,
    logger: logger.child({ component: 'sqs-dynamodb-task-intake' }),
    ...(options.maxUnsettledClaims !== undefined ? { maxUnsettledClaims: options.maxUnsettledClaims } : {}),
    ...(options.maxClaimHoldMs !== undefined ? { maxClaimHoldMs: options.maxClaimHoldMs } : {}),
  });
  const agents = new DynamoDbAgentRegistry({ tableName: resources.tableName, client: clients.dynamodb });
  let closed = false;
  return {
    table,
    queue,
    store,
    intake,
    agents,
    ...(changes ? { changes } : {}),
    async close() {
      if (closed) return;
      closed = true;
      intake.close();
      await Promise.all([table.close(), queue.close(), store.close(), changes?.close()]);
      for (const client of made) client.destroy();
    },
  };
}
export * from './stack-outputs';
