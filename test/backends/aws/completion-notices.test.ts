// Completion notices on the emulators: an agent's completion wakes the waiting client through the client's own SQS
// queue, long before the client's next poll; a client that cannot create its queue polls with back-off as before.
import { GetQueueUrlCommand, QueueDoesNotExist } from '@aws-sdk/client-sqs';
import { openAwsBackends, type AwsBackends } from '../../../lib/backends/aws';
import { GridClient } from '../../../lib/client';
import { compileConfig } from '../../../lib/core/config';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';
import { collect } from '../../support/local-grid';

const MINUTE = 60_000;
const config = compileConfig({}, 'test');

let emulators: Emulators;
beforeAll(async () => {
  emulators = await startEmulators();
}, 120_000);
afterAll(async () => {
  await emulators?.stop();
});

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

function open(
  resources: AwsGridResources,
  options: { receiveNotices?: boolean } = {},
  clients = emulators.clients(),
): AwsBackends {
  const backends = openAwsBackends(resources, { clients, ...options });
  opened.push({
    close: async () => {
      await backends.close();
      clients.dynamodb.destroy();
      clients.sqs.destroy();
      clients.s3.destroy();
    },
  });
  return backends;
}

/** Runs the one queued task to success as an agent does (receive, read the session, claim, complete). */
async function runOneTask(agent: AwsBackends): Promise<void> {
  const [received] = await agent.queue.receive(1, { waitMs: 10_000, visibilityMs: MINUTE });
  const { taskId, sessionId, attempt } = received!.message;
  await agent.table.getSession(sessionId);
  const [claim] = await agent.table.claim(
    [{ taskId, attempt }],
    { owner: 'agent-1', expiresAt: Date.now() + MINUTE },
    Date.now(),
  );
  if (claim?.status !== 'claimed') throw new Error(`claim ${claim?.status}`);
  await agent.table.complete([
    {
      taskId,
      guard: { owner: 'agent-1', attempt: claim.task.attempt },
      outcome: { kind: 'succeeded', result: { inline: '42' } },
      at: Date.now(),
    },
  ]);
  await agent.queue.ack([received!.receipt]);
}

describe('completion notices', () => {
  it("a finished task wakes a results handle through its client's notice queue, a minute before its next poll", async () => {
    const resources = await createGridResources(emulators);
    const clientSide = open(resources, { receiveNotices: true });
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }]);
    const queueUrl = await clientSide.changes!.queueUrl();
    expect(queueUrl).toContain(resources.noticeQueuePrefix);
    let looks = 0;
    const listTerminal = clientSide.table.listTerminal.bind(clientSide.table);
    clientSide.table.listTerminal = (...args) => {
      looks++;
      return listTerminal(...args);
    };
    const results = collect(handle.results());
    // The handle looked, found nothing and waits (its next poll a minute away); the agent runs the task.
    while (looks === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const before = clientSide.changes!.version;
    await runOneTask(agentSide);
    expect((await results).map((r) => [r.state, r.result])).toEqual([['succeeded', 42]]);
    expect(clientSide.changes!.version).toBeGreaterThan(before);
    expect(clientSide.changes!.live).toBe(true);

    // Closing the client deletes its queue.
    await clientSide.close();
    const sqs = emulators.clients().sqs;
    try {
      const name = new URL(queueUrl!).pathname.split('/').pop()!;
      await expect(sqs.send(new GetQueueUrlCommand({ QueueName: name }))).rejects.toBeInstanceOf(QueueDoesNotExist);
    } finally {
      sqs.destroy();
    }
  }, 30_000);

  it("reads a noticed task by key: a one-task session's result costs one BatchGetItem after the notice, no index Query", async () => {
    const resources = await createGridResources(emulators);
    const clients = emulators.clients();
    const commands: string[] = [];
    clients.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'recordCommands' },
    );
    const clientSide = open(resources, { receiveNotices: true }, clients);
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }]);
    const results = collect(handle.results());
    // The handle looked once (a Query, nothing yet) and waits for the notice.
    while (!commands.includes('QueryCommand')) await new Promise((resolve) => setTimeout(resolve, 10));
    commands.length = 0;

    await runOneTask(agentSide);

    expect((await results).map((r) => [r.state, r.result])).toEqual([['succeeded', 42]]);
    expect(commands).toEqual(['BatchGetItemCommand']);
  }, 30_000);

  it('returns each task of a session once whether a notice or the index brought it', async () => {
    const resources = await createGridResources(emulators);
    const clientSide = open(resources, { receiveNotices: true });
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const results = collect(handle.results());

    for (let i = 0; i < 3; i++) await runOneTask(agentSide);

    const ids = (await results).map((r) => r.taskId).sort();
    expect(ids).toEqual([0, 1, 2].map((i) => `${handle.sessionId}_${i}`));
  }, 30_000);

  it('says whether a results page held every task that had ended, so a handle reads on only when more wait', async () => {
    const resources = await createGridResources(emulators);
    const clientSide = open(resources);
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }, { n: 2 }, { n: 3 }]);
    for (let i = 0; i < 2; i++) await runOneTask(agentSide);

    const first = await clientSide.table.listTerminal(handle.sessionId, undefined, 1);
    const rest = await clientSide.table.listTerminal(handle.sessionId, first.cursor, 1000);

    expect([first.tasks.length, first.more]).toEqual([1, true]);
    expect([rest.tasks.length, rest.more]).toEqual([1, false]);
  }, 30_000);

  it('a client that cannot create its notice queue submits all the same and finds results by polling', async () => {
    const resources = await createGridResources(emulators);
    // Not a valid SQS queue name: CreateQueue fails, as it does without the stack's grant.
    const clientSide = open({ ...resources, noticeQueuePrefix: 'not a queue name!' }, { receiveNotices: true });
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: 1000, minPollIntervalMs: 50 });
    const handle = await client.submit([{ n: 1 }]);
    expect(clientSide.changes!.live).toBe(false);
    const results = collect(handle.results());
    await runOneTask(agentSide);
    expect((await results).map((r) => r.state)).toEqual(['succeeded']);
  }, 30_000);
});
