// In-memory fakes of the ports in lib/ports.ts, for tests of the agent's machinery without a database or a runtime:
// each records what it was asked and answers as the test scripts it. Every wait stays on a condition (`waitFor`).
import { Writable } from 'node:stream';
import pino from 'pino';
import { applyOverrides, compileConfig, newTask, type SessionRecord, type TaskRecord } from '../../lib/core';
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
} from '../../lib/ports';
import { Agent, type AgentOptions } from '../../lib/runtime/agent';
import { sleep } from '../../lib/timing';

/** Session `s`: three attempts, a minute's timeout, nothing non-retryable (override what a test needs). */
export function fakeSession(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sessionId: 's',
    createdAt: 0,
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
    ...overrides,
  };
}

/** Task `s_<i>` of `session`, pending at attempt 0, created at time 0. */
export function pendingTask(i: number, payload = '{}', session: SessionRecord = fakeSession()): TaskRecord {
  return newTask(session, i, { inline: payload }, 0);
}

/** Called before each write a fake makes (a claim, a lease extension, a completion, a put); throw to refuse it. */
export type BeforeWrite = (what: string) => void;

/** One queue message per task (receipts `r0`, `r1`, …), as first received. */
export function messagesOf(tasks: readonly TaskRecord[]): ReceivedMessage[] {
  return tasks.map((t, i) => ({
    message: { taskId: t.taskId, sessionId: t.sessionId, attempt: t.attempt, priority: t.priority },
    receipt: `r${i}`,
    receiveCount: 1,
  }));
}

/** A queue that hands out `waiting` once (none unless given) and records every send, delete and release. */
export class FakeQueue implements TaskQueue {
  readonly sent: QueueMessage[] = [];
  readonly acked: string[][] = [];
  readonly released: { receipts: string[]; delayMs: number }[] = [];

  constructor(private readonly waiting: ReceivedMessage[] = []) {}

  async send(messages: readonly QueueMessage[]): Promise<void> {
    this.sent.push(...messages);
  }

  async receive(max: number): Promise<ReceivedMessage[]> {
    return this.waiting.splice(0, max);
  }

  /** Messages for the next receives (a message coming back, a duplicate). */
  deliver(...messages: ReceivedMessage[]): void {
    this.waiting.push(...messages);
  }

  async ack(receipts: readonly string[]): Promise<void> {
    this.acked.push([...receipts]);
  }

  async release(receipts: readonly string[], delayMs: number): Promise<void> {
    this.released.push({ receipts: [...receipts], delayMs });
  }

  async extend(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A lease read or extension the fake table was asked for. */
export interface LeaseCall {
  readonly kind: 'extend' | 'status';
  readonly ids: string[];
  readonly expiresAt?: number;
}

/**
 * The part of a task table the agent writes through: leases answer `leaseAs` (default: held), completions are
 * recorded; every lease call is recorded too. `asTaskTable()` hands it where a whole `TaskTable` is typed.
 */
export class FakeTable {
  readonly completions: Completion[] = [];
  readonly calls: LeaseCall[] = [];
  leaseAs: (lease: LeaseRef) => LeaseStatus = () => 'held';

  constructor(
    readonly session: SessionRecord = fakeSession(),
    private readonly beforeWrite: BeforeWrite = () => undefined,
  ) {}

  async extendLeases(leases: readonly LeaseRef[], expiresAt: number): Promise<LeaseStatus[]> {
    const ids = leases.map((l) => l.taskId);
    this.calls.push({ kind: 'extend', ids, expiresAt });
    this.beforeWrite(`extend ${ids.join(',')}`);
    return leases.map((l) => this.leaseAs(l));
  }

  async leaseStatus(leases: readonly LeaseRef[]): Promise<LeaseStatus[]> {
    this.calls.push({ kind: 'status', ids: leases.map((l) => l.taskId) });
    return leases.map((l) => this.leaseAs(l));
  }

  async complete(completions: readonly Completion[]): Promise<CompletionResult[]> {
    this.beforeWrite(`complete ${completions.map((c) => c.taskId).join(',')}`);
    this.completions.push(...completions);
    return completions.map((c) => ({ taskId: c.taskId, status: 'recorded' }));
  }

  async getSession(): Promise<SessionRecord> {
    return this.session;
  }

  /** The outcome kind recorded for a task, if any. */
  outcomeOf(taskId: string): string | undefined {
    return this.completions.find((c) => c.taskId === taskId)?.outcome.kind;
  }

  asTaskTable(): TaskTable {
    return this as unknown as TaskTable;
  }
}

/**
 * An intake that claims the tasks in `waiting` (a claim is a write) and long-polls empty once there are none;
 * records each receive and what the agent tells it.
 */
export class FakeIntake implements TaskIntake {
  readonly waiting: TaskRecord[] = [];
  readonly notices: string[] = [];
  receives = 0;
  drained = 0;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly beforeWrite: BeforeWrite = () => undefined,
  ) {}

  async receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    this.receives++;
    if (this.waiting.length === 0) {
      await sleep(options.waitMs, options.signal);
      return [];
    }
    const tasks = this.waiting.slice(0, max);
    this.beforeWrite(`claim ${tasks.map((t) => t.taskId).join(',')}`);
    this.waiting.splice(0, tasks.length);
    const at = this.now();
    return tasks.map((task) => ({
      ...task,
      state: 'running',
      attempt: task.attempt + 1,
      lease: { owner: options.owner, expiresAt: at + options.leaseMs },
      startedAt: at,
    }));
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
export class FakeInvoker implements WorkerInvoker {
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

  /** The invocation of a task, once it was handed over. */
  running(taskId: string) {
    return this.invocations.find((i) => i.invocation.taskId === taskId);
  }
}

/** A payload store in memory; `get` of a key never put rejects, as a store missing the object does. */
export class FakeStore implements PayloadStore {
  readonly stored = new Map<string, string>();

  constructor(private readonly beforeWrite: BeforeWrite = () => undefined) {}

  async put(key: string, data: string | Buffer): Promise<void> {
    this.beforeWrite(`put ${key}`);
    this.stored.set(key, data.toString());
  }

  async get(key: string): Promise<Buffer> {
    const data = this.stored.get(key);
    if (data === undefined) throw new Error(`no such key ${key}`);
    return Buffer.from(data);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.stored.delete(key);
  }

  async close(): Promise<void> {}
}

/** A log line as `capturedLogger` keeps it, by default. */
export type CapturedLine = { level: number; msg: string; err?: { message?: string }; [key: string]: unknown };

/** A pino logger whose lines, parsed (as `Line`, a test's own view of them), land in `lines`. */
export function capturedLogger<Line extends { readonly level: number; readonly msg: string } = CapturedLine>(
  level: pino.Level,
) {
  const lines: Line[] = [];
  const logger = pino(
    { level },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Line);
        done();
      },
    }),
  );
  return { logger, lines };
}

export interface FakeAgentOptions extends Partial<Omit<AgentOptions, 'config' | 'table' | 'queue' | 'intake'>> {
  /** Tasks the intake claims first (more can be pushed to `intake.waiting` later). */
  readonly tasks?: readonly TaskRecord[];
  /** Config keys over the test defaults (one slot, 10 s lease refresh, 50 ms lease checks, 10 ms back-off). */
  readonly overrides?: Record<string, unknown>;
  readonly session?: SessionRecord;
  /** Runs before each write of the table, the intake and the default store. */
  readonly beforeWrite?: BeforeWrite;
}

/** An agent (owner `me`, prefetch 4, 20 ms receives unless told) on a fake table, queue, intake, store and invoker. */
export function fakeAgent(options: FakeAgentOptions = {}) {
  const { tasks = [], overrides, session, beforeWrite, ...agentOptions } = options;
  const config = compileConfig(
    applyOverrides(
      {
        slots: 1,
        task_ttl_expiration_offset_sec: 30,
        task_ttl_refresh_interval_sec: 10,
        lease_check_interval_sec: 0.05,
        empty_task_queue_backoff_timeout_sec: 0.01,
        ...overrides,
      },
      {},
    ),
    'test',
  );
  const table = new FakeTable(session, beforeWrite);
  const queue = new FakeQueue();
  const intake = new FakeIntake(options.now, beforeWrite);
  intake.waiting.push(...tasks);
  const invoker = new FakeInvoker();
  const store = options.store ?? new FakeStore(beforeWrite);
  const agent = new Agent({
    owner: 'me',
    prefetch: 4,
    receiveWaitMs: 20,
    createInvoker: () => invoker,
    ...agentOptions,
    config,
    table: table.asTaskTable(),
    queue,
    intake,
    store,
  });
  return { agent, table, queue, intake, invoker, store };
}
