// The RIE invoker against the RIE HTTP API served in front of a real local Python runtime (rie-server).
import http from 'node:http';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../../lib/ports';
import { createLocalInvoker } from '../../../lib/runtime/local';
import { RieInvoker, RIE_INVOKE_PATH, clientContextHeader } from '../../../lib/runtime/rie';
import { RieServer } from '../../../twin/stand-ins/rie-server';
import { freePort } from '../../support/emulators';
import { waitFor } from '../../support/local-grid';

const TASK_ROOT = path.resolve(__dirname, '..', '..', 'fixtures', 'workers', 'python');
const opened: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

/** An RIE server in front of a local Python runtime; `invocations()` counts the invokes that reached the runtime. */
async function serve(handler: string, options: { functionTimeoutSec?: number; port?: number } = {}) {
  const local = createLocalInvoker({
    taskRoot: TASK_ROOT,
    handler,
    runtime: resolveRuntime('python3.12'),
    pythonExecutable: 'python3',
  });
  let invocations = 0;
  const counted: WorkerInvoker = {
    start: () => local.start(),
    close: () => local.close(),
    invoke: (...args) => {
      invocations++;
      return local.invoke(...args);
    },
  };
  const server = await RieServer.start({ invoker: counted, ...options });
  opened.push(server);
  return Object.assign(server, { invocations: () => invocations });
}

function invoker(endpoint: string, startTimeoutMs = 10_000): RieInvoker {
  const rie = new RieInvoker({ endpoint, startTimeoutMs });
  opened.push(rie);
  return rie;
}

let counter = 0;
function invocation(event: unknown, timeoutMs = 20_000): Invocation {
  counter++;
  return {
    requestId: `req-${counter}`,
    taskId: `sess-1_${counter}`,
    sessionId: 'sess-1',
    attempt: 2,
    eventJson: JSON.stringify(event),
    deadline: Date.now() + timeoutMs,
  };
}

function failure(result: InvokeResult) {
  if (result.ok) throw new Error(`expected a failure, got ${result.resultJson}`);
  return result;
}

/** A raw POST, to see the bytes the server answers with. */
function rawInvoke(endpoint: string, body: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(new URL(RIE_INVOKE_PATH, endpoint), { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('RieInvoker against the RIE API in front of the local Python runtime', () => {
  it('returns the handler result and passes the task identity in the client context', async () => {
    const server = await serve('worker.probe');
    const rie = invoker(server.endpoint);
    await rie.start();
    const inv = invocation({});

    const result = await rie.invoke(inv);

    if (!result.ok) throw new Error(JSON.stringify(result.error));
    const ctx = JSON.parse(result.resultJson);
    expect(ctx.client_context.custom).toEqual({ session_id: 'sess-1', task_id: inv.taskId, attempt: 2 });
  });

  it('a handler that raises comes back as a function error with its type, message and stack', async () => {
    const server = await serve('worker.fail');
    const rie = invoker(server.endpoint);

    const result = failure(await rie.invoke(invocation({ x: 7 })));

    expect(result.reason).toBe('error');
    expect(result.error.type).toBe('ValueError');
    expect(result.error.message).toBe('bad input: 7');
    expect(result.error.stack.join('')).toContain('worker.py');
  });

  it('answers a handler error as lambda-rie does: 200, no function-error header, the Python error document', async () => {
    const server = await serve('worker.fail');

    const res = await rawInvoke(server.endpoint, '{"x": 1}');

    expect(res.status).toBe(200);
    expect(res.headers['x-amz-function-error']).toBeUndefined();
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toMatch(
      /^\{"errorMessage": "bad input: 1", "errorType": "ValueError", "requestId": "[0-9a-f-]{36}", "stackTrace": \[/,
    );
  });

  it('the RIE function timeout answers "Task timed out after N.00 seconds" and is classified as a timeout', async () => {
    const server = await serve('worker.sleep', { functionTimeoutSec: 1 });
    const rie = invoker(server.endpoint);

    const raw = await rawInvoke(server.endpoint, '{"seconds": 5}');
    const result = failure(await rie.invoke(invocation({ seconds: 5 })));

    expect(raw).toMatchObject({ status: 200, body: 'Task timed out after 1.00 seconds' });
    expect(result.reason).toBe('timeout');
    expect(result.error.message).toBe('Task timed out after 1.00 seconds');
  });

  it("the task's own deadline aborts the request and reports a timeout", async () => {
    const server = await serve('worker.sleep');
    const rie = invoker(server.endpoint);

    const result = failure(await rie.invoke(invocation({ seconds: 30 }, 500)));

    expect(result.reason).toBe('timeout');
    // The span from the invoke to the deadline, at most the 500 ms it was created with (less on a loaded machine).
    const seconds = Number(/^Task timed out after (\d+\.\d\d) seconds$/.exec(result.error.message)?.[1]);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(0.5);
  });

  it('aborting the signal cancels the invocation', async () => {
    const server = await serve('worker.sleep');
    const rie = invoker(server.endpoint);
    const controller = new AbortController();
    const running = rie.invoke(invocation({ seconds: 30 }), controller.signal);
    await waitFor(() => server.invocations() === 1, 10_000, 'the invocation in the runtime');
    controller.abort(new Error('task cancelled'));

    const result = failure(await running);

    expect(result.reason).toBe('cancelled');
    expect(result.error.message).toContain('task cancelled');
  });

  it('a second invoke while one runs gets 400 and is reported busy', async () => {
    const server = await serve('worker.sleep');
    const first = invoker(server.endpoint);
    const second = invoker(server.endpoint);
    const running = first.invoke(invocation({ seconds: 3 }));
    await waitFor(() => server.invocations() === 1, 10_000, 'the first request being served');

    const raw = await rawInvoke(server.endpoint, '{"seconds": 0}');
    const result = failure(await second.invoke(invocation({ seconds: 0 })));

    expect(raw).toMatchObject({ status: 400, body: '' });
    expect(result.reason).toBe('busy');
    expect((await running).ok).toBe(true);
  });

  it('a runtime that dies mid-task is a 502 with Runtime.ExitError, classified as a runtime crash', async () => {
    const server = await serve('worker.crash');
    const rie = invoker(server.endpoint);

    const raw = await rawInvoke(server.endpoint, '{}');
    const result = failure(await rie.invoke(invocation({})));

    expect(raw.status).toBe(502);
    expect(JSON.parse(raw.body)).toMatchObject({ errorType: 'Runtime.ExitError' });
    expect(raw.body).toMatch(
      /^\{"errorMessage":"RequestId: [0-9a-f-]{36} Error: Runtime exited with error: exit status 3"/,
    );
    expect(result.reason).toBe('runtime-crash');
    expect(result.error.type).toBe('Runtime.ExitError');
  });

  it('a worker that cannot be imported is a 502 init failure naming the import error', async () => {
    const missing = await serve('no_such_module.handler');
    const raising = await serve('broken_import.handler');

    const raw = await rawInvoke(missing.endpoint, '{}');
    const result = failure(await invoker(missing.endpoint).invoke(invocation({})));
    const raised = failure(await invoker(raising.endpoint).invoke(invocation({})));

    expect(raw.status).toBe(502);
    expect(result.reason).toBe('runtime-crash');
    expect(result.error.type).toBe('Runtime.ImportModuleError');
    expect(result.error.message).toContain('no_such_module');
    expect(raised.reason).toBe('runtime-crash');
    expect(raised.error.message).toContain('cannot connect at import time');
  });

  it('connection refused while the runtime starts is retried until it listens', async () => {
    const port = await freePort();
    const rie = invoker(`http://127.0.0.1:${port}`, 15_000);
    const pending = rie.invoke(invocation({ late: true }));
    await new Promise((r) => setTimeout(r, 400));

    await serve('worker.echo', { port });
    const result = await pending;

    expect(result).toEqual({ ok: true, resultJson: '{"echo": {"late": true}}' });
  });

  it('start gives up with a WorkerInitError when nothing listens', async () => {
    const port = await freePort();
    const rie = invoker(`http://127.0.0.1:${port}`, 300);

    await expect(rie.start()).rejects.toThrow(/did not accept connections within 300 ms/);
  });

  it('bad client-context base64 is a 500 with an empty body, as in lambda-rie', async () => {
    const server = await serve('worker.echo');

    const res = await rawInvoke(server.endpoint, '{}', { 'X-Amz-Client-Context': '***' });

    expect(res).toMatchObject({ status: 500, body: '' });
  });

  it('the client context header is standard base64 of {"custom": {...}}', () => {
    const header = clientContextHeader({ sessionId: 's', taskId: 's_1', attempt: 3 });

    expect(JSON.parse(Buffer.from(header, 'base64').toString('utf8'))).toEqual({
      custom: { session_id: 's', task_id: 's_1', attempt: 3 },
    });
  });
});
