// The local Python runtime taking invocations ahead (maxQueued), with real python3 processes: order, timeouts,
// cancellation and crashes of the running one and of the queued ones.
import { getEventListeners } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { createLocalInvoker, type LocalInvoker } from '../../../lib/runtime/local';
import type { WorkerInvoker } from '../../../lib/ports';
import { expectTakeBacksWhileRunning } from '../../support/take-backs';
import { closeAfterEach, collectOutput, failure, FIXTURES, invocation, waitFor } from './helpers';

const TASK_ROOT = path.join(FIXTURES, 'python');
const track = closeAfterEach();

async function python(handler: string, maxQueued = 2): Promise<WorkerInvoker> {
  const invoker = track(
    createLocalInvoker({
      taskRoot: TASK_ROOT,
      handler,
      runtime: resolveRuntime('python3.12'),
      pythonExecutable: 'python3',
      maxQueued,
    }),
  );
  await invoker.start();
  return invoker;
}

describe('the local Python runtime with invocations queued ahead', () => {
  it('runs queued invocations in order, each with its own result', async () => {
    const invoker = await python('worker.echo');

    const results = await Promise.all([1, 2, 3].map((n) => invoker.invoke(invocation({ n }))));

    expect(results).toEqual([1, 2, 3].map((n) => ({ ok: true, resultJson: `{"echo": {"n": ${n}}}` })));
  });

  it('attributes each queued task’s output to that task', async () => {
    const output = collectOutput();
    const invoker = track(
      createLocalInvoker({
        taskRoot: TASK_ROOT,
        handler: 'worker.say',
        runtime: resolveRuntime('python3.12'),
        pythonExecutable: 'python3',
        maxQueued: 2,
        onOutput: output.listener,
      }),
    );
    await invoker.start();
    const names = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay'];
    const invocations = names.map((name) => invocation({ name }));

    // Three at a time: one running, two queued behind it.
    await Promise.all(invocations.slice(0, 3).map((inv) => invoker.invoke(inv)));
    await Promise.all(invocations.slice(3).map((inv) => invoker.invoke(inv)));

    await waitFor(() => invocations.every((inv) => output.text(inv.taskId).length > 0));
    invocations.forEach((inv, i) => expect(output.text(inv.taskId, 'stdout')).toBe(`hello from ${names[i]}\n`));
  });

  it('writes the requests of one turn of the event loop to the runtime in one write', async () => {
    const invoker = await python('worker.echo');
    const write = jest.spyOn(net.Socket.prototype, '_write');
    const writev = jest.spyOn(net.Socket.prototype, '_writev');
    try {
      const results = Promise.all([1, 2, 3].map((n) => invoker.invoke(invocation({ n }))));

      expect(await results).toEqual([1, 2, 3].map((n) => ({ ok: true, resultJson: `{"echo": {"n": ${n}}}` })));
      // One system call carried the three frames (the runtime wakes once), none was written on its own.
      expect(writev).toHaveBeenCalledTimes(1);
      expect(writev.mock.calls[0]?.[0]).toHaveLength(3);
      expect(write).not.toHaveBeenCalled();
    } finally {
      write.mockRestore();
      writev.mockRestore();
    }
  });

  it('takes back queued requests in the turn they were written, before their frames reach the runtime', async () => {
    const invoker = await python('worker.wait_for');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-pipeline-'));
    const [until, mark] = [path.join(dir, 'release'), path.join(dir, 'starts')];

    const long = invoker.invoke(invocation({ i: 0, until, mark }));
    const queued = [1, 2].map((i) => invoker.invoke(invocation({ i, mark })));
    // The take-backs go out now, the three requests only once this turn ends: the runtime gets them in that order.
    invoker.withdrawQueued?.();
    const taken = await Promise.all(queued);
    fs.writeFileSync(until, '');

    expect(taken.map((r) => failure(r).error.type)).toEqual(['Runtime.Withdrawn', 'Runtime.Withdrawn']);
    expect(await long).toEqual({ ok: true, resultJson: '{"i": 0}' });
    expect(await invoker.invoke(invocation({ i: 3, mark }))).toEqual({ ok: true, resultJson: '{"i": 3}' });
    expect(fs.readFileSync(mark, 'utf8')).toBe('0\n3\n');
  });

  it('answers busy beyond its queue', async () => {
    const invoker = await python('worker.sleep', 1);

    const running = invoker.invoke(invocation({ seconds: 0.2 }));
    const queued = invoker.invoke(invocation({ seconds: 0 }));
    const third = failure(await invoker.invoke(invocation({ seconds: 0 })));

    expect(third.reason).toBe('busy');
    expect((await running).ok).toBe(true);
    expect((await queued).ok).toBe(true);
  });

  it('counts a queued invocation’s time from when it starts, for its timeout and for the handler’s context', async () => {
    const invoker = await python('worker.timed_sleep');

    const first = invoker.invoke(invocation({ seconds: 1.5 }, 30_000));
    // Counted from the call, this one would time out 1 s in, while the first still sleeps.
    const second = invoker.invoke(invocation({ seconds: 0.5 }, 1_000));
    // Counted from the call, this one would start with about 1 s of its 3 s left.
    const third = invoker.invoke(invocation({ seconds: 0 }, 3_000));

    expect((await first).ok).toBe(true);
    expect((await second).ok).toBe(true);
    const last = await third;
    if (!last.ok) throw new Error(JSON.stringify(last.error));
    expect((JSON.parse(last.resultJson) as { remaining_at_start: number }).remaining_at_start).toBeGreaterThan(2_000);
  });

  it('times out the running invocation and runs the queued ones on a fresh runtime, unharmed', async () => {
    const invoker = await python('worker.sleep');

    const stuck = invoker.invoke(invocation({ seconds: 30 }, 300));
    const queued = [invoker.invoke(invocation({ seconds: 0 })), invoker.invoke(invocation({ seconds: 0.1 }))];

    expect(failure(await stuck).reason).toBe('timeout');
    expect(await Promise.all(queued)).toEqual([
      { ok: true, resultJson: '{"slept": 0}' },
      { ok: true, resultJson: '{"slept": 0.1}' },
    ]);
  });

  it('cancels the running invocation and runs the queued one next', async () => {
    const invoker = await python('worker.sleep');
    const controller = new AbortController();

    const running = invoker.invoke(invocation({ seconds: 30 }), controller.signal);
    const queued = invoker.invoke(invocation({ seconds: 0 }));
    controller.abort(new Error('task cancelled by the client'));

    expect(failure(await running).reason).toBe('cancelled');
    expect(await queued).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('listens once to a signal shared by invocations, and stops all those not finished when it aborts', async () => {
    const invoker = await python('worker.sleep');
    const controller = new AbortController();
    const { signal } = controller;

    // Invocations of one slot share its signal, one after the other and queued behind each other.
    for (let i = 0; i < 3; i++) expect((await invoker.invoke(invocation({ seconds: 0 }), signal)).ok).toBe(true);
    const running = invoker.invoke(invocation({ seconds: 30 }), signal);
    const queued = invoker.invoke(invocation({ seconds: 30 }), signal);
    const listeners = getEventListeners(signal, 'abort').length;
    controller.abort(new Error('task cancelled by the client'));

    expect(listeners).toBe(1);
    expect(failure(await running).reason).toBe('cancelled');
    // Stopped too, not left to sleep its 30 s (it came first in line when the running one was stopped).
    expect(failure(await queued).reason).toBe('cancelled');
    expect(await invoker.invoke(invocation({ seconds: 0 }))).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('cancels a queued invocation without disturbing the running one, and never lets it hold the runtime', async () => {
    const invoker = await python('worker.sleep');
    const controller = new AbortController();

    const running = invoker.invoke(invocation({ seconds: 0.3 }));
    const cancelled = invoker.invoke(invocation({ seconds: 30 }), controller.signal);
    controller.abort(new Error('task cancelled by the client'));

    // It never ran: reported as not started (the agent hands it back uncharged, or drops it if it was cancelled).
    expect(failure(await cancelled)).toMatchObject({ reason: 'busy', error: { type: 'Runtime.NotStarted' } });
    expect(await running).toEqual({ ok: true, resultJson: '{"slept": 0.3}' });
    // The cancelled request was already in the runtime's pipe: it is stopped when it comes up, so this one runs
    // (within its 10 s budget, which the 30 s sleep would exceed).
    expect(await invoker.invoke(invocation({ seconds: 0 }, 10_000))).toEqual({ ok: true, resultJson: '{"slept": 0}' });
  });

  it('lets a cancelled request that reached the runtime answer before stopping it, so the one behind runs once', async () => {
    const invoker = await python('worker.sleep');
    const controller = new AbortController();
    const mark = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-pipeline-')), 'starts');

    const first = invoker.invoke(invocation({ seconds: 0.5 }));
    const cancelled = invoker.invoke(invocation({ seconds: 0 }), controller.signal);
    const last = invoker.invoke(invocation({ seconds: 0.3, mark }, 10_000));
    // Both requests behind the first are in the runtime's pipe already.
    controller.abort(new Error('task cancelled by the client'));

    expect(await first).toEqual({ ok: true, resultJson: '{"slept": 0.5}' });
    expect(failure(await cancelled).reason).toBe('busy');
    expect(await last).toEqual({ ok: true, resultJson: '{"slept": 0.3}' });
    expect(fs.readFileSync(mark, 'utf8')).toBe('start\n');
  });

  it('takes back the queued invocations while the running one runs: they never run, and the runtime goes on', async () => {
    const invoker = await python('worker.wait_for');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-pipeline-'));
    const pid = (invoker as LocalInvoker).runtimePid;

    const { mark } = await expectTakeBacksWhileRunning(invoker, dir);

    // The same runtime serves the next request; the two taken back never started.
    expect(await invoker.invoke(invocation({ i: 3, mark }))).toEqual({ ok: true, resultJson: '{"i": 3}' });
    expect((invoker as LocalInvoker).runtimePid).toBe(pid);
    expect(fs.readFileSync(mark, 'utf8')).toBe('0\n3\n');
  });

  it('answers a take-back before the request behind it, however late its frame is written', async () => {
    // The real bootstrap, its "withdrawn" frames written 300 ms after the decision: before the fix the main loop went
    // on meanwhile, ran the next request and sent its answer first, which was taken for the withdrawn one's.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-pipeline-'));
    const bootstrapDir = path.join(dir, 'bootstrap');
    fs.mkdirSync(bootstrapDir);
    const real = path.resolve(__dirname, '..', '..', '..', 'lib', 'runtime', 'bootstrap', 'bootstrap.py');
    // Written by the withdraw thread as it is about to write a "withdrawn" frame: the take-back is decided.
    const decided = path.join(dir, 'decided');
    fs.writeFileSync(
      path.join(bootstrapDir, 'bootstrap.py'),
      [
        'import importlib.util, time',
        `spec = importlib.util.spec_from_file_location("htcgrid_bootstrap", ${JSON.stringify(real)})`,
        'b = importlib.util.module_from_spec(spec)',
        'spec.loader.exec_module(b)',
        'write = b._write_frame',
        'def late(frame):',
        '    if frame[4] == b.KIND_WITHDRAWN:',
        `        open(${JSON.stringify(decided)}, "a").close()`,
        '        time.sleep(0.3)',
        '    write(frame)',
        'b._write_frame = late',
        'b.main()',
        '',
      ].join('\n'),
    );
    const invoker = track(
      createLocalInvoker({
        taskRoot: TASK_ROOT,
        handler: 'worker.wait_for',
        runtime: resolveRuntime('python3.12'),
        pythonExecutable: 'python3',
        maxQueued: 2,
        bootstrapDir,
      }),
    );
    await invoker.start();
    const [until, mark] = [path.join(dir, 'release'), path.join(dir, 'starts')];

    const long = invoker.invoke(invocation({ i: 0, until, mark }));
    const firstQueued = invoker.invoke(invocation({ i: 1, mark }));
    const secondQueued = invoker.invoke(invocation({ i: 2, mark }));
    await waitFor(() => fs.existsSync(mark));
    invoker.withdrawQueued?.();
    // The running request ends once the first take-back is decided, while its frame is still to be written (ended
    // before the decision, on a loaded machine, the main loop could start the first queued request: not this case).
    await waitFor(() => fs.existsSync(decided));
    fs.writeFileSync(until, '');
    const [first, second] = [await firstQueued, await secondQueued];

    expect(await long).toEqual({ ok: true, resultJson: '{"i": 0}' });
    expect(failure(first).error.type).toBe('Runtime.Withdrawn');
    // The second was taken back too, or had started by then: either way its own answer.
    const secondRan = second.ok;
    expect(secondRan ? second : failure(second).error.type).toEqual(
      secondRan ? { ok: true, resultJson: '{"i": 2}' } : 'Runtime.Withdrawn',
    );
    expect(fs.readFileSync(mark, 'utf8')).toBe(secondRan ? '0\n2\n' : '0\n');
  });

  it('fails the running invocation when the runtime crashes and gives the queued one, unstarted, to the next', async () => {
    const invoker = await python('worker.crash_if');

    const crashing = invoker.invoke(invocation({ crash: true }));
    const queued = invoker.invoke(invocation({ crash: false, value: 7 }));

    const crash = failure(await crashing);
    expect(crash.reason).toBe('runtime-crash');
    expect(crash.error.message).toContain('exit status 3');
    expect(await queued).toEqual({ ok: true, resultJson: '{"value": 7}' });
  });

  it('cancels queued invocations when closed', async () => {
    const invoker = await python('worker.sleep');

    const running = invoker.invoke(invocation({ seconds: 30 }));
    const queued = invoker.invoke(invocation({ seconds: 0 }));
    await invoker.close();

    expect(failure(await running).reason).toBe('cancelled');
    expect(failure(await queued).reason).toBe('cancelled');
  });
});
