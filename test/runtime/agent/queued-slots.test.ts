// The agent's queue loops (queuedPerSlot): short tasks are sent ahead to busy slots, long ones never wait behind
// each other. A recording invoker stands in for the runtime, so only the agent's choices are under test.
import { applyOverrides, compileConfig } from '../../../lib/core';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../../lib/ports';
import { collect, gridForEachTest } from '../../support/local-grid';

/** Runs each invocation for `runMs` (0: answers on the next turn of the event loop), one after the other. */
class RecordingInvoker implements WorkerInvoker {
  /** Most invocations this invoker held at once. */
  maxHeld = 0;
  private held = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly runMs: number) {}

  async start(): Promise<void> {}

  invoke(invocation: Invocation, _signal?: AbortSignal, onStarted?: () => void): Promise<InvokeResult> {
    this.held++;
    this.maxHeld = Math.max(this.maxHeld, this.held);
    const queued = this.held > 1;
    const run = this.tail.then(async () => {
      if (queued) onStarted?.();
      await new Promise((resolve) => setTimeout(resolve, this.runMs));
      this.held--;
      return { ok: true, resultJson: invocation.eventJson } as const;
    });
    this.tail = run;
    return run;
  }

  async close(): Promise<void> {}
}

describe('an agent with queuedPerSlot', () => {
  const each = gridForEachTest();

  async function run(runMs: number, tasks: number, queueBelowMs: number): Promise<RecordingInvoker[]> {
    const invokers = [new RecordingInvoker(runMs), new RecordingInvoker(runMs)];
    await each.startAgent({
      config: compileConfig(applyOverrides({ slots: 2, empty_task_queue_backoff_timeout_sec: 0.01 }, {}), 'test'),
      receiveWaitMs: 50,
      queuedPerSlot: 2,
      queueBelowMs,
      createInvoker: (slot) => invokers[slot]!,
    });
    const handle = await each.grid().client.submit(Array.from({ length: tasks }, (_, i) => ({ i })));
    const results = await collect(handle.results({ pollIntervalMs: 5 }));
    expect(results.map((r) => r.state)).toEqual(Array(tasks).fill('succeeded'));
    expect(results.map((r) => r.result)).toEqual(Array.from({ length: tasks }, (_, i) => ({ i })));
    return invokers;
  }

  it('sends short tasks ahead to busy slots, at most queuedPerSlot behind the running one', async () => {
    // A threshold no run reaches however loaded the machine: what is under test is the queue depth, not the gate.
    const invokers = await run(0, 2_000, 60_000);

    const most = Math.max(...invokers.map((i) => i.maxHeld));
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(3);
  });

  it('never queues a task behind another while tasks run longer than a few ms', async () => {
    // Tasks take at least 20 ms (a timer never fires early): above the 5 ms gate on any machine.
    const invokers = await run(20, 40, 5);

    expect(invokers.map((i) => i.maxHeld)).toEqual([1, 1]);
  });
});
