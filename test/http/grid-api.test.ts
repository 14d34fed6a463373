// The HTTP API on a real local grid (SQLite backends, Python worker), every answer checked against openapi.yaml.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SqliteRequestLedger } from '../../lib/backends/local';
import type { EmbeddedGrid } from '../../lib/cli';
import { applyOverrides, compileConfig, UnknownSessionError } from '../../lib/core';
import { API_LIMITS, ApiHandlers, GridApiServer, OutputTails, registryAgents } from '../../lib/http';
import { toApiError } from '../../lib/http/api-error';
import { startApiGrid, type ApiGrid } from '../support/api-grid';
import { waitFor } from '../support/local-grid';
import { ApiTestClient } from './api-client';
import { DOCUMENT_PATH, OpenApiContract, loadDocument } from './openapi-contract';

const TOKEN = 'test-token-0123456789';

const contract = new OpenApiContract();
let started: ApiGrid;
let grid: EmbeddedGrid;
let ledger: SqliteRequestLedger;
let server: GridApiServer;
let api: ApiTestClient;

beforeAll(async () => {
  const config = compileConfig(
    applyOverrides(
      { slots: 2, task_ttl_expiration_offset_sec: 3, task_ttl_refresh_interval_sec: 1, lease_check_interval_sec: 0.2 },
      { max_attempts: 2, max_payload_bytes: 100_000, inline_payload_max_bytes: 1024 },
    ),
    'test',
  );
  const outputs = new OutputTails();
  started = await startApiGrid({
    prefix: 'htcgrid-http-',
    config,
    gridKind: 'local',
    grid: { onWorkerOutput: outputs.listener },
    api: (embedded) => ({
      outputs,
      agents: registryAgents(embedded.backends.agents, { heartbeatEveryMs: 2_000, cacheMs: 0 }),
      pollIntervalMs: 20,
      overviewChanges: [embedded.backends.changes.tasks, embedded.backends.changes.queue],
    }),
  });
  ({ grid, ledger } = started);
  server = await GridApiServer.start({ api: started.api, port: 0, token: TOKEN });
  api = new ApiTestClient(server.url, TOKEN, contract);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await started?.close();
});

async function results(sessionId: string, query = ''): Promise<any[]> {
  const answer = await api.call('GET', `/v1/sessions/${sessionId}/results${query}`);
  expect(answer.status).toBe(200);
  return answer.lines;
}

describe('the OpenAPI document', () => {
  test('is a valid OpenAPI 3.1 document', async () => {
    // The validator is an ES module: it runs in a child Node process.
    const script = `import { Validator } from '@seriousme/openapi-schema-validator';
      const result = await new Validator().validate(process.argv[1]);
      console.log(JSON.stringify({ valid: result.valid, version: new Validator().version, errors: result.errors ?? [] }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, DOCUMENT_PATH], {
      cwd: path.resolve(__dirname, '..', '..'),
      encoding: 'utf8',
    });
    const result = JSON.parse(out) as { valid: boolean; errors: unknown[] };
    expect(result.errors).toEqual([]);
    expect(result.valid).toBe(true);
  });

  test('states the limits the servers enforce', () => {
    expect(loadDocument()['x-htcgrid-limits']).toEqual(API_LIMITS);
  });

  test('is served by the API itself', async () => {
    const answer = await api.call('GET', '/v1/openapi.yaml');
    expect(answer.status).toBe(200);
    expect(answer.text).toBe(fs.readFileSync(DOCUMENT_PATH, 'utf8'));
  });
});

describe('submitting and streaming results', () => {
  test('a session created with its tasks streams every result with values exactly as the worker returned them', async () => {
    const created = await api.call('POST', '/v1/sessions', {
      raw: '{"tasks": [{"do": "values"}, {"do": "echo", "id": 12345678901234567890123}]}',
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ sealed: true, taskCount: 2 });
    const answer = await api.call('GET', `/v1/sessions/${created.json.sessionId}/results`);
    const byIndex = new Map(answer.lines.filter((l) => 'taskId' in l).map((l) => [l.index, l]));
    expect(answer.text).toContain(
      '"result":{"nan": NaN, "inf": Infinity, "ninf": -Infinity, "negzero": -0.0, "big": 18446744073709551617, "bigneg": -1180591620717411303427, "tenth": 0.1, "text": "line\\nbreak é", "unicode": "中 😀 \u2028 \\ud800", "pad": ""}',
    );
    // The event reached the worker as sent: an integer beyond 2^53 was not rounded on the way in.
    expect(answer.text).toContain('"result":{"echo": {"do": "echo", "id": 12345678901234567890123}}');
    expect(byIndex.get(0).result.nan).toBeNaN();
    expect(Object.is(byIndex.get(0).result.negzero, -0)).toBe(true);
    expect(answer.lines[answer.lines.length - 1]).toMatchObject({ end: 'complete', delivered: 2 });
  });

  test('batches sent in order, then sealed, run every task, and a retried batch is answered from its record', async () => {
    const created = await api.call('POST', '/v1/sessions', { body: { expectedTasks: 5 } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ sealed: false, taskCount: null });
    const sid = created.json.sessionId;
    const first = await api.call('POST', `/v1/sessions/${sid}/tasks?start=0`, {
      raw: '{"n": 0}\n{"n": 1}\n\n{"n": 2}\n',
      headers: { 'content-type': 'application/x-ndjson' },
    });
    expect(first.status).toBe(201);
    expect(first.json).toEqual({ sessionId: sid, start: 0, count: 3, firstTaskId: `${sid}_0`, lastTaskId: `${sid}_2` });
    const retried = await api.call('POST', `/v1/sessions/${sid}/tasks?start=0`, {
      raw: '{"n": 0}\n{"n": 1}\n{"n": 2}',
      headers: { 'content-type': 'application/x-ndjson' },
    });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(retried.json).toEqual(first.json);
    const second = await api.call('POST', `/v1/sessions/${sid}/tasks?start=3`, { body: [{ n: 3 }, { n: 4 }] });
    expect(second.status).toBe(201);
    const sealed = await api.call('POST', `/v1/sessions/${sid}/seal`, { body: { taskCount: 5 } });
    expect(sealed.status).toBe(200);
    expect(sealed.json).toMatchObject({ sealed: true, taskCount: 5 });
    const lines = await results(sid);
    const done = lines.filter((l) => 'taskId' in l);
    expect(done.map((l) => l.result.echo.n).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(lines[lines.length - 1]).toMatchObject({ end: 'complete', delivered: 5 });
    // Exactly five tasks: the retried batch wrote nothing.
    const status = await api.call('GET', `/v1/sessions/${sid}`);
    expect(status.json).toMatchObject({ done: true, counts: { succeeded: 5, pending: 0, running: 0 } });
  });

  test('a batch that skips ahead, overlaps another, or reuses a start with other tasks is refused and changes nothing', async () => {
    const sid = (await api.call('POST', '/v1/sessions', {})).json.sessionId;
    expect((await api.call('POST', `/v1/sessions/${sid}/tasks?start=0`, { body: [{ n: 0 }, { n: 1 }] })).status).toBe(
      201,
    );
    const skip = await api.call('POST', `/v1/sessions/${sid}/tasks?start=5`, { body: [{ n: 5 }] });
    expect(skip.status).toBe(409);
    expect(skip.json.error).toMatchObject({ code: 'ConflictError' });
    expect(skip.json.error.fix).toMatch(/in order/);
    const overlap = await api.call('POST', `/v1/sessions/${sid}/tasks?start=1`, { body: [{ n: 1 }, { n: 2 }] });
    expect(overlap.status).toBe(409);
    const other = await api.call('POST', `/v1/sessions/${sid}/tasks?start=0`, { body: [{ n: 'other' }] });
    expect(other.status).toBe(409);
    expect(other.json.error.message).toMatch(/different request/);
    const wrongSeal = await api.call('POST', `/v1/sessions/${sid}/seal`, { body: { taskCount: 3 } });
    expect(wrongSeal.status).toBe(409);
    const status = await api.call('GET', `/v1/sessions/${sid}`);
    const counts = status.json.counts;
    expect(counts.pending + counts.running + counts.succeeded).toBe(2);
    expect(status.json.sealed).toBe(false);
    expect((await api.call('POST', `/v1/sessions/${sid}/seal`, { body: { taskCount: 2 } })).status).toBe(200);
    expect((await api.call('POST', `/v1/sessions/${sid}/seal`, { body: { taskCount: 2 } })).status).toBe(200);
    const late = await api.call('POST', `/v1/sessions/${sid}/tasks?start=2`, { body: [{ n: 2 }] });
    expect(late.status).toBe(409);
    expect(late.json.error.message).toMatch(/sealed/);
  });

  test('a session create retried with the same Idempotency-Key returns the same session', async () => {
    const headers = { 'idempotency-key': `key-${Date.now()}` };
    const body = { tasks: [{ n: 1 }], maxAttempts: 1 };
    const first = await api.call('POST', '/v1/sessions', { body, headers });
    const again = await api.call('POST', '/v1/sessions', { body, headers });
    expect(again.json.sessionId).toBe(first.json.sessionId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const reused = await api.call('POST', '/v1/sessions', { body: { tasks: [{ n: 2 }] }, headers });
    expect(reused.status).toBe(409);
  });

  test('a results stream resumed from a cursor continues after it and ends complete', async () => {
    const tasks = Array.from({ length: 30 }, (_, i) => ({ do: 'echo', i }));
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks } })).json.sessionId;
    await results(sid); // all done
    const firstPart = await results(sid, '?limit=10');
    const head = firstPart.filter((l) => 'taskId' in l);
    expect(head).toHaveLength(10);
    const end = firstPart[firstPart.length - 1];
    expect(end).toMatchObject({ end: 'paused', delivered: 10 });
    expect(head[9].cursor).toBe(end.cursor);
    const rest = await results(sid, `?cursor=${encodeURIComponent(end.cursor)}`);
    const tail = rest.filter((l) => 'taskId' in l);
    expect(tail).toHaveLength(20);
    expect(rest[rest.length - 1]).toMatchObject({ end: 'complete', delivered: 30 });
    expect(new Set([...head, ...tail].map((l) => l.index)).size).toBe(30);
    const waitless = await results(sid, `?waitSec=0&cursor=${encodeURIComponent(rest[rest.length - 1].cursor)}`);
    expect(waitless).toEqual([expect.objectContaining({ end: 'complete', delivered: 30 })]);
  });

  test('a stream on a session still running waits for its tasks, then ends', async () => {
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'sleep', seconds: 0.5 }] } })).json
      .sessionId;
    const lines = await results(sid, '?waitSec=30');
    expect(lines.map((l) => l.state ?? l.end)).toEqual(['succeeded', 'complete']);
    const paused = await results(
      (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'sleep', seconds: 3 }] } })).json.sessionId,
      '?waitSec=0.2',
    );
    expect(paused).toEqual([expect.objectContaining({ end: 'paused', delivered: 0 })]);
  });
});

describe('following failures', () => {
  test('summary, task list and task detail show failures by error type with the stack and the captured output', async () => {
    const tasks = [
      { do: 'fail', instrument: 'A' },
      { do: 'print', say: 'hello' },
      { do: 'fail', instrument: 'B' },
    ];
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks, nonRetryableErrorTypes: ['PricingError'] } }))
      .json.sessionId;
    const lines = await results(sid);
    const failed = lines.filter((l) => l.state === 'failed');
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ reason: 'error', error: { type: 'PricingError' } });

    const summary = await api.call('GET', `/v1/sessions/${sid}/summary`);
    expect(summary.status).toBe(200);
    expect(summary.json.failures).toEqual([
      expect.objectContaining({ errorType: 'PricingError', failedTasks: 2, failedAttempts: 2, reasons: { error: 2 } }),
    ]);
    expect(summary.json.running.count).toBe(3);
    expect(summary.json.queued.p50Ms).not.toBeNull();

    const page = await api.call('GET', `/v1/sessions/${sid}/tasks?state=failed&errorType=PricingError`);
    expect(page.json.tasks.map((t: { index: number }) => t.index).sort()).toEqual([0, 2]);
    const none = await api.call('GET', `/v1/sessions/${sid}/tasks?state=pending`);
    expect(none.json).toEqual({ tasks: [], cursor: null, more: false });
    const bad = await api.call('GET', `/v1/sessions/${sid}/tasks?state=done`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/state=done is not a task state/);

    const detail = await api.call('GET', `/v1/tasks/${sid}_0`);
    expect(detail.json).toMatchObject({
      state: 'failed',
      payload: { do: 'fail', instrument: 'A' },
      result: null,
      error: { type: 'PricingError', message: 'cannot price A' },
    });
    expect(detail.json.error.stack.join('')).toMatch(/lambda_function\.py/);
    expect(detail.json.history).toEqual([expect.objectContaining({ attempt: 1, outcome: 'error' })]);
    await waitFor(async () => (await api.call('GET', `/v1/tasks/${sid}_1`)).json.output.attempts.length > 0);
    const printed = await api.call('GET', `/v1/tasks/${sid}_1`);
    expect(printed.json.output.attempts).toEqual([
      { attempt: 1, stdout: 'to stdout: hello\n', stderr: 'to stderr: hello\n', truncated: false },
    ]);
    expect(printed.json.result).toEqual({ said: 'hello' });
  });
});

describe('cancelling', () => {
  test('cancelling a session stops its tasks; cancelling one task reports its state', async () => {
    const tasks = Array.from({ length: 6 }, () => ({ do: 'sleep', seconds: 5 }));
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks } })).json.sessionId;
    const one = await api.call('POST', `/v1/tasks/${sid}_5/cancel`);
    expect(one.json).toEqual({ taskId: `${sid}_5`, sessionId: sid, cancelled: true, state: 'cancelled' });
    await waitFor(async () => (await api.call('GET', `/v1/sessions/${sid}`)).json.counts.running > 0);
    // Pending first: a task that starts between the two listings shows in both, never in neither.
    const pending = await api.call('GET', `/v1/sessions/${sid}/tasks?state=pending&limit=2`);
    const morePending = pending.json.more
      ? (await api.call('GET', `/v1/sessions/${sid}/tasks?state=pending&cursor=${pending.json.cursor}`)).json.tasks
      : [];
    const running = await api.call('GET', `/v1/sessions/${sid}/tasks?state=running`);
    expect(running.json.tasks.length).toBeGreaterThan(0);
    expect(running.json.tasks.every((t: { state: string }) => t.state === 'running')).toBe(true);
    const live = new Set(
      [...pending.json.tasks, ...morePending, ...running.json.tasks].map((t: { index: number }) => t.index),
    );
    expect([...live].sort()).toEqual([0, 1, 2, 3, 4]);
    const all = await api.call('POST', `/v1/sessions/${sid}/cancel`);
    expect(all.status).toBe(200);
    expect(all.json.cancelled).toBe(5);
    const lines = await results(sid, '?waitSec=20');
    expect(lines.filter((l) => l.state === 'cancelled')).toHaveLength(6);
    const again = await api.call('POST', `/v1/tasks/${sid}_5/cancel`);
    expect(again.json).toMatchObject({ cancelled: false, state: 'cancelled' });
  });
});

describe('watching the grid', () => {
  test('sessions are listed newest first with their counts, page by page', async () => {
    const a = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'noop' }] } })).json.sessionId;
    const b = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'noop' }, { do: 'noop' }] } })).json
      .sessionId;
    const first = await api.call('GET', '/v1/sessions?limit=1');
    expect(first.status).toBe(200);
    expect(first.json.sessions).toEqual([expect.objectContaining({ sessionId: b, taskCount: 2 })]);
    const second = await api.call('GET', `/v1/sessions?limit=1&cursor=${first.json.cursor}`);
    expect(second.json.sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual([a]);
    const bad = await api.call('GET', '/v1/sessions?cursor=nonsense');
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('InvalidCursorError');
  });

  test('the event stream sends an overview of sessions, backlog and agents at each interval, then ends', async () => {
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'sleep', seconds: 0.5 }] } })).json
      .sessionId;
    const answer = await api.call('GET', '/v1/events?intervalMs=250&waitSec=1.2&sessions=5');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/event-stream');
    const events = answer.text
      .split('\n\n')
      .filter((e) => e.includes('data: '))
      .map((e) => ({ name: /^event: (.*)$/m.exec(e)![1], data: JSON.parse(/^data: (.*)$/m.exec(e)![1]!) }));
    const overviews = events.filter((e) => e.name === 'overview').map((e) => e.data);
    expect(overviews.length).toBeGreaterThanOrEqual(2);
    expect(events[events.length - 1]).toEqual({ name: 'end', data: { reason: 'deadline' } });
    const first = overviews[0];
    expect(first.sessions[0]).toMatchObject({ sessionId: sid, taskCount: 1 });
    expect(first.sessions.length).toBeLessThanOrEqual(5);
    expect(first.totals.backlog).toBe(first.totals.pending + first.totals.running);
    expect(first.agents.agents).toEqual([expect.objectContaining({ id: grid.agent!.owner })]);
  });

  test('the event stream sends an overview when a task ends, without waiting for its interval', async () => {
    // Without the wake-ups, the next event would come after the minute's poll: past this test's timeout.
    const stop = new AbortController();
    const response = await fetch(`${server.url}/v1/events?intervalMs=60000&waitSec=120`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: stop.signal,
    });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    /** The next overview event of the stream. */
    const next = async (): Promise<any> => {
      for (;;) {
        const match = /event: overview\ndata: (.*)\n\n/.exec(buffer);
        if (match) {
          buffer = buffer.slice(match.index + match[0].length);
          return JSON.parse(match[1]!);
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    };
    try {
      const firstAt = (await next()).at as number;
      const sid = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'noop' }] } })).json.sessionId;
      // Each event before the poll interval (a minute) was woken by a change: the session queued, then its task ended.
      for (;;) {
        const overview = await next();
        expect(overview.at).toBeLessThan(firstAt + 60_000);
        if (overview.sessions.find((s: any) => s.sessionId === sid)?.done) break;
      }
    } finally {
      stop.abort();
    }
  }, 30_000);
});

describe('the dashboard', () => {
  test('is served under /ui/ with a policy that lets it load from this origin only; its files carry no data', async () => {
    const page = await fetch(`${server.url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(await page.text()).toContain('<script src="app.js"></script>');
    const script = await fetch(`${server.url}/ui/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await script.text()).length).toBeGreaterThan(10_000);
    expect((await fetch(`${server.url}/ui`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/');
    expect((await fetch(`${server.url}/ui/../v1`)).status).toBe(401);
    expect((await fetch(`${server.url}/ui/secrets.json`)).status).toBe(404);
    expect((await fetch(`${server.url}/ui/`, { method: 'POST' })).status).toBe(405);
  });
});

describe('the grid', () => {
  test('describes itself and lists the agents alive in its registry, those of other processes and hosts too', async () => {
    const info = await api.call('GET', '/v1');
    expect(info.json).toMatchObject({
      api: 'htcgrid',
      grid: 'local',
      limits: API_LIMITS,
      defaults: { maxAttempts: 2 },
    });
    // An agent of another host registers in the same grid folder.
    const now = Date.now();
    await grid.backends.agents.heartbeat({
      agentId: 'far:7:abc',
      host: 'far',
      pid: 7,
      slots: 4,
      handler: 'app.handler',
      runtime: 'python3.12',
      startedAt: now - 1,
      heartbeatAt: now,
      expiresAt: now + 60_000,
      state: 'draining',
      busySlots: 3,
      runtimeRestarts: 2,
      tasks: { claimed: 9, succeeded: 5, failed: 1, retried: 0, released: 0, dropped: 0 },
      waitingForDisk: true,
    });
    try {
      const agents = await api.call('GET', '/v1/agents');
      expect(agents.json.source).toBe('registry');
      expect(agents.json.agents).toEqual([
        expect.objectContaining({
          id: grid.agent!.owner,
          state: 'alive',
          slots: 2,
          host: os.hostname(),
          waitingForDisk: false,
        }),
        expect.objectContaining({
          id: 'far:7:abc',
          host: 'far',
          state: 'draining',
          slots: 4,
          busySlots: 3,
          idleSlots: 1,
          runtimeRestarts: 2,
          stats: expect.objectContaining({ claimed: 9, failed: 1 }),
          waitingForDisk: true,
        }),
      ]);
      expect(agents.json.note).toMatch(/heartbeat every 2 s/);
    } finally {
      await grid.backends.agents.remove('far:7:abc');
    }
  });

  test("the agent's heartbeat tells its busy slots while a task runs, and the runtime restart of a cancelled task", async () => {
    const own = async (): Promise<any> =>
      (await api.call('GET', '/v1/agents')).json.agents.find((a: any) => a.id === grid.agent!.owner);
    // Counts from a heartbeat written after this test began, no task running.
    const since = Date.now();
    let before = 0;
    await waitFor(
      async () => {
        const agent = await own();
        before = agent.runtimeRestarts;
        return agent.heartbeatAt > since && agent.busySlots === 0;
      },
      15_000,
      'a fresh heartbeat',
    );
    const sid = (await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'sleep', seconds: 60 }] } })).json
      .sessionId;
    await waitFor(async () => (await own()).busySlots === 1, 15_000, 'a busy slot');
    expect(await own()).toMatchObject({ busySlots: 1, idleSlots: 1 });
    // Cancelling the running task kills its runtime, and the slot starts a new one.
    expect((await api.call('POST', `/v1/sessions/${sid}/cancel`)).status).toBe(200);
    await waitFor(async () => (await own()).runtimeRestarts === before + 1, 20_000, 'a runtime restart');
    await waitFor(async () => (await own()).busySlots === 0, 15_000, 'idle slots again');
  });
});

describe('bad input', () => {
  async function countSessionsTasks(): Promise<number> {
    const db = grid.backends.table as unknown as { db: { prepare(sql: string): { get(): { n: number } } } };
    return db.db.prepare('SELECT count(*) AS n FROM tasks').get().n;
  }

  test('gets a 4xx JSON error naming the problem and the fix, and changes nothing', async () => {
    const before = await countSessionsTasks();
    const sid = (await api.call('POST', '/v1/sessions', {})).json.sessionId;
    const cases: [string, string, Parameters<ApiTestClient['call']>[2], number, string][] = [
      [
        'POST',
        '/v1/sessions',
        { raw: '{"tasks": [1, 2', headers: { 'content-type': 'application/json' } },
        400,
        'InvalidRequestError',
      ],
      ['POST', '/v1/sessions', { body: { maxAttempts: 0, colour: 'red' } }, 400, 'InvalidRequestError'],
      ['POST', '/v1/sessions', { body: { sessionId: '../etc' } }, 400, 'InvalidRequestError'],
      ['POST', '/v1/sessions', { body: { sessionId: sid } }, 409, 'SessionExistsError'],
      ['POST', '/v1/sessions', { body: { tasks: [{}], priority: 7 } }, 400, 'InvalidTaskError'],
      ['GET', '/v1/sessions/nope', {}, 404, 'UnknownSessionError'],
      ['GET', '/v1/sessions/nope/results', {}, 404, 'UnknownSessionError'],
      ['GET', '/v1/tasks/nope_1', {}, 404, 'UnknownTaskError'],
      ['POST', `/v1/sessions/${sid}/tasks`, { body: [{}] }, 400, 'InvalidRequestError'],
      [
        'POST',
        `/v1/sessions/${sid}/tasks?start=0`,
        { raw: '{"a": 1}\n{"a": NaN}\n', headers: { 'content-type': 'application/x-ndjson' } },
        400,
        'InvalidTaskError',
      ],
      [
        'POST',
        `/v1/sessions/${sid}/tasks?start=0`,
        { raw: '{"a": 1}', headers: { 'content-type': 'application/json' } },
        400,
        'InvalidRequestError',
      ],
      [
        'POST',
        `/v1/sessions/${sid}/tasks?start=0`,
        { body: Array.from({ length: API_LIMITS.maxTasksPerRequest + 1 }, () => 0) },
        413,
        'RequestTooLargeError',
      ],
      [
        'POST',
        `/v1/sessions/${sid}/tasks?start=0`,
        { raw: `["${'x'.repeat(API_LIMITS.maxBodyBytes)}"]` },
        413,
        'RequestTooLargeError',
      ],
      ['GET', `/v1/sessions/${sid}/results?cursor=bogus`, {}, 400, 'InvalidCursorError'],
      ['GET', `/v1/sessions/${sid}/results?limit=0`, {}, 400, 'InvalidRequestError'],
      ['POST', `/v1/sessions/${sid}/seal`, { body: { taskCount: -1 } }, 400, 'InvalidRequestError'],
      ['POST', `/v1/sessions/${sid}/cancel`, { body: { taskIds: [] } }, 400, 'InvalidRequestError'],
      ['DELETE', '/v1/sessions', {}, 405, 'MethodNotAllowedError'],
      ['GET', '/v2/anything', {}, 404, 'NotFoundError'],
      ['GET', '/v1', { token: null }, 401, 'UnauthorizedError'],
      ['POST', '/v1/sessions', { token: 'wrong', body: { tasks: [{}] } }, 401, 'UnauthorizedError'],
    ];
    for (const [method, p, options, status, code] of cases) {
      let answer;
      try {
        answer = await api.call(method, p, options);
      } catch (err) {
        throw new Error(`${method} ${p}: ${(err as Error).message}`);
      }
      expect({ call: `${method} ${p}`, status: answer.status, code: answer.json?.error?.code }).toEqual({
        call: `${method} ${p}`,
        status,
        code,
      });
      expect(answer.json.error.message).toEqual(expect.any(String));
      expect(answer.json.error.fix).toEqual(expect.any(String));
    }
    expect(await countSessionsTasks()).toBe(before);
    const status = await api.call('GET', `/v1/sessions/${sid}`);
    expect(status.json).toMatchObject({ sealed: false, counts: { pending: 0, succeeded: 0 } });
  });

  test("an unknown session's 404 says in its message that the id is wrong or the session expired, and the fix", async () => {
    // Both ways an API call finds no session: its own look-up, and the client's error mapped to an answer.
    const answers = [
      (await api.call('GET', '/v1/sessions/nope')).json.error,
      (await api.call('GET', '/v1/sessions/nope/results')).json.error,
      toApiError(new UnknownSessionError('nope')).body().error,
    ];
    for (const error of answers) {
      expect(error).toMatchObject({ code: 'UnknownSessionError', sessionId: 'nope' });
      expect(error.message).toMatch(
        /^unknown session 'nope': no session has this id, or it finished .*and was deleted/,
      );
      expect(error.message).toMatch(/task_retention_sec/);
      expect(error.fix).toMatch(/sessionId .*GET \/v1\/sessions.*submit its tasks again.*task_retention_sec/);
    }
  });

  test('a session created with a task that is refused leaves no session behind', async () => {
    const big = 'x'.repeat(200_000);
    const refused = await api.call('POST', '/v1/sessions', {
      body: { sessionId: 'refused-one-shot', tasks: [{ n: 1 }, { big }] },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ code: 'InvalidTaskError', index: 1 });
    expect((await api.call('GET', '/v1/sessions/refused-one-shot')).status).toBe(404);
    // Payloads over the inline limit went through the payload store and come back as sent.
    const stored = await api.call('POST', '/v1/sessions', { body: { tasks: [{ do: 'echo', pad: 'p'.repeat(2000) }] } });
    const lines = await results(stored.json.sessionId);
    expect(lines[0].result.echo.pad).toHaveLength(2000);
    expect((await api.call('GET', `/v1/tasks/${stored.json.sessionId}_0`)).json.payload.pad).toHaveLength(2000);
  });

  test('requests beyond the rate limit get 429 with Retry-After', async () => {
    const limited = new ApiHandlers({
      config: compileConfig({}, 'test'),
      client: grid.client,
      table: grid.backends.table,
      store: grid.backends.store,
      ledger,
      gridKind: 'local',
      limits: { ...API_LIMITS, requestsPerSecond: 1, burst: 2 },
      clock: () => 1_000_000,
    });
    const request = { method: 'GET', path: '/v1', query: new URLSearchParams(), headers: {}, body: '', caller: 'c' };
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await limited.handle(request)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const refused = await limited.handle(request);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body as string).error).toMatchObject({ code: 'RateLimitedError' });
    expect((await limited.handle({ ...request, caller: 'another' })).status).toBe(200);
  });
});

describe('the tests above', () => {
  test('exercised every operation of the document', () => {
    expect(contract.missing()).toEqual([]);
  });
});
