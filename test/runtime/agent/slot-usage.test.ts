// Busy slots and runtime restarts, counted around a slot's invoker (the figures agents heartbeat to the registry).
import type { InvokeResult, Invocation, WorkerInvoker } from '../../../lib/ports';
import { countSlotUsage, newSlotCounters } from '../../../lib/runtime/agent';

/** An invoker whose invocations end when the test says, with the result it says; it starts one at a time. */
function manualInvoker() {
  const running: Array<{ end: (r: InvokeResult) => void; onStarted?: () => void }> = [];
  const invoker: WorkerInvoker = {
    start: async () => undefined,
    close: async () => undefined,
    invoke: (_inv, _signal, onStarted) =>
      new Promise<InvokeResult>((resolve) => running.push({ end: resolve, onStarted })),
  };
  return { invoker, running };
}

const invocation = {
  taskId: 't',
  sessionId: 's',
  attempt: 1,
  requestId: 'r',
  eventJson: '{}',
  deadline: 0,
} as Invocation;
const failure = (reason: 'timeout' | 'runtime-crash' | 'cancelled' | 'error' | 'busy'): InvokeResult => ({
  ok: false,
  reason,
  error: { type: 'X', message: 'x', stack: [] },
});

test('a slot is busy while an invocation is in flight, once however many wait behind it', async () => {
  const counters = newSlotCounters();
  const { invoker, running } = manualInvoker();
  const slot = countSlotUsage(invoker, counters);
  const first = slot.invoke(invocation);
  const second = slot.invoke(invocation);
  expect(counters.busy).toBe(1);
  running[0]!.end({ ok: true, resultJson: '1' });
  await first;
  expect(counters.busy).toBe(1);
  running[1]!.end({ ok: true, resultJson: '2' });
  await second;
  expect(counters).toEqual({ busy: 0, restarts: 0 });
});

test('a timeout, a crash and an interrupted running invocation count a restart; a handler error and a task that never started do not', async () => {
  const counters = newSlotCounters();
  const { invoker, running } = manualInvoker();
  const slot = countSlotUsage(invoker, counters);
  for (const reason of ['timeout', 'runtime-crash', 'error'] as const) {
    const call = slot.invoke(invocation);
    running.at(-1)!.end(failure(reason));
    await call;
  }
  expect(counters.restarts).toBe(2);
  // Cancelled while running: its runtime is killed.
  const abort = new AbortController();
  const cancelled = slot.invoke(invocation, abort.signal);
  // Queued behind it and aborted before it started: nothing ran, nothing restarts for it.
  const waitingAbort = new AbortController();
  const waiting = slot.invoke(invocation, waitingAbort.signal);
  abort.abort();
  waitingAbort.abort();
  running.at(-2)!.end(failure('cancelled'));
  running.at(-1)!.end(failure('busy'));
  await Promise.all([cancelled, waiting]);
  expect(counters).toEqual({ busy: 0, restarts: 3 });
  // One queued behind that the invoker started, then cancelled: its runtime is killed too.
  const head = slot.invoke(invocation);
  const behindAbort = new AbortController();
  const behind = slot.invoke(invocation, behindAbort.signal);
  running.at(-2)!.end({ ok: true, resultJson: '1' });
  await head;
  running.at(-1)!.onStarted?.();
  behindAbort.abort();
  running.at(-1)!.end(failure('cancelled'));
  await behind;
  expect(counters).toEqual({ busy: 0, restarts: 4 });
});

test('an invoker that throws or rejects leaves the slot idle, and the caller sees the error', async () => {
  const counters = newSlotCounters();
  const throwing: WorkerInvoker = {
    start: async () => undefined,
    close: async () => undefined,
    invoke: () => {
      throw new Error('thrown');
    },
  };
  expect(() => countSlotUsage(throwing, counters).invoke(invocation)).toThrow('thrown');
  expect(counters.busy).toBe(0);
  const rejecting: WorkerInvoker = { ...throwing, invoke: () => Promise.reject(new Error('rejected')) };
  await expect(countSlotUsage(rejecting, counters).invoke(invocation)).rejects.toThrow('rejected');
  expect(counters).toEqual({ busy: 0, restarts: 0 });
});
