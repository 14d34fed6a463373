// The local invoker's line of invocations against a fake runtime session and a fake clock (no Python, no timing): start,
// timeout, cancel, crash and restart back-off, the grace a cancelled request gets in a pipelined runtime, shutdown.
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import type { Invocation, InvokeResult } from '../../../lib/ports';
import { LocalInvoker, type InvokerClock } from '../../../lib/runtime/local/local-invoker';
import type { RuntimeSession } from '../../../lib/runtime/local/runtime-session';
import type { ExitInfo } from '../../../lib/runtime/local/runtime-process';
import { withdrawnResult } from '../../../lib/runtime/invoke-results';

/** A clock whose time moves only when the test says; due timers fire in order. */
class FakeClock implements InvokerClock {
  private time = 1_000_000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time on by `ms`, firing every timer that falls due on the way (and letting promises settle after each). */
  async advance(ms: number): Promise<void> {
    await settle();
    const until = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
      await settle();
    }
    this.time = until;
    await settle();
  }
}

/** Lets every pending promise callback run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

interface Call {
  readonly invocation: Invocation;
  readonly timeoutMs: number;
  answer(result: InvokeResult): void;
  answered: boolean;
}

/** A runtime process as the invoker sees it: the test makes it ready, answers its calls, crashes it. */
class FakeSession implements RuntimeSession {
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  readonly calls: Call[] = [];
  healthy = true;
  killed = false;
  readonly pid = undefined;
  private markReady!: () => void;
  private failReady!: (error: Error) => void;
  private exit!: (info: ExitInfo) => void;

  constructor(readonly pipelined: boolean) {
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((resolve) => (this.exit = resolve));
  }

  makeReady(): void {
    this.markReady();
  }
  failToLoad(error: Error): void {
    this.failReady(error);
  }
  call(invocation: Invocation, timeoutMs: number): Promise<InvokeResult> {
    return new Promise((resolve) => {
      const call: Call = {
        invocation,
        timeoutMs,
        answered: false,
        answer: (result) => {
          call.answered = true;
          resolve(result);
        },
      };
      this.calls.push(call);
    });
  }
  /** The runtime's answer to the oldest unanswered call. */
  answerNext(result: InvokeResult = { ok: true, resultJson: '1' }): void {
    const call = this.calls.find((c) => !c.answered);
    if (!call) throw new Error('no call to answer');
    call.answer(result);
  }
  /** Calls the invoker asked to take back (the test answers them withdrawn, or lets them run). */
  readonly withdrawals: string[] = [];
  withdraw(invocation: Invocation): void {
    this.withdrawals.push(invocation.requestId);
  }
  /** The runtime takes back the call of `requestId`: it has not started it. */
  giveBack(requestId: string): void {
    const call = this.calls.find((c) => c.invocation.requestId === requestId && !c.answered);
    if (!call) throw new Error(`no unanswered call ${requestId}`);
    call.answer(withdrawnResult());
  }
  kill(): void {
    if (this.killed) return;
    this.killed = true;
    this.die(null, 'SIGKILL');
  }
  /** The process dies on its own (an uncaught crash). */
  crash(): void {
    this.die(1, null);
  }
  private die(code: number | null, signal: NodeJS.Signals | null): void {
    this.healthy = false;
    // The running call sees the crash; calls written behind it never started.
    this.calls
      .filter((c) => !c.answered)
      .forEach((c, i) =>
        c.answer(
          i === 0
            ? { ok: false, reason: 'runtime-crash', error: { type: 'Runtime.ExitError', message: 'died', stack: [] } }
            : { ok: false, reason: 'busy', error: { type: 'Runtime.Busy', message: 'not started', stack: [] } },
        ),
      );
    this.exit({ code, signal });
  }
}

interface Harness {
  readonly invoker: LocalInvoker;
  readonly clock: FakeClock;
  /** Every session the invoker started, in order. */
  readonly sessions: FakeSession[];
  /** The last session started. */
  latest(): FakeSession;
  invocation(timeoutMs?: number): Invocation;
}

function harness(options: { maxQueued?: number; pipelined?: boolean; readyAtOnce?: boolean } = {}): Harness {
  const clock = new FakeClock();
  const sessions: FakeSession[] = [];
  const invoker = new LocalInvoker({
    taskRoot: '/nowhere',
    handler: 'worker.handler',
    runtime: resolveRuntime('python3.12'),
    maxQueued: options.maxQueued ?? 0,
    clock,
    startSession: async () => {
      const session = new FakeSession(options.pipelined ?? false);
      sessions.push(session);
      if (options.readyAtOnce ?? true) session.makeReady();
      return session;
    },
  });
  let n = 0;
  return {
    invoker,
    clock,
    sessions,
    latest: () => sessions[sessions.length - 1]!,
    invocation: (timeoutMs = 10_000) => ({
      requestId: `r${++n}`,
      taskId: `s_${n}`,
      sessionId: 's',
      attempt: 1,
      eventJson: '{}',
      deadline: clock.now() + timeoutMs,
    }),
  };
}

/** A started harness given two invocations, the first running and the second behind it, once the runtime has them. */
async function twoInvoked(
  options: Parameters<typeof harness>[0],
): Promise<{ h: Harness; first: Promise<InvokeResult>; second: Promise<InvokeResult> }> {
  const h = harness(options);
  await h.invoker.start();
  const first = h.invoker.invoke(h.invocation());
  const second = h.invoker.invoke(h.invocation());
  await settle();
  return { h, first, second };
}

/** The result of `promise` if it has settled, else 'pending'. */
async function peek<T>(promise: Promise<T>): Promise<T | 'pending'> {
  await settle();
  return Promise.race([promise, Promise.resolve('pending' as const)]);
}

const reasonOf = (result: InvokeResult | 'pending') =>
  result === 'pending' ? 'pending' : result.ok ? 'ok' : result.reason;

describe('the local invoker against a fake runtime session', () => {
  it('start: waits for the runtime to load, then gives it the invocation with the budget left and returns its answer', async () => {
    const h = harness({ readyAtOnce: false });
    const started = h.invoker.start();
    await settle();
    expect(await peek(started)).toBe('pending');

    h.latest().makeReady();
    await started;
    const result = h.invoker.invoke(h.invocation(3_000));
    await settle();
    expect(h.latest().calls.map((c) => c.timeoutMs)).toEqual([3_000]);
    h.latest().answerNext({ ok: true, resultJson: '"done"' });

    expect(await result).toEqual({ ok: true, resultJson: '"done"' });
    expect(h.sessions).toHaveLength(1);
  });

  it('start: a handler that does not load within the init timeout fails start with Runtime.InitTimeout and kills it', async () => {
    const clock = new FakeClock();
    let session: FakeSession | undefined;
    const invoker = new LocalInvoker({
      taskRoot: '/nowhere',
      handler: 'worker.handler',
      runtime: resolveRuntime('python3.12'),
      initTimeoutMs: 5_000,
      clock,
      startSession: async () => (session = new FakeSession(false)),
    });
    const started = invoker.start();
    started.catch(() => undefined);
    await clock.advance(4_999);
    expect(await peek(started)).toBe('pending');

    await clock.advance(1);

    await expect(started).rejects.toThrow(/did not load within 5000 ms/);
    expect(session!.killed).toBe(true);
  });

  it('timeout: the running invocation ends timed out exactly at its budget, and its runtime is replaced', async () => {
    const h = harness();
    await h.invoker.start();
    const result = h.invoker.invoke(h.invocation(2_000));

    await h.clock.advance(1_999);
    expect(await peek(result)).toBe('pending');
    await h.clock.advance(1);

    expect(reasonOf(await result)).toBe('timeout');
    expect(h.sessions[0]!.killed).toBe(true);
    await settle();
    expect(h.sessions).toHaveLength(2);
  });

  it("timeout: a queued invocation's budget counts from when it starts, not from when it was accepted", async () => {
    const h = harness({ maxQueued: 1 });
    await h.invoker.start();
    const first = h.invoker.invoke(h.invocation(10_000));
    let secondStarted = false;
    const second = h.invoker.invoke(h.invocation(1_000), undefined, () => (secondStarted = true));

    await h.clock.advance(5_000);
    expect(secondStarted).toBe(false);
    h.latest().answerNext();
    await settle();
    expect(reasonOf(await first)).toBe('ok');
    expect(secondStarted).toBe(true);
    await h.clock.advance(999);
    expect(await peek(second)).toBe('pending');
    await h.clock.advance(1);

    expect(reasonOf(await second)).toBe('timeout');
  });

  it('cancel: aborting the running invocation cancels it and kills its runtime; a waiting one ends not started', async () => {
    const h = harness({ maxQueued: 1 });
    await h.invoker.start();
    const running = new AbortController();
    const waiting = new AbortController();
    const first = h.invoker.invoke(h.invocation(), running.signal);
    const second = h.invoker.invoke(h.invocation(), waiting.signal);
    await settle();

    waiting.abort(new Error('stop it'));
    // Nothing of it ran: reported like a busy runtime, which the agent hands back without charging an attempt.
    expect(await second).toMatchObject({ ok: false, reason: 'busy' });
    expect(((await second) as { error: { type: string } }).error.type).toBe('Runtime.NotStarted');
    expect(h.sessions[0]!.killed).toBe(false);

    running.abort(new Error('stop it'));
    expect(reasonOf(await first)).toBe('cancelled');
    expect(h.sessions[0]!.killed).toBe(true);
  });

  it('crash: the running invocation ends runtime-crash, the one written behind it runs on the next runtime', async () => {
    const { h, first, second } = await twoInvoked({ maxQueued: 1, pipelined: true });
    expect(h.sessions[0]!.calls).toHaveLength(2);

    h.sessions[0]!.crash();
    expect(reasonOf(await first)).toBe('runtime-crash');
    await settle();
    expect(h.sessions).toHaveLength(2);
    expect(h.sessions[1]!.calls.map((c) => c.invocation.requestId)).toEqual(['r2']);
    h.sessions[1]!.answerNext();

    expect(reasonOf(await second)).toBe('ok');
  });

  it('restart: a runtime that keeps dying is restarted at once, then after 100 ms, 200 ms (by the clock)', async () => {
    const h = harness();
    await h.invoker.start();

    h.sessions[0]!.crash();
    await settle();
    expect(h.sessions).toHaveLength(2);

    h.sessions[1]!.crash();
    await h.clock.advance(99);
    expect(h.sessions).toHaveLength(2);
    await h.clock.advance(1);
    expect(h.sessions).toHaveLength(3);

    h.sessions[2]!.crash();
    await h.clock.advance(199);
    expect(h.sessions).toHaveLength(3);
    await h.clock.advance(1);
    expect(h.sessions).toHaveLength(4);

    // An answer proves the runtime works: the next crash restarts at once again.
    const result = h.invoker.invoke(h.invocation());
    await settle();
    h.sessions[3]!.answerNext();
    expect(reasonOf(await result)).toBe('ok');
    h.sessions[3]!.crash();
    await settle();
    expect(h.sessions).toHaveLength(5);
  });

  it('grace: a cancelled request already in a pipelined runtime gets 500 ms at the head of the line before the kill', async () => {
    const h = harness({ maxQueued: 2, pipelined: true });
    await h.invoker.start();
    const stopSecond = new AbortController();
    const first = h.invoker.invoke(h.invocation());
    const second = h.invoker.invoke(h.invocation(), stopSecond.signal);
    const third = h.invoker.invoke(h.invocation());
    await settle();
    expect(h.sessions[0]!.calls).toHaveLength(3);

    stopSecond.abort(new Error('cancelled by the client'));
    expect(await second).toMatchObject({ ok: false, reason: 'busy', error: { type: 'Runtime.NotStarted' } });
    h.sessions[0]!.answerNext();
    expect(reasonOf(await first)).toBe('ok');
    await h.clock.advance(499);
    expect(h.sessions[0]!.killed).toBe(false);
    await h.clock.advance(1);

    expect(h.sessions[0]!.killed).toBe(true);
    // The third never started there: it runs on the next runtime, once.
    await settle();
    expect(h.sessions[1]!.calls.map((c) => c.invocation.requestId)).toEqual(['r3']);
    h.sessions[1]!.answerNext();
    expect(reasonOf(await third)).toBe('ok');
  });

  it("grace: a leftover's answer within the grace is dropped and the runtime kept", async () => {
    const h = harness({ maxQueued: 2, pipelined: true });
    await h.invoker.start();
    const stopSecond = new AbortController();
    const first = h.invoker.invoke(h.invocation());
    h.invoker.invoke(h.invocation(), stopSecond.signal).catch(() => undefined);
    const third = h.invoker.invoke(h.invocation());
    await settle();
    stopSecond.abort();
    h.sessions[0]!.answerNext();
    await first;

    await h.clock.advance(200);
    h.sessions[0]!.answerNext({ ok: true, resultJson: '"late"' });
    await settle();
    h.sessions[0]!.answerNext({ ok: true, resultJson: '"third"' });

    expect(await third).toEqual({ ok: true, resultJson: '"third"' });
    await h.clock.advance(1_000);
    expect(h.sessions[0]!.killed).toBe(false);
    expect(h.sessions).toHaveLength(1);
  });

  it('shutdown: close cancels the running and the waiting invocations, kills the runtime, and refuses new ones', async () => {
    const { h, first, second } = await twoInvoked({ maxQueued: 1 });

    const closed = h.invoker.close();
    expect(h.invoker.close()).toBe(closed);
    await closed;

    expect(await first).toMatchObject({ ok: false, reason: 'cancelled' });
    expect(await second).toMatchObject({ ok: false, reason: 'cancelled' });
    expect(h.sessions[0]!.killed).toBe(true);
    expect(await h.invoker.invoke(h.invocation())).toMatchObject({ ok: false, reason: 'cancelled' });
    await h.clock.advance(60_000);
    expect(h.sessions).toHaveLength(1);
  });

  it('busy: beyond its queue it answers busy at once, without touching the runtime', async () => {
    const h = harness({ maxQueued: 1 });
    await h.invoker.start();
    h.invoker.invoke(h.invocation()).catch(() => undefined);
    h.invoker.invoke(h.invocation()).catch(() => undefined);

    expect(reasonOf(await h.invoker.invoke(h.invocation()))).toBe('busy');
    expect(h.sessions[0]!.calls).toHaveLength(1);
  });

  it('an onStarted that invokes again does not re-enter the line: the new invocation queues behind', async () => {
    const h = harness({ maxQueued: 1 });
    await h.invoker.start();
    const first = h.invoker.invoke(h.invocation());
    let third: Promise<InvokeResult> | undefined;
    const second = h.invoker.invoke(h.invocation(), undefined, () => {
      third = h.invoker.invoke(h.invocation());
    });
    await settle();
    h.latest().answerNext();
    await first;
    await settle();
    expect(third).toBeDefined();
    h.latest().answerNext();
    expect(reasonOf(await second)).toBe('ok');
    await settle();
    h.latest().answerNext();
    expect(reasonOf(await third!)).toBe('ok');
    expect(h.latest().calls.map((c) => c.invocation.requestId)).toEqual(['r1', 'r2', 'r3']);
  });

  describe('withdrawQueued', () => {
    const typeOf = (result: InvokeResult | 'pending') =>
      result === 'pending' ? 'pending' : result.ok ? 'ok' : result.error.type;

    it('the queued invocations the runtime gives back end withdrawn; the running one goes on', async () => {
      const h = harness({ maxQueued: 2, pipelined: true });
      await h.invoker.start();
      const running = h.invoker.invoke(h.invocation());
      const queued = [h.invoker.invoke(h.invocation()), h.invoker.invoke(h.invocation())];
      await settle();

      h.invoker.withdrawQueued();
      expect(h.latest().withdrawals).toEqual(['r2', 'r3']);
      h.latest().giveBack('r2');
      h.latest().giveBack('r3');

      expect((await Promise.all(queued)).map(typeOf)).toEqual(['Runtime.Withdrawn', 'Runtime.Withdrawn']);
      expect(await peek(running)).toBe('pending');
      h.latest().answerNext();
      expect(reasonOf(await running)).toBe('ok');
      expect(h.latest().killed).toBe(false);
    });

    it('one the runtime started meanwhile gives its own answer', async () => {
      const { h, first, second } = await twoInvoked({ maxQueued: 1, pipelined: true });

      h.invoker.withdrawQueued();
      h.latest().answerNext();
      h.latest().answerNext({ ok: true, resultJson: '"second"' });

      expect(reasonOf(await first)).toBe('ok');
      expect(await second).toEqual({ ok: true, resultJson: '"second"' });
      // Asked once: a second ask sends nothing more.
      h.invoker.withdrawQueued();
      expect(h.latest().withdrawals).toEqual(['r2']);
    });

    it('one whose runtime dies before answering comes back withdrawn, never given to the next runtime', async () => {
      const { h, first, second } = await twoInvoked({ maxQueued: 1, pipelined: true });

      h.invoker.withdrawQueued();
      h.latest().crash();

      expect(reasonOf(await first)).toBe('runtime-crash');
      expect(typeOf(await second)).toBe('Runtime.Withdrawn');
      await settle();
      expect(h.sessions.flatMap((s) => s.calls.map((c) => c.invocation.requestId))).toEqual(['r1', 'r2']);
    });

    it('ones no runtime holds yet (it is starting) end withdrawn at once', async () => {
      const h = harness({ maxQueued: 1, pipelined: true, readyAtOnce: false });
      const first = h.invoker.invoke(h.invocation());
      const second = h.invoker.invoke(h.invocation());
      await settle();

      h.invoker.withdrawQueued();

      expect(typeOf(await second)).toBe('Runtime.Withdrawn');
      h.latest().makeReady();
      await settle();
      expect(h.latest().calls.map((c) => c.invocation.requestId)).toEqual(['r1']);
      h.latest().answerNext();
      expect(reasonOf(await first)).toBe('ok');
    });
  });
});
