// DynamoDB task table behaviour beyond the contract: late index entries, item layout, request economy.
import { BatchGetItemCommand, GetItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { DynamoDbTaskTable, noticeOutcomeOf, type NoticedTask } from '../../../lib/backends/aws';
import {
  MAX_SESSION_SHARDS,
  TABLE_SCHEMA,
  manifestCountOf,
  manifestPartition,
  sessionPartitionOf,
  sessionPartitions,
} from '../../../lib/backends/aws/table-schema';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SessionExistsError, SessionWriteUnknownError } from '../../../lib/core/errors';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';

let emulators: Emulators;
let client: DynamoDBClient;
let tableName: string;
const commands: string[] = [];
/** Write units consumed, indexes included, by every write since the last reset (reads are not counted). */
const consumed = { table: 0, indexes: {} as Record<string, number> };

beforeAll(async () => {
  emulators = await startEmulators({ dynamodb: true });
  client = emulators.clients().dynamodb;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(context.commandName ?? '?');
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = (args as { input: { ReturnConsumedCapacity?: string } }).input;
      input.ReturnConsumedCapacity ??= 'INDEXES';
      const out = await next(args);
      if (!WRITES.has(context.commandName ?? '')) return out;
      const capacity = (out.output as { ConsumedCapacity?: CapacityShape | CapacityShape[] }).ConsumedCapacity;
      for (const c of [capacity ?? []].flat()) {
        consumed.table += c.Table?.CapacityUnits ?? 0;
        for (const [name, units] of Object.entries(c.GlobalSecondaryIndexes ?? {})) {
          consumed.indexes[name] = (consumed.indexes[name] ?? 0) + (units.CapacityUnits ?? 0);
        }
      }
      return out;
    },
    { step: 'initialize', name: 'recordCapacity' },
  );
  tableName = (await createGridResources(emulators)).tableName;
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await emulators?.stop();
});

const WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand', 'BatchWriteItemCommand']);

interface CapacityShape {
  Table?: { CapacityUnits?: number };
  GlobalSecondaryIndexes?: Record<string, { CapacityUnits?: number }>;
}

function resetConsumed(): void {
  consumed.table = 0;
  consumed.indexes = {};
}

/** Every key of a session in the session index, by partition (manifests, then each shard that has keys). */
async function sessionIndexKeys(sessionId: string): Promise<Record<string, string[]>> {
  const partitions = [manifestPartition(sessionId), ...sessionPartitions(sessionId, MAX_SESSION_SHARDS)];
  const found: Record<string, string[]> = {};
  for (const partition of partitions) {
    const out = await client.send(
      new QueryCommand({
        TableName: tableName,
        IndexName: TABLE_SCHEMA.sessionIndex.name,
        KeyConditionExpression: '#part = :part',
        ExpressionAttributeNames: { '#part': 'session_part' },
        ExpressionAttributeValues: { ':part': { S: partition } },
      }),
    );
    const keys = (out.Items ?? []).map((item) => item.session_sk?.S ?? '?');
    if (keys.length > 0) found[partition] = keys;
  }
  return found;
}

let sessionCounter = 0;
/** A session of `count` pending tasks, created with `expected` as its expected size (unknown if undefined). */
/** A new session's record, with a fresh id (and `expectedTaskCount` where given). */
function newSession(expected?: number): SessionRecord {
  return {
    sessionId: `t${Date.now().toString(36)}x${++sessionCounter}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
    ...(expected !== undefined ? { expectedTaskCount: expected } : {}),
  };
}

async function seedSized(table: DynamoDbTaskTable, count: number, expected: number | undefined) {
  const session = newSession(expected);
  await table.createSession(session);
  const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: '{}' }, Date.now()));
  await table.createTasks(tasks);
  return { session, tasks, ids: tasks.map((t) => t.taskId) };
}

/** A session of `count` tasks not written yet (for `createSealedSession`). */
function sealedSessionOf(count: number) {
  const session = newSession();
  const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: '{}' }, Date.now()));
  return { session, tasks, ids: tasks.map((t) => t.taskId) };
}

function seed(table: DynamoDbTaskTable, count: number) {
  return seedSized(table, count, undefined);
}

async function finish(table: DynamoDbTaskTable, taskId: string): Promise<void> {
  const [claim] = await table.claim(
    [{ taskId, attempt: 0 }],
    { owner: 'a', expiresAt: Date.now() + 60_000 },
    Date.now(),
  );
  if (claim?.status !== 'claimed') throw new Error(`could not claim ${taskId}`);
  await succeed(table, taskId, Date.now());
}

/** Records the first attempt of `taskId`, held by owner 'a', as succeeded at `at` with `result`. */
function succeed(table: DynamoDbTaskTable, taskId: string, at: number, result = '1') {
  return table.complete([
    { taskId, guard: { owner: 'a', attempt: 1 }, outcome: { kind: 'succeeded', result: { inline: result } }, at },
  ]);
}

/**
 * A client that follows how many task ids a session-wide cancel or delete holds: ids named by the manifests it read
 * (BatchGetItem of manifest keys) and not yet ended (an UpdateItem of the task, or its DeleteRequest). `fail` may
 * refuse a request to stop the caller half-way.
 */
function holdingClient(fail: (command: string, input: unknown) => boolean = () => false) {
  const hook = { outstanding: 0, most: 0, named: 0, ended: 0 };
  const watched = emulators.clients().dynamodb;
  watched.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '?';
      const input = (args as { input: unknown }).input;
      if (fail(command, input)) throw new Error(`injected failure of a ${command}`);
      const out = await next(args);
      if (command === 'BatchGetItemCommand') {
        const items = (out.output as { Responses?: Record<string, Record<string, unknown>[]> }).Responses?.[tableName];
        for (const item of items ?? []) {
          const ids = item.task_ids as unknown[] | { L?: unknown[] } | undefined;
          hook.named += (Array.isArray(ids) ? ids.length : ids?.L?.length) ?? 0;
        }
      } else if (command === 'UpdateItemCommand') {
        hook.ended += 1;
      } else if (command === 'BatchWriteItemCommand') {
        const writes = (
          input as { RequestItems: Record<string, { DeleteRequest?: { Key: Record<string, unknown> } }[]> }
        ).RequestItems[tableName];
        for (const write of writes ?? []) {
          const key = write.DeleteRequest?.Key.task_id as string | { S?: string } | undefined;
          const id = typeof key === 'string' ? key : key?.S;
          if (id !== undefined && !id.startsWith('manifest#') && !id.startsWith('session#')) hook.ended += 1;
        }
      }
      hook.outstanding = hook.named - hook.ended;
      hook.most = Math.max(hook.most, hook.outstanding);
      return out;
    },
    { step: 'initialize', name: 'holdingHook' },
  );
  return { watched, hook };
}

/** How many of `ids` are stored (one BatchGetItem per 100). */
type RequestOptions = { abortSignal?: AbortSignal };

/**
 * Runs `intercept` in place of the next request `client` sends (`send` forwards it to the emulator); the requests
 * after it go through. Tells whether that request came.
 */
function interceptNextRequest(
  client: DynamoDBClient,
  intercept: (send: () => Promise<unknown>, options?: RequestOptions) => Promise<unknown>,
): () => boolean {
  const inner = client.config.requestHandler as unknown as {
    handle: (request: unknown, options?: RequestOptions) => Promise<unknown>;
  };
  const handle = inner.handle.bind(inner);
  let intercepted = false;
  inner.handle = async (request: unknown, options?: RequestOptions) => {
    if (intercepted) return handle(request, options);
    intercepted = true;
    return intercept(() => handle(request, {}), options);
  };
  return () => intercepted;
}

/**
 * Fails a request the way the SDK sees one that never answers: aborted once its caller gives up (`abortSignal`),
 * else as a dropped connection (which the SDK retries as is).
 */
async function failUnanswered(options?: RequestOptions): Promise<never> {
  const signal = options?.abortSignal;
  if (signal)
    await new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener('abort', resolve)));
  throw Object.assign(new Error(signal ? 'Request aborted' : 'socket hang up'), {
    name: signal ? 'AbortError' : 'Error',
    code: signal ? undefined : 'ECONNRESET',
  });
}

type RequestShape = { headers?: Record<string, string> };

/**
 * Runs `intercept` in place of every request `client` sends until `stop()` (`n` counts them from 1; `send` forwards
 * the request to the emulator; `sdkAttempt` is 1 for a call's first request, more for the SDK's own retries of it;
 * `token` is a transaction's client token), and records each request's client token (undefined but in transactions).
 */
function interceptRequests(
  client: DynamoDBClient,
  intercept: (n: number, send: () => Promise<unknown>, sdkAttempt: number, token?: string) => Promise<unknown>,
): { readonly tokens: (string | undefined)[]; stop(): void } {
  const inner = client.config.requestHandler as unknown as {
    handle: (request: unknown, options?: RequestOptions) => Promise<unknown>;
  };
  const handle = inner.handle;
  const tokens: (string | undefined)[] = [];
  inner.handle = async (request: unknown, options?: RequestOptions) => {
    const body = (request as { body?: unknown }).body;
    const text = body instanceof Uint8Array ? new TextDecoder().decode(body) : typeof body === 'string' ? body : '{}';
    const token = (JSON.parse(text) as { ClientRequestToken?: string }).ClientRequestToken;
    tokens.push(token);
    const sdkAttempt = Number(
      /attempt=(\d+)/.exec((request as RequestShape).headers?.['amz-sdk-request'] ?? '')?.[1] ?? 1,
    );
    return intercept(tokens.length, () => handle.call(inner, request, options ?? {}), sdkAttempt, token);
  };
  return { tokens, stop: () => void (inner.handle = handle) };
}

/** An error as DynamoDB answers it (a 4xx the SDK does not retry itself), with the fields the adapters read. */
function refusal(name: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, $fault: 'client', $metadata: { httpStatusCode: 400 }, ...fields });
}

async function storedCount(ids: readonly string[]): Promise<number> {
  let stored = 0;
  for (let i = 0; i < ids.length; i += 100) {
    const keys = ids.slice(i, i + 100).map((id) => ({ task_id: { S: id } }));
    const out = await client.send(
      new BatchGetItemCommand({
        RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true, ProjectionExpression: 'task_id' } },
      }),
    );
    stored += out.Responses?.[tableName]?.length ?? 0;
  }
  return stored;
}

describe('DynamoDbTaskTable on DynamoDB Local', () => {
  it('a terminal task that shows up in the index late (within the settle window) is still listed, once', async () => {
    // One fixed clock for both tables: the 3 s lateness sits inside the 5 s window however slow the steps run.
    const clock = Date.now();
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 5_000, now: () => clock });
    // A writer whose entry becomes visible 3 s "late": its key time is 3 s behind what the reader already read.
    const lateWriter = new DynamoDbTaskTable({ tableName, client, now: () => clock - 3_000 });
    const { session, ids } = await seed(reader, 3);
    await finish(reader, ids[0]!);
    const first = await reader.listTerminal(session.sessionId, undefined, 10);

    await finish(lateWriter, ids[1]!);
    await finish(reader, ids[2]!);
    const second = await reader.listTerminal(session.sessionId, first.cursor, 10);
    const third = await reader.listTerminal(session.sessionId, second.cursor, 10);

    expect(first.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    expect(second.tasks.map((t) => t.taskId).sort()).toEqual([ids[1], ids[2]].sort());
    expect(third.tasks).toEqual([]);
  });

  it('an entry later than the settle window is the documented limit: it is not listed after the watermark passed', async () => {
    let clock = Date.now();
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 1_000, now: () => clock });
    const lateWriter = new DynamoDbTaskTable({ tableName, client, now: () => clock - 60_000 });
    const { session, ids } = await seed(reader, 2);
    await finish(reader, ids[0]!);
    clock += 10_000;
    const first = await reader.listTerminal(session.sessionId, undefined, 10);

    await finish(lateWriter, ids[1]!);
    const second = await reader.listTerminal(session.sessionId, first.cursor, 10);

    expect(first.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    expect(second.tasks).toEqual([]);
    expect((await reader.countByState(session.sessionId)).succeeded).toBe(2);
  });

  it('a task whose notice carried its outcome is returned without a read, and once: not again from the index or a second delivery', async () => {
    let hints: NoticedTask[] = [];
    const reader = new DynamoDbTaskTable({ tableName, client, noticedTasks: () => hints.splice(0) });
    const { session, ids } = await seed(reader, 2);
    await finish(reader, ids[0]!);
    await finish(reader, ids[1]!);
    // What an agent's notice carries: the item its completion write returned.
    const carried = async (taskId: string): Promise<NoticedTask> => {
      const out = await client.send(
        new GetItemCommand({ TableName: tableName, Key: { task_id: { S: taskId } }, ConsistentRead: true }),
      );
      return { taskId, outcome: noticeOutcomeOf(unmarshall(out.Item!)) };
    };
    const first = await carried(ids[0]!);

    hints = [first];
    commands.length = 0;
    const noticed = await reader.listTerminal(session.sessionId, undefined, 10);
    const read = [...commands];
    hints = [first];
    const next = await reader.listTerminal(session.sessionId, noticed.cursor, 10);
    hints = [first, await carried(ids[1]!)];
    const last = await reader.listTerminal(session.sessionId, next.cursor, 10);

    expect(noticed.tasks).toEqual([await reader.getTask(ids[0]!)]);
    expect(read).toEqual([]);
    expect(next.tasks.map((t) => t.taskId)).toEqual([ids[1]]);
    expect(last.tasks).toEqual([]);
  });

  it('a cursor forgets the noticed tasks it returned once they are past the settle window (its size stays bounded)', async () => {
    const base = Date.now();
    let writerClock = base;
    let readerClock = base;
    let hints: string[] = [];
    const writer = new DynamoDbTaskTable({ tableName, client, now: () => writerClock });
    const reader = new DynamoDbTaskTable({
      tableName,
      client,
      settleMs: 1_000,
      now: () => readerClock,
      noticedTasks: () => hints.splice(0).map((taskId) => ({ taskId })),
    });
    const { session, ids } = await seed(reader, 3);
    let cursor: string | undefined;
    const returned: string[] = [];
    for (const [i, id] of ids.entries()) {
      writerClock = base + i * 10_000;
      await finish(writer, id);
      readerClock = writerClock + 5_000;
      // A notice named the task: read by key; then the handle reads on (the index) and finds nothing new.
      hints = [id];
      const noticed = await reader.listTerminal(session.sessionId, cursor, 10);
      returned.push(...noticed.tasks.map((t) => t.taskId));
      cursor = noticed.cursor ?? cursor;
      const after = await reader.listTerminal(session.sessionId, cursor, 10);
      expect(after.tasks).toEqual([]);
      cursor = after.cursor ?? cursor;
    }

    expect(returned).toEqual(ids);
    // The cursor keeps only keys within the settle window: none here, each task ended 5 s before it was read.
    const decoded = JSON.parse(Buffer.from(cursor!, 'base64url').toString('utf8')) as { s: string[] };
    expect(decoded.s).toEqual([]);
  });

  it('a completion write that hangs is sent again with a fresh finish time, so a reader that moved on still lists it', async () => {
    // Seen on a loaded twin: one UpdateItem of a batch hung until its socket timed out (~35 s), then the SDK re-sent
    // the same request, whose terminal key carried the time it was built: the reader's watermark had passed it.
    let clock = Date.now();
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 1_000, now: () => clock });
    const hungClient = emulators.clients().dynamodb;
    const writer = new DynamoDbTaskTable({ tableName, client: hungClient, settleMs: 1_000, now: () => clock });
    const { session, ids } = await seed(reader, 3);
    await finish(reader, ids[0]!);
    const [claim] = await writer.claim(
      [{ taskId: ids[1]!, attempt: 0 }],
      { owner: 'a', expiresAt: clock + 60_000 },
      clock,
    );
    expect(claim?.status).toBe('claimed');
    const first = await reader.listTerminal(session.sessionId, undefined, 10);
    let cursor = first.cursor;
    // The next request of the writer hangs: meanwhile the clock runs past the settle window and the reader reads on.
    // It ends as a dropped connection (which the SDK retries as is) or, if the caller bounded it, when aborted.
    const listedMeanwhile: string[] = [];
    const hung = interceptNextRequest(hungClient, async (_send, options) => {
      clock += 10_000;
      await finish(reader, ids[2]!);
      const meanwhile = await reader.listTerminal(session.sessionId, cursor, 10);
      listedMeanwhile.push(...meanwhile.tasks.map((t) => t.taskId));
      cursor = meanwhile.cursor;
      return failUnanswered(options);
    });

    const [written] = await succeed(writer, ids[1]!, clock, '2');
    const later = await reader.listTerminal(session.sessionId, cursor, 10);
    hungClient.destroy();

    expect(hung()).toBe(true);
    expect(written?.status).toBe('recorded');
    expect(first.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    expect(listedMeanwhile).toEqual([ids[2]]);
    expect(later.tasks.map((t) => t.taskId)).toEqual([ids[1]]);
  });

  it('a completion write that lands after it was given up on is listed and recorded, not taken for stale', async () => {
    // Seen on a loaded twin: DynamoDB Local stalled ~35 s, then applied the abandoned try with the time of that try in
    // its listing key; the next try found the task no longer running ("stale"), so no notice named it and a reader
    // whose watermark had passed that time never listed it: the client waited for it for ever.
    let clock = Date.now();
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 1_000, now: () => clock });
    const lateClient = emulators.clients().dynamodb;
    const writer = new DynamoDbTaskTable({ tableName, client: lateClient, settleMs: 1_000, now: () => clock });
    const { session, ids } = await seed(reader, 2);
    const [claim] = await writer.claim(
      [{ taskId: ids[0]!, attempt: 0 }],
      { owner: 'a', expiresAt: clock + 60_000 },
      clock,
    );
    expect(claim?.status).toBe('claimed');
    const first = await reader.listTerminal(session.sessionId, undefined, 10);
    expect(first.tasks).toEqual([]);
    let cursor = first.cursor;
    // The next request of the writer is applied, but its answer comes only after the caller gave up on it; meanwhile
    // the clock runs past the settle window and the reader reads on.
    const late = interceptNextRequest(lateClient, async (send, options) => {
      await send();
      clock += 10_000;
      await finish(reader, ids[1]!);
      cursor = (await reader.listTerminal(session.sessionId, cursor, 10)).cursor;
      return failUnanswered(options);
    });

    const [written] = await succeed(writer, ids[0]!, clock);
    const later = await reader.listTerminal(session.sessionId, cursor, 10);
    lateClient.destroy();

    expect(late()).toBe(true);
    expect(written?.status).toBe('recorded');
    expect(later.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
    expect(later.tasks[0]).toMatchObject({ state: 'succeeded' });
  });

  it('a completion whose task ended otherwise while its try was given up on stays stale', async () => {
    const clock = Date.now();
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 1_000, now: () => clock });
    const lateClient = emulators.clients().dynamodb;
    const writer = new DynamoDbTaskTable({ tableName, client: lateClient, settleMs: 1_000, now: () => clock });
    const { session, ids } = await seed(reader, 1);
    await writer.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'a', expiresAt: clock + 60_000 }, clock);
    // The try never reaches the table; the task is cancelled meanwhile.
    const late = interceptNextRequest(lateClient, async (_send, options) => {
      await reader.cancel(session.sessionId, [ids[0]!], clock);
      return failUnanswered(options);
    });

    const [written] = await succeed(writer, ids[0]!, clock);
    lateClient.destroy();

    expect(late()).toBe(true);
    expect(written?.status).toBe('stale');
    expect((await reader.getTask(ids[0]!))?.state).toBe('cancelled');
  });

  it('a claim and a completion are one UpdateItem each, with no read before or after', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 1);
    commands.length = 0;

    await finish(table, ids[0]!);

    expect(commands).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
  });

  it('a busy, stale or missing claim is classified from the failed write alone', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 2);
    await finish(table, ids[0]!);
    await table.claim([{ taskId: ids[1]!, attempt: 0 }], { owner: 'a', expiresAt: Date.now() + 60_000 }, Date.now());
    commands.length = 0;

    const outcomes = await table.claim(
      [
        { taskId: ids[0]!, attempt: 0 },
        { taskId: ids[1]!, attempt: 1 },
        { taskId: 'nope', attempt: 0 },
      ],
      { owner: 'b', expiresAt: Date.now() + 60_000 },
      Date.now(),
    );

    expect(outcomes.map((o) => o.status)).toEqual(['stale', 'busy', 'missing']);
    expect(commands).toEqual(['UpdateItemCommand', 'UpdateItemCommand', 'UpdateItemCommand']);
  });

  it('claimMessages: a duplicate of a claimed, never extended message is busy until just after its lease would expire', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 1);
    const now = Date.now();
    await table.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'a', expiresAt: now + 60_000 }, now);

    const [outcome] = await table.claimMessages(
      [{ taskId: ids[0]!, attempt: 0 }],
      { owner: 'b', expiresAt: now + 60_000 },
      now,
    );
    const [viaPort] = await table.claim(
      [{ taskId: ids[0]!, attempt: 0 }],
      { owner: 'b', expiresAt: now + 60_000 },
      now,
    );

    // Offered again just after the holder's 60 s lease would expire, not every second until then.
    expect(outcome).toEqual({ taskId: ids[0], status: 'busy', retryAfterMs: 61_000 });
    expect(viaPort).toEqual({ taskId: ids[0], status: 'busy' });
  });

  it('claimMessages: a duplicate of a claimed message whose lease expired before any extension hands back the task to reap', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 1);
    const now = Date.now();
    await table.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'a', expiresAt: now - 1_000 }, now - 2_000);

    const [outcome] = await table.claimMessages([{ taskId: ids[0]!, attempt: 0 }], { owner: 'b', expiresAt: now }, now);
    const [viaPort] = await table.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'b', expiresAt: now }, now);

    expect(outcome).toMatchObject({
      taskId: ids[0],
      status: 'expired',
      task: { taskId: ids[0], state: 'running', attempt: 1, lease: { owner: 'a', expiresAt: now - 1_000 } },
    });
    // A plain claim caller must keep the message (only the intake holding it can reap the attempt).
    expect(viaPort).toEqual({ taskId: ids[0], status: 'busy' });
  });

  it('live tasks stay out of the session index: it holds one manifest per 24 tasks, then each task once it ends', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { session, ids } = await seed(table, 30);
    const afterCreate = await sessionIndexKeys(session.sessionId);

    await finish(table, ids[5]!);
    const afterFinish = await sessionIndexKeys(session.sessionId);

    const manifests = manifestPartition(session.sessionId);
    expect(afterCreate).toEqual({ [manifests]: [`M#${ids[0]}#24`, `M#${ids[24]}#6`] });
    const shard = sessionPartitionOf(session.sessionId, ids[5]!, 4);
    expect(Object.keys(afterFinish).sort()).toEqual([manifests, shard].sort());
    expect(afterFinish[shard]).toEqual([expect.stringMatching(new RegExp(`^T#\\d{15}#\\d{9}#s#${ids[5]}$`))]);
    expect(await table.countByState(session.sessionId)).toEqual({
      pending: 29,
      running: 0,
      succeeded: 1,
      failed: 0,
      cancelled: 0,
    });
  });

  it('a short task costs four write units from creation to success: its lease never enters the lease index', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 1);
    resetConsumed();

    await finish(table, ids[0]!);

    // Claim: the item. Completion: the item and the session-index entry arriving. (Creation adds one for the item
    // and, per 24 tasks, a manifest.)
    expect(consumed.table).toBe(2);
    expect(consumed.indexes).toEqual({ [TABLE_SCHEMA.sessionIndex.name]: 1 });
  });

  it('a lease enters the lease index at its first extension and leaves it at the completion', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { ids } = await seed(table, 1);
    const taskId = ids[0]!;
    await table.claim([{ taskId, attempt: 0 }], { owner: 'a', expiresAt: 5_000 }, 1);
    const beforeExtension = await table.findExpiredLeases(10_000, 100_000);
    resetConsumed();

    await table.extendLeases([{ taskId, owner: 'a', attempt: 1 }], 6_000);
    const afterExtension = await table.findExpiredLeases(10_000, 100_000);
    const extensionUnits = { ...consumed.indexes };
    await succeed(table, taskId, 7_000);

    expect(beforeExtension.map((t) => t.taskId)).not.toContain(taskId);
    expect(afterExtension.map((t) => t.taskId)).toContain(taskId);
    expect(extensionUnits).toEqual({ [TABLE_SCHEMA.leaseIndex.name]: 1 });
    expect(await table.findExpiredLeases(10_000, 100_000)).not.toContainEqual(expect.objectContaining({ taskId }));
  });

  it('cancelling a session writes only to its live tasks, found through its manifests', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { session, ids } = await seed(table, 50);
    for (const id of ids.slice(0, 10)) await finish(table, id);
    resetConsumed();

    const changed = await table.cancel(session.sessionId);

    expect(changed).toBe(40);
    // 40 cancellations of one item and one index entry each: no write to a finished task.
    expect(consumed.indexes[TABLE_SCHEMA.sessionIndex.name]).toBe(40);
    expect((await table.countByState(session.sessionId)).cancelled).toBe(40);
  });

  it('deleting a session removes its manifests too', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { session, ids } = await seed(table, 30);
    await finish(table, ids[0]!);

    await table.deleteSession(session.sessionId);

    expect(await sessionIndexKeys(session.sessionId)).toEqual({});
    expect(await table.getTask(ids[29]!)).toBeUndefined();
  });

  it('a session deleted right after its write, while the session index does not show its manifest yet, leaves no task', async () => {
    const lagging = emulators.clients().dynamodb;
    const { session, tasks, ids } = sealedSessionOf(3);
    // No emulator's index lags: this middleware answers the session's manifest partition as an index that has not
    // caught up with a write of a moment before.
    lagging.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args as { input: unknown }).input;
        if (
          context.commandName === 'QueryCommand' &&
          JSON.stringify(input).includes(manifestPartition(session.sessionId))
        ) {
          return { output: { Items: [], Count: 0, $metadata: {} }, response: undefined };
        }
        return next(args);
      },
      { step: 'initialize', name: 'laggingIndex' },
    );
    const table = new DynamoDbTaskTable({ tableName, client: lagging });
    await table.createSealedSession(session, tasks);

    await table.deleteSession(session.sessionId);

    expect(await storedCount([...ids, `manifest#${session.sessionId}#${ids[0]!}`])).toBe(0);
    expect(await table.getSession(session.sessionId)).toBeUndefined();
    lagging.destroy();
  });

  it('items a BatchWriteItem leaves unprocessed are written again until none is left', async () => {
    const throttled = emulators.clients().dynamodb;
    const batchSizes: number[] = [];
    let shortened = 0;
    // No emulator throttles: this middleware lets the first two batch writes store only their first half and
    // answers the rest as UnprocessedItems, as DynamoDB does when a partition is over its throughput.
    throttled.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'BatchWriteItemCommand') return next(args);
        const input = (args as { input: { RequestItems: Record<string, unknown[]> } }).input;
        const all = input.RequestItems[tableName] ?? [];
        batchSizes.push(all.length);
        if (shortened >= 2 || all.length < 2) return next(args);
        shortened++;
        const half = Math.ceil(all.length / 2);
        input.RequestItems = { [tableName]: all.slice(0, half) };
        const out = await next(args);
        (out.output as { UnprocessedItems?: Record<string, unknown[]> }).UnprocessedItems = {
          [tableName]: all.slice(half),
        };
        return out;
      },
      { step: 'initialize', name: 'throttledBatchWrites' },
    );
    const table = new DynamoDbTaskTable({ tableName, client: throttled, retry: { sleep: async () => undefined } });

    const { ids } = await seed(table, 30);
    const stored = await Promise.all(ids.map((id) => table.getTask(id)));

    expect(shortened).toBe(2);
    expect(batchSizes.length).toBeGreaterThan(2);
    expect(stored.map((t) => t?.taskId)).toEqual(ids);
    expect(stored.every((t) => t?.state === 'pending')).toBe(true);
  });

  it('a terminal task read from a lagging replica is read again consistently, so it is listed as it ended', async () => {
    const lagging = emulators.clients().dynamodb;
    // No emulator lags: this middleware makes every eventually consistent read return the task as still running.
    lagging.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName !== 'BatchGetItemCommand') return out;
        const input = (args as { input: { RequestItems?: Record<string, { ConsistentRead?: boolean }> } }).input;
        const request = input.RequestItems?.[tableName];
        const responses = (out.output as { Responses?: Record<string, Record<string, { S?: string }>[]> }).Responses?.[
          tableName
        ];
        if (request && request.ConsistentRead !== true)
          for (const item of responses ?? []) item.state = { S: 'running' };
        return out;
      },
      { step: 'initialize', name: 'laggingReplica' },
    );
    const table = new DynamoDbTaskTable({ tableName, client: lagging });
    const { session, ids } = await seed(table, 1);
    await finish(table, ids[0]!);

    const page = await table.listTerminal(session.sessionId, undefined, 10);

    expect(page.tasks.map((t) => [t.taskId, t.state])).toEqual([[ids[0], 'succeeded']]);
    lagging.destroy();
  });

  it('a large session spreads its results over index partitions; pages merge them back in completion order', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { session, tasks } = await seedSized(table, 40, 40_000);
    const order = [...tasks.keys()].sort((a, b) => ((a * 7919) % 40) - ((b * 7919) % 40));
    for (const i of order) await finish(table, tasks[i]!.taskId);

    const listed: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 20 && listed.length < 40; page++) {
      const next = await table.listTerminal(session.sessionId, cursor, 7);
      listed.push(...next.tasks.map((t) => t.taskId));
      cursor = next.cursor;
    }
    const partitions = Object.keys(await sessionIndexKeys(session.sessionId));

    expect(partitions.length).toBeGreaterThan(4);
    expect(listed).toEqual(order.map((i) => tasks[i]!.taskId));
    expect((await table.countByState(session.sessionId)).succeeded).toBe(40);
  });

  it('a small session is read with one index query per page', async () => {
    const table = new DynamoDbTaskTable({ tableName, client });
    const { session, tasks } = await seedSized(table, 3, 3);
    for (const task of tasks) await finish(table, task.taskId);
    commands.length = 0;

    const page = await table.listTerminal(session.sessionId, undefined, 10);

    expect(page.tasks).toHaveLength(3);
    expect(commands.filter((c) => c === 'QueryCommand')).toHaveLength(1);
  });

  it('pages on past a full page of tasks already returned that are still in the settle window', async () => {
    const table = new DynamoDbTaskTable({ tableName, client, settleMs: 60_000 });
    const { session, ids } = await seedSized(table, 1200, 1200);
    const owner = 'bulk';
    await table.claim(
      ids.map((taskId) => ({ taskId, attempt: 0 })),
      { owner, expiresAt: Date.now() + 60_000 },
      Date.now(),
    );
    await table.complete(
      ids.map((taskId) => ({
        taskId,
        guard: { owner, attempt: 1 },
        outcome: { kind: 'succeeded' as const, result: { inline: '1' } },
        at: Date.now(),
      })),
    );

    const first = await table.listTerminal(session.sessionId, undefined, 1000);
    const second = await table.listTerminal(session.sessionId, first.cursor, 1000);
    const third = await table.listTerminal(session.sessionId, second.cursor, 1000);

    expect([first.tasks.length, second.tasks.length, third.tasks.length]).toEqual([1000, 200, 0]);
    expect(new Set([...first.tasks, ...second.tasks].map((t) => t.taskId)).size).toBe(1200);
  }, 60_000);
  it('cancelling a large session holds one page of task ids at a time, and cancels every live task once', async () => {
    const { watched, hook } = holdingClient();
    const table = new DynamoDbTaskTable({ tableName, client: watched, sessionPageTasks: 240 });
    const { session, ids } = await seed(table, 2000);
    for (const id of ids.slice(0, 5)) await finish(table, id);
    Object.assign(hook, { outstanding: 0, most: 0, named: 0, ended: 0 });

    const changed = await table.cancel(session.sessionId);

    expect(changed).toBe(1995);
    // 2,000 ids over manifests of 24: ten manifests (240 ids) a page, each page ended before the next is read (the
    // 5 finished tasks are named but never written, so they stay counted).
    expect(hook.named).toBe(2000);
    expect(hook.most).toBeLessThanOrEqual(240 + 5);
    expect(await table.countByState(session.sessionId)).toMatchObject({ pending: 0, running: 0, cancelled: 1995 });
    expect(await table.cancel(session.sessionId)).toBe(0);
    watched.destroy();
  }, 120_000);

  it('deleting a large session holds one page of task ids at a time, and deletes every task and manifest', async () => {
    const { watched, hook } = holdingClient();
    const table = new DynamoDbTaskTable({ tableName, client: watched, sessionPageTasks: 240 });
    const { session, ids } = await seed(table, 2000);
    Object.assign(hook, { outstanding: 0, most: 0, named: 0, ended: 0 });

    await table.deleteSession(session.sessionId);

    expect(hook.named).toBe(2000);
    expect(hook.ended).toBe(2000);
    expect(hook.most).toBeLessThanOrEqual(240);
    expect(await storedCount(ids)).toBe(0);
    expect(await sessionIndexKeys(session.sessionId)).toEqual({});
    expect(await table.getSession(session.sessionId)).toBeUndefined();
    watched.destroy();
  }, 120_000);

  it('a delete that fails half-way leaves every task it kept named by a manifest, and runs again to the end', async () => {
    let manifestDeletes = 0;
    const { watched } = holdingClient((command, input) => {
      if (command !== 'BatchWriteItemCommand') return false;
      const writes = (input as { RequestItems: Record<string, { DeleteRequest?: { Key: Record<string, unknown> } }[]> })
        .RequestItems[tableName];
      const key = writes?.[0]?.DeleteRequest?.Key.task_id as string | { S?: string } | undefined;
      const id = typeof key === 'string' ? key : key?.S;
      return id?.startsWith('manifest#') === true && ++manifestDeletes === 3;
    });
    const table = new DynamoDbTaskTable({
      tableName,
      client: watched,
      sessionPageTasks: 240,
      retry: { maxAttempts: 1 },
    });
    const { session, ids } = await seed(table, 1000);

    await expect(table.deleteSession(session.sessionId)).rejects.toThrow(/injected failure/);

    const kept = await storedCount(ids);
    const listed = (await sessionIndexKeys(session.sessionId))[manifestPartition(session.sessionId)] ?? [];
    const named = listed.reduce((n, sk) => n + (manifestCountOf(sk) ?? 0), 0);
    // Two pages (480 tasks) went with their manifests; the third page's tasks went, its manifests did not.
    expect(kept).toBe(1000 - 720);
    expect(named).toBe(1000 - 480);
    expect(await table.getSession(session.sessionId)).toBeDefined();

    await table.deleteSession(session.sessionId);

    expect(await storedCount(ids)).toBe(0);
    expect(await sessionIndexKeys(session.sessionId)).toEqual({});
    expect(await table.getSession(session.sessionId)).toBeUndefined();
    watched.destroy();
  }, 120_000);

  it('the retention sweep gives the manifests of a large session their TTL a page at a time', async () => {
    const watched = emulators.clients().dynamodb;
    // Manifest TTL writes since the last query of the session index, and the most of them in a row.
    let run = 0;
    let longest = 0;
    let manifestTtls = 0;
    watched.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args as { input: { Key?: { task_id?: unknown } } }).input;
        const key = input.Key?.task_id as string | { S?: string } | undefined;
        const id = typeof key === 'string' ? key : key?.S;
        if (context.commandName === 'QueryCommand') run = 0;
        if (context.commandName === 'UpdateItemCommand' && id?.startsWith('manifest#') === true) {
          manifestTtls += 1;
          longest = Math.max(longest, ++run);
        }
        return next(args);
      },
      { step: 'initialize', name: 'manifestTtlRuns' },
    );
    const table = new DynamoDbTaskTable({ tableName, client: watched, sessionPageTasks: 240 });
    const { session } = await seed(table, 2000);
    await table.cancel(session.sessionId);
    await table.sealSession(session.sessionId, 2000);

    const { expiring } = await table.expireFinishedSessions();

    expect(expiring).toContain(session.sessionId);
    // 2,000 tasks: 84 manifests, read ten a query.
    expect(manifestTtls).toBe(84);
    expect(longest).toBeLessThanOrEqual(10);
    watched.destroy();
  }, 120_000);

  describe('createSealedSession', () => {
    const sealedSession = sealedSessionOf;
    const dropped = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    /** A table whose own resends do not wait (and stop after `maxAttempts` where given). */
    const resendingTable = (maxAttempts?: number) =>
      new DynamoDbTaskTable({
        tableName,
        client,
        retry: { ...(maxAttempts !== undefined ? { maxAttempts } : {}), sleep: async () => undefined },
      });
    /** What writing the session throws (undefined if nothing), with `intercepted` stopped after it. */
    const errorOfWrite = async (
      table: DynamoDbTaskTable,
      session: SessionRecord,
      tasks: ReturnType<typeof sealedSessionOf>['tasks'],
      intercepted: { stop(): void },
    ): Promise<unknown> => {
      try {
        await table.createSealedSession(session, tasks);
        return undefined;
      } catch (e) {
        return e;
      } finally {
        intercepted.stop();
      }
    };

    it('writes the session, sealed, its manifest and its tasks in one request, which a delete finds again', async () => {
      const table = new DynamoDbTaskTable({ tableName, client });
      const { session, tasks, ids } = sealedSession(3);
      commands.length = 0;

      await table.createSealedSession(session, tasks);

      expect(commands).toEqual(['TransactWriteItemsCommand']);
      expect((await table.getSession(session.sessionId))?.taskCount).toBe(3);
      expect((await table.getTask(ids[2]!))?.state).toBe('pending');
      expect(await table.countByState(session.sessionId)).toMatchObject({ pending: 3 });
      await table.deleteSession(session.sessionId);
      expect(await storedCount(ids)).toBe(0);
      expect(await sessionIndexKeys(session.sessionId)).toEqual({});
    });

    it('a try that landed but whose answer was lost is answered as a success when sent again', async () => {
      const table = new DynamoDbTaskTable({ tableName, client });
      const { session, tasks, ids } = sealedSession(1);
      const intercepted = interceptNextRequest(client, async (send) => {
        await send();
        throw dropped();
      });

      await table.createSealedSession(session, tasks);

      expect(intercepted()).toBe(true);
      expect(await storedCount(ids)).toBe(1);
    });

    it('a resend that meets its first try still under way goes again under the same token, and that try lands once', async () => {
      const table = resendingTable();
      const { session, tasks, ids } = sealedSession(2);
      let first: Promise<unknown> | undefined;
      const intercepted = interceptRequests(client, async (n, send, sdkAttempt) => {
        if (n === 1) {
          // Sent, but its answer is lost: the SDK sends it again while it is still under way.
          first = send();
          first.catch(() => undefined);
          throw dropped();
        }
        if (sdkAttempt > 1) {
          // DynamoDB refuses the SDK's resends while the first try runs (that try lands meanwhile), until the SDK
          // gives up: the table's own resend is the next call's first request.
          await first;
          throw refusal('TransactionInProgressException');
        }
        return send();
      });

      try {
        await table.createSealedSession(session, tasks);
      } finally {
        intercepted.stop();
      }

      expect(intercepted.tokens.length).toBeGreaterThanOrEqual(3);
      expect(new Set(intercepted.tokens).size).toBe(1);
      expect(await storedCount(ids)).toBe(2);
      expect((await table.getSession(session.sessionId))?.taskCount).toBe(2);
    });

    it('a write whose first try went unanswered and every resend was refused is settled by a fence: not landed, nothing left', async () => {
      const table = resendingTable(3);
      const { session, tasks, ids } = sealedSession(1);
      commands.length = 0;
      const intercepted = interceptRequests(client, async (n, send, _attempt, token) => {
        if (token === undefined) return send();
        // The first try may have landed (or may yet land): refusals of the resends do not tell it did not.
        if (n === 1) throw dropped();
        throw refusal('TransactionCanceledException', { CancellationReasons: [{ Code: 'ThrottlingError' }] });
      });

      const error = await errorOfWrite(table, session, tasks, intercepted);

      expect(error).toBeDefined();
      expect(error).not.toBeInstanceOf(SessionWriteUnknownError);
      expect(error).not.toBeInstanceOf(SessionExistsError);
      const transactions = intercepted.tokens.filter((t) => t !== undefined);
      expect(transactions).toHaveLength(4);
      expect(new Set(transactions).size).toBe(1);
      // The fence (a PutItem, then its DeleteItem) went, and nothing is left of the session.
      expect(commands).toEqual(expect.arrayContaining(['PutItemCommand', 'DeleteItemCommand']));
      expect(await storedCount([...ids, `session#${session.sessionId}`])).toBe(0);
      expect(await table.getSession(session.sessionId)).toBeUndefined();
    });

    it('a write that landed but no answer of which came back is settled by a fence: the session is there', async () => {
      const table = resendingTable(2);
      const { session, tasks, ids } = sealedSession(2);
      const intercepted = interceptRequests(client, async (n, send, _attempt, token) => {
        if (token === undefined) return send();
        if (n === 1) await send();
        throw dropped();
      });

      try {
        await expect(table.createSealedSession(session, tasks)).rejects.toBeInstanceOf(SessionExistsError);
      } finally {
        intercepted.stop();
      }

      expect(await storedCount(ids)).toBe(2);
      expect((await table.getSession(session.sessionId))?.taskCount).toBe(2);
    });

    it("a fence whose put was answered only on the SDK's retry (refused: the key holds it) is taken as in", async () => {
      const table = resendingTable(2);
      const { session, tasks, ids } = sealedSession(1);
      let fences = 0;
      const intercepted = interceptRequests(client, async (_n, send, _attempt, token) => {
        if (token !== undefined) throw dropped();
        // The fence's first put lands, its answer is lost; the SDK's retry meets the fence itself.
        if (++fences === 1) {
          await send();
          throw dropped();
        }
        return send();
      });

      const error = await errorOfWrite(table, session, tasks, intercepted);

      expect(error).toBeDefined();
      expect(error).not.toBeInstanceOf(SessionExistsError);
      expect(error).not.toBeInstanceOf(SessionWriteUnknownError);
      expect(await storedCount([...ids, `session#${session.sessionId}`])).toBe(0);
    });

    it('a write whose fence cannot be written either rejects with SessionWriteUnknownError, naming how to remove it', async () => {
      const table = resendingTable(2);
      const { session, tasks, ids } = sealedSession(1);
      const intercepted = interceptRequests(client, async () => {
        throw dropped();
      });

      const error = await errorOfWrite(table, session, tasks, intercepted);

      expect(error).toBeInstanceOf(SessionWriteUnknownError);
      expect(String(error)).toContain(`htcgrid delete ${session.sessionId} --force`);
      expect(await storedCount(ids)).toBe(0);
    });

    it('a transaction cancelled for throttling is sent again', async () => {
      const table = resendingTable();
      const { session, tasks, ids } = sealedSession(1);
      const intercepted = interceptRequests(client, async (n, send) => {
        if (n === 1) {
          throw refusal('TransactionCanceledException', {
            CancellationReasons: [{ Code: 'None' }, { Code: 'ThrottlingError' }, { Code: 'None' }],
          });
        }
        return send();
      });

      try {
        await table.createSealedSession(session, tasks);
      } finally {
        intercepted.stop();
      }

      expect(intercepted.tokens).toHaveLength(2);
      expect(await storedCount(ids)).toBe(1);
    });

    it('refused for taken keys after a try of unknown outcome: SessionExistsError, the session known as written', async () => {
      const { session, tasks } = sealedSession(1);
      // The keys taken meanwhile (as by that try, landed past the token's ten minutes).
      await new DynamoDbTaskTable({ tableName, client }).createSealedSession(session, tasks);
      const table = resendingTable();
      const intercepted = interceptRequests(client, async (n, send) => {
        if (n === 1) throw dropped();
        return send();
      });

      try {
        await expect(table.createSealedSession(session, tasks)).rejects.toBeInstanceOf(SessionExistsError);
      } finally {
        intercepted.stop();
      }

      // Its index shards were remembered: a count reads the session item once (its retention), not twice.
      commands.length = 0;
      await table.countByState(session.sessionId);
      expect(commands.filter((c) => c === 'GetItemCommand')).toHaveLength(1);
    });

    it("an agent's claim looks up the session's notice queue with a consistent read", async () => {
      const reads: { key: unknown; consistent: unknown }[] = [];
      const watched = emulators.clients().dynamodb;
      watched.middlewareStack.add(
        (next, context) => async (args) => {
          const input = (args as { input: { Key?: unknown; ConsistentRead?: unknown } }).input;
          if (context.commandName === 'GetItemCommand')
            reads.push({ key: input.Key, consistent: input.ConsistentRead });
          return next(args);
        },
        { step: 'initialize', name: 'recordReads' },
      );
      const sqs = new SQSClient({ region: 'us-east-1' });
      const agent = new DynamoDbTaskTable({ tableName, client: watched, noticeSender: { client: sqs } });
      const { session, tasks, ids } = sealedSession(1);
      await new DynamoDbTaskTable({
        tableName,
        client,
        noticeQueue: async () => 'https://queue.example/notices',
      }).createSealedSession(session, tasks);

      const [claim] = await agent.claimMessages(
        [{ taskId: ids[0]!, attempt: 0 }],
        { owner: 'a', expiresAt: Date.now() + 60_000 },
        Date.now(),
      );
      await agent.notices!.flush([session.sessionId]);

      expect(claim?.status).toBe('claimed');
      expect(reads).toEqual([{ key: { task_id: expect.stringContaining(session.sessionId) }, consistent: true }]);
      await agent.close();
      sqs.destroy();
      watched.destroy();
    });

    it('never overwrites: writing a session again is refused and leaves its running task running', async () => {
      const table = new DynamoDbTaskTable({ tableName, client });
      const { session, tasks, ids } = sealedSession(2);
      await table.createSealedSession(session, tasks);
      const [claim] = await table.claim(
        [{ taskId: ids[0]!, attempt: 0 }],
        { owner: 'a', expiresAt: Date.now() + 60_000 },
        Date.now(),
      );
      expect(claim?.status).toBe('claimed');

      await expect(table.createSealedSession(session, tasks)).rejects.toBeInstanceOf(SessionExistsError);

      expect((await table.getTask(ids[0]!))?.state).toBe('running');
      expect((await table.getTask(ids[1]!))?.state).toBe('pending');
    });

    it('more tasks than its limits is refused, naming them and the way to write a larger session', async () => {
      const table = new DynamoDbTaskTable({ tableName, client });
      const { session, tasks } = sealedSession(table.sealedSessionLimits.tasks + 1);

      await expect(table.createSealedSession(session, tasks)).rejects.toThrow(
        /takes 1 to 24 tasks .* \(got 25 tasks, .*createSession and createTasks/,
      );
    });
  });

  it('sessionPageTasks below one manifest is refused with the bound and the default', () => {
    expect(() => new DynamoDbTaskTable({ tableName, client, sessionPageTasks: 10 })).toThrow(
      /sessionPageTasks must be a whole number of at least 24.*got 10.*default 1008/,
    );
  });
});
