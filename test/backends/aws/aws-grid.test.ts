// The grid on AWS emulators end to end (client → SQS → agent → RIE API → Python → DynamoDB/S3), plus fault tests.
import { GetItemCommand, ProvisionedThroughputExceededException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDbTaskTable, openAwsBackends, type AwsBackends } from '../../../lib/backends/aws';
import type { DynamoDbTaskTableOptions } from '../../../lib/backends/aws/dynamodb-task-table';
import { GridClient } from '../../../lib/client';
import { compileConfig, type GridConfig } from '../../../lib/core/config';
import { TransientServiceError } from '../../../lib/core/errors';
import { resourcesToEnv } from '../../../lib/core/grid-resources';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { Agent } from '../../../lib/runtime/agent';
import { closeReaperBackends, handler as reaperHandler } from '../../../lib/runtime/reaper-handler';
import { RieInvoker } from '../../../lib/runtime/rie';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';
import { startPythonRie } from '../../support/aws-agent';

const suite = useEmulators();

/** An agent with one slot, invoking the fixture worker through the RIE API, and a client; both stop after the test. */
async function startAgentAndClient(
  config: GridConfig,
  backends: AwsBackends,
): Promise<{ agent: Agent; client: GridClient }> {
  const rie = await startPythonRie();
  suite.closeAfterTest(rie);
  const agent = new Agent({
    config,
    ...backends,
    createInvoker: () => new RieInvoker({ endpoint: rie.endpoint }),
    slots: 1,
    receiveWaitMs: 500,
  });
  await agent.start();
  suite.closeAfterTest({ close: () => agent.stop(5_000) });
  return { agent, client: new GridClient({ config, ...backends, pollIntervalMs: 100 }) };
}

function session(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sessionId: `s${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 30_000,
    nonRetryableErrorTypes: [],
    ...overrides,
  };
}

/** Fresh grid resources holding one session `s` with one pending task (its message not sent yet). */
async function onePendingTask() {
  const resources = await createGridResources(suite.emulators);
  const { table, queue } = suite.backendsFor(resources);
  const s = session();
  await table.createSession(s);
  const task = newTask(s, 0, { inline: '{}' }, Date.now());
  await table.createTasks([task]);
  return { resources, table, queue, s, task };
}

/** One slot, short leases and back-offs: tests see heartbeats, expiries and empty polls within seconds. */
const QUICK_AGENT = {
  slots: 1,
  task_ttl_expiration_offset_sec: 10,
  task_ttl_refresh_interval_sec: 2,
  lease_check_interval_sec: 0.5,
  empty_task_queue_backoff_timeout_sec: 0.05,
};

describe('the grid on AWS emulators', () => {
  it('runs Python tasks end to end: results, a handler error, a large payload and a large result through S3', async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    const config = compileConfig({ ...QUICK_AGENT, inline_payload_max_bytes: 1024 });
    const { client } = await startAgentAndClient(config, backends);

    const handle = await client.submit(
      [
        { op: 'square', x: 7 },
        { op: 'fail', why: 'bad' },
        { op: 'echo', blob: 'p'.repeat(5000) },
        { op: 'big', n: 5000 },
      ],
      { nonRetryableErrorTypes: ['ValueError'] },
    );
    const results = [];
    for await (const r of handle.results()) results.push(r);
    results.sort((a, b) => a.index - b.index);

    expect(results.map((r) => r.state)).toEqual(['succeeded', 'failed', 'succeeded', 'succeeded']);
    expect(results[0]!.result).toEqual({
      square: 49,
      custom: { session_id: handle.sessionId, task_id: `${handle.sessionId}_0`, attempt: 1 },
    });
    expect(results[1]!.error).toMatchObject({ type: 'ValueError', message: 'no good: bad' });
    expect(results[1]!.failureReason).toBe('error');
    expect(results[2]!.result).toEqual({ length: 5000 });
    expect(results[3]!.result).toEqual({ data: 'r'.repeat(5000) });
    // Four events in an array: the session's results sit in one index partition, read with one query per poll.
    const raw = suite.emulators.clients().dynamodb;
    const sessionItem = await raw.send(
      new GetItemCommand({ TableName: resources.tableName, Key: { task_id: { S: `session#${handle.sessionId}` } } }),
    );
    raw.destroy();
    expect(sessionItem.Item?.index_shards).toEqual({ N: '1' });
    const payloadRecord = await backends.table.getTask(`${handle.sessionId}_2`);
    const resultRecord = await backends.table.getTask(`${handle.sessionId}_3`);
    expect(payloadRecord?.payload).toEqual({ key: expect.any(String), bytes: expect.any(Number) });
    expect(resultRecord?.result).toEqual({ key: expect.any(String), bytes: expect.any(Number) });
  });

  it('a duplicate delivery of a task message runs it once: busy while the first holder relies on its message, then stale', async () => {
    const { table, queue, s, task } = await onePendingTask();
    const message = { taskId: task.taskId, sessionId: s.sessionId, attempt: 0, priority: 0 };
    await queue.send([message, message]);

    const received = [];
    for (let i = 0; i < 20 && received.length < 2; i++) {
      received.push(...(await queue.receive(10, { waitMs: 1000, visibilityMs: 60_000 })));
    }
    const lease = { owner: 'agent-a', expiresAt: Date.now() + 60_000 };
    const first = await table.claim(
      [{ taskId: task.taskId, attempt: received[0]!.message.attempt }],
      lease,
      Date.now(),
    );
    const second = await table.claim(
      [{ taskId: task.taskId, attempt: received[1]!.message.attempt }],
      { ...lease, owner: 'agent-b' },
      Date.now(),
    );

    await table.extendLeases([{ taskId: task.taskId, owner: 'agent-a', attempt: 1 }], Date.now() + 60_000);
    const third = await table.claim([{ taskId: task.taskId, attempt: 0 }], { ...lease, owner: 'agent-b' }, Date.now());

    expect(received).toHaveLength(2);
    expect(first[0]!.status).toBe('claimed');
    expect(second[0]!.status).toBe('busy');
    expect(third[0]!.status).toBe('stale');
  });

  it('an agent that dies before its first heartbeat: its message reappears and another agent reaps and runs the task', async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    const config = compileConfig({ ...QUICK_AGENT, agent_task_visibility_timeout_sec: 3 });
    const s = session();
    await backends.table.createSession(s);
    const task = newTask(s, 0, { inline: '{"op":"square","x":3}' }, Date.now());
    await backends.table.createTasks([task]);
    await backends.table.sealSession(s.sessionId, 1);
    await backends.queue.send([{ taskId: task.taskId, sessionId: s.sessionId, attempt: 0, priority: 0 }]);
    // The dead agent: received and claimed the task, then vanished without a heartbeat or an acknowledgement.
    const [taken] = await backends.queue.receive(1, { waitMs: 2000, visibilityMs: 1000 });
    const [claimed] = await backends.table.claim(
      [{ taskId: task.taskId, attempt: taken!.message.attempt }],
      { owner: 'dead-agent', expiresAt: Date.now() + 500 },
      Date.now(),
    );
    expect(claimed?.status).toBe('claimed');
    expect(await backends.table.findExpiredLeases(Date.now() + 60_000, 100_000)).toEqual([]);

    const { agent, client } = await startAgentAndClient(config, backends);
    const handle = await client.session(s.sessionId);
    const done = await handle.wait({ pollIntervalMs: 100, signal: AbortSignal.timeout(30_000) });
    const record = await backends.table.getTask(task.taskId);

    expect(done).toMatchObject({ succeeded: 1, running: 0, pending: 0 });
    expect(record).toMatchObject({ state: 'succeeded', attempt: 2, failures: 1 });
    expect(record!.history.map((h) => [h.owner, h.outcome])).toEqual([
      ['dead-agent', 'lease-expired'],
      [agent.owner, 'succeeded'],
    ]);
  }, 40_000);

  it('the reaper Lambda handler re-queues a task whose lease expired, configured from env alone', async () => {
    const { resources, table, queue, s, task } = await onePendingTask();
    await table.claim([{ taskId: task.taskId, attempt: 0 }], { owner: 'dead-agent', expiresAt: 1_000 }, 1);
    // It heartbeated once (so the lease index holds it), then died (a lease only moves later: claimed in 1970).
    const leaseEnd = Date.now() - 1;
    await table.extendLeases([{ taskId: task.taskId, owner: 'dead-agent', attempt: 1 }], leaseEnd);
    const env: Record<string, string> = {
      ...resourcesToEnv(resources),
      ...suite.emulators.env(),
      HTCGRID_LOG_LEVEL: 'silent',
    };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);

    let summary;
    try {
      summary = await reaperHandler({}, { getRemainingTimeInMillis: () => 60_000 });
    } finally {
      await closeReaperBackends();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }

    expect(summary).toMatchObject({ requeued: 1, failed: 0 });
    expect(await table.getTask(task.taskId)).toMatchObject({ state: 'pending', attempt: 1, failures: 1 });
    const [requeued] = await queue.receive(10, { waitMs: 2000, visibilityMs: 60_000 });
    // Marked with the reap's guard (see QueueMessage.leaseExpiredBefore): its lease ended before it.
    expect(requeued?.message).toEqual({
      taskId: task.taskId,
      sessionId: s.sessionId,
      attempt: 1,
      priority: 0,
      leaseExpiredBefore: expect.any(Number) as number,
    });
    expect(requeued!.message.leaseExpiredBefore).toBeGreaterThan(leaseEnd);
  });
});

describe('configuration from the environment', () => {
  it('openAwsBackends reaches all three services through the standard AWS_ENDPOINT_URL_* variables alone', async () => {
    const resources = await createGridResources(suite.emulators);
    const env = suite.emulators.env();
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    let backends: AwsBackends | undefined;
    try {
      backends = openAwsBackends(resources);
      const s = session();
      await backends.table.createSession(s);
      await backends.queue.send([{ taskId: `${s.sessionId}_0`, sessionId: s.sessionId, attempt: 0, priority: 0 }]);
      await backends.store.put('env/probe.json', '{"ok": true}');

      expect(await backends.table.getSession(s.sessionId)).toMatchObject({ sessionId: s.sessionId });
      expect((await backends.queue.receive(10, { waitMs: 2000, visibilityMs: 60_000 })).length).toBe(1);
      expect((await backends.store.get('env/probe.json')).toString()).toBe('{"ok": true}');
      // Under the stack's data prefix, where the IAM grants are scoped.
      const s3 = suite.emulators.clients().s3;
      const raw = await s3.send(new GetObjectCommand({ Bucket: resources.dataBucket, Key: 'data/env/probe.json' }));
      expect(await raw.Body?.transformToString()).toBe('{"ok": true}');
      s3.destroy();
    } finally {
      await backends?.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('DynamoDB throttling (a fault no emulator produces)', () => {
  /** Makes the next `count` DynamoDB calls of `client` fail with ProvisionedThroughputExceeded before sending. */
  function throttle(client: DynamoDBClient, count: number): { calls: number } {
    const seen = { calls: 0 };
    let left = count;
    client.middlewareStack.add(
      (next) => async (args) => {
        seen.calls++;
        if (left > 0) {
          left--;
          throw new ProvisionedThroughputExceededException({ message: 'Rate exceeded', $metadata: {} });
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectThrottling' },
    );
    return seen;
  }

  /** A task table on a fresh grid whose retry sleeps are recorded instead of slept, with `retry` on top. */
  async function throttleableTable(retry: Omit<NonNullable<DynamoDbTaskTableOptions['retry']>, 'sleep'>) {
    const resources = await createGridResources(suite.emulators, { priorityLevels: 1 });
    const clients = suite.emulators.clients();
    suite.closeAfterTest({ close: async () => clients.dynamodb.destroy() });
    const delays: number[] = [];
    const table = new DynamoDbTaskTable({
      tableName: resources.tableName,
      client: clients.dynamodb,
      retry: { sleep: async (ms) => void delays.push(ms), ...retry },
    });
    return { table, clients, delays };
  }

  it('a throttled claim is retried with growing, jittered back-off and then succeeds', async () => {
    const { table, clients, delays } = await throttleableTable({ random: () => 0.999, baseDelayMs: 50 });
    const s = session();
    await table.createSession(s);
    const task = newTask(s, 0, { inline: '{}' }, Date.now());
    await table.createTasks([task]);
    const seen = throttle(clients.dynamodb, 3);

    const [outcome] = await table.claim([{ taskId: task.taskId, attempt: 0 }], { owner: 'a', expiresAt: 9e12 }, 1);

    expect(outcome?.status).toBe('claimed');
    expect(seen.calls).toBe(4);
    expect(delays).toEqual([49, 99, 199]);
  });

  it('throttling that does not stop ends in a retryable TransientServiceError, not a tight loop', async () => {
    const { table, clients, delays } = await throttleableTable({ maxAttempts: 5 });
    throttle(clients.dynamodb, 1_000);

    const error = await table.getTask('anything').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientServiceError);
    expect((error as TransientServiceError).retryable).toBe(true);
    expect(delays).toHaveLength(4);
  });
});
