// The `provided` runtime: a real executable bootstrap driven through our Lambda Runtime API server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import type { WorkerInvoker } from '../../../lib/ports';
import { createLocalInvoker } from '../../../lib/runtime/local';
import { closeAfterEach, collectOutput, failure, FIXTURES, initError, invocation, waitFor } from './helpers';

const TASK_ROOT = path.join(FIXTURES, 'provided');
const track = closeAfterEach();

function provided(mode = 'serve', onOutput?: Parameters<typeof createLocalInvoker>[0]['onOutput']): WorkerInvoker {
  const invoker = createLocalInvoker({
    taskRoot: TASK_ROOT,
    handler: 'main.handler',
    runtime: resolveRuntime('provided'),
    functionName: 'cpp-fn',
    env: { PROVIDED_MODE: mode, AWS_REGION: 'us-west-2' },
    onOutput,
  });
  return track(invoker);
}

describe('the provided runtime over the Lambda Runtime API', () => {
  it('hands the event and Lambda headers to the bootstrap and returns its response', async () => {
    const output = collectOutput();
    const invoker = provided('serve', output.listener);
    await invoker.start();
    const inv = invocation({ x: 1 }, 5_000, { taskId: 'p_1', sessionId: 'p', attempt: 1 });

    const result = await invoker.invoke(inv);

    if (!result.ok) throw new Error(JSON.stringify(result.error));
    const body = JSON.parse(result.resultJson);
    expect(body.event).toEqual({ x: 1 });
    expect(body.headers['Lambda-Runtime-Deadline-Ms']).toBe(String(inv.deadline));
    expect(body.headers['Lambda-Runtime-Invoked-Function-Arn']).toBe(
      'arn:aws:lambda:us-west-2:000000000000:function:cpp-fn',
    );
    expect(JSON.parse(body.headers['Lambda-Runtime-Client-Context'])).toEqual({
      custom: { session_id: 'p', task_id: 'p_1', attempt: 1 },
    });
    expect(body.headers['Lambda-Runtime-Trace-Id']).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};/);
    expect(body.env).toEqual({ _HANDLER: 'main.handler', AWS_LAMBDA_FUNCTION_NAME: 'cpp-fn' });
    await waitFor(() => output.text(inv.taskId).includes('handling'));
  });

  it('reports an invocation error posted by the bootstrap', async () => {
    const invoker = provided();

    const result = failure(await invoker.invoke(invocation({ action: 'fail' })));

    expect(result).toEqual({
      ok: false,
      reason: 'error',
      error: { type: 'Custom.Broken', message: 'it broke', stack: ['at main.cpp:12'] },
    });
  });

  it('fails start() with the init error the bootstrap posted', async () => {
    const invoker = provided('init-error');

    const error = await initError(invoker);

    expect(error.errorType).toBe('Custom.ConfigError');
    expect(error.message).toContain('config file missing');
  });

  it('fails start() naming the bootstrap when it is not executable', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-provided-'));
    const invoker = createLocalInvoker({ taskRoot: dir, handler: 'x.y', runtime: resolveRuntime('provided') });
    fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\n', { mode: 0o644 });
    track(invoker);

    const error = await initError(invoker);

    expect(error.message).toContain(path.join(dir, 'bootstrap'));
    expect(error.message).toMatch(/EACCES/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('times out, crashes and recovers like the pipe runtimes', async () => {
    const invoker = provided();
    await invoker.start();

    const timedOut = failure(await invoker.invoke(invocation({ action: 'sleep', seconds: 30 }, 300)));
    const crashed = failure(await invoker.invoke(invocation({ action: 'exit' })));
    const next = await invoker.invoke(invocation({ y: 2 }));

    expect(timedOut.reason).toBe('timeout');
    expect(timedOut.error.message).toBe('Task timed out after 0.30 seconds');
    expect(crashed.reason).toBe('runtime-crash');
    expect(crashed.error.message).toContain('exit status 7');
    expect(next.ok).toBe(true);
  });
});
