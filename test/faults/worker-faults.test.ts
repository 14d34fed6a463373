// Fault injection at the worker: handlers that raise, crash, hang, flood their output or return garbage, runtimes
// killed mid-task, cancellation, priorities and duplicate queue messages. Real Python runtimes, real kills.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidTaskError } from '../../lib/core';
import type { TaskResult } from '../../lib/client';
import { collect, startTestGrid, tempDir, waitFor, type TestGrid } from '../support/local-grid';
import { FAULT_WORKER, executions, isAlive, outcomes, runtimePidOf } from './fault-helpers';

describe('a grid whose worker misbehaves', () => {
  let grid: TestGrid;
  let logDir: string;
  let pidDir: string;
  beforeAll(async () => {
    grid = await startTestGrid(FAULT_WORKER);
  });
  afterAll(async () => {
    await grid.close(1_000);
  });
  beforeEach(() => {
    logDir = tempDir('htcgrid-faults-log-');
    pidDir = tempDir('htcgrid-faults-pid-');
  });

  it('retries a task whose handler raises on attempt 1 and records both attempts', async () => {
    const handle = await grid.client.submit([{ raise_on: [1], log_dir: logDir }]);
    const [result] = await collect(handle.results());

    expect(result).toMatchObject({ state: 'succeeded', attempts: 2, failures: 1, result: { attempt: 2 } });
    expect(outcomes(result!)).toEqual(['error', 'succeeded']);
    const [first, second] = result!.history;
    expect(first).toMatchObject({ attempt: 1, owner: grid.agent!.owner, error: { type: 'PricingError' } });
    expect(first!.startedAt).toBeLessThanOrEqual(first!.finishedAt);
    expect(second!.startedAt).toBeGreaterThanOrEqual(first!.finishedAt);
    expect(executions(logDir).get(result!.taskId)).toBe(2);
  });

  it('fails a task that always raises after maxAttempts, keeping the last error type, message and stack', async () => {
    const handle = await grid.client.submit([{ raise: 'PricingError', log_dir: logDir }], { maxAttempts: 3 });
    const [result] = await collect(handle.results());

    expect(result).toMatchObject({ state: 'failed', failureReason: 'error', attempts: 3, failures: 3 });
    expect(result!.error!.type).toBe('PricingError');
    expect(result!.error!.message).toBe(`PricingError raised by ${result!.taskId} on attempt 3`);
    expect(result!.error!.stack.join('\n')).toMatch(/lambda_function\.py/);
    expect(outcomes(result!)).toEqual(['error', 'error', 'error']);
    expect(executions(logDir).get(result!.taskId)).toBe(3);
  });

  it('fails an error type the session declares non-retryable after one attempt, and retries the others', async () => {
    const handle = await grid.client.submit(
      [
        { raise: 'BadInputError', log_dir: logDir },
        { raise: 'PricingError', log_dir: logDir },
      ],
      { maxAttempts: 3, nonRetryableErrorTypes: ['BadInputError'] },
    );
    const [bad, pricing] = await collect(handle.results());

    expect(bad).toMatchObject({ state: 'failed', attempts: 1, error: { type: 'BadInputError' } });
    expect(pricing).toMatchObject({ state: 'failed', attempts: 3, error: { type: 'PricingError' } });
    expect(executions(logDir).get(bad!.taskId)).toBe(1);
  });

  it('applies per-task maxAttempts and timeouts over the session settings', async () => {
    const handle = await grid.client.submit(
      [{ raise: 'PricingError' }, { raise: 'PricingError' }, { sleep: 1.5 }, { sleep: 1.5 }],
      {
        maxAttempts: 2,
        taskOptions: (_event, index) =>
          index === 0 ? { maxAttempts: 1 } : index === 2 ? { timeoutSec: 0.4, maxAttempts: 1 } : undefined,
      },
    );
    const results = await collect(handle.results());

    expect(results.map((r) => [r.state, r.attempts])).toEqual([
      ['failed', 1],
      ['failed', 2],
      ['failed', 1],
      ['succeeded', 1],
    ]);
    expect(results[2]).toMatchObject({ failureReason: 'timeout', error: { type: 'Sandbox.Timedout' } });
    expect(results[2]!.error!.message).toBe('Task timed out after 0.40 seconds');
  });

  it('rejects a per-task setting out of range with an error naming the task, keeping nothing of the session', async () => {
    const submit = grid.client.submit([{}, {}, {}], {
      sessionId: 'bad-task-priority',
      taskOptions: (_event, index) => (index === 1 ? { priority: 7 } : undefined),
    });

    await expect(submit).rejects.toThrow(InvalidTaskError);
    await expect(
      grid.client.submit([{}], { sessionId: 'bad-task-attempts', taskOptions: () => ({ maxAttempts: 0 }) }),
    ).rejects.toThrow(/task #0: maxAttempts must be an integer from 1 to 100 \(got 0\)/);
    await expect(submit).rejects.toThrow(/task #1: priority 7 is out of range: use an integer from 0 to 2/);
    expect(await grid.backends.table.getSession('bad-task-priority')).toBeUndefined();
    expect(await grid.backends.table.getTask('bad-task-priority_0')).toBeUndefined();
  });

  it('retries a task whose runtime calls os._exit mid-task, and leaves the task in the other slot untouched', async () => {
    const handle = await grid.client.submit([
      { exit_on: [1], exit_after: 0.3, pid_dir: pidDir },
      { sleep: 1.2, pid_dir: pidDir },
    ]);
    const [crashed, neighbour] = await collect(handle.results());

    expect(crashed).toMatchObject({ state: 'succeeded', attempts: 2, failures: 1 });
    expect(outcomes(crashed!)).toEqual(['runtime-crash', 'succeeded']);
    expect(crashed!.history[0]!.error).toMatchObject({
      type: 'Runtime.ExitError',
      message: 'Runtime exited with error: exit status 3',
    });
    const crashedPid = await runtimePidOf(pidDir, crashed!.taskId, 1);
    expect((crashed!.result as { pid: number }).pid).not.toBe(crashedPid);
    expect(neighbour).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(outcomes(neighbour!)).toEqual(['succeeded']);
    expect((neighbour!.result as { pid: number }).pid).toBe(await runtimePidOf(pidDir, neighbour!.taskId, 1));
  });

  it('retries a task whose runtime process is SIGKILLed mid-task; the other slot keeps its runtime', async () => {
    const handle = await grid.client.submit([
      { sleep_on: { '1': 60 }, pid_dir: pidDir },
      { sleep: 1.5, pid_dir: pidDir },
    ]);
    const victim = await runtimePidOf(pidDir, `${handle.sessionId}_0`, 1);
    const neighbourPid = await runtimePidOf(pidDir, `${handle.sessionId}_1`, 1);

    process.kill(victim, 'SIGKILL');
    const [killed, neighbour] = await collect(handle.results());

    expect(outcomes(killed!)).toEqual(['runtime-crash', 'succeeded']);
    expect(killed!.history[0]!.error!.message).toBe('Runtime exited with error: signal: killed (SIGKILL)');
    expect(killed).toMatchObject({ state: 'succeeded', attempts: 2 });
    expect(neighbour).toMatchObject({ state: 'succeeded', attempts: 1, result: { pid: neighbourPid } });
    expect(isAlive(neighbourPid)).toBe(true);
  });

  it('times out an attempt past its deadline, kills its runtime, and succeeds on the retry', async () => {
    const handle = await grid.client.submit([{ sleep_on: { '1': 30 }, pid_dir: pidDir }], { timeoutSec: 1 });
    const hung = await runtimePidOf(pidDir, `${handle.sessionId}_0`, 1);
    const [result] = await collect(handle.results());

    expect(result).toMatchObject({ state: 'succeeded', attempts: 2 });
    expect(outcomes(result!)).toEqual(['timeout', 'succeeded']);
    expect(result!.history[0]!.error).toEqual({
      type: 'Sandbox.Timedout',
      message: 'Task timed out after 1.00 seconds',
      stack: [],
    });
    // The deadline is visible to the worker.
    const remaining = (result!.result as { remaining_ms: number }).remaining_ms;
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(1_000);
    await waitFor(() => !isAlive(hung), 5_000, 'the timed-out runtime to be killed');
  });

  it('fails a task that always sleeps past its deadline as a timeout after maxAttempts', async () => {
    const handle = await grid.client.submit([{ sleep: 30 }], { timeoutSec: 0.3, maxAttempts: 2 });
    const [result] = await collect(handle.results());

    expect(result).toMatchObject({ state: 'failed', failureReason: 'timeout', attempts: 2 });
    expect(outcomes(result!)).toEqual(['timeout', 'timeout']);
  });

  it('returns correct results from workers printing megabytes and garbage, or closing stdout and stderr', async () => {
    const handle = await grid.client.submit([
      { print_mb: 8 },
      { print_mb: 8 },
      { close_stdio: true },
      { close_stdio: true },
      {},
      {},
    ]);
    const results = await collect(handle.results());

    expect(results.map((r) => [r.state, r.attempts])).toEqual(Array(6).fill(['succeeded', 1]));
    expect(results.map((r) => (r.result as { task_id: string }).task_id)).toEqual(results.map((r) => r.taskId));
  });

  it('fails a task returning a value that cannot be serialised, once, with a clear error', async () => {
    const handle = await grid.client.submit([{ unserialisable: true }, {}], { maxAttempts: 3 });
    const [bad, good] = await collect(handle.results());

    expect(bad).toMatchObject({ state: 'failed', failureReason: 'error', attempts: 1 });
    expect(bad!.error!.type).toBe('Runtime.MarshalError');
    expect(bad!.error!.message).toMatch(/not JSON serializable/);
    expect(good!.state).toBe('succeeded');
  });

  it('runs a task once when its queue message is delivered again while it runs and after it finished', async () => {
    const handle = await grid.client.submit([{ sleep: 1, log_dir: logDir, pid_dir: pidDir }]);
    const taskId = `${handle.sessionId}_0`;
    await runtimePidOf(pidDir, taskId, 1);
    const duplicate = (attempt: number) => ({ taskId, sessionId: handle.sessionId, attempt, priority: 0 });
    const claimedBefore = grid.agent!.stats.claimed;

    await grid.backends.queue.send([duplicate(0), duplicate(1)]);
    const [result] = await collect(handle.results());
    await grid.backends.queue.send([duplicate(0), duplicate(1)]);
    await waitFor(
      async () => {
        const { visible, invisible } = await grid.backends.queue.countMessages();
        return visible + invisible === 0;
      },
      10_000,
      'the duplicates to be dropped',
    );

    expect(result).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(outcomes(result!)).toEqual(['succeeded']);
    expect(executions(logDir).get(taskId)).toBe(1);
    expect(grid.agent!.stats.claimed).toBe(claimedBefore);
    expect(await grid.backends.table.getTask(taskId)).toMatchObject({ state: 'succeeded', attempt: 1 });
  });
});

describe('a grid whose configuration declares non-retryable error types', () => {
  it('never retries them, even for a session that declares none of its own', async () => {
    const grid = await startTestGrid(FAULT_WORKER, { non_retryable_error_types: ['BadInputError'] });
    try {
      const handle = await grid.client.submit([{ raise: 'BadInputError' }, { raise: 'PricingError' }], {
        nonRetryableErrorTypes: [],
        maxAttempts: 2,
      });
      const [bad, pricing] = await collect(handle.results());

      expect(bad).toMatchObject({ state: 'failed', attempts: 1 });
      expect(pricing).toMatchObject({ state: 'failed', attempts: 2 });
    } finally {
      await grid.close(1_000);
    }
  });
});

describe('cancelling a running session', () => {
  it('interrupts running tasks within 2 s, never starts the others, and reports all as cancelled', async () => {
    // The default cancellation check period (1 s).
    const grid = await startTestGrid(FAULT_WORKER, { lease_check_interval_sec: 1 });
    const logDir = tempDir('htcgrid-faults-log-');
    const pidDir = tempDir('htcgrid-faults-pid-');
    try {
      const handle = await grid.client.submit(
        Array.from({ length: 6 }, () => ({ sleep: 60, log_dir: logDir, pid_dir: pidDir })),
      );
      await waitFor(
        () => fs.readdirSync(pidDir).filter((f) => f.endsWith('.pid')).length === 2,
        10_000,
        'two tasks running',
      );
      const running = fs
        .readdirSync(pidDir)
        .filter((f) => f.endsWith('.pid'))
        .map((f) => Number(fs.readFileSync(path.join(pidDir, f), 'utf8')));

      const cancelled = await handle.cancel();
      // "Within seconds" (ARCHITECTURE §5): a condition with room for a loaded 2-core machine, not a race against 2 s.
      await waitFor(() => running.every((pid) => !isAlive(pid)), 10_000, 'the running tasks to be interrupted');
      const results: TaskResult[] = await collect(handle.results());

      expect(cancelled).toBe(6);
      expect(results.map((r) => r.state)).toEqual(Array(6).fill('cancelled'));
      expect([...executions(logDir).values()].reduce((a, b) => a + b, 0)).toBe(2);
      expect(results.filter((r) => outcomes(r).includes('cancelled'))).toHaveLength(
        results.filter((r) => r.attempts > 0).length,
      );
      // Nothing the interrupted attempts might still write changes the outcome.
      const after = await grid.client.submit([{}]);
      expect((await collect(after.results()))[0]!.state).toBe('succeeded');
      expect((await handle.status()).counts).toMatchObject({ cancelled: 6, running: 0, pending: 0 });
    } finally {
      await grid.close(1_000);
    }
  });
});

describe('cancelling one task', () => {
  it('interrupts only that task; the rest of its session runs to completion', async () => {
    const grid = await startTestGrid(FAULT_WORKER);
    const pidDir = tempDir('htcgrid-faults-pid-');
    try {
      const handle = await grid.client.submit([{ sleep: 60, pid_dir: pidDir }, { sleep: 0.2 }, { sleep: 0.2 }]);
      const victim = await runtimePidOf(pidDir, `${handle.sessionId}_0`, 1);

      expect(await handle.cancel([`${handle.sessionId}_0`])).toBe(1);
      const results = await collect(handle.results());

      expect(results.map((r) => r.state)).toEqual(['cancelled', 'succeeded', 'succeeded']);
      expect(outcomes(results[0]!)).toEqual(['cancelled']);
      await waitFor(() => !isAlive(victim), 5_000, 'the cancelled task to be interrupted');
    } finally {
      await grid.close(1_000);
    }
  });
});

describe('priorities', () => {
  it('runs a higher-priority session before a lower one submitted earlier, FIFO within a level', async () => {
    const grid = await startTestGrid(FAULT_WORKER, { slots: 1 });
    const logDir = tempDir('htcgrid-faults-log-');
    const pidDir = tempDir('htcgrid-faults-pid-');
    try {
      const blocker = await grid.client.submit([{ sleep: 1, pid_dir: pidDir, log_dir: logDir }], {
        sessionId: 'blocker',
      });
      await runtimePidOf(pidDir, 'blocker_0', 1);
      const low = await grid.client.submit(
        Array.from({ length: 4 }, () => ({ log_dir: logDir })),
        { sessionId: 'low', priority: 0 },
      );
      const high = await grid.client.submit(
        Array.from({ length: 4 }, () => ({ log_dir: logDir })),
        { sessionId: 'high', priority: 2, taskOptions: (_e, i) => (i === 3 ? { priority: 1 } : undefined) },
      );
      await Promise.all([blocker.wait(), low.wait(), high.wait()]);
      const order = fs
        .readFileSync(path.join(logDir, 'executions.log'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[0]);

      expect(order).toEqual(['blocker_0', 'high_0', 'high_1', 'high_2', 'high_3', 'low_0', 'low_1', 'low_2', 'low_3']);
    } finally {
      await grid.close(1_000);
    }
  });
});

describe('heartbeats', () => {
  it('keep the lease of a task running well past the lease expiry, even with a slow cancellation check', async () => {
    const grid = await startTestGrid(FAULT_WORKER, {
      task_ttl_expiration_offset_sec: 1,
      task_ttl_refresh_interval_sec: 0.3,
      lease_check_interval_sec: 5,
    });
    try {
      const handle = await grid.client.submit([{ sleep: 3 }]);
      const [result] = await collect(handle.results());

      expect(result).toMatchObject({ state: 'succeeded', attempts: 1 });
      expect(outcomes(result!)).toEqual(['succeeded']);
    } finally {
      await grid.close(1_000);
    }
  });

  it('keep the lease of a task claimed after the agent rested (its lease keeper stopped ticking with nothing held)', async () => {
    const grid = await startTestGrid(FAULT_WORKER, {
      task_ttl_expiration_offset_sec: 1,
      task_ttl_refresh_interval_sec: 0.3,
      lease_check_interval_sec: 5,
    });
    try {
      // Five keeper periods with nothing held: its ticks stop, and the claim below must start them again.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const handle = await grid.client.submit([{ sleep: 3 }]);
      const [result] = await collect(handle.results());

      expect(outcomes(result!)).toEqual(['succeeded']);
      expect(result).toMatchObject({ state: 'succeeded', attempts: 1 });
    } finally {
      await grid.close(1_000);
    }
  });
});
