// Finished sessions expire in AWS: the reaper's sweep gives a sealed session with no live task the TTL of its tasks
// (on its item and its manifests), never a running one, and readers treat an item past its TTL as gone (DynamoDB
// deletes expired items up to days late). On DynamoDB Local with an injected clock.
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoDbTaskTable, manifestPartition, sessionItemKey, TABLE_SCHEMA, ATTR } from '../../../lib/backends/aws';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import { UnknownSessionError } from '../../../lib/core/errors';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';

const suite = useEmulators();
const RETENTION_SEC = 3600;
let resources: AwsGridResources;
let doc: DynamoDBDocumentClient;
let clock = Date.now();
let table: DynamoDbTaskTable;

beforeAll(async () => {
  resources = await createGridResources(suite.emulators);
  doc = DynamoDBDocumentClient.from(suite.emulators.clients().dynamodb);
}, 60_000);
beforeEach(() => {
  clock = Date.now();
  table = new DynamoDbTaskTable({
    tableName: resources.tableName,
    client: suite.emulators.clients().dynamodb,
    retentionSec: RETENTION_SEC,
    now: () => clock,
  });
  suite.closeAfterTest(table);
});
afterAll(() => doc?.destroy());

let counter = 0;
/** A sealed session of `count` pending tasks (30 tasks: two manifests). */
async function sealedSession(count: number): Promise<SessionRecord> {
  const session: SessionRecord = {
    sessionId: `r${Date.now().toString(36)}x${++counter}`,
    createdAt: clock,
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };
  await table.createSession(session);
  await table.createTasks(Array.from({ length: count }, (_, i) => newTask(session, i, { inline: '{}' }, clock)));
  await table.sealSession(session.sessionId, count);
  return session;
}

/** The `ttl` of the session item and of each manifest item. */
async function ttls(sessionId: string): Promise<{ session: unknown; manifests: unknown[] }> {
  const own = await doc.send(
    new GetCommand({ TableName: resources.tableName, Key: { task_id: sessionItemKey(sessionId) } }),
  );
  const keys = await doc.send(
    new QueryCommand({
      TableName: resources.tableName,
      IndexName: TABLE_SCHEMA.sessionIndex.name,
      KeyConditionExpression: '#p = :p',
      ExpressionAttributeNames: { '#p': ATTR.sessionPart },
      ExpressionAttributeValues: { ':p': manifestPartition(sessionId) },
    }),
  );
  const manifests = await Promise.all(
    (keys.Items ?? []).map(async (k) => {
      const out = await doc.send(new GetCommand({ TableName: resources.tableName, Key: { task_id: k.task_id } }));
      return out.Item?.ttl;
    }),
  );
  return { session: own.Item?.ttl, manifests };
}

async function listedIds(): Promise<string[]> {
  return (await table.listSessions(undefined, 1000)).items.map((s) => s.sessionId);
}

describe('finished sessions expire after task_retention_sec in AWS', () => {
  it('the sweep gives a finished session the TTL on its item and manifests, never a running one', async () => {
    const finished = await sealedSession(30);
    const running = await sealedSession(30);
    await table.cancel(finished.sessionId, undefined, clock);
    await table.cancel(running.sessionId, [`${running.sessionId}_0`], clock);

    const swept = await table.expireFinishedSessions();

    expect(swept.expiring).toContain(finished.sessionId);
    expect(swept.expiring).not.toContain(running.sessionId);
    const want = Math.floor(clock / 1000) + RETENTION_SEC;
    const done = await ttls(finished.sessionId);
    expect(done.session).toBe(want);
    expect(done.manifests).toEqual([want, want]);
    const live = await ttls(running.sessionId);
    expect(live.session).toBeUndefined();
    expect(live.manifests).toEqual([undefined, undefined]);

    // A second sweep leaves the TTL alone (it is not pushed back).
    clock += 60_000;
    expect((await table.expireFinishedSessions()).expiring).not.toContain(finished.sessionId);
    expect((await ttls(finished.sessionId)).session).toBe(want);
  });

  it('walks every kept session in batches of 100, and stops when told (the Lambda nears its timeout)', async () => {
    const sessions = [];
    for (let i = 0; i < 105; i++) sessions.push(await sealedSession(0));

    expect((await table.expireFinishedSessions(() => true)).examined).toBe(0);
    expect((await ttls(sessions[0]!.sessionId)).session).toBeUndefined();

    const swept = await table.expireFinishedSessions();
    expect(swept.examined).toBeGreaterThanOrEqual(105);
    expect(swept.expiring).toEqual(expect.arrayContaining(sessions.map((s) => s.sessionId)));
  });

  it('tasks that expired before their session (their TTL counts from their own finish) are not counted as pending', async () => {
    const session = await sealedSession(3);
    await table.cancel(session.sessionId, undefined, clock);
    await table.expireFinishedSessions();
    // DynamoDB's TTL deletes the first task (it finished long before the session's sweep).
    await doc.send(new DeleteCommand({ TableName: resources.tableName, Key: { task_id: `${session.sessionId}_0` } }));

    expect(await table.countByState(session.sessionId)).toMatchObject({ pending: 0, running: 0, cancelled: 2 });
  });

  it('an unsealed session (still being submitted) gets no TTL', async () => {
    const session = await sealedSession(0);
    const unsealed: SessionRecord = { ...session, sessionId: `${session.sessionId}u` };
    await table.createSession(unsealed);

    expect((await table.expireFinishedSessions()).expiring).not.toContain(unsealed.sessionId);
    expect((await ttls(unsealed.sessionId)).session).toBeUndefined();
  });

  it('a session past its TTL reads as unknown, counts nothing and leaves the list before DynamoDB deletes it', async () => {
    const session = await sealedSession(3);
    await table.cancel(session.sessionId, undefined, clock);
    await table.expireFinishedSessions();
    expect(await table.getSession(session.sessionId)).toBeDefined();
    expect(await listedIds()).toContain(session.sessionId);

    clock += (RETENTION_SEC + 1) * 1000;

    expect(await table.getSession(session.sessionId)).toBeUndefined();
    expect(await table.countByState(session.sessionId)).toMatchObject({ pending: 0, running: 0, cancelled: 0 });
    expect(await listedIds()).not.toContain(session.sessionId);
    expect(new UnknownSessionError(session.sessionId).message).toMatch(/expired/);
  });
});
