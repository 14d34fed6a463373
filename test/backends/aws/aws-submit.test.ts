// How GridClient.submit orders its requests on the AWS backends (emulators): what may go together goes together, a
// message goes before its task and session exist only beside a write that can never overwrite a task (a small session
// under a drawn id, `createSealedSession`), and a failure half-way leaves nothing behind.
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import pino from 'pino';
import {
  DynamoDbTaskTable,
  SqsDynamoDbTaskIntake,
  type AwsBackends,
  type MessageClaimTable,
} from '../../../lib/backends/aws';
import { sessionPartitionOf, sessionShardsFor } from '../../../lib/backends/aws/table-schema';
import { GridClient } from '../../../lib/client';
import { compileConfig } from '../../../lib/core/config';
import { SessionExistsError, SessionWriteUnknownError } from '../../../lib/core/errors';
import { newTask, taskIdOf, type SessionRecord } from '../../../lib/core/task';
import { EARLY_MESSAGE_GRACE_MS, RESEND_EARLY_MESSAGES_AFTER_MS } from '../../../lib/core/task-lifecycle';
import { queueMessageOf } from '../../../lib/ports';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';

const suite = useEmulators();
const config = compileConfig({}, 'test');

/** A one-shot signal a wrapped call can wait on, at most `ms` (then it goes on: the test's assertions tell). */
function latch(ms = 10_000): { open(): void; wait(): Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    open,
    wait: () => Promise.race([opened, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]),
  };
}

/** Records when the submit's table and queue calls start and end, in order. */
function record(backends: AwsBackends): string[] {
  const events: string[] = [];
  const wrap = <T extends object>(target: T, name: keyof T & string, label = name): void => {
    const original = (target[name] as (...args: unknown[]) => Promise<unknown>).bind(target);
    (target as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      events.push(`${label} start`);
      try {
        return await original(...args);
      } finally {
        events.push(`${label} end`);
      }
    };
  };
  wrap(backends.table, 'createSession');
  wrap(backends.table, 'createTasks');
  wrap(backends.table, 'sealSession');
  wrap(backends.queue, 'send');
  return events;
}

const at = (events: string[], event: string): number => {
  const i = events.indexOf(event);
  if (i < 0) throw new Error(`no "${event}" in ${events.join(', ')}`);
  return i;
};

/**
 * The table without `createSealedSession`: the client writes a session step by step, as it does a session too large
 * for one write, or one the caller named.
 */
function stepByStep<T extends DynamoDbTaskTable>(table: T): T {
  Object.defineProperty(table, 'createSealedSession', { value: undefined });
  return table;
}

async function openGrid(steps = true): Promise<{ backends: AwsBackends; client: GridClient }> {
  const backends = suite.backendsFor(await createGridResources(suite.emulators));
  if (steps) stepByStep(backends.table);
  return { backends, client: new GridClient({ config, ...backends }) };
}

/** Nothing of the session is left: no session item, no task, no message. */
async function expectNothingLeft(backends: AwsBackends, sessionId: string): Promise<void> {
  expect(await backends.table.getSession(sessionId)).toBeUndefined();
  expect(await backends.table.getTask(taskIdOf(sessionId, 0))).toBeUndefined();
  const messages = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 30_000 });
  expect(messages.map((m) => m.message.sessionId)).not.toContain(sessionId);
}

/**
 * A clock that moves past `RESEND_EARLY_MESSAGES_AFTER_MS` during each of `table`'s session writes
 * (`createSealedSession`): a client on it finds every such write slow.
 */
function slowSessionWriteClock(table: DynamoDbTaskTable): () => number {
  let now = 0;
  const createSealedSession = table.createSealedSession.bind(table);
  table.createSealedSession = async (session, tasks) => {
    await createSealedSession(session, tasks);
    now += RESEND_EARLY_MESSAGES_AFTER_MS + 1;
  };
  return () => now;
}

/**
 * Submits one task while SQS refuses every send (a fault no emulator produces): the submit rejects with that error,
 * and nothing is left of the session it wrote (`sessionId`, as the test caught it).
 */
async function expectRefusedSendLeavesNothing(
  { backends, client }: { backends: AwsBackends; client: GridClient },
  sessionId: () => string | undefined,
): Promise<void> {
  backends.queue.send = () => Promise.reject(new Error('send failed'));

  await expect(client.submit([{ n: 1 }])).rejects.toThrow('send failed');

  expect(sessionId()).toBeDefined();
  await expectNothingLeft(backends, sessionId()!);
}

describe('GridClient.submit on the AWS backends', () => {
  it.each([500, 1])(
    "writes a drawn session's item beside its tasks and seals it beside the last messages, never a message first (batches of %d)",
    async (batchSize) => {
      const { backends, client } = await openGrid();
      const events = record(backends);
      // Each waits for its partner to start: done one after the other, they would wait out the latch instead.
      const tasksStarted = latch();
      const sendStarted = latch();
      const createSession = backends.table.createSession.bind(backends.table);
      const createTasks = backends.table.createTasks.bind(backends.table);
      const sealSession = backends.table.sealSession.bind(backends.table);
      const send = backends.queue.send.bind(backends.queue);
      backends.table.createSession = async (session) => {
        await tasksStarted.wait();
        return createSession(session);
      };
      backends.table.createTasks = (tasks) => {
        tasksStarted.open();
        return createTasks(tasks);
      };
      backends.queue.send = (messages) => {
        sendStarted.open();
        return send(messages);
      };
      backends.table.sealSession = async (sessionId, count) => {
        await sendStarted.wait();
        return sealSession(sessionId, count);
      };

      const handle = await client.submit([{ n: 1 }, { n: 2 }], { batchSize });

      expect(at(events, 'createTasks start')).toBeLessThan(at(events, 'createSession end'));
      expect(at(events, 'send start')).toBeGreaterThan(at(events, 'createSession end'));
      expect(at(events, 'send start')).toBeGreaterThan(at(events, 'createTasks end'));
      expect(at(events, 'sealSession start')).toBeLessThan(events.lastIndexOf('send end'));
      expect(at(events, 'sealSession start')).toBeGreaterThan(events.lastIndexOf('createTasks end'));
      expect((await backends.table.getSession(handle.sessionId))?.taskCount).toBe(2);
      expect((await backends.table.countByState(handle.sessionId)).pending).toBe(2);
    },
    60_000,
  );

  it('creates a session the caller named before writing any of its tasks, and leaves a taken one untouched', async () => {
    const { backends, client } = await openGrid();
    const sessionId = `named-${Date.now().toString(36)}`;
    await client.submit([{ n: 1 }], { sessionId });
    const events = record(backends);

    await expect(client.submit([{ n: 2 }, { n: 3 }], { sessionId })).rejects.toThrow(SessionExistsError);

    expect(events).toEqual(['createSession start', 'createSession end']);
    expect((await backends.table.getTask(taskIdOf(sessionId, 0)))?.payload).toEqual({ inline: '{"n":1}' });
    expect(await backends.table.getTask(taskIdOf(sessionId, 1))).toBeUndefined();
  }, 60_000);

  it('a session item that fails while its tasks are written leaves nothing behind and rejects with its error', async () => {
    const { backends, client } = await openGrid();
    const tasksWritten = latch();
    let drawn: SessionRecord | undefined;
    const createTasks = backends.table.createTasks.bind(backends.table);
    backends.table.createTasks = async (tasks) => {
      await createTasks(tasks);
      tasksWritten.open();
    };
    // A fault no emulator produces: the session's write fails once the tasks are in the table.
    backends.table.createSession = async (session) => {
      drawn = session;
      await tasksWritten.wait();
      throw new Error('session write failed');
    };

    await expect(client.submit([{ n: 1 }])).rejects.toThrow('session write failed');

    expect(drawn).toBeDefined();
    await expectNothingLeft(backends, drawn!.sessionId);
  }, 60_000);

  it("a drawn session's item written but its answer lost is the client's own: the retry's 'exists' does not fail the submit", async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    const clients = suite.emulators.clients();
    suite.closeAfterTest({ close: async () => clients.dynamodb.destroy() });
    // A fault no emulator produces: the session's PutItem is applied, then its answer is lost (a dropped connection).
    let lost = 0;
    clients.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const item = (args.input as { Item?: Record<string, unknown> }).Item;
        const key = item?.['task_id'] as { S?: string } | string | undefined;
        const isSession = String(typeof key === 'object' ? key.S : key).startsWith('session#');
        if (context.commandName === 'PutItemCommand' && lost === 0 && isSession) {
          lost++;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        return out;
      },
      { step: 'initialize', name: 'loseFirstSessionAnswer' },
    );
    const table = stepByStep(new DynamoDbTaskTable({ tableName: resources.tableName, client: clients.dynamodb }));
    const client = new GridClient({ config, ...backends, table });

    const handle = await client.submit([{ n: 1 }]);

    expect(lost).toBe(1);
    expect((await backends.table.getSession(handle.sessionId))?.taskCount).toBe(1);
    expect((await backends.table.countByState(handle.sessionId)).pending).toBe(1);
    const messages = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 30_000 });
    expect(messages.map((m) => m.message.taskId)).toEqual([taskIdOf(handle.sessionId, 0)]);
  }, 60_000);

  it('a send that fails beside the seal leaves nothing behind and rejects with its error', async () => {
    const grid = await openGrid();
    const { table } = grid.backends;
    let sessionId: string | undefined;
    const sealSession = table.sealSession.bind(table);
    table.sealSession = (id, count) => {
      sessionId = id;
      return sealSession(id, count);
    };

    await expectRefusedSendLeavesNothing(grid, () => sessionId);
  }, 60_000);

  it.each([false, true])(
    "writes a drawn session's tasks into the index shards its size asks for, though its item is not written yet (1,100 other sessions cached meanwhile: %s)",
    async (flood) => {
      const resources = await createGridResources(suite.emulators);
      const backends = suite.backendsFor(resources);
      const tasksWritten = latch();
      const clients = suite.emulators.clients();
      suite.closeAfterTest({ close: async () => clients.dynamodb.destroy() });
      // The session's item waits (behind its notice-queue lookup) until the tasks are in the table.
      const table = new DynamoDbTaskTable({
        tableName: resources.tableName,
        client: clients.dynamodb,
        noticeQueue: async () => {
          await tasksWritten.wait();
          return undefined;
        },
      });
      const createTasks = table.createTasks.bind(table);
      table.createTasks = async (tasks) => {
        // A long-lived table (an API Lambda) caches the shards of many other sessions while this one's item is written.
        const cache = table as unknown as { rememberShards(id: string, shards: number): void };
        if (flood) for (let i = 0; i < 1_100; i++) cache.rememberShards(`other-${i}`, 1);
        await createTasks(tasks);
        tasksWritten.open();
      };
      const client = new GridClient({ config, ...backends, table });
      const expectedTasks = 1_000_000;

      const handle = await client.submit(
        Array.from({ length: 40 }, (_, n) => ({ n })),
        { expectedTasks },
      );

      const shards = sessionShardsFor(expectedTasks);
      expect(shards).toBeGreaterThan(1);
      for (let i = 0; i < 40; i++) {
        const taskId = taskIdOf(handle.sessionId, i);
        const out = await clients.dynamodb.send(
          new GetCommand({ TableName: resources.tableName, Key: { task_id: taskId } }),
        );
        expect([taskId, out.Item?.session_part]).toEqual([
          taskId,
          sessionPartitionOf(handle.sessionId, taskId, shards),
        ]);
      }
    },
    60_000,
  );

  it("writes a small batch's tasks and manifest in one request, and deletes the tasks again if that request fails", async () => {
    const resources = await createGridResources(suite.emulators);
    const clients = suite.emulators.clients();
    suite.closeAfterTest({ close: async () => clients.dynamodb.destroy() });
    const writes: number[] = [];
    let failNext = false;
    // A fault no emulator produces: the request is applied, then its answer is lost.
    clients.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'BatchWriteItemCommand') {
          const input = args.input as { RequestItems: Record<string, unknown[]> };
          writes.push(input.RequestItems[resources.tableName]!.length);
          if (failNext) {
            failNext = false;
            throw Object.assign(new Error('connection reset'), { $retryable: undefined });
          }
        }
        return out;
      },
      { step: 'initialize', name: 'loseAnswer' },
    );
    const table = stepByStep(new DynamoDbTaskTable({ tableName: resources.tableName, client: clients.dynamodb }));
    const client = new GridClient({ config, ...suite.backendsFor(resources), table });

    const handle = await client.submit([{ n: 1 }, { n: 2 }]);
    expect(writes).toEqual([3]);
    expect((await table.countByState(handle.sessionId)).pending).toBe(2);

    writes.length = 0;
    failNext = true;
    let sessionId: string | undefined;
    const createSession = table.createSession.bind(table);
    table.createSession = (session) => {
      sessionId = session.sessionId;
      return createSession(session);
    };
    await expect(client.submit([{ n: 3 }])).rejects.toThrow('connection reset');
    expect(sessionId).toBeDefined();
    expect(await table.getTask(taskIdOf(sessionId!, 0))).toBeUndefined();
    expect(await table.getSession(sessionId!)).toBeUndefined();
  }, 60_000);

  describe('a small session under a drawn id (createSealedSession)', () => {
    it('writes the session, sealed, and its tasks in one request beside their messages', async () => {
      const { backends, client } = await openGrid(false);
      const events = record(backends);
      const table = backends.table;
      const createSealedSession = table.createSealedSession.bind(table);
      const send = backends.queue.send.bind(backends.queue);
      // Each waits for its partner to start: done one after the other, they would wait out the latch instead.
      const writeStarted = latch();
      const sendStarted = latch();
      table.createSealedSession = async (session, tasks) => {
        events.push('createSealedSession start');
        writeStarted.open();
        await sendStarted.wait();
        await createSealedSession(session, tasks);
        events.push('createSealedSession end');
      };
      backends.queue.send = async (messages) => {
        sendStarted.open();
        await writeStarted.wait();
        return send(messages);
      };

      const handle = await client.submit([{ n: 1 }, { n: 2 }]);

      expect(at(events, 'send start')).toBeLessThan(at(events, 'createSealedSession end'));
      expect(at(events, 'createSealedSession start')).toBeLessThan(at(events, 'send end'));
      expect(events.filter((e) => !e.startsWith('createSealedSession') && !e.startsWith('send'))).toEqual([]);
      expect((await table.getSession(handle.sessionId))?.taskCount).toBe(2);
      expect((await table.countByState(handle.sessionId)).pending).toBe(2);
      const messages = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 30_000 });
      expect(messages.map((m) => m.message.taskId).sort()).toEqual([0, 1].map((i) => taskIdOf(handle.sessionId, i)));
    }, 60_000);

    it(`sends the messages again once a write that took longer than ${RESEND_EARLY_MESSAGES_AFTER_MS} ms is done`, async () => {
      const { backends } = await openGrid(false);
      const clock = slowSessionWriteClock(backends.table);
      const sent: string[] = [];
      const send = backends.queue.send.bind(backends.queue);
      backends.queue.send = async (messages) => {
        sent.push(...messages.map((m) => m.taskId));
        return send(messages);
      };
      const client = new GridClient({ config, ...backends, clock });

      const handle = await client.submit([{ n: 1 }]);

      expect(sent).toEqual([taskIdOf(handle.sessionId, 0), taskIdOf(handle.sessionId, 0)]);
    }, 60_000);

    it('a write within that time sends them once', async () => {
      const { backends } = await openGrid(false);
      const sent: string[] = [];
      const send = backends.queue.send.bind(backends.queue);
      backends.queue.send = async (messages) => {
        sent.push(...messages.map((m) => m.taskId));
        return send(messages);
      };
      const client = new GridClient({ config, ...backends, clock: () => 0 });

      const handle = await client.submit([{ n: 1 }]);

      expect(sent).toEqual([taskIdOf(handle.sessionId, 0)]);
    }, 60_000);

    it('a send that fails beside the write leaves nothing behind and rejects with its error', async () => {
      const grid = await openGrid(false);
      const { table } = grid.backends;
      let sessionId: string | undefined;
      const createSealedSession = table.createSealedSession.bind(table);
      table.createSealedSession = (session, tasks) => {
        sessionId = session.sessionId;
        return createSealedSession(session, tasks);
      };

      await expectRefusedSendLeavesNothing(grid, () => sessionId);
    }, 60_000);

    it('a write whose outcome stayed unknown is left alone (it may still land) and the submit rejects naming it', async () => {
      const { backends, client } = await openGrid(false);
      const createSealedSession = backends.table.createSealedSession.bind(backends.table);
      // A fault no emulator produces: the write lands but no try of it was answered.
      backends.table.createSealedSession = async (session, tasks) => {
        await createSealedSession(session, tasks);
        throw new SessionWriteUnknownError(session.sessionId);
      };
      const deleted: string[] = [];
      const deleteSession = backends.table.deleteSession.bind(backends.table);
      backends.table.deleteSession = async (sessionId) => {
        deleted.push(sessionId);
        return deleteSession(sessionId);
      };

      const error = await client.submit([{ n: 1 }]).then(
        () => undefined,
        (e: unknown) => e,
      );

      expect(error).toBeInstanceOf(SessionWriteUnknownError);
      const sessionId = (error as SessionWriteUnknownError).sessionId;
      expect(deleted).toEqual([]);
      expect((await backends.table.getSession(sessionId))?.taskCount).toBe(1);
      expect((await backends.table.getTask(taskIdOf(sessionId, 0)))?.state).toBe('pending');
    }, 60_000);

    it('a second send after a slow write that fails is only a warning: the session stands, its first messages out', async () => {
      const { backends } = await openGrid(false);
      const clock = slowSessionWriteClock(backends.table);
      let sends = 0;
      const send = backends.queue.send.bind(backends.queue);
      // A fault no emulator produces: SQS refuses every send after the first.
      backends.queue.send = async (messages) => {
        if (++sends > 1) throw new Error('send failed');
        return send(messages);
      };
      const warnings: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
      const client = new GridClient({ config, ...backends, clock, logger });

      const handle = await client.submit([{ n: 1 }]);

      expect(sends).toBe(3);
      expect(warnings.join('')).toContain("sending a slow session write's messages again failed");
      expect((await backends.table.getSession(handle.sessionId))?.taskCount).toBe(1);
      const messages = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 30_000 });
      expect(messages.map((m) => m.message.taskId)).toEqual([taskIdOf(handle.sessionId, 0)]);
    }, 60_000);

    it('larger sessions, named ones, and those whose inline payloads could pass its limits are written step by step', async () => {
      const { backends, client } = await openGrid(false);
      const events = record(backends);
      const limits = backends.table.sealedSessionLimits;
      const big = compileConfig({ inline_payload_max_bytes: 256 * 1024 }, 'test');
      const wide = new GridClient({ config: big, ...backends });

      await client.submit(Array.from({ length: limits.tasks + 1 }, (_, n) => ({ n })));
      await client.submit([{ n: 1 }], { sessionId: `named-${Date.now().toString(36)}` });
      await wide.submit(Array.from({ length: Math.floor(limits.inlineBytes / (256 * 1024)) + 1 }, (_, n) => ({ n })));

      expect(events.filter((e) => e === 'createSession start')).toHaveLength(3);
    }, 60_000);

    it('a message that reaches an agent before its task was written is claimed once the write lands', async () => {
      const { backends } = await openGrid(false);
      const session: SessionRecord = {
        sessionId: `early-${Date.now().toString(36)}`,
        createdAt: Date.now(),
        priority: 0,
        maxAttempts: 3,
        timeoutMs: 60_000,
        nonRetryableErrorTypes: [],
      };
      const task = newTask(session, 0, { inline: '{}' }, Date.now());
      await backends.queue.send([{ taskId: task.taskId, sessionId: session.sessionId, attempt: 0, priority: 0 }]);
      const pauses: number[] = [];
      const intake = new SqsDynamoDbTaskIntake({
        queue: backends.queue,
        table: backends.table,
        // The write lands while the intake pauses after its first claim found no task.
        sleep: async (ms) => {
          pauses.push(ms);
          if (pauses.length === 1) await backends.table.createSealedSession(session, [task]);
        },
      });

      const claimed = await intake.receiveAndClaim(10, {
        waitMs: 1_000,
        visibilityMs: 30_000,
        owner: 'agent',
        leaseMs: 30_000,
        busyDelayMs: 1_000,
      });

      expect(pauses).toEqual([20]);
      expect(claimed.map((t) => [t.taskId, t.state])).toEqual([[task.taskId, 'running']]);
    }, 60_000);

    it("the batch's claimed tasks are handed over before the pauses, and an early message whose claim fails is released", async () => {
      const { backends } = await openGrid(false);
      const written = aSession('written');
      const early = aSession('early');
      const task = newTask(written, 0, { inline: '{}' }, Date.now());
      const ahead = newTask(early, 0, { inline: '{}' }, Date.now());
      await backends.table.createSealedSession(written, [task]);
      await backends.queue.send([queueMessageOf(task), queueMessageOf(ahead)]);
      const events: string[] = [];
      let claims = 0;
      const table: MessageClaimTable = {
        // A fault no emulator produces: DynamoDB fails the claim made again after the first pause.
        claimMessages: (requests, lease, now) =>
          ++claims === 1
            ? backends.table.claimMessages(requests, lease, now)
            : Promise.reject(new Error('claim failed')),
        withdrawClaims: (claims) => backends.table.withdrawClaims(claims),
        complete: (completions) => backends.table.complete(completions),
      };
      const intake = new SqsDynamoDbTaskIntake({
        queue: backends.queue,
        table,
        sleep: async (ms) => void events.push(`pause ${ms}`),
      });

      const returned = await intake.receiveAndClaim(10, {
        ...intakeOptions,
        onClaimed: (tasks) => events.push(...tasks.map((t) => `handed ${t.taskId}`)),
      });

      expect(events).toEqual([`handed ${task.taskId}`, 'pause 20']);
      expect(returned).toEqual([]);
      expect((await backends.table.getTask(task.taskId))?.state).toBe('running');
      // Released for a second, not deleted: offered again.
      const again = await backends.queue.receive(10, { waitMs: 10_000, visibilityMs: 30_000 });
      expect(again.map((m) => [m.message.taskId, m.receiveCount])).toEqual([[ahead.taskId, 2]]);
    }, 60_000);

    it('a message of a missing task is released, not dropped, by an agent whose clock runs past the grace', async () => {
      const { backends } = await openGrid(false);
      const ahead = newTask(aSession('skewed'), 0, { inline: '{}' }, Date.now());
      await backends.queue.send([queueMessageOf(ahead)]);
      const intake = new SqsDynamoDbTaskIntake({
        queue: backends.queue,
        table: backends.table,
        now: () => Date.now() + EARLY_MESSAGE_GRACE_MS + 60_000,
        sleep: async () => undefined,
      });

      expect(await intake.receiveAndClaim(10, intakeOptions)).toEqual([]);
      await intake.drain();

      const again = await backends.queue.receive(10, { waitMs: 10_000, visibilityMs: 30_000 });
      expect(again.map((m) => [m.message.taskId, m.receiveCount])).toEqual([[ahead.taskId, 2]]);
    }, 60_000);
  });
});

const intakeOptions = { waitMs: 1_000, visibilityMs: 30_000, owner: 'agent', leaseMs: 30_000, busyDelayMs: 1_000 };

function aSession(name: string): SessionRecord {
  return {
    sessionId: `${name}-${Date.now().toString(36)}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };
}
