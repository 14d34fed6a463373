// The local grid end to end: client → SQLite queue and table → agent → real Python runtimes → results.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidTaskError, taskIdOf, UnknownSessionError, WorkerInitError } from '../../lib/core';
import { payloadKeys } from '../../lib/ports';
import { FIXTURES, collect, startTestGrid, tempDir, waitFor, type TestGrid } from '../support/local-grid';

const worker = (name: string) => path.join(FIXTURES, 'e2e', name);

describe('the local grid', () => {
  let grid: TestGrid | undefined;
  afterEach(async () => {
    await grid?.close(1_000);
    grid = undefined;
  });

  it('runs an unmodified Lambda handler with a full context carrying the task ids', async () => {
    grid = await startTestGrid(worker('probe'));
    const handle = await grid.client.submit([{ instrument: 'A' }, { instrument: 'B' }]);
    const results = await collect(handle.results());

    expect(results.map((r) => r.state)).toEqual(['succeeded', 'succeeded']);
    const first = results[0]!.result as Record<string, any>;
    expect(first.event).toEqual({ instrument: 'A' });
    expect(first.custom).toEqual({ session_id: handle.sessionId, task_id: `${handle.sessionId}_0`, attempt: 1 });
    expect(first.function_name).toBe('function');
    expect(first.function_version).toBe('$LATEST');
    expect(first.invoked_function_arn).toMatch(/^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:function$/);
    expect(first.memory_limit_in_mb).toBe(3008);
    expect(first.log_group_name).toBe('/aws/lambda/function');
    expect(first.log_stream_name).toEqual(expect.any(String));
    expect(first.aws_request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.identity).toBe(true);
    const [before, after] = first.remaining as [number, number];
    expect(before).toBeLessThanOrEqual(900_000);
    expect(after).toBeLessThan(before);
    expect(first.task_root).toBe(grid.taskRoot);
    expect(first.cwd).toBe(grid.taskRoot);
    expect(first.handler_env).toBe('lambda_function.lambda_handler');
    expect(results[1]!.result).toMatchObject({ custom: { task_id: `${handle.sessionId}_1` } });
  });

  it('ends a task whose handler raises as failed with its exception type, message and stack', async () => {
    grid = await startTestGrid(worker('probe'), { lambda_handler_function_name: 'raises', max_attempts: 2 });
    const handle = await grid.client.submit([{ instrument: 'swaption' }]);
    const [result] = await collect(handle.results());

    expect(result!.state).toBe('failed');
    expect(result!.failureReason).toBe('error');
    expect(result!.error!.type).toBe('PricingError');
    expect(result!.error!.message).toBe('cannot price swaption');
    expect(result!.error!.stack.join('\n')).toMatch(/lambda_function\.py/);
    expect(result!.attempts).toBe(2);
    expect(result!.history.map((h) => h.outcome)).toEqual(['error', 'error']);
  });

  it('retries a failed attempt and records the success of the next one', async () => {
    grid = await startTestGrid(worker('flaky'));
    const handle = await grid.client.submit([{ value: 7 }]);
    const [result] = await collect(handle.results());

    expect(result!.state).toBe('succeeded');
    expect(result!.result).toEqual({ attempt: 2, value: 7 });
    expect(result!.attempts).toBe(2);
    expect(result!.history.map((h) => h.outcome)).toEqual(['error', 'succeeded']);
  });

  it('returns correct results from a worker that prints megabytes and garbage', async () => {
    grid = await startTestGrid(worker('chatty'));
    const handle = await grid.client.submit(Array.from({ length: 6 }, (_, n) => ({ n })));
    const results = await collect(handle.results());

    expect(results.map((r) => r.state)).toEqual(Array(6).fill('succeeded'));
    expect(results.map((r) => (r.result as { square: number }).square)).toEqual([0, 1, 4, 9, 16, 25]);
  });

  it('fails a task past its deadline as a timeout and keeps the slot usable', async () => {
    grid = await startTestGrid(worker('slow'), { task_timeout_sec: 0.5, max_attempts: 1 });
    const handle = await grid.client.submit([{ sleep_sec: 5 }, { sleep_sec: 0 }]);
    const results = await collect(handle.results());

    expect(results[0]).toMatchObject({ state: 'failed', failureReason: 'timeout' });
    expect(results[0]!.error!.message).toMatch(/Task timed out after 0\.50 seconds/);
    expect(results[1]).toMatchObject({ state: 'succeeded', result: { slept: 0 } });
  });

  it('moves large payloads and results through the payload store', async () => {
    grid = await startTestGrid(worker('probe'), {
      lambda_handler_function_name: 'big_result',
      inline_payload_max_bytes: 1024,
    });
    const handle = await grid.client.submit([{ bytes: 200_000, pad: 'p'.repeat(5_000) }, { bytes: 10 }]);
    const results = await collect(handle.results());

    expect((results[0]!.result as { blob: string }).blob).toHaveLength(200_000);
    expect((results[1]!.result as { blob: string }).blob).toBe('x'.repeat(10));
    // The large payload and result went by reference through the store; the small ones stayed inline.
    const [big, small] = await Promise.all(
      [0, 1].map((i) => grid!.backends.table.getTask(taskIdOf(handle.sessionId, i))),
    );
    expect(big?.payload).toEqual({ key: payloadKeys.input(handle.sessionId, big!.taskId), bytes: expect.any(Number) });
    expect(big?.result).toEqual({
      key: payloadKeys.result(handle.sessionId, big!.taskId, 1),
      bytes: expect.any(Number),
    });
    const storedResult = await grid.backends.store.get(payloadKeys.result(handle.sessionId, big!.taskId, 1));
    expect(JSON.parse(storedResult.toString('utf8'))).toEqual(results[0]!.result);
    expect(
      JSON.parse((await grid.backends.store.get(payloadKeys.input(handle.sessionId, big!.taskId))).toString()),
    ).toEqual({
      bytes: 200_000,
      pad: 'p'.repeat(5_000),
    });
    expect(small?.payload).toHaveProperty('inline');
    expect(small?.result).toHaveProperty('inline');
  });

  it('fails a result that cannot be serialised with a clear error, without retrying it', async () => {
    grid = await startTestGrid(worker('probe'), { lambda_handler_function_name: 'not_serialisable' });
    const handle = await grid.client.submit([{}]);
    const [result] = await collect(handle.results());

    expect(result).toMatchObject({ state: 'failed', attempts: 1 });
    expect(result!.error!.type).toBe('Runtime.MarshalError');
  });

  it('fails the grid start, not each task, when the handler module or function is missing', async () => {
    await expect(startTestGrid(worker('probe'), { lambda_handler_file_name: 'no_such_module' })).rejects.toThrow(
      WorkerInitError,
    );
    await expect(startTestGrid(worker('probe'), { lambda_handler_file_name: 'no_such_module' })).rejects.toThrow(
      /no_such_module/,
    );
    await expect(startTestGrid(worker('probe'), { lambda_handler_function_name: 'nope' })).rejects.toThrow(/nope/);
  });

  it('rejects a task that is not JSON-serialisable and keeps nothing of its session', async () => {
    grid = await startTestGrid(worker('probe'), { max_payload_bytes: 100_000 });
    const events = [{ ok: 1 }, { big: 'x'.repeat(200_000) }];
    await expect(grid.client.submit(events, { sessionId: 'too-big' })).rejects.toThrow(
      /task #1: payload of 200\d+ bytes exceeds the limit of 100000 bytes/,
    );
    await expect(grid.client.submit([{ ok: 1 }, { n: 10n }], { sessionId: 'bigint' })).rejects.toThrow(
      InvalidTaskError,
    );
    await expect(grid.client.submit([{ ok: 1 }], { sessionId: 'bad-size', expectedTasks: -1 })).rejects.toThrow(
      /expectedTasks must be a whole number of tasks \(got -1\)/,
    );
    await expect(grid.client.session('too-big')).rejects.toThrow(UnknownSessionError);
    expect(await grid.backends.table.getTask('too-big_0')).toBeUndefined();
  });

  it('gives a clear error for an unknown session id', async () => {
    grid = await startTestGrid(undefined);
    await expect(grid.client.session('does-not-exist')).rejects.toThrow(/unknown session 'does-not-exist'/);
  });

  it('cancels a session: pending tasks never start and running ones stop within seconds', async () => {
    grid = await startTestGrid(worker('slow'), { slots: 1 });
    const markers = tempDir();
    const handle = await grid.client.submit([0, 1, 2].map(() => ({ sleep_sec: 30, marker_dir: markers })));
    await waitUntilRunning(grid, handle.sessionId);
    await waitFor(() => fs.readdirSync(markers).length > 0, 10_000, 'the first task to start');
    const started = Date.now();
    await handle.cancel();
    const results = await collect(handle.results());

    expect(results.map((r) => r.state)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    // Only the task that was running ever reached the worker.
    expect(fs.readdirSync(markers)).toHaveLength(1);
    // The slot is free again: a new task runs promptly after the cancelled one was interrupted.
    const next = await grid.client.submit([{ sleep_sec: 0 }]);
    expect((await collect(next.results()))[0]!.state).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

async function waitUntilRunning(grid: TestGrid, sessionId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await grid.backends.table.countByState(sessionId)).running === 0) {
    if (Date.now() > deadline) throw new Error('no task started');
    await new Promise((r) => setTimeout(r, 20));
  }
}
