// The agent against fake ports and a fake invoker (no runtime, no database): drain and grace, lease loss, what it tells
// its intake, and the ResultTooLarge / PayloadMissing paths. Every wait is on a condition, never on a duration.
// (Busy and expired claims are the intake's business: test/contract/task-intake.contract.ts and the AWS intake's test.)
import pino from 'pino';
import { applyOverrides, compileConfig, newTask, type SessionRecord, type TaskRecord } from '../../../lib/core';
import type {
  Completion,
  CompletionResult,
  Invocation,
  IntakeOptions,
  InvokeResult,
  LeaseRef,
  LeaseStatus,
  PayloadStore,
  QueueMessage,
  ReceivedMessage,
  TaskIntake,
  TaskQueue,
  TaskTable,
  WorkerInvoker,
} from '../../../lib/ports';
import { Agent } from '../../../lib/runtime/agent';
import { MicroBatcher } from '../../../lib/micro-batcher';
import { sleep } from '../../../lib/timing';
import { waitFor } from '../../support/local-grid';

const session: SessionRecord = {
  sessionId: 's',
  createdAt: 0,
  priority: 0,
  maxAttempts: 3,
  timeoutMs: 60_000,
  nonRetryableErrorTypes: [],
};

const pendingTask = (i: number, payload = '{}'): TaskRecord => newTask(session, i, { inline: payload }, 0);

/** A queue that records the messages sent to it (re-queues of handed-back tasks); it never delivers any. */
class FakeQueue implements TaskQueue {
  readonly sent: QueueMessage[] = [];

  async send(messages: readonly QueueMessage[]): Promise<void> {
    this.sent.push(...messages);
  }

  async receive(): Promise<ReceivedMessage[]> {
    return [];
  }

  async ack(): Promise<void> {}
  async release(): Promise<void> {}
  async extend(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A table holding `tasks`; leases follow `leaseAs` (default: held); completions are recorded. */
class FakeTable {
  readonly completions: Completion[] = [];
  leaseAs: (lease: LeaseRef) => LeaseStatus = () => 'held';

  constructor(readonly tasks: Map<string, TaskRecord>) {}

  async extendLeases(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    return leases.map((l) => this.leaseAs(l));
  }

  async leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    return leases.map((l) => this.leaseAs(l));
  }

  async complete(completions: readonly Completion[]): Promise<CompletionResult[]> {
    this.completions.push(...completions);
    return completions.map((c) => ({ taskId: c.taskId, status: 'recorded' }));
  }

  async getSession(): Promise<SessionRecord> {
    return session;
  }

  outcomeOf(taskId: string): string | undefined {
    return this.completions.find((c) => c.taskId === taskId)?.outcome.kind;
  }
}

/** An intake that claims the table's pending tasks once, then long-polls empty; records what the agent tells it. */
class FakeIntake implements TaskIntake {
  readonly notices: string[] = [];
  drained = 0;
  private offered = false;

  constructor(
    private readonly table: FakeTable,
    private readonly now: () => number,
  ) {}

  async receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    const pending = this.offered ? [] : [...this.table.tasks.values()].filter((t) => t.state === 'pending');
    if (pending.length === 0) {
      await sleep(options.waitMs, options.signal);
      return [];
    }
    const at = this.now();
    const claimed = pending.slice(0, max).map((task): TaskRecord => ({
      ...task,
      state: 'running',
      attempt: task.attempt + 1,
      lease: { owner: options.owner, expiresAt: at + options.leaseMs },
      startedAt: at,
    }));
    for (const task of claimed) this.table.tasks.set(task.taskId, task);
    this.offered = claimed.length === pending.length;
    return claimed;
  }

  leaseExtended(task: TaskRecord): void {
    this.notices.push(`${task.taskId}#${task.attempt} extended`);
  }

  settle(task: TaskRecord, how: 'done' | 'abandoned'): void {
    this.notices.push(`${task.taskId}#${task.attempt} ${how}`);
  }

  async drain(): Promise<void> {
    this.drained++;
  }
}

/** An invoker whose invocations end when the test says, or with `cancelled` when aborted (as real invokers do). */
class FakeInvoker implements WorkerInvoker {
  readonly invocations: { invocation: Invocation; signal?: AbortSignal; finish: (r: InvokeResult) => void }[] = [];

  async start(): Promise<void> {}

  invoke(invocation: Invocation, signal?: AbortSignal): Promise<InvokeResult> {
    return new Promise((resolve) => {
      this.invocations.push({ invocation, signal, finish: resolve });
      signal?.addEventListener('abort', () =>
        resolve({ ok: false, reason: 'cancelled', error: { type: 'Runtime.Cancelled', message: 'x', stack: [] } }),
      );
    });
  }

  async close(): Promise<void> {}

  running(taskId: string) {
    return this.invocations.find((i) => i.invocation.taskId === taskId);
  }
}

const noStore: PayloadStore = {
  put: async () => undefined,
  get: async (key) => {
    throw new Error(`no such key ${key}`);
  },
  delete: async () => undefined,
  close: async () => undefined,
};

function setup(
  tasks: TaskRecord[],
  options: {
    overrides?: Record<string, unknown>;
    store?: PayloadStore;
    logger?: pino.Logger;
    now?: () => number;
  } = {},
) {
  const config = compileConfig(
    applyOverrides(
      {
        slots: 1,
        task_ttl_expiration_offset_sec: 30,
        task_ttl_refresh_interval_sec: 10,
        lease_check_interval_sec: 0.05,
        empty_task_queue_backoff_timeout_sec: 0.01,
        ...options.overrides,
      },
      {},
    ),
    'test',
  );
  const table = new FakeTable(new Map(tasks.map((t) => [t.taskId, t])));
  const queue = new FakeQueue();
  const intake = new FakeIntake(table, options.now ?? Date.now);
  const invoker = new FakeInvoker();
  const agent = new Agent({
    config,
    table: table as unknown as TaskTable,
    queue,
    intake,
    store: options.store ?? noStore,
    createInvoker: () => invoker,
    owner: 'me',
    prefetch: 4,
    receiveWaitMs: 20,
    logger: options.logger,
    now: options.now,
  });
  return { agent, table, queue, intake, invoker };
}

describe('the agent on fake ports', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it('drain: hands back a task not started yet at once, and records the running one when it finishes in the grace', async () => {
    const { agent, table, queue, invoker } = setup([pendingTask(0), pendingTask(1)]);
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined && agent.stats.claimed === 2, 10_000, 'both claimed');

    const stopped = agent.stop(60_000);
    await waitFor(() => table.outcomeOf('s_1') === 'released', 10_000, 'the waiting task handed back');
    expect(table.outcomeOf('s_0')).toBeUndefined();
    expect(invoker.running('s_0')?.signal?.aborted).toBe(false);
    invoker.running('s_0')!.finish({ ok: true, resultJson: '42' });
    await stopped;

    expect(table.completions.find((c) => c.taskId === 's_0')?.outcome).toEqual({
      kind: 'succeeded',
      result: { inline: '42' },
    });
    // A handed-back task gets its message again before it turns pending.
    expect(queue.sent).toEqual([{ taskId: 's_1', sessionId: 's', attempt: 1, priority: 0 }]);
    expect(agent.stats).toMatchObject({ claimed: 2, succeeded: 1, released: 1 });
    expect(invoker.invocations.map((i) => i.invocation.taskId)).toEqual(['s_0']);
  });

  it('a completion waits for its batch only while another task is held; the last one held is written at once', async () => {
    const flush = jest.spyOn(MicroBatcher.prototype, 'flush');
    try {
      const { agent, table, invoker } = setup([pendingTask(0), pendingTask(1)]);
      await agent.start();
      stop = () => agent.stop(0);
      await waitFor(() => invoker.running('s_0') !== undefined && agent.stats.claimed === 2, 10_000, 'both claimed');
      invoker.running('s_0')!.finish({ ok: true, resultJson: '0' });
      await waitFor(() => invoker.running('s_1') !== undefined, 10_000, 'the second task running');
      // s_1 was held when s_0 finished: s_0 waited for a batch.
      expect(flush).not.toHaveBeenCalled();
      await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 's_0 written by the batch timer');
      invoker.running('s_1')!.finish({ ok: true, resultJson: '1' });
      await waitFor(() => table.outcomeOf('s_1') === 'succeeded', 10_000, 's_1 written');
      expect(flush).toHaveBeenCalledTimes(1);
    } finally {
      flush.mockRestore();
    }
  });

  it('grace: a second stop ends the grace, aborts the running task and hands it back unfinished', async () => {
    const { agent, table, invoker } = setup([pendingTask(0)]);
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    const first = agent.stop(60 * 60_000);
    const second = agent.stop();
    await Promise.all([first, second]);

    expect(invoker.running('s_0')?.signal?.aborted).toBe(true);
    expect(table.completions.map((c) => [c.taskId, c.outcome.kind, c.guard])).toEqual([
      ['s_0', 'released', { owner: 'me', attempt: 1 }],
    ]);
    expect(agent.stats).toMatchObject({ released: 1, failed: 0, retried: 0 });
  });

  it('lease loss: a task whose lease another agent took is aborted and nothing of it is written', async () => {
    const { agent, table, invoker } = setup([pendingTask(0)]);
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    table.leaseAs = () => 'lost';
    await waitFor(() => invoker.running('s_0')?.signal?.aborted === true, 10_000, 'the invocation aborted');
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the attempt dropped');
    await agent.stop(0);

    expect(table.completions).toEqual([]);
  });

  it('cancellation: a cancelled task is aborted and left as the cancel wrote it', async () => {
    const { agent, table, invoker } = setup([pendingTask(0)]);
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    table.leaseAs = () => 'cancelled';
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the attempt dropped');
    await agent.stop(0);

    expect(invoker.running('s_0')?.signal?.aborted).toBe(true);
    expect(table.completions).toEqual([]);
  });

  it('tells its intake when a lease was extended and when each attempt ended, and drains it on stop', async () => {
    let clock = 1_000;
    const { agent, table, intake, invoker } = setup([pendingTask(0), pendingTask(1)], { now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the first task running');
    // Past the lease refresh interval (10 s): the lease keeper extends the running task's lease.
    clock += 11_000;
    await waitFor(() => intake.notices.includes('s_0#1 extended'), 10_000, 'the extension told');
    invoker.running('s_0')!.finish({ ok: true, resultJson: '0' });
    await waitFor(() => invoker.running('s_1') !== undefined, 10_000, 'the second task running');
    table.leaseAs = () => 'cancelled';
    clock += 1_000; // the next lease check is due
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the cancelled attempt dropped');
    await agent.stop(0);

    expect(table.outcomeOf('s_0')).toBe('succeeded');
    expect(intake.notices).toEqual(expect.arrayContaining(['s_0#1 extended', 's_0#1 done', 's_1#1 done']));
    expect(intake.notices.filter((n) => n.startsWith('s_0#1 done'))).toHaveLength(1);
    expect(intake.drained).toBe(1);
  });

  it('a result over max_payload_bytes fails the task as Runtime.ResultTooLarge, not retried, nothing stored', async () => {
    const put = jest.fn(async () => undefined);
    const { agent, table, invoker } = setup([pendingTask(0)], {
      overrides: { max_payload_bytes: 100, inline_payload_max_bytes: 10 },
      store: { ...noStore, put },
    });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    invoker.running('s_0')!.finish({ ok: true, resultJson: JSON.stringify('x'.repeat(200)) });
    await waitFor(() => table.completions.length === 1, 10_000, 'the outcome written');
    await agent.stop(0);

    const { outcome } = table.completions[0]!;
    expect(outcome).toMatchObject({ kind: 'failed', reason: 'error', error: { type: 'Runtime.ResultTooLarge' } });
    expect(outcome.kind === 'failed' && outcome.error.message).toMatch(
      /result of 202 bytes exceeds max_payload_bytes \(100\)/,
    );
    expect(put).not.toHaveBeenCalled();
  });

  it('a payload missing from the store fails the task as Runtime.PayloadMissing without invoking the worker', async () => {
    const task = { ...pendingTask(0), payload: { key: 'sessions/s/s_0/input.json', bytes: 10 } };
    const { agent, table, invoker } = setup([task]);
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => table.completions.length === 1, 10_000, 'the outcome written');
    await agent.stop(0);

    expect(table.completions[0]!.outcome).toMatchObject({
      kind: 'failed',
      reason: 'error',
      error: { type: 'Runtime.PayloadMissing', message: 'payload of task s_0 is missing from the payload store' },
    });
    expect(invoker.invocations).toEqual([]);
  });

  it('logs the start and finish of each task at debug level, with its ids, attempt, outcome and run time', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    let clock = 1_000;
    const { agent, invoker } = setup([pendingTask(0)], { logger, now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    clock += 250;
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => lines.some((l) => l.msg === 'task finished'), 10_000, 'the finish line');
    await agent.stop(0);

    const ids = { taskId: 's_0', sessionId: 's', attempt: 1 };
    expect(lines.find((l) => l.msg === 'task started')).toMatchObject({ level: 20, ...ids });
    expect(lines.find((l) => l.msg === 'task finished')).toMatchObject({
      level: 20,
      ...ids,
      outcome: 'succeeded',
      runMs: 250,
    });
  });

  it('records when the handler run started and how long it ran with the attempt', async () => {
    let clock = 1_000;
    const { agent, table, invoker } = setup([pendingTask(0)], { now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    clock += 300;
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 'the result written');
    await agent.stop(0);

    expect(table.completions[0]).toMatchObject({ at: 1_300, run: { startedAt: 1_000, ms: 300 } });
  });

  it('writes no per-task lines at info level', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { agent, table, invoker } = setup([pendingTask(0)], { logger });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 'the result written');
    await agent.stop(0);

    expect(lines.map((l) => l.msg)).not.toContain('task started');
    expect(lines.map((l) => l.msg)).toContain('agent started');
  });
});
