// The AWS grid's agent registry: one item per agent in the task table (`agent#<id>`), listed through the session
// index's `#agents` partition, so clients can tell whether any agent is alive without a scan.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { AgentPresence, AgentRegistry } from '../../ports';
import { ATTR, TABLE_SCHEMA } from './table-schema';

/** The session-index partition of agent items (no session id starts with `#`). */
export const AGENTS_PARTITION = '#agents';
/** How long an agent item stays after its last heartbeat before DynamoDB's TTL deletes it. */
const AGENT_ITEM_TTL_SEC = 3600;

export interface DynamoDbAgentRegistryOptions {
  readonly tableName: string;
  readonly client: DynamoDBClient;
}

export class DynamoDbAgentRegistry implements AgentRegistry {
  private readonly doc: DynamoDBDocumentClient;

  constructor(private readonly options: DynamoDbAgentRegistryOptions) {
    this.doc = DynamoDBDocumentClient.from(options.client);
  }

  async heartbeat(presence: AgentPresence): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.options.tableName,
        Item: {
          [ATTR.taskId]: keyOf(presence.agentId),
          [ATTR.kind]: 'agent',
          [TABLE_SCHEMA.sessionIndex.partitionKey]: AGENTS_PARTITION,
          [TABLE_SCHEMA.sessionIndex.sortKey]: `A#${presence.agentId}`,
          agent: JSON.stringify(presence),
          expires_at: presence.expiresAt,
          [TABLE_SCHEMA.ttlAttribute]: Math.ceil(presence.expiresAt / 1000) + AGENT_ITEM_TTL_SEC,
        },
      }),
    );
  }

  /** Expires the agent's item now (agents may put and update items of the table, not delete them). */
  async remove(agentId: string): Promise<void> {
    await this.doc
      .send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { [ATTR.taskId]: keyOf(agentId) },
          UpdateExpression: 'SET expires_at = :now',
          ConditionExpression: 'attribute_exists(#k)',
          ExpressionAttributeNames: { '#k': ATTR.taskId },
          ExpressionAttributeValues: { ':now': 0 },
        }),
      )
      .catch((err: unknown) => {
        if ((err as { name?: string }).name !== 'ConditionalCheckFailedException') throw err;
      });
  }

  async listAlive(now: number): Promise<AgentPresence[]> {
    const keys: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: TABLE_SCHEMA.sessionIndex.name,
          KeyConditionExpression: '#p = :p',
          ExpressionAttributeNames: { '#p': TABLE_SCHEMA.sessionIndex.partitionKey },
          ExpressionAttributeValues: { ':p': AGENTS_PARTITION },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) keys.push({ [ATTR.taskId]: item[ATTR.taskId] as unknown });
      start = page.LastEvaluatedKey;
    } while (start);
    const alive: AgentPresence[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      let request:
        | Record<
            string,
            {
              Keys: Record<string, unknown>[];
              ProjectionExpression: string;
              ExpressionAttributeNames: Record<string, string>;
            }
          >
        | undefined = {
        [this.options.tableName]: {
          Keys: keys.slice(i, i + 100),
          ProjectionExpression: '#a, #e',
          ExpressionAttributeNames: { '#a': 'agent', '#e': 'expires_at' },
        },
      };
      while (request && Object.keys(request).length > 0) {
        const got = await this.doc.send(new BatchGetCommand({ RequestItems: request }));
        for (const item of got.Responses?.[this.options.tableName] ?? []) {
          if (typeof item.expires_at === 'number' && item.expires_at > now && typeof item.agent === 'string') {
            alive.push(JSON.parse(item.agent) as AgentPresence);
          }
        }
        request = got.UnprocessedKeys as typeof request;
      }
    }
    return alive.sort((a, b) => a.startedAt - b.startedAt);
  }
}

function keyOf(agentId: string): string {
  return `agent#${agentId}`;
}
