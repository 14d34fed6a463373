// Completion notices on the emulators: an agent's completion wakes the waiting client through the client's own SQS
// queue, long before the client's next poll; a client that cannot create its queue polls with back-off as before.
import { Writable } from 'node:stream';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  QueueDoesNotExist,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import pino from 'pino';
import {
  MAX_CARRIED_PER_SEND,
  noticeBodies,
  openAwsBackends,
  parseNotice,
  type AwsBackends,
  type AwsClients,
  type FinishedTask,
} from '../../../lib/backends/aws';
import { taskRecordOf } from '../../../lib/backends/aws/dynamodb-items';
import { GridClient } from '../../../lib/client';
import { compileConfig } from '../../../lib/core/config';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import type { CompletionOutcome } from '../../../lib/core/task-lifecycle';
import type { Logger } from '../../../lib/logging';
import { payloadKeys } from '../../../lib/ports';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';
import { collect, waitFor } from '../../support/local-grid';

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
  options: { receiveNotices?: boolean; sendNotices?: boolean; logger?: Logger } = {},
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

/** The names of the SDK commands `clients` send, in order (the DynamoDB and S3 ones). */
function recordCommands(clients: Required<AwsClients>): string[] {
  const commands: string[] = [];
  const step = { step: 'initialize', name: 'recordCommands' } as const;
  clients.dynamodb.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(String(context.commandName));
      return next(args);
    },
    step,
  );
  clients.s3.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(String(context.commandName));
      return next(args);
    },
    step,
  );
  return commands;
}

/**
 * A client whose results handles poll once a minute, its backends, the commands they send and the ids of the results
 * its handle returned so far (`arrived`).
 */
async function waitingClient(resources: AwsGridResources, tasks: number, logger?: Logger) {
  const clients = emulators.clients();
  const commands = recordCommands(clients);
  const backends = open(resources, { receiveNotices: true, ...(logger ? { logger } : {}) }, clients);
  const client = new GridClient({ config, ...backends, pollIntervalMs: MINUTE });
  const handle = await client.submit(Array.from({ length: tasks }, (_, n) => ({ n })));
  const arrived: string[] = [];
  const results = collect(
    (async function* () {
      for await (const result of handle.results()) {
        arrived.push(result.taskId);
        yield result;
      }
    })(),
  );
  // The handle looked once (a Query, nothing yet) and waits for a notice.
  while (!commands.includes('QueryCommand')) await new Promise((resolve) => setTimeout(resolve, 10));
  commands.length = 0;
  return { backends, handle, results, commands, arrived };
}

/** Runs the one queued task to success as an agent does (receive, read the session, claim, complete). */
async function runOneTask(
  agent: AwsBackends,
  outcome: CompletionOutcome = { kind: 'succeeded', result: { inline: '42' } },
): Promise<void> {
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
      outcome,
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

  it("a one-task session's result comes in its notice: the client sends no request to DynamoDB after it", async () => {
    const resources = await createGridResources(emulators);
    const { results, commands } = await waitingClient(resources, 1);

    await runOneTask(open(resources));

    const [result] = await results;
    expect([result?.state, result?.result, result?.attempts]).toEqual(['succeeded', 42, 1]);
    expect(result?.history.map((h) => [h.attempt, h.owner, h.outcome])).toEqual([[1, 'agent-1', 'succeeded']]);
    expect(commands).toEqual([]);
  }, 30_000);

  it('a failed task comes in its notice with its error and reason', async () => {
    const resources = await createGridResources(emulators);
    const { results, commands } = await waitingClient(resources, 1);
    const error = { type: 'ValueError', message: 'bad input', stack: ['  File "handler.py", line 3'] };

    await runOneTask(open(resources), { kind: 'failed', reason: 'error', error });

    const [result] = await results;
    expect([result?.state, result?.error, result?.failureReason, result?.failures]).toEqual([
      'failed',
      error,
      'error',
      1,
    ]);
    expect(commands).toEqual([]);
  }, 30_000);

  it('a result stored in S3 is read from S3 by the key its notice carried, not from the task table', async () => {
    const resources = await createGridResources(emulators);
    const { handle, results, commands } = await waitingClient(resources, 1);
    const agent = open(resources);
    const big = JSON.stringify({ values: Array.from({ length: 10_000 }, (_, i) => i) });
    const key = payloadKeys.result(handle.sessionId, `${handle.sessionId}_0`, 1);
    await agent.store.put(key, big);

    await runOneTask(agent, { kind: 'succeeded', result: { key, bytes: Buffer.byteLength(big) } });

    const [result] = await results;
    expect(result?.resultJson).toBe(big);
    expect(commands).toEqual(['GetObjectCommand']);
  }, 30_000);

  it('a task whose outcome does not fit in a notice is named only and read by key', async () => {
    const resources = await createGridResources(emulators);
    const { results, commands } = await waitingClient(resources, 1);
    const text = 'x'.repeat(100_000);

    await runOneTask(open(resources), { kind: 'succeeded', result: { inline: JSON.stringify(text) } });

    expect((await results).map((r) => r.result)).toEqual([text]);
    expect(commands).toEqual(['BatchGetItemCommand']);
  }, 30_000);

  it('a malformed notice is logged and read as naming its tasks; one delivered twice returns its task once', async () => {
    const resources = await createGridResources(emulators);
    const warnings: { msg: string; problems?: string[] }[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          warnings.push(JSON.parse(chunk.toString()) as { msg: string; problems?: string[] });
          done();
        },
      }),
    );
    const { backends, handle, results, commands, arrived } = await waitingClient(resources, 2, logger);
    const [first, second] = [0, 1].map((i) => `${handle.sessionId}_${i}`);
    const url = await backends.changes!.queueUrl();
    const sqs = emulators.clients().sqs;
    const send = (body: string) => sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    const problems = () => warnings.flatMap((w) => w.problems ?? []).join('\n');
    // The first task ends without a notice of its agent's; a forged one claims it is still running.
    await runOneTask(open(resources, { sendNotices: false }));
    const forged = { task_id: first, session_id: handle.sessionId, state: 'running', session_sk: 'T#0' };

    try {
      await send(JSON.stringify({ s: handle.sessionId, t: [first], o: [forged] }));
      await waitFor(() => /outcome is malformed/.test(problems()), 10_000, 'the malformed outcome logged');
      await waitFor(() => arrived.includes(first!), 10_000, 'the first task returned (read by key)');
      await send('not a notice');
      await waitFor(() => /not JSON/.test(problems()), 10_000, 'the body that is not JSON logged');
      // The same notice again (SQS delivers at least once), of a task the handle returned already: taken by the
      // handle (the wake it brings) before the second task ends.
      const version = backends.changes!.version;
      await send(JSON.stringify({ s: handle.sessionId, t: [first] }));
      await waitFor(() => backends.changes!.version > version, 10_000, 'the duplicate notice received');
      await runOneTask(open(resources));
    } finally {
      sqs.destroy();
    }

    expect((await results).map((r) => [r.taskId, r.state, r.result])).toEqual([
      [first, 'succeeded', 42],
      [second, 'succeeded', 42],
    ]);
    // The first was read by key (its outcome dropped), the second came with its notice.
    expect(commands).toContain('BatchGetItemCommand');
  }, 30_000);

  it("a notice left from an earlier session (its handle found the result first) wakes no later session's handle: that one's result comes in its own notice", async () => {
    const resources = await createGridResources(emulators);
    const clients = emulators.clients();
    const commands = recordCommands(clients);
    const clientSide = open(resources, { receiveNotices: true }, clients);
    const agentSide = open(resources);
    const client = new GridClient({ config, ...clientSide, pollIntervalMs: MINUTE });
    const changes = clientSide.changes!;
    const url = (await changes.queueUrl())!;
    const sqs = emulators.clients().sqs;
    const visibleNotices = async () => {
      const out = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }),
      );
      return Number(out.Attributes?.ApproximateNumberOfMessages);
    };
    try {
      // The first session's task ends while no handle waits; its handle's first look finds the result in the table,
      // and its notice stays in the queue.
      const first = await client.submit([{ n: 1 }]);
      await runOneTask(agentSide);
      await waitFor(async () => (await visibleNotices()) === 1, 10_000, "the first session's notice sent");
      expect((await collect(first.results())).map((r) => r.state)).toEqual(['succeeded']);
      const version = changes.version;

      // The second session's handle looks (nothing yet) and waits; its long poll brings the first session's notice.
      const second = await client.submit([{ n: 2 }]);
      commands.length = 0;
      const results = collect(second.results());
      await waitFor(() => commands.includes('QueryCommand'), 10_000, "the second handle's first look");
      commands.length = 0;
      await waitFor(() => changes.version > version, 10_000, "the first session's notice received");
      await runOneTask(agentSide);

      expect((await results).map((r) => [r.taskId, r.state, r.result])).toEqual([
        [`${second.sessionId}_0`, 'succeeded', 42],
      ]);
      // Not woken by the other session's notice (a look at the table for nothing), the handle had its result from its
      // own notice: no request to DynamoDB after its first look.
      expect(commands).toEqual([]);
    } finally {
      sqs.destroy();
    }
  }, 30_000);

  it('cancelled tasks come to a waiting handle in the notice their cancellation sends, without a poll', async () => {
    const resources = await createGridResources(emulators);
    const { handle, results, commands } = await waitingClient(resources, 2);

    expect(await handle.cancel()).toBe(2);
    const since = commands.length;

    expect((await results).map((r) => r.state)).toEqual(['cancelled', 'cancelled']);
    expect(commands.slice(since).filter((c) => c === 'QueryCommand' || c === 'BatchGetItemCommand')).toEqual([]);
  }, 30_000);

  it('a cancellation from another process has sent its notice when cancel resolves (a CLI or the API Lambda may stop then)', async () => {
    const resources = await createGridResources(emulators);
    const { handle, results } = await waitingClient(resources, 2);
    const clients = emulators.clients();
    const sent: string[] = [];
    clients.sqs.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        sent.push(String(context.commandName));
        return out;
      },
      { step: 'initialize', name: 'recordAnswered' },
    );
    const canceller = open(resources, {}, clients);

    expect(await canceller.table.cancel(handle.sessionId)).toBe(2);
    expect(sent).toEqual(['SendMessageCommand']); // answered by SQS, not merely under way

    expect((await results).map((r) => r.state)).toEqual(['cancelled', 'cancelled']);
  }, 30_000);

  it(`a cancellation of more than ${MAX_CARRIED_PER_SEND} tasks asks no item back (its notice names them only) and they all come`, async () => {
    const tasks = MAX_CARRIED_PER_SEND + 1;
    const resources = await createGridResources(emulators);
    const { handle, results } = await waitingClient(resources, tasks);
    const clients = emulators.clients();
    const returned: string[] = [];
    clients.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UpdateItemCommand') {
          returned.push((args.input as { ReturnValues?: string }).ReturnValues ?? 'NONE');
        }
        return next(args);
      },
      { step: 'initialize', name: 'recordReturnValues' },
    );
    const canceller = open(resources, {}, clients);

    expect(await canceller.table.cancel(handle.sessionId)).toBe(tasks);

    expect(returned).toEqual(Array.from({ length: tasks }, () => 'NONE'));
    expect((await results).map((r) => r.state)).toEqual(Array.from({ length: tasks }, () => 'cancelled'));
  }, 60_000);

  it('a task retried after its lease expired comes once, with its second attempt: the refused late write told nobody', async () => {
    const resources = await createGridResources(emulators);
    const { handle, results, commands } = await waitingClient(resources, 1);
    const agent = open(resources);
    const taskId = `${handle.sessionId}_0`;
    await agent.table.getSession(handle.sessionId);
    // A claim asks for the task at the attempt it is pending at (0, then 1 after a retry).
    const claims = await agent.table.claim(
      [{ taskId, attempt: 0 }],
      { owner: 'agent-1', expiresAt: Date.now() - 1000 },
      Date.now(),
    );
    expect(claims.map((c) => c.status)).toEqual(['claimed']);
    const lost = { type: 'LeaseExpired', message: 'lease expired', stack: [] };
    // The reaper sends the task back for a second attempt (not terminal: no notice)...
    await agent.table.complete([
      {
        taskId,
        guard: { leaseExpiredBefore: Date.now(), attempt: 1 },
        outcome: { kind: 'retry', reason: 'lease-expired', error: lost },
        at: Date.now(),
      },
    ]);
    // ... the first agent's late result is refused (no notice) ...
    const late = await agent.table.complete([
      {
        taskId,
        guard: { owner: 'agent-1', attempt: 1 },
        outcome: { kind: 'succeeded', result: { inline: '1' } },
        at: Date.now(),
      },
    ]);
    expect(late.map((r) => r.status)).toEqual(['stale']);
    // ... and the second attempt's result is the one that comes.
    const again = await agent.table.claim(
      [{ taskId, attempt: 1 }],
      { owner: 'agent-2', expiresAt: Date.now() + MINUTE },
      Date.now(),
    );
    expect(again.map((c) => c.status)).toEqual(['claimed']);
    await agent.table.complete([
      {
        taskId,
        guard: { owner: 'agent-2', attempt: 2 },
        outcome: { kind: 'succeeded', result: { inline: '2' } },
        at: Date.now(),
      },
    ]);

    const [result, ...more] = await results;
    expect(more).toEqual([]);
    expect([result?.result, result?.attempts, result?.failures]).toEqual([2, 2, 1]);
    expect(result?.history.map((h) => [h.owner, h.outcome])).toEqual([
      ['agent-1', 'lease-expired'],
      ['agent-2', 'succeeded'],
    ]);
    expect(commands).toEqual([]);
  }, 30_000);

  it("a task record built from a notice equals the table's: a task failed after retries, one cancelled while running", async () => {
    const resources = await createGridResources(emulators);
    const client = new GridClient({ config, ...open(resources), pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }, { n: 2 }], { maxAttempts: 3 });
    const [failing, running] = [0, 1].map((i) => `${handle.sessionId}_${i}`) as [string, string];
    const agent = open(resources);
    const notices = agent.table.notices!;
    const ended: FinishedTask[] = [];
    const finished = notices.finished.bind(notices);
    notices.finished = (tasks) => {
      ended.push(...tasks);
      finished(tasks);
    };
    await agent.table.getSession(handle.sessionId);
    const error = (n: number) => ({ type: 'ValueError', message: `bad ${n}`, stack: [`line ${n}`] });
    const attempt = async (taskId: string, n: number, outcome?: CompletionOutcome): Promise<void> => {
      const owner = `agent-${n}`;
      const lease = { owner, expiresAt: Date.now() + MINUTE };
      const [claim] = await agent.table.claim([{ taskId, attempt: n - 1 }], lease, Date.now());
      expect(claim?.status).toBe('claimed');
      if (!outcome) return;
      const at = Date.now();
      const run = { startedAt: at - 5, ms: 4 };
      const [done] = await agent.table.complete([{ taskId, guard: { owner, attempt: n }, outcome, at, run }]);
      expect(done?.status).toBe('recorded');
    };

    // Handed back by a draining agent, then an error retried, then a timeout on the last attempt.
    await attempt(failing, 1, { kind: 'released' });
    await attempt(failing, 2, { kind: 'retry', reason: 'error', error: error(2) });
    await attempt(failing, 3, { kind: 'failed', reason: 'timeout', error: error(3) });
    await attempt(running, 1);
    expect(await agent.table.cancel(handle.sessionId)).toBe(1);

    expect(ended.map((t) => [t.taskId, t.outcome?.state])).toEqual([
      [failing, 'failed'],
      [running, 'cancelled'],
    ]);
    for (const task of ended) {
      const notice = parseNotice(noticeBodies(handle.sessionId, [task])[0]);
      expect(notice.problems).toEqual([]);
      const fromNotice = taskRecordOf(notice.tasks[0]!.outcome!);
      const fromTable = await agent.table.getTask(task.taskId);
      expect(fromNotice).toEqual(fromTable);
    }
    const history = (await agent.table.getTask(failing))!.history;
    expect(history.map((h) => [h.attempt, h.outcome, h.error?.message])).toEqual([
      [1, 'released', undefined],
      [2, 'error', 'bad 2'],
      [3, 'timeout', 'bad 3'],
    ]);
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
