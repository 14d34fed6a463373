// The agent on a full disk, against fake ports whose every write fails with DiskFullError while a switch says the
// disk is full: a finished result waits in memory (the handler does not run again, no attempt is counted), intake
// pauses, one warning is logged, and once space is back the leases are extended before the results are written.
import { Writable } from 'node:stream';
import pino from 'pino';
import {
  applyOverrides,
  compileConfig,
  DiskFullError,
  newTask,
  type SessionRecord,
  type TaskRecord,
} from '../../../lib/core';
import type {
  Completion,
  CompletionResult,
  IntakeOptions,
  Invocation,
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
import { sleep } from '../../../lib/timing';
import { waitFor } from '../../support/local-grid';

const session: SessionRecord = {
  sessionId: 's',
  createdAt: 0,
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 60_000,
  nonRetryableErrorTypes: [],
};

/** The disk every fake writes to; `writes` lists what was written, in order, once there was space. */
class FakeDisk {
  full = false;
  readonly writes: string[] = [];
  refused = 0;

  write(what: string): void {
    if (this.full) {
      this.refused++;
      throw new DiskFullError(what);
    }
    this.writes.push(what);
  }
}

class FakeTable {
  readonly completions: Completion[] = [];
  constructor(private readonly disk: FakeDisk) {}

  async extendLeases(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    this.disk.write(`extend ${leases.map((l) => l.taskId).join(',')}`);
    return leases.map(() => 'held');
  }

  async leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    return leases.map(() => 'held');
  }

  async complete(completions: readonly Completion[]): Promise<CompletionResult[]> {
    this.disk.write(`complete ${completions.map((c) => c.taskId).join(',')}`);
    this.completions.push(...completions);
    return completions.map((c) => ({ taskId: c.taskId, status: 'recorded' }));
  }

  async getSession(): Promise<SessionRecord> {
    return session;
  }
}

class FakeQueue implements TaskQueue {
  async send(_messages: readonly QueueMessage[]): Promise<void> {}
  async receive(): Promise<ReceivedMessage[]> {
    return [];
  }
  async ack(): Promise<void> {}
  async release(): Promise<void> {}
  async extend(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Claims the tasks it is given (a claim is a write: refused while the disk is full), then long-polls empty. */
class FakeIntake implements TaskIntake {
  readonly waiting: TaskRecord[] = [];
  receives = 0;
  constructor(private readonly disk: FakeDisk) {}

  async receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    this.receives++;
    if (this.waiting.length === 0) {
      await sleep(options.waitMs, options.signal);
      return [];
    }
    const tasks = this.waiting.slice(0, max);
    this.disk.write(`claim ${tasks.map((t) => t.taskId).join(',')}`);
    this.waiting.splice(0, tasks.length);
    return tasks.map((task) => ({
      ...task,
      state: 'running',
      attempt: task.attempt + 1,
      lease: { owner: options.owner, expiresAt: Date.now() + options.leaseMs },
      startedAt: Date.now(),
    }));
  }

  leaseExtended(): void {}
  settle(): void {}
  async drain(): Promise<void> {}
}

/** Each invocation returns `result-<taskId>` when the test finishes it. */
class FakeInvoker implements WorkerInvoker {
  readonly invocations: { invocation: Invocation; finish: () => void }[] = [];
  async start(): Promise<void> {}
  invoke(invocation: Invocation): Promise<InvokeResult> {
    return new Promise((resolve) => {
      const resultJson = JSON.stringify(`result-${invocation.taskId}`.padEnd(64, '.'));
      this.invocations.push({ invocation, finish: () => resolve({ ok: true, resultJson }) });
    });
  }
  async close(): Promise<void> {}
}

function setup() {
  const disk = new FakeDisk();
  const table = new FakeTable(disk);
  const intake = new FakeIntake(disk);
  const invoker = new FakeInvoker();
  const stored = new Map<string, string>();
  const store: PayloadStore = {
    put: async (key, body) => {
      disk.write(`put ${key}`);
      stored.set(key, body.toString());
    },
    get: async (key) => Buffer.from(stored.get(key) ?? ''),
    delete: async () => undefined,
    close: async () => undefined,
  };
  const lines: { level: number; msg: string; err?: { message?: string } }[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
        done();
      },
    }),
  );
  const config = compileConfig(
    applyOverrides(
      {
        slots: 1,
        // Results over 32 bytes go to the payload store, the other write a full disk refuses.
        inline_payload_max_bytes: 32,
        task_ttl_expiration_offset_sec: 30,
        task_ttl_refresh_interval_sec: 10,
        lease_check_interval_sec: 0.02,
        empty_task_queue_backoff_timeout_sec: 0.01,
      },
      {},
    ),
    'test',
  );
  const fullChanges: boolean[] = [];
  const agent = new Agent({
    config,
    table: table as unknown as TaskTable,
    queue: new FakeQueue(),
    intake,
    store,
    createInvoker: () => invoker,
    owner: 'me',
    // Room to receive while a task runs: intake would claim the tasks queued meanwhile if it did not pause.
    prefetch: 2,
    receiveWaitMs: 10,
    logger,
    onDiskFull: (full) => fullChanges.push(full),
  });
  return { agent, disk, table, intake, invoker, lines, fullChanges };
}

const task = (i: number): TaskRecord => newTask(session, i, { inline: '{}' }, 0);

describe('the agent on a full disk (fake ports)', () => {
  it('keeps a result it cannot write, pauses intake, warns once, and records it once space is back, in its only attempt', async () => {
    const { agent, disk, table, intake, invoker, lines, fullChanges } = setup();
    intake.waiting.push(task(0));
    await agent.start();
    try {
      await waitFor(() => invoker.invocations.length === 1, 10_000, 'the first task running');
      disk.full = true;
      intake.waiting.push(task(1), task(2));
      invoker.invocations[0]!.finish();
      // Its payload write is refused, then the probe's lease extends, with back-off.
      await waitFor(() => disk.refused >= 2, 10_000, 'writes refused while the disk is full');
      const receivesWhileFull = intake.receives;
      await waitFor(() => disk.refused >= 4, 20_000, 'more writes refused');
      // Intake paused: no receive tried, no task claimed (the held task's lease extend is the probe).
      expect(intake.receives).toBe(receivesWhileFull);
      expect(intake.waiting).toHaveLength(2);
      expect(table.completions).toEqual([]);
      expect(fullChanges).toEqual([true]);

      disk.full = false;
      await waitFor(() => table.completions.length === 1, 10_000, 'the kept result recorded');
      await waitFor(() => invoker.invocations.length === 2, 10_000, 'intake resumed');
      invoker.invocations[1]!.finish();
      await waitFor(() => invoker.invocations.length === 3, 10_000, 'the third task running');
      invoker.invocations[2]!.finish();
      await waitFor(() => table.completions.length === 3, 10_000, 'all recorded');
    } finally {
      await agent.stop(0);
    }

    // The handler ran once per task, each in its first attempt, and succeeded with its result stored.
    expect(invoker.invocations.map((i) => [i.invocation.taskId, i.invocation.attempt])).toEqual([
      ['s_0', 1],
      ['s_1', 1],
      ['s_2', 1],
    ]);
    expect(table.completions.map((c) => [c.taskId, c.guard.attempt, c.outcome.kind])).toEqual([
      ['s_0', 1, 'succeeded'],
      ['s_1', 1, 'succeeded'],
      ['s_2', 1, 'succeeded'],
    ]);
    expect(fullChanges).toEqual([true, false]);
    // The lease was extended before anything else was written once space was back (the reaper waits for that).
    expect(disk.writes.filter((w) => !w.startsWith('claim')).slice(0, 3)).toEqual([
      'extend s_0',
      expect.stringMatching(/^put .*s_0/),
      'complete s_0',
    ]);
    // One warning naming the problem and the fix; nothing logged per task or per refused write.
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      'the disk holding the grid folder is full: intake paused, finished results kept in memory until they can be recorded',
    ]);
    expect(warnings[0]!.err?.message).toMatch(/free space on that file system or delete finished sessions/);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.filter((l) => l.msg.startsWith('disk space is back'))).toHaveLength(1);
  });

  it('gives up waiting once its drain grace ends: the result is left to the lease expiry, and stop returns', async () => {
    const { agent, disk, table, intake, invoker, lines } = setup();
    intake.waiting.push(task(0));
    await agent.start();
    await waitFor(() => invoker.invocations.length === 1, 10_000, 'the task running');
    disk.full = true;
    invoker.invocations[0]!.finish();
    await waitFor(() => disk.refused >= 2, 10_000, 'writes refused');
    await agent.stop(50);
    expect(table.completions).toEqual([]);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });
});
