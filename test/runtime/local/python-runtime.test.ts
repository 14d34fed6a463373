// The local Python runtime with real python3 processes: context, errors, output, crashes, timeouts, cancellation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import type { LocalInvoker } from '../../../lib/runtime/local';
import type { WorkerInvoker } from '../../../lib/ports';
import { expectLambdaStreamAndClock, invokersOf, probed, timedOutThenNext } from '../../support/local-runtimes';
import {
  collectOutput,
  expectChildKilledOnTimeout,
  expectInitError,
  failure,
  FIXTURES,
  initError,
  invocation,
  isAlive,
  waitFor,
} from './helpers';

const TASK_ROOT = path.join(FIXTURES, 'python');
const python = invokersOf({ taskRoot: TASK_ROOT, runtime: resolveRuntime('python3.12'), pythonExecutable: 'python3' });

describe('the local Python runtime', () => {
  it('returns the result JSON text exactly as json.dumps produced it', async () => {
    const invoker = python('worker.echo');
    await invoker.start();

    const result = await invoker.invoke(invocation({ a: [1, 2.5, 'é'], b: null }));

    expect(result).toEqual({ ok: true, resultJson: '{"echo": {"a": [1, 2.5, "é"], "b": null}}' });
  });

  it('gives the handler a full Lambda context with the task identity in client_context.custom', async () => {
    const invoker = python('worker.probe', {
      functionName: 'grid-fn',
      memorySizeMb: 512,
      env: { AWS_REGION: 'eu-west-1', MY_SETTING: 'on', _HANDLER: 'ignored' },
    });
    await invoker.start();
    const inv = invocation({}, 5_000, { taskId: 'sess-9_4', sessionId: 'sess-9', attempt: 2 });

    const ctx = await probed(invoker, inv);

    expect(ctx).toMatchObject({
      aws_request_id: inv.requestId,
      function_name: 'grid-fn',
      function_version: '$LATEST',
      invoked_function_arn: 'arn:aws:lambda:eu-west-1:000000000000:function:grid-fn',
      memory_limit_in_mb: '512',
      log_group_name: '/aws/lambda/grid-fn',
      identity: [null, null],
      client_context: { custom: { session_id: 'sess-9', task_id: 'sess-9_4', attempt: 2 }, env: null, client: null },
      cwd: TASK_ROOT,
      sys_path_0: TASK_ROOT,
      helper: 'task-root-helper',
      env: {
        LAMBDA_TASK_ROOT: TASK_ROOT,
        _HANDLER: 'worker.probe',
        AWS_LAMBDA_FUNCTION_NAME: 'grid-fn',
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '512',
        AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/grid-fn',
        AWS_REGION: 'eu-west-1',
        AWS_EXECUTION_ENV: 'AWS_Lambda_python3.12',
        TZ: ':UTC',
        MY_SETTING: 'on',
      },
    });
    expectLambdaStreamAndClock(ctx.log_stream_name, ctx.remaining, 5_000);
    expect(ctx.remaining[0]).toBeGreaterThan(0);
  });

  it('passes ids that contain tabs or non-ASCII characters through unchanged', async () => {
    const invoker = python('worker.probe');
    const inv = invocation({}, 5_000, { sessionId: 'desk\tfx', taskId: 'desk\tfx_é_1', attempt: 1 });

    const ctx = await probed(invoker, inv);

    expect(ctx.client_context.custom).toEqual({
      session_id: 'desk\tfx',
      task_id: 'desk\tfx_é_1',
      attempt: 1,
    });
  });

  it('resolves a handler inside a package (pkg.inner.handler)', async () => {
    const invoker = python('pkg.inner.handler');
    await invoker.start();

    const result = await invoker.invoke(invocation({}));

    expect(result).toEqual({ ok: true, resultJson: '{"pkg": true}' });
  });

  it('reports a handler that raises as an error with its type, message and stack lines', async () => {
    const output = collectOutput();
    const invoker = python('worker.fail', { onOutput: output.listener });
    const inv = invocation({ x: 42 });

    const result = failure(await invoker.invoke(inv));

    expect(result.reason).toBe('error');
    expect(result.error.type).toBe('ValueError');
    expect(result.error.message).toBe('bad input: 42');
    expect(result.error.stack.length).toBeGreaterThan(0);
    expect(result.error.stack[0]).toContain('worker.py');
    expect(result.error.stack.join('')).not.toContain('bootstrap.py');
    // Logged like awslambdaric logs it, as the task's own output.
    await waitFor(() => output.text(inv.taskId).includes('\n'));
    expect(output.text(inv.taskId)).toMatch(
      /^\[ERROR\] ValueError: bad input: 42\rTraceback \(most recent call last\):\r/,
    );
  });

  it('reports a result that is not JSON-serialisable as Runtime.MarshalError', async () => {
    const invoker = python('worker.unserialisable');

    const result = failure(await invoker.invoke(invocation({})));

    expect(result.reason).toBe('error');
    expect(result.error.type).toBe('Runtime.MarshalError');
    expect(result.error.message).toMatch(/Unable to marshal response: .*object.* is not JSON serializable/);
  });

  it.each([
    ['a missing module', 'nope.handler', 'Runtime.ImportModuleError', /Unable to import module 'nope'/],
    [
      'a missing function',
      'worker.nothing_here',
      'Runtime.HandlerNotFound',
      /Handler 'nothing_here' missing on module 'worker'/,
    ],
    ['a syntax error', 'syntax_error.handler', 'Runtime.UserCodeSyntaxError', /Syntax error in module 'syntax_error'/],
    ['an exception at import', 'broken_import.handler', 'RuntimeError', /cannot connect at import time/],
  ])('fails start() with WorkerInitError on %s, naming it and the task root', async (_what, handler, type, message) => {
    await expectInitError(python(handler), type, message, [TASK_ROOT, handler]);
  });

  it('names a missing third-party module and how to ship it, not the zip layout, when the handler module imports it', async () => {
    const missingDependency = await initError(python('needs_scipy_stats.handler'));
    expect(missingDependency.message).toMatch(/No module named 'htcgrid_missing_dependency'/);
    expect(missingDependency.hint).toMatch(
      /^the handler module was found, but it imports 'htcgrid_missing_dependency', which the worker does not hold: list it in requirements\.txt/,
    );
    const missingHandler = await initError(python('nope.handler'));
    expect(missingHandler.hint).toMatch(/the handler module must be at the root of the worker zip/);
  });

  it('fails start() clearly when the Python executable does not exist', async () => {
    const invoker = python('worker.echo', { pythonExecutable: 'python3-does-not-exist' });

    await expect(invoker.start()).rejects.toThrow(/python3-does-not-exist/);
  });

  it('fails start() clearly when the bootstrap comes from another build than the code', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bootstrap-'));
    const current = fs.readFileSync(path.join(__dirname, '../../../lib/runtime/bootstrap/bootstrap.py'), 'utf8');
    fs.writeFileSync(
      path.join(dir, 'bootstrap.py'),
      current.replace(/^PROTOCOL_VERSION = .*$/m, 'PROTOCOL_VERSION = b"htcgrid-runtime/0"'),
    );
    const invoker = python('worker.echo', { bootstrapDir: dir });

    const error = await initError(invoker);

    expect(error.errorType).toBe('Runtime.BootstrapMismatch');
    expect(error.message).toMatch(/htcgrid-runtime\/0.*different builds[\s\S]*npm run build/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('returns correct results while the worker prints megabytes, capping the output kept per task', async () => {
    const output = collectOutput();
    const invoker = python('worker.chatty', { onOutput: output.listener, maxOutputBytesPerTask: 64 * 1024 });
    const inv = invocation({ kib: 4096 });

    const result = await invoker.invoke(inv);
    const second = await invoker.invoke(invocation({ kib: 1 }));

    expect(result).toEqual({ ok: true, resultJson: '{"ok": true}' });
    expect(second).toEqual({ ok: true, resultJson: '{"ok": true}' });
    await waitFor(() => output.text(inv.taskId).includes('truncated'));
    const kept = output.text(inv.taskId);
    expect(kept.length).toBeLessThan(70 * 1024);
    expect(kept).toContain('output of this task truncated after 65536 bytes');
  });

  it('attributes each line of output to the task that printed it', async () => {
    const output = collectOutput();
    const invoker = python('worker.say', { onOutput: output.listener });
    const invocations = ['ann', 'bob', 'cy'].map((name) => invocation({ name }));

    for (const inv of invocations) await invoker.invoke(inv);

    await waitFor(() => output.text(invocations[2]!.taskId).length > 0);
    invocations.forEach((inv, i) => {
      expect(output.text(inv.taskId, 'stdout')).toBe(`hello from ${['ann', 'bob', 'cy'][i]}\n`);
    });
  });

  it('keeps the output of a killed task with that task, and the next task’s with the next one', async () => {
    const output = collectOutput();
    const invoker = python('worker.talk', { onOutput: output.listener });
    await invoker.start();
    const slow = invocation({ say: 'slow starts', seconds: 30 }, 300);
    const next = invocation({ say: 'next speaks' });

    await invoker.invoke(slow);
    await invoker.invoke(next);

    await waitFor(() => output.text(next.taskId).length > 0 && output.text(slow.taskId).length > 0);
    expect(output.text(slow.taskId)).toBe('slow starts\n');
    expect(output.text(next.taskId)).toBe('next speaks\n');
  });

  it('survives a worker that writes binary garbage to stdout and closes stdout and stderr', async () => {
    const invoker = python('worker.garbage', { onOutput: () => undefined });

    const first = await invoker.invoke(invocation({}));
    const second = await invoker.invoke(invocation({}));

    expect(first).toEqual({ ok: true, resultJson: '{"survived": true}' });
    expect(second).toEqual({ ok: true, resultJson: '{"survived": true}' });
  });

  it('reports a process that exits mid-task as runtime-crash, then runs the next task on a fresh runtime', async () => {
    const crashing = python('worker.crash');
    const crash = failure(await crashing.invoke(invocation({})));
    expect(crash.reason).toBe('runtime-crash');
    expect(crash.error.message).toContain('exit status 3');

    const healthy = python('worker.sleep');
    await healthy.start();
    const killedBySignal = healthy.invoke(invocation({ seconds: 30 }));
    // SIGKILL from outside (as the OOM killer would).
    await waitFor(() => pidOf(healthy) !== undefined);
    process.kill(pidOf(healthy)!, 'SIGKILL');
    const crashed = failure(await killedBySignal);
    const after = await healthy.invoke(invocation({ seconds: 0 }));

    expect(crashed.reason).toBe('runtime-crash');
    expect(crashed.error.message).toContain('signal: killed');
    expect(after).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('kills a task that runs past its deadline, reports Lambda’s timeout message, and recovers', async () => {
    const { timedOut, next } = await timedOutThenNext(python('worker.sleep'), { seconds: 30 }, 300, { seconds: 0 });

    expect(timedOut.reason).toBe('timeout');
    expect(timedOut.error).toEqual({
      type: 'Sandbox.Timedout',
      message: 'Task timed out after 0.30 seconds',
      stack: [],
    });
    expect(next).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('cancels a running task when its signal aborts, and recovers', async () => {
    const invoker = python('worker.sleep');
    await invoker.start();
    const controller = new AbortController();

    // An idle runtime takes the invocation at once (it is in the runtime's pipe when `invoke` returns), so aborting
    // right after stops a running task, with no timer racing the machine's load.
    const running = invoker.invoke(invocation({ seconds: 30 }), controller.signal);
    controller.abort(new Error('task cancelled by the client'));
    const cancelled = failure(await running);
    const next = await invoker.invoke(invocation({ seconds: 0 }));

    expect(cancelled.reason).toBe('cancelled');
    expect(cancelled.error.message).toContain('task cancelled by the client');
    expect(next).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('answers busy to a second invocation on the same slot while one runs', async () => {
    const invoker = python('worker.sleep');
    await invoker.start();

    const first = invoker.invoke(invocation({ seconds: 0.2 }));
    const second = failure(await invoker.invoke(invocation({ seconds: 0 })));

    expect(second.reason).toBe('busy');
    expect((await first).ok).toBe(true);
  });

  it('kills the processes a worker started when its task times out', async () => {
    await expectChildKilledOnTimeout(python('worker.spawn_and_sleep'), (pidFile) => ({ pid_file: pidFile }));
  });

  it('restarts a runtime that died between tasks without failing the next task', async () => {
    const invoker = python('worker.echo');
    await invoker.start();
    const firstPid = pidOf(invoker)!;

    process.kill(firstPid, 'SIGKILL');
    await waitFor(() => pidOf(invoker) !== undefined && pidOf(invoker) !== firstPid);
    const result = await invoker.invoke(invocation({ n: 1 }));

    expect(result).toEqual({ ok: true, resultJson: '{"echo": {"n": 1}}' });
  });

  it('backs off instead of spinning when the runtime keeps failing to start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-rt-'));
    const importLog = path.join(dir, 'imports.log');
    const breakFile = path.join(dir, 'broken');
    const invoker = python('flaky_import.handler', { env: { IMPORT_LOG: importLog, BREAK_FILE: breakFile } });
    await invoker.start();
    fs.writeFileSync(breakFile, '');

    const imports = () => fs.readFileSync(importLog, 'utf8').split('\n').filter(Boolean);
    const crash = failure(await invoker.invoke(invocation({ exit: true })));
    // The crash restarts the runtime at once (no task waiting); that start fails to import. Once its process is gone
    // the invoker holds no runtime, so each invocation below starts its own, after a back-off.
    await waitFor(() => imports().length === 2);
    const eagerPid = Number(imports()[1]!.split(' ')[1]);
    await waitFor(() => !isAlive(eagerPid));
    const attempts = [];
    for (let i = 0; i < 3; i++) attempts.push(failure(await invoker.invoke(invocation({}))));

    expect(crash.reason).toBe('runtime-crash');
    for (const attempt of attempts) {
      expect(attempt.reason).toBe('runtime-crash');
      expect(attempt.error.type).toBe('RuntimeError');
      expect(attempt.error.message).toContain('dependency went missing');
    }
    // The first start, the eager restart after the crash, then one start per invocation: never more.
    expect(imports()).toHaveLength(5);
    fs.rmSync(breakFile);
    const healed = await invoker.invoke(invocation({}, 10_000));
    expect(healed).toEqual({ ok: true, resultJson: '"fine"' });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers timeout at once for an invocation whose deadline has already passed', async () => {
    const invoker = python('worker.echo');
    await invoker.start();
    const pid = pidOf(invoker);
    expect(pid).toEqual(expect.any(Number));

    const result = failure(await invoker.invoke(invocation({}, -1)));

    expect(result.reason).toBe('timeout');
    // The same runtime process is still there and alive: the expired invocation never reached it.
    expect(pidOf(invoker)).toBe(pid);
    expect(isAlive(pid!)).toBe(true);
  });

  it('closes idempotently, after which invocations are cancelled', async () => {
    const invoker = python('worker.echo');
    await invoker.start();

    await invoker.close();
    await invoker.close();
    const result = failure(await invoker.invoke(invocation({})));

    expect(result.reason).toBe('cancelled');
  });
});

/** The pid of the invoker's runtime process (test-only peek at the private slot). */
function pidOf(invoker: WorkerInvoker): number | undefined {
  return (invoker as LocalInvoker).runtimePid;
}
