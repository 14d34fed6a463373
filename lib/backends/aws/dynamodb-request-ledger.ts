// The AWS grid's request ledger: items of the task table keyed `request#<key>`, taken with one conditional write.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DEFAULT_TASK_RETENTION_SEC } from '../../core/config';
import type { LedgerEntry, RequestLedger } from '../../ports';
import { withRetry, type RetryPolicy } from './aws-retry';
import { TABLE_SCHEMA } from './table-schema';

export interface DynamoDbRequestLedgerOptions {
  readonly tableName: string;
  readonly client: DynamoDBClient;
  /** How long a record is kept (DynamoDB's TTL deletes it after). @default DEFAULT_TASK_RETENTION_SEC (7 days) */
  readonly retentionSec?: number;
  readonly retry?: RetryPolicy;
}

/** Item kind of ledger records: `getTask` and the session indexes never see them (no index keys, a `kind`). */
const KIND = 'request';

/**
 * `RequestLedger` in the task table. A record carries no index key, so it costs one write to take, one to finish,
 * and is invisible to the session and lease indexes; TTL removes it after `retentionSec`.
 */
export class DynamoDbRequestLedger implements RequestLedger {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly retentionSec: number;
  private readonly retryPolicy: RetryPolicy;

  constructor(options: DynamoDbRequestLedgerOptions) {
    this.doc = DynamoDBDocumentClient.from(options.client);
    this.tableName = options.tableName;
    this.retentionSec = options.retentionSec ?? DEFAULT_TASK_RETENTION_SEC;
    this.retryPolicy = options.retry ?? {};
  }

  async begin(key: string, fingerprint: string, now: number, holdMs: number): Promise<LedgerEntry> {
    try {
      await this.retry('begin', () =>
        this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: {
              [TABLE_SCHEMA.partitionKey]: itemKey(key),
              kind: KIND,
              fingerprint,
              held_until: now + holdMs,
              [TABLE_SCHEMA.ttlAttribute]: Math.floor(now / 1000) + this.retentionSec,
            },
            // New, or held by a request that never finished and whose hold ran out.
            ConditionExpression: 'attribute_not_exists(#pk) OR (attribute_not_exists(#resp) AND #held < :now)',
            ExpressionAttributeNames: { '#pk': TABLE_SCHEMA.partitionKey, '#resp': 'response', '#held': 'held_until' },
            ExpressionAttributeValues: { ':now': now },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        ),
      );
      return { status: 'new' };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const old = error.Item ? unmarshall(error.Item) : {};
      const taken = String(old.fingerprint ?? '');
      return typeof old.response === 'string'
        ? { status: 'done', fingerprint: taken, response: old.response }
        : { status: 'busy', fingerprint: taken };
    }
  }

  async finish(key: string, response: string): Promise<void> {
    await this.retry('finish', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [TABLE_SCHEMA.partitionKey]: itemKey(key) },
          UpdateExpression: 'SET #resp = :resp',
          ExpressionAttributeNames: { '#resp': 'response' },
          ExpressionAttributeValues: { ':resp': response },
        }),
      ),
    );
  }

  async release(key: string): Promise<void> {
    try {
      await this.retry('release', () =>
        this.doc.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: { [TABLE_SCHEMA.partitionKey]: itemKey(key) },
            ConditionExpression: 'attribute_not_exists(#resp)',
            ExpressionAttributeNames: { '#resp': 'response' },
          }),
        ),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async close(): Promise<void> {}

  private retry<T>(what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(`DynamoDB request ledger ${what} on ${this.tableName}`, call, this.retryPolicy);
  }
}

function itemKey(key: string): string {
  return `request#${key}`;
}
