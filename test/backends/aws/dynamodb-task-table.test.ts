// DynamoDB task table behaviour beyond the contract: late index entries, item layout, request economy.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbTaskTable } from '../../../lib/backends/aws';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';

let emulators: Emulators;
let client: DynamoDBClient;
let tableName: string;
const commands: string[] = [];

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
  tableName = (await createGridResources(emulators)).tableName;
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await emulators?.stop();
});

let sessionCounter = 0;
async function seed(table: DynamoDbTaskTable, count: number): Promise<{ session: SessionRecord; ids: string[] }> {
  const session: SessionRecord = {
    sessionId: `t${Date.now().toString(36)}x${++sessionCounter}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };
  await table.createSession(session);
  const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: '{}' }, Date.now()));
  await table.createTasks(tasks);
  return { session, ids: tasks.map((t) => t.taskId) };
}

async function finish(table: DynamoDbTaskTable, taskId: string): Promise<void> {
  const [claim] = await table.claim(
    [{ taskId, attempt: 0 }],
    { owner: 'a', expiresAt: Date.now() + 60_000 },
    Date.now(),
  );
  if (claim?.status !== 'claimed') throw new Error(`could not claim ${taskId}`);
  await table.complete([
    {
      taskId,
      guard: { owner: 'a', attempt: 1 },
      outcome: { kind: 'succeeded', result: { inline: '1' } },
      at: Date.now(),
    },
  ]);
}

describe('DynamoDbTaskTable on DynamoDB Local', () => {
  it('a terminal task that shows up in the index late (within the settle window) is still listed, once', async () => {
    const reader = new DynamoDbTaskTable({ tableName, client, settleMs: 5_000 });
    // A writer whose entry becomes visible 3 s "late": its key time is 3 s behind what the reader already read.
    const lateWriter = new DynamoDbTaskTable({ tableName, client, now: () => Date.now() - 3_000 });
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
});
