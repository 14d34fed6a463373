// The GridApi Lambda's handler (function URL events, streamed answers) on the AWS backends, on the emulators.
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import { compileConfig, GRID_ENV, resolveRuntime, resourcesToEnv } from '../../lib/core';
import { functionUrlHandler } from '../../lib/http/lambda-adapter';
import { openApiHandlers } from '../../lib/http/lambda-handler';
import { Agent, countSlotUsage, newSlotCounters, PresenceHeartbeat } from '../../lib/runtime/agent';
import { createLocalInvoker } from '../../lib/runtime/local';
import { createGridResources, startEmulators, type Emulators } from '../support/emulators';
import { functionUrlEvent } from '../support/function-url';
import { FIXTURES, waitFor } from '../support/local-grid';
import { parsePythonJson } from './api-client';
import { OpenApiContract } from './openapi-contract';

const WORKER = path.join(FIXTURES, 'http', 'worker');
const CONFIG = {
  slots: 2,
  task_ttl_expiration_offset_sec: 10,
  task_ttl_refresh_interval_sec: 2,
  lease_check_interval_sec: 0.5,
  empty_task_queue_backoff_timeout_sec: 0.05,
};

let emulators: Emulators;
let backends: AwsBackends;
let agent: Agent;
let heartbeat: PresenceHeartbeat;
let call: (method: string, target: string, body?: string, headers?: Record<string, string>) => Promise<Answer>;
const contract = new OpenApiContract();
const saved = { ...process.env };

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
  lines: any[];
}

beforeAll(async () => {
  emulators = await startEmulators();
  const resources = await createGridResources(emulators);
  const config = compileConfig(CONFIG, 'test');
  Object.assign(process.env, emulators.env(), resourcesToEnv(resources), {
    [GRID_ENV.config]: JSON.stringify(config.document),
    HTCGRID_LOG_LEVEL: 'warn',
  });
  // The Lambda entry's own wiring: backends, ledger and config from the function's environment.
  const handlers = openApiHandlers(process.env);
  const handler = functionUrlHandler(handlers, (stream, metadata) => {
    (stream as PassThrough & { metadata?: unknown }).metadata = metadata;
    return stream;
  });
  call = async (method, target, body, headers = {}) => {
    const event = functionUrlEvent(method, target, body, headers);
    const rawPath = event.rawPath;
    const stream = new PassThrough() as PassThrough & {
      metadata?: { statusCode: number; headers: Record<string, string> };
    };
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await handler(event, stream, { getRemainingTimeInMillis: () => 60_000 });
    const text = Buffer.concat(chunks).toString('utf8');
    const { statusCode, headers: answerHeaders } = stream.metadata!;
    const type = answerHeaders['content-type'] ?? '';
    const answer: Answer = { status: statusCode, headers: answerHeaders, text, json: undefined, lines: [] };
    if (type === 'application/json') {
      answer.json = JSON.parse(text);
      contract.check(method, rawPath, statusCode, type, answer.json);
    } else if (type === 'application/x-ndjson') {
      answer.lines = text.split('\n').filter(Boolean).map(parsePythonJson);
      for (const line of text.split('\n').filter(Boolean)) {
        contract.check(method, rawPath, statusCode, type, JSON.parse(line.replace(/-?Infinity|NaN/g, 'null')));
      }
    }
    return answer;
  };
  backends = openAwsBackends(resources, { clients: emulators.clients() });
  // Wired as bin/agent.ts wires the agent of the container: slots counted, heartbeats into the DynamoDB registry.
  const slotCounters = newSlotCounters();
  agent = new Agent({
    config,
    ...backends,
    slots: 2,
    receiveWaitMs: 500,
    createInvoker: () =>
      countSlotUsage(
        createLocalInvoker({
          taskRoot: WORKER,
          handler: 'lambda_function.lambda_handler',
          runtime: resolveRuntime('python3.12'),
          pythonExecutable: 'python3',
        }),
        slotCounters,
      ),
  });
  await agent.start();
  heartbeat = new PresenceHeartbeat({
    registry: backends.agents,
    presence: {
      agentId: agent.owner,
      host: 'agent-host',
      pid: process.pid,
      slots: 2,
      handler: config.handler,
      runtime: config.runtime.name,
      startedAt: Date.now(),
    },
    activity: () => ({ busySlots: slotCounters.busy, runtimeRestarts: slotCounters.restarts, tasks: agent.stats }),
    intervalMs: 250,
  });
  await heartbeat.start();
}, 180_000);

afterAll(async () => {
  await heartbeat?.stop();
  await agent?.stop(5_000);
  await backends?.close();
  await emulators?.stop();
  process.env = saved;
});

describe('the GridApi Lambda on the AWS backends', () => {
  test('runs a session created with its tasks and streams values exactly as the worker returned them', async () => {
    const created = await call(
      'POST',
      '/v1/sessions',
      '{"tasks": [{"do": "values"}, {"do": "fail", "instrument": "Z"}], "maxAttempts": 1}',
    );
    expect(created.status).toBe(201);
    const sid = created.json.sessionId;
    const answer = await call('GET', `/v1/sessions/${sid}/results`, undefined);
    expect(answer.text).toContain(
      '"nan": NaN, "inf": Infinity, "ninf": -Infinity, "negzero": -0.0, "big": 18446744073709551617',
    );
    const byIndex = new Map(answer.lines.filter((l) => 'taskId' in l).map((l) => [l.index, l]));
    expect(byIndex.get(1)).toMatchObject({ state: 'failed', error: { type: 'PricingError' } });
    expect(answer.lines[answer.lines.length - 1]).toMatchObject({ end: 'complete', delivered: 2 });
    const detail = await call('GET', `/v1/tasks/${sid}_1`);
    expect(detail.json).toMatchObject({ state: 'failed', payload: { do: 'fail', instrument: 'Z' } });
    expect(detail.json.output).toMatchObject({ available: false, note: expect.stringMatching(/log streams/) });
    const summary = await call('GET', `/v1/sessions/${sid}/summary`);
    expect(summary.json.failures).toEqual([expect.objectContaining({ errorType: 'PricingError', failedTasks: 1 })]);
  });

  test('batches a session, answers a retried batch from the ledger in DynamoDB, and seals it', async () => {
    const sid = (await call('POST', '/v1/sessions', '{"expectedTasks": 4}', { 'idempotency-key': 'k-aws-1' })).json
      .sessionId;
    const replayed = await call('POST', '/v1/sessions', '{"expectedTasks": 4}', { 'idempotency-key': 'k-aws-1' });
    expect(replayed.json.sessionId).toBe(sid);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    const ndjson = { 'content-type': 'application/x-ndjson' };
    const first = await call('POST', `/v1/sessions/${sid}/tasks?start=0`, '{"i":0}\n{"i":1}', ndjson);
    expect(first.status).toBe(201);
    const again = await call('POST', `/v1/sessions/${sid}/tasks?start=0`, '{"i":0}\n{"i":1}', ndjson);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((await call('POST', `/v1/sessions/${sid}/tasks?start=0`, '{"i":9}', ndjson)).status).toBe(409);
    expect((await call('POST', `/v1/sessions/${sid}/tasks?start=2`, '[{"i":2},{"i":3}]')).status).toBe(201);
    expect((await call('POST', `/v1/sessions/${sid}/seal`, '{"taskCount": 4}')).json).toMatchObject({ sealed: true });
    const lines = (await call('GET', `/v1/sessions/${sid}/results`)).lines.filter((l) => 'taskId' in l);
    expect(lines.map((l) => l.result.echo.i).sort()).toEqual([0, 1, 2, 3]);
    await waitFor(async () => (await call('GET', `/v1/sessions/${sid}`)).json.done === true, 20_000);
    expect((await call('GET', `/v1/sessions/${sid}`)).json.counts).toMatchObject({ succeeded: 4, pending: 0 });
  });

  test('cancels a session in AWS and its stream ends with every task cancelled', async () => {
    const tasks = JSON.stringify({ tasks: Array.from({ length: 4 }, () => ({ do: 'sleep', seconds: 30 })) });
    const sid = (await call('POST', '/v1/sessions', tasks)).json.sessionId;
    const cancelled = await call('POST', `/v1/sessions/${sid}/cancel`, '{}');
    expect(cancelled.json).toMatchObject({ sessionId: sid, cancelled: 4 });
    const lines = (await call('GET', `/v1/sessions/${sid}/results?waitSec=30`)).lines;
    expect(lines.filter((l) => l.state === 'cancelled')).toHaveLength(4);
    expect((await call('POST', `/v1/tasks/${sid}_0/cancel`)).json).toMatchObject({
      cancelled: false,
      state: 'cancelled',
    });
  });

  test('refuses bad input with JSON errors', async () => {
    expect((await call('GET', '/v1/sessions/nope')).json.error.code).toBe('UnknownSessionError');
    expect((await call('POST', '/v1/sessions', '{"tasks": [')).json.error.code).toBe('InvalidRequestError');
    expect((await call('GET', '/v1')).json).toMatchObject({ grid: 'aws' });
  });

  test('lists the agents registered in DynamoDB with their busy and idle slots and runtime restarts', async () => {
    const mine = async (): Promise<any> => {
      const answer = await call('GET', '/v1/agents');
      expect(answer.json).toMatchObject({ source: 'registry', note: expect.stringMatching(/every 20 s/) });
      return answer.json.agents.find((a: any) => a.id === agent.owner);
    };
    // A listing newer than the start of this test, with no task running (the listing is shared for 5 s: one Query and
    // BatchGet per period, whatever the number of streams).
    const since = Date.now();
    let before: any;
    await waitFor(async () => {
      before = await mine();
      return before?.heartbeatAt > since && before.busySlots === 0;
    }, 30_000);
    expect(before).toMatchObject({ host: 'agent-host', state: 'alive', slots: 2, idleSlots: 2 });
    const sid = (await call('POST', '/v1/sessions', '{"tasks": [{"do": "sleep", "seconds": 60}], "maxAttempts": 1}'))
      .json.sessionId;
    await waitFor(async () => (await mine()).busySlots === 1, 30_000);
    expect(await mine()).toMatchObject({ busySlots: 1, idleSlots: 1 });
    expect((await call('POST', `/v1/sessions/${sid}/cancel`)).status).toBe(200);
    // The cancelled task's runtime is killed and started afresh.
    await waitFor(async () => (await mine()).runtimeRestarts === before.runtimeRestarts + 1, 30_000);
    expect(await mine()).toMatchObject({ busySlots: 0, idleSlots: 2 });
  }, 90_000);
});
