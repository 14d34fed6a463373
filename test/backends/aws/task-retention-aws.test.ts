// task_retention_sec in AWS: every writer of a finished task (agent process, CLI client, API Lambda, reaper Lambda)
// sets the item's TTL from the grid's configuration, on DynamoDB Local.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { openAwsBackends, sessionItemKey, type AwsBackends } from '../../../lib/backends/aws';
import { GridClient } from '../../../lib/client';
import { compileConfig, GRID_ENV, resourcesToEnv, type AwsGridResources, type SessionRecord } from '../../../lib/core';
import { newTask } from '../../../lib/core/task';
import { functionUrlHandler } from '../../../lib/http/lambda-adapter';
import { openApiHandlers } from '../../../lib/http/lambda-handler';
import { closeReaperBackends, handler as reaperHandler } from '../../../lib/runtime/reaper-handler';
import { createGridResources, startEmulators, waitFor, type Emulators } from '../../support/emulators';
import { spawnAwsAgent, startPythonRie } from '../../support/aws-agent';
import { writeOutputsFile } from '../../support/emulator-suite';
import { functionUrlEvent } from '../../support/function-url';
import { runHtcgrid } from '../../support/htcgrid-cli';
import { tempDir } from '../../support/local-grid';

const DEFAULT_SEC = 7 * 24 * 3600;

let emulators: Emulators;
let resources: AwsGridResources;
let backends: AwsBackends;
let doc: DynamoDBDocumentClient;
beforeAll(async () => {
  emulators = await startEmulators();
  resources = await createGridResources(emulators);
  backends = openAwsBackends(resources, { clients: emulators.clients() });
  doc = DynamoDBDocumentClient.from(emulators.clients().dynamodb);
}, 120_000);
afterAll(async () => {
  await backends?.close();
  doc?.destroy();
  await emulators?.stop();
});

/** The raw item of a task (or any key): what DynamoDB's TTL reads. */
async function item(key: string): Promise<Record<string, unknown>> {
  const out = await doc.send(new GetCommand({ TableName: resources.tableName, Key: { task_id: key } }));
  if (!out.Item) throw new Error(`no item ${key}`);
  return out.Item;
}

/** The TTL a finished task must carry: its finish time (epoch seconds) plus the retention. */
async function expectTtl(taskId: string, retentionSec: number): Promise<void> {
  const task = await item(taskId);
  expect(task.finished_at).toEqual(expect.any(Number));
  expect(task.ttl).toBe(Math.floor(Number(task.finished_at) / 1000) + retentionSec);
}

/** Sets `env` on process.env for `fn` (the Lambda entries read their environment), then restores it. */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs the reaper Lambda's handler once, its environment as deployed with `task_retention_sec` set. */
function runReaper(retentionSec: number) {
  const env = {
    ...emulators.env(),
    ...resourcesToEnv(resources),
    [GRID_ENV.config]: JSON.stringify({ task_retention_sec: retentionSec }),
    HTCGRID_LOG_LEVEL: 'silent',
  };
  return withEnv(env, async () => {
    try {
      return await reaperHandler({}, { getRemainingTimeInMillis: () => 60_000 });
    } finally {
      await closeReaperBackends();
    }
  });
}

/** A session of one attempt, created now, under a fresh id starting with `prefix`. */
function oneAttemptSession(prefix: string): SessionRecord {
  return {
    sessionId: `${prefix}-${Date.now().toString(36)}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts: 1,
    timeoutMs: 30_000,
    nonRetryableErrorTypes: [],
  };
}

describe('task_retention_sec is the TTL of every finished task in AWS', () => {
  it('the agent process (bin/agent.ts) writes it on the tasks it finishes', async () => {
    const rie = await startPythonRie();
    const config = compileConfig({ slots: 1, task_retention_sec: 3600, empty_task_queue_backoff_timeout_sec: 0.05 });
    const agent = spawnAwsAgent({ emulators, resources, config, rie });
    try {
      const client = new GridClient({ config, ...backends, pollIntervalMs: 100 });
      const handle = await client.submit([{ op: 'square', x: 3 }]);
      const done = await handle.wait({ pollIntervalMs: 100, signal: AbortSignal.timeout(45_000) }).catch((err) => {
        throw new Error(`${String(err)}; agent stderr: ${agent.stderr()}`);
      });

      expect(done).toMatchObject({ succeeded: 1 });
      await expectTtl(`${handle.sessionId}_0`, 3600);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
      await rie.close();
    }
  }, 90_000);

  it('the CLI client writes the published one (stack output ClientConfig) on the tasks it cancels', async () => {
    const outputs = writeOutputsFile(resources, { ClientConfig: JSON.stringify({ task_retention_sec: 7200 }) });
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, '{"op":"square","x":1}\n{"op":"square","x":2}\n');

    await withEnv(emulators.env(), async () => {
      const submitted = await runHtcgrid('submit', '--outputs', outputs, '--tasks', tasks);
      expect(submitted.code).toBe(0);
      const sessionId = submitted.stdout.trim().split('\n').pop()!;
      const cancelled = await runHtcgrid('cancel', sessionId, '--outputs', outputs);
      expect(cancelled.code).toBe(0);

      await expectTtl(`${sessionId}_0`, 7200);
      await expectTtl(`${sessionId}_1`, 7200);
    });
  });

  it('the API Lambda writes it on the tasks it cancels and on its request ledger', async () => {
    const env = {
      ...emulators.env(),
      ...resourcesToEnv(resources),
      [GRID_ENV.config]: JSON.stringify({ task_retention_sec: 5400 }),
      HTCGRID_LOG_LEVEL: 'silent',
    };
    // The SDK clients read the emulators' endpoints from the process environment, as in the Lambda.
    await withEnv(env, async () => {
      const handler = functionUrlHandler(openApiHandlers(env), (stream) => stream);
      const call = async (method: string, rawPath: string, body?: string, headers: Record<string, string> = {}) => {
        const event = functionUrlEvent(method, rawPath, body, headers);
        const stream = new PassThrough();
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        await handler(event, stream, { getRemainingTimeInMillis: () => 60_000 });
        return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      };

      const before = Math.floor(Date.now() / 1000);
      const created = await call('POST', '/v1/sessions', '{"tasks": [{"op": "square", "x": 4}]}', {
        'idempotency-key': 'retention-1',
      });
      expect(created).toMatchObject({ sessionId: expect.any(String) });
      const sessionId = String(created.sessionId);
      await call('POST', `/v1/sessions/${sessionId}/cancel`);
      const after = Math.ceil(Date.now() / 1000);

      await expectTtl(`${sessionId}_0`, 5400);
      const ledger = await item('request#session:retention-1');
      expect(Number(ledger.ttl)).toBeGreaterThanOrEqual(before + 5400);
      expect(Number(ledger.ttl)).toBeLessThanOrEqual(after + 5400);
    });
  });

  it('the reaper Lambda writes it on a task it fails after its last attempt', async () => {
    const session = oneAttemptSession('reap');
    await backends.table.createSession(session);
    const task = newTask(session, 0, { inline: '{}' }, Date.now());
    await backends.table.createTasks([task]);
    await backends.table.claim([{ taskId: task.taskId, attempt: 0 }], { owner: 'dead', expiresAt: 1_000 }, 1);
    // It heartbeated once (so the lease index holds it), then died on its last attempt (a lease only moves later).
    await backends.table.extendLeases([{ taskId: task.taskId, owner: 'dead', attempt: 1 }], Date.now() - 1);

    const summary = await runReaper(900);

    expect(summary).toMatchObject({ failed: 1 });
    await waitFor('the reaped task to be failed', async () => (await item(task.taskId)).state === 'failed', 10_000);
    await expectTtl(task.taskId, 900);
  });

  it('the reaper Lambda gives a finished session the same TTL (its tasks are gone after it, so is the session)', async () => {
    const session = oneAttemptSession('sealed');
    await backends.table.createSession(session);
    await backends.table.createTasks([newTask(session, 0, { inline: '{}' }, Date.now())]);
    await backends.table.sealSession(session.sessionId, 1);
    await backends.table.cancel(session.sessionId);

    const before = Math.floor(Date.now() / 1000);
    const summary = await runReaper(900);
    const after = Math.ceil(Date.now() / 1000);

    expect(summary.sessionsExpiring).toBeGreaterThanOrEqual(1);
    const ttl = Number((await item(sessionItemKey(session.sessionId))).ttl);
    expect(ttl).toBeGreaterThanOrEqual(before + 900);
    expect(ttl).toBeLessThanOrEqual(after + 900);
  });

  it('without a configuration the TTL is the documented default, 7 days', async () => {
    const client = new GridClient({ config: compileConfig({}), ...backends });
    const handle = await client.submit([{ op: 'square', x: 5 }]);
    await handle.cancel();
    await expectTtl(`${handle.sessionId}_0`, DEFAULT_SEC);
  });
});
