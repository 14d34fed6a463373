// The agent: receives tasks in batches, claims them under a lease, runs them in N runtime slots, heartbeats, records.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import { isDiskFull, isInline, type AttemptRun, type GridConfig, type TaskRecord } from '../../core';
import {
  payloadKeys,
  type Completion,
  type CompletionOutcome,
  type CompletionResult,
  type InvokeResult,
  type PayloadStore,
  type QueueMessage,
  type TaskIntake,
  type TaskQueue,
  type TaskTable,
  type WorkerInvoker,
} from '../../ports';
import { silentLogger } from '../../logging';
import { backoffDelay, sleep, SERVICE_RETRY_BACKOFF } from '../../timing';
import { isWithdrawn } from '../invoke-results';
import { decideAttempt, failure, type AbortCause } from './attempt-outcome';
import { writeCompletions, type PendingCompletion } from './completion-writer';
import { DiskSpaceGate } from './disk-space-gate';
import type { HeldTask } from './held-task';
import { LeaseKeeper } from './lease-keeper';
import { MicroBatcher } from '../../micro-batcher';
import { PrefetchPolicy, type PrefetchSetting } from './prefetch-policy';
import { SessionSettings } from './session-settings';
import type { AttemptMeasure } from './task-outcome-metrics';

export interface AgentOptions {
  readonly config: GridConfig;
  readonly table: TaskTable;
  readonly queue: TaskQueue;
  readonly store: PayloadStore;
  /** How tasks are received and claimed (the backends' own: SQLite's one transaction, SQS + DynamoDB). */
  readonly intake: TaskIntake;
  /** Creates the invoker of one slot (one runtime process locally, the lambda-rie sidecar in AWS). */
  readonly createInvoker: (slot: number) => WorkerInvoker;
  /**
   * Concurrent tasks.
   * @default config.slots
   */
  readonly slots?: number;
  /**
   * Identity written into leases.
   * @default - host name, pid and a random suffix
   */
  readonly owner?: string;
  /**
   * Long-poll wait of one receive.
   * @default 1000 ms (the SQS adapter caps it at 20 s)
   */
  readonly receiveWaitMs?: number;
  /**
   * Tasks claimed ahead of a free slot, so a slot never waits for the queue: a number, or `auto` (about a second of
   * work per slot from recent run times, up to a receive batch; see `PrefetchPolicy`).
   * @default slots
   */
  readonly prefetch?: PrefetchSetting;
  /**
   * Invocations each slot's invoker takes while one runs (the local Python runtime: `maxQueued`). The agent hands
   * them over only while tasks wait for a slot and recent tasks ran shorter than a few ms, where sending the next
   * one ahead saves a round trip per task; a long task then has few queued behind it, and priorities hold. Those that
   * wait behind a task that has run `stalledAfterMs` are taken back and run in another slot.
   * @default 0
   */
  readonly queuedPerSlot?: number;
  /** Recent average run time below which tasks are sent ahead (see `queuedPerSlot`); for tests. @default 5 */
  readonly queueBelowMs?: number;
  /**
   * How long a slot's running task may run before the tasks sent ahead behind it are taken back (where the invoker
   * can, `WorkerInvoker.withdrawQueued`) and run in other slots, and before that slot is sent no more ahead.
   * @default config.stalledAfterMs (`stalled_after_ms`, 20 ms unless configured: `DEFAULT_STALLED_AFTER_MS`)
   */
  readonly stalledAfterMs?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /**
   * The object the agent counts into (e.g. one backed by shared memory, read from another thread).
   * @default - a plain object of zeros
   */
  readonly stats?: AgentStats;
  /** Called after an attempt's outcome was recorded (or found stale). */
  readonly onAttemptRecorded?: (
    taskId: string,
    outcome: CompletionOutcome['kind'],
    status: 'recorded' | 'stale',
  ) => void;
  /** Called with each recorded attempt's outcome, time queued and time running (the task metrics). */
  readonly onAttemptMeasured?: (measure: AttemptMeasure) => void;
  /**
   * Called when the agent finds the disk full (`true`: it pauses intake and keeps finished results in memory) and
   * when space is back and its leases are extended again (`false`); the local grid's reaper waits meanwhile.
   */
  readonly onDiskFull?: (full: boolean) => void;
}

export interface AgentStats {
  claimed: number;
  succeeded: number;
  failed: number;
  retried: number;
  released: number;
  dropped: number;
}

type AgentState = 'created' | 'starting' | 'running' | 'draining' | 'stopped';

/** Grace after the deadline before the agent itself aborts an invocation the runtime failed to time out. */
const DEADLINE_GRACE_MS = 5_000;
/** Delay before a message whose attempt is still running becomes visible again. */
const BUSY_RELEASE_DELAY_MS = 1_000;
/**
 * Tasks are sent to a busy slot ahead only while recent ones ran shorter than this on average (the prefetch policy's
 * moving average, undefined until a task ran, so queuing waits until short tasks were seen).
 */
const QUEUE_BELOW_MS = 5;

/** An invocation a slot's invoker holds (running, or sent ahead behind the running one). */
interface SlotRun {
  /** When it started in the runtime; undefined while it waits behind another. */
  startedAt: number | undefined;
  /** Taken back already (`withdrawQueued` was asked while it waited): not asked again. */
  withdrawAsked: boolean;
}

/** A slot loop waiting for a task. */
interface ReadyWaiter {
  readonly slot: number;
  readonly resolve: (task: HeldTask | undefined) => void;
}

export class Agent {
  readonly owner: string;
  readonly stats: AgentStats;

  private readonly config: GridConfig;
  private readonly table: TaskTable;
  private readonly queue: TaskQueue;
  private readonly intake: TaskIntake;
  private readonly store: PayloadStore;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly slotCount: number;
  private readonly prefetch: PrefetchPolicy;
  private readonly receiveWaitMs: number;
  private readonly invokers: WorkerInvoker[] = [];
  private readonly held = new Map<string, HeldTask>();
  private readonly ready: HeldTask[] = [];
  private readyWaiters: ReadyWaiter[] = [];
  /** Per slot, the invocations its invoker holds, in the order it runs them: the first one runs. */
  private readonly slotRuns: SlotRun[][] = [];
  /** Per slot, its loops waiting for its stall to end (see `stalledAfterMs`). */
  private readonly unstallWaiters: Array<Array<() => void>> = [];
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly stalledAfterMs: number;
  /** Queue loops waiting for a backlog (see `queuedPerSlot`). */
  private queueWaiters: Array<() => void> = [];
  /** The receive loop waiting for room (held tasks below what the slots and prefetch allow). */
  private capacityWaiters: Array<() => void> = [];
  private readonly stopReceiving = new AbortController();
  /** Finished attempts, written a batch at a time. */
  private readonly batcher: MicroBatcher<PendingCompletion>;
  private readonly leaseKeeper: LeaseKeeper;
  private readonly sessions: SessionSettings;
  /** Closed while the disk is full: writes wait there (not counted as failures) and intake pauses. */
  private readonly space: DiskSpaceGate;
  private state: AgentState = 'created';
  private loops: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private graceExpired: (() => void) | undefined;
  /** Per-task start and finish lines are built only when someone reads them (the hot path runs 10k tasks/s). */
  private readonly debugEnabled: boolean;

  constructor(private readonly options: AgentOptions) {
    this.config = options.config;
    this.stats = options.stats ?? { claimed: 0, succeeded: 0, failed: 0, retried: 0, released: 0, dropped: 0 };
    this.table = options.table;
    this.queue = options.queue;
    this.intake = options.intake;
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.slotCount = options.slots ?? options.config.slots;
    this.prefetch = new PrefetchPolicy({
      setting: options.prefetch ?? this.slotCount,
      slots: this.slotCount,
      max: this.config.receiveBatchSize,
    });
    this.receiveWaitMs = options.receiveWaitMs ?? 1_000;
    this.stalledAfterMs = options.stalledAfterMs ?? options.config.stalledAfterMs;
    this.owner = options.owner ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? silentLogger()).child({ agent: this.owner });
    this.debugEnabled = this.logger.isLevelEnabled('debug');
    const writer = {
      table: this.table,
      queue: this.queue,
      logger: this.logger,
      onWritten: (item: PendingCompletion, status: CompletionResult['status'] | 'unwritten') =>
        this.onWritten(item, status),
      space: {
        report: (err: unknown) => this.space.report(err),
        whenWritable: () => this.space.whenWritable(),
        wrote: () => this.space.wrote(),
      },
    };
    this.batcher = new MicroBatcher<PendingCompletion>({
      maxBatch: 100,
      maxDelayMs: 2,
      write: (batch) => writeCompletions(batch, writer),
      onError: (err) => this.logger.error({ err }, 'recording finished attempts failed unexpectedly'),
    });
    this.leaseKeeper = new LeaseKeeper({
      table: this.table,
      held: this.held,
      logger: this.logger,
      now: this.now,
      checkIntervalMs: this.config.leaseCheckMs,
      refreshIntervalMs: this.config.leaseRefreshMs,
      expiryMs: this.config.leaseExpiryMs,
      owner: this.owner,
      onLost: (held, status) => this.interrupt(held, status === 'cancelled' ? 'cancelled' : 'lost'),
      onExtended: (held) => this.intake.leaseExtended(held.task),
      onTickFailed: (err) => {
        if (isDiskFull(err)) this.space.report(err);
        else this.logger.warn({ err }, 'lease check failed; retrying at the next tick');
      },
    });
    this.space = new DiskSpaceGate({
      logger: this.logger,
      // Extending every held lease is the probe: once it succeeds there is space, and the leases are ours again.
      probe: () => this.leaseKeeper.refreshAll(),
      onChange: (full) => {
        options.onDiskFull?.(full);
        if (!full) for (const waiter of this.capacityWaiters.splice(0)) waiter();
      },
    });
    this.sessions = new SessionSettings({
      table: this.table,
      gridNonRetryable: this.config.nonRetryableErrorTypes,
      logger: this.logger,
    });
  }

  /** Starts every slot's runtime (rejecting with `WorkerInitError` if the handler cannot load), then the loops. */
  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error('an agent can be started once');
    this.state = 'starting';
    for (let slot = 0; slot < this.slotCount; slot++) {
      this.invokers.push(this.options.createInvoker(slot));
      this.slotRuns.push([]);
      this.unstallWaiters.push([]);
    }
    const started = await Promise.allSettled(this.invokers.map((invoker) => invoker.start()));
    const failedStart = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failedStart) {
      this.state = 'stopped';
      await Promise.allSettled(this.invokers.map((invoker) => invoker.close()));
      throw failedStart.reason;
    }
    this.state = 'running';
    this.leaseKeeper.start();
    this.loops = Promise.all([
      this.receiveLoop(),
      ...this.invokers.map((_, slot) => this.slotLoop(slot, false)),
      ...Array.from({ length: this.options.queuedPerSlot ?? 0 }, () =>
        this.invokers.map((_, slot) => this.slotLoop(slot, true)),
      ).flat(),
    ]);
    this.logger.info({ slots: this.slotCount, handler: this.config.handler }, 'agent started');
  }

  /** Resolves when the agent has stopped. */
  get done(): Promise<void> {
    return this.stopping ?? this.loops.then(() => undefined);
  }

  /**
   * Graceful drain: stop receiving, hand back tasks not started yet, let running ones finish within `graceMs`, then
   * interrupt the rest and hand them back so another agent picks them up at once. A second call ends the grace.
   */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.stopping) {
      this.graceExpired?.();
      return this.stopping;
    }
    this.stopping = this.drain(graceMs);
    return this.stopping;
  }

  private async drain(graceMs: number): Promise<void> {
    if (this.state === 'created' || this.state === 'stopped') {
      this.state = 'stopped';
      return;
    }
    this.state = 'draining';
    this.logger.info({ graceMs, held: this.held.size }, 'agent draining');
    this.stopReceiving.abort();
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve(undefined);
    for (const waiter of this.queueWaiters.splice(0)) waiter();
    for (const waiters of this.unstallWaiters) for (const waiter of waiters.splice(0)) waiter();
    clearTimeout(this.stallTimer);
    for (const waiter of this.capacityWaiters.splice(0)) waiter();
    for (const held of this.ready.splice(0)) this.handBack(held);
    // So are those sent ahead into a runtime that has not started them: they come back withdrawn (see `execute`).
    for (const invoker of this.invokers) invoker.withdrawQueued?.();
    const grace = new Promise<void>((resolve) => {
      this.graceExpired = resolve;
      setTimeout(resolve, graceMs).unref();
    });
    const graceOver = new AbortController();
    void grace.then(() => graceOver.abort());
    // Past the grace, results still waiting for disk space are given up: their leases expire and the reaper re-queues.
    void grace.then(() => this.space.abandon());
    const finished = this.loops.then(() => 'finished' as const);
    if ((await Promise.race([finished, grace.then(() => 'grace' as const)])) === 'grace') {
      for (const held of this.held.values()) if (held.running) this.interrupt(held, 'drain');
    }
    await this.loops;
    // A claim that was in flight when the drain began lands after the ready list was emptied: hand it back too.
    for (const held of [...this.held.values()]) if (!held.running && !held.abortCause) this.interrupt(held, 'drain');
    await this.batcher.drain();
    await this.intake.drain(graceOver.signal);
    this.leaseKeeper.stop();
    await Promise.allSettled(this.invokers.map((invoker) => invoker.close()));
    this.state = 'stopped';
    this.logger.info({ stats: this.stats }, 'agent stopped');
  }

  /** Receives and claims tasks while the agent runs, as many as the slots and the prefetch have room for. */
  private async receiveLoop(): Promise<void> {
    let failures = 0;
    while (this.state === 'running') {
      if (this.space.full) {
        // Intake pauses while the disk is full: new tasks could not be recorded either.
        await this.space.whenWritable(this.stopReceiving.signal);
        continue;
      }
      const room = this.roomToReceive();
      if (room === 0) {
        await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
        continue;
      }
      const receivedAt = Date.now();
      let tasks: TaskRecord[];
      try {
        tasks = await this.intake.receiveAndClaim(room, {
          waitMs: this.receiveWaitMs,
          visibilityMs: this.config.queueVisibilityMs,
          signal: this.stopReceiving.signal,
          owner: this.owner,
          leaseMs: this.config.leaseExpiryMs,
          busyDelayMs: BUSY_RELEASE_DELAY_MS,
          // A batch's tasks claimed while the intake waits on its other messages run meanwhile.
          onClaimed: (claimed) => {
            for (const task of claimed) this.take(task);
          },
        });
        failures = 0;
      } catch (err) {
        if (this.state !== 'running') break;
        if (isDiskFull(err)) {
          this.space.report(err);
          continue;
        }
        this.logger.warn({ err }, 'receiving tasks failed; their messages will reappear; backing off');
        await sleep(backoffDelay(failures++, SERVICE_RETRY_BACKOFF), this.stopReceiving.signal);
        continue;
      }
      for (const task of tasks) this.take(task);
      if (tasks.length === 0 && this.state === 'running' && !this.waitedOut(receivedAt)) {
        const base = this.config.emptyQueueBackoffMs;
        await sleep(base + Math.random() * base, this.stopReceiving.signal);
      }
    }
  }

  /**
   * How many tasks to receive now: 0 while held tasks fill the slots and the prefetch. While slots have work
   * waiting, only full batches: each receive (and the delete after the claim) is a billed request in SQS, so batches
   * of 1-2 would double the requests per task.
   */
  private roomToReceive(): number {
    const prefetch = this.prefetch.current;
    const capacity = this.slotCount + prefetch - this.held.size;
    const fullBatch = Math.min(this.config.receiveBatchSize, this.slotCount + prefetch);
    if (capacity <= 0 || (capacity < fullBatch && this.ready.length > 0)) return 0;
    return Math.min(capacity, this.config.receiveBatchSize);
  }

  /** Holds a task the intake claimed; a drain that began meanwhile hands it straight back (see `hold`). */
  private take(task: TaskRecord): void {
    this.stats.claimed++;
    const at = task.startedAt ?? this.now();
    this.hold({ task, claimedAt: at, lastExtendedAt: at, running: false });
  }

  /**
   * An empty receive that long-polled its whole wait was the idle back-off already: sleeping on top of it would only
   * leave a task that arrives meanwhile waiting (the queue would have woken the poll). One that came back sooner
   * (an emulator or queue without long polls) is followed by the configured back-off.
   */
  private waitedOut(receivedAt: number): boolean {
    return Date.now() - receivedAt >= this.receiveWaitMs;
  }

  private hold(held: HeldTask): void {
    this.held.set(held.task.taskId, held);
    if (this.state !== 'running') {
      // Claimed while the drain began: give it straight back so another agent runs it now.
      this.handBack(held);
      return;
    }
    this.leaseKeeper.wake();
    if (this.giveToWaiter(held)) return;
    this.ready.splice(this.readyIndex(held.task.priority), 0, held);
    for (const queued of this.queueWaiters.splice(0)) queued();
  }

  /** Hands `held` to a slot loop waiting for a task, unless none waits or only stalled slots do. */
  private giveToWaiter(held: HeldTask): boolean {
    const waiters = this.readyWaiters;
    let index = 0;
    while (index < waiters.length && this.stalled(waiters[index]!.slot)) index++;
    if (index === waiters.length) return false;
    const [waiter] = waiters.splice(index, 1);
    waiter!.resolve(held);
    return true;
  }

  /**
   * A task taken back from behind a long one (`withdrawQueued`) goes to a free slot, or first in line among its
   * priority: it was next before. Never to a stalled slot (see `giveToWaiter` and `untilUnstalled`).
   */
  private reready(held: HeldTask): void {
    held.running = false;
    if (this.state !== 'running') return this.handBack(held);
    if (this.giveToWaiter(held)) return;
    let index = 0;
    while (index < this.ready.length && this.ready[index]!.task.priority > held.task.priority) index++;
    this.ready.splice(index, 0, held);
    for (const queued of this.queueWaiters.splice(0)) queued();
  }

  /** True while the slot's running task has run `stalledAfterMs` (see `stalledAfterMs`). */
  private stalled(slot: number): boolean {
    const startedAt = this.slotRuns[slot]?.[0]?.startedAt;
    return startedAt !== undefined && this.now() - startedAt >= this.stalledAfterMs;
  }

  /** Waits while the slot is stalled: a loop sends its slot nothing behind a long task. */
  private async untilUnstalled(slot: number): Promise<void> {
    while (this.state === 'running' && this.stalled(slot)) {
      await new Promise<void>((resolve) => this.unstallWaiters[slot]!.push(resolve));
    }
  }

  /**
   * Arms the stall timer for the first slot with tasks sent ahead behind its running one (not taken back yet): once
   * that one has run `stalledAfterMs`, they are taken back.
   */
  private watchStalls(): void {
    if (this.stallTimer || this.state !== 'running') return;
    let due = Infinity;
    for (const runs of this.slotRuns) {
      if (!runs.slice(1).some((run) => !run.withdrawAsked)) continue;
      due = Math.min(due, (runs[0]!.startedAt ?? this.now()) + this.stalledAfterMs);
    }
    if (due === Infinity) return;
    this.stallTimer = setTimeout(() => this.takeBackStalled(), Math.max(0, due - this.now()));
    this.stallTimer.unref();
  }

  private takeBackStalled(): void {
    this.stallTimer = undefined;
    if (this.state !== 'running') return;
    this.slotRuns.forEach((runs, slot) => {
      const waiting = runs.slice(1).filter((run) => !run.withdrawAsked);
      if (waiting.length === 0 || !this.stalled(slot)) return;
      for (const run of waiting) run.withdrawAsked = true;
      this.invokers[slot]!.withdrawQueued?.();
    });
    this.watchStalls();
  }

  /** Another slot may take what waits, now that `slot` has one task fewer (its stall may be over). */
  private slotRunEnded(slot: number): void {
    const unstalled = this.unstallWaiters[slot]!;
    if (unstalled.length > 0) for (const waiter of unstalled.splice(0)) waiter();
    while (this.ready.length > 0 && this.giveToWaiter(this.ready[0]!)) this.ready.shift();
  }

  /** Where a task of `priority` goes in the ready list: after every task of the same or a higher priority. */
  private readyIndex(priority: number): number {
    let i = this.ready.length;
    while (i > 0 && this.ready[i - 1]!.task.priority < priority) i--;
    return i;
  }

  private async nextTask(slot: number): Promise<HeldTask | undefined> {
    if (this.stalled(slot)) await this.untilUnstalled(slot);
    if (this.state !== 'running') return undefined;
    const next = this.ready.shift();
    // The receive loop holds back partial batches only while work is waiting; wake it once none is.
    if (this.ready.length === 0) for (const waiter of this.capacityWaiters.splice(0)) waiter();
    if (next) return next;
    return new Promise((resolve) => this.readyWaiters.push({ slot, resolve }));
  }

  /** For a queue loop: the next task once one waits for a slot while recent tasks ran short. */
  private async nextQueuedTask(slot: number): Promise<HeldTask | undefined> {
    for (;;) {
      if (this.state !== 'running') return undefined;
      if (this.stalled(slot)) {
        await this.untilUnstalled(slot);
        continue;
      }
      const recentMs = this.prefetch.averageRunMs;
      if (this.ready.length > 0 && recentMs !== undefined && recentMs < (this.options.queueBelowMs ?? QUEUE_BELOW_MS))
        return this.nextTask(slot);
      await new Promise<void>((resolve) => this.queueWaiters.push(resolve));
    }
  }

  /** A slot's loop; a `queued` one sends its slot tasks ahead while another runs there (see `queuedPerSlot`). */
  private async slotLoop(slot: number, queued: boolean): Promise<void> {
    // One controller per slot, replaced once aborted: an AbortController per task costs more than the no-op task.
    let controller = new AbortController();
    for (;;) {
      const held = await (queued ? this.nextQueuedTask(slot) : this.nextTask(slot));
      if (!held) return;
      if (held.abortCause) continue; // cancelled or lost while it waited
      if (controller.signal.aborted) controller = new AbortController();
      try {
        await this.execute(held, slot, controller);
      } catch (err) {
        // Never let one task take the slot down: hand the task back and go on.
        this.logger.error({ err, taskId: held.task.taskId, slot }, 'unexpected error running a task; handing it back');
        this.handBack(held);
      }
    }
  }

  /**
   * Runs one held task in `invoker`: load its payload, invoke the worker, record what the attempt came to. Promise
   * chains rather than async functions on this path: each suspended async function keeps a frame, and these ran once
   * per task (measured in bench/README.md, the fourteenth pass).
   */
  private execute(held: HeldTask, slot: number, controller: AbortController): Promise<void> {
    held.running = true;
    const { task } = held;
    const { payload } = task;
    // An inline payload (the usual case) is at hand: no store read to wait for.
    if (isInline(payload)) return this.invokeAndRecord(held, payload.inline, slot, controller);
    return this.loadPayload(payload.key, task.taskId).then((eventJson) =>
      eventJson === undefined
        ? this.record(held, payloadMissing(task, this.config))
        : this.invokeAndRecord(held, eventJson, slot, controller),
    );
  }

  private invokeAndRecord(held: HeldTask, eventJson: string, slot: number, controller: AbortController): Promise<void> {
    return this.invoke(held, eventJson, slot, controller).then((run) => {
      // Taken back from behind a long task before it started: it runs in another slot (nothing ran, no attempt used).
      if (isWithdrawn(run.result) && !held.abortCause) return this.reready(held);
      return this.recordRun(held, run);
    });
  }

  /**
   * Invokes the worker under the task's deadline, with a safety timer in case the runtime fails to time it out.
   * Never rejects: an invoker that throws is a runtime crash. `runMs` is the handler's own time, from the moment the
   * invocation started (after any wait behind another invocation of the same runtime) to its end.
   */
  private invoke(held: HeldTask, eventJson: string, slot: number, controller: AbortController): Promise<InvocationRun> {
    const { task } = held;
    const invoker = this.invokers[slot]!;
    const started = this.now();
    const runs = this.slotRuns[slot]!;
    const slotRun: SlotRun = { startedAt: runs.length === 0 ? started : undefined, withdrawAsked: false };
    runs.push(slotRun);
    if (runs.length > 1) this.watchStalls();
    held.controller = controller;
    // Interrupted while its payload loaded: the invocation returns at once as interrupted.
    if (held.abortCause) controller.abort();
    const safety = setTimeout(() => this.interrupt(held, 'deadline'), task.timeoutMs + DEADLINE_GRACE_MS);
    let ranFrom = started;
    if (this.debugEnabled) this.logger.debug(taskFields(task), 'task started');
    const onStarted = () => {
      // It waited behind another invocation of the same runtime: its time runs from now.
      ranFrom = this.now();
      slotRun.startedAt = ranFrom;
      safety.refresh();
    };
    const invocation = {
      requestId: randomUUID(),
      taskId: task.taskId,
      sessionId: task.sessionId,
      attempt: task.attempt,
      eventJson,
      deadline: started + task.timeoutMs,
    };
    const ended = (result: InvokeResult): InvocationRun => {
      try {
        const runMs = this.now() - ranFrom;
        // Only attempts that ran teach how long tasks take: an instant busy or crash would make them look short.
        if (result.ok || result.reason === 'error' || result.reason === 'timeout') this.prefetch.observe(runMs);
        return { result, ranFrom, runMs };
      } finally {
        clearTimeout(safety);
        // The slot's controller serves its next task: a late interrupt of this one must not abort that.
        held.controller = undefined;
        runs.splice(runs.indexOf(slotRun), 1);
        // The next one in line starts now (its onStarted may come later; until then it counts from here).
        if (runs[0] && runs[0].startedAt === undefined) runs[0].startedAt = this.now();
        this.slotRunEnded(slot);
      }
    };
    let invoked: Promise<InvokeResult>;
    try {
      invoked = invoker.invoke(invocation, controller.signal, onStarted);
    } catch (err) {
      return Promise.resolve(ended(invokeFailed(err)));
    }
    return invoked.then(ended, (err: unknown) => ended(invokeFailed(err)));
  }

  /**
   * Decides what the attempt comes to and records it (a task no longer ours is only let go). Returns a promise only
   * when it has to wait (a handler error reads its session's settings, a large result goes to the payload store): the
   * usual success is recorded at once, without a promise per task.
   */
  private recordRun(held: HeldTask, run: InvocationRun): Promise<void> | undefined {
    const { result } = run;
    // Only a handler error needs the session's own non-retryable types; successes never read the session.
    if (!result.ok && result.reason === 'error') {
      return this.sessions
        .nonRetryableErrorTypes(held.task.sessionId)
        .then((types) => this.decideAndRecord(held, run, [...types]));
    }
    return this.decideAndRecord(held, run, this.config.nonRetryableErrorTypes);
  }

  private decideAndRecord(
    held: HeldTask,
    run: InvocationRun,
    nonRetryableErrorTypes: readonly string[],
  ): Promise<void> | undefined {
    const { task } = held;
    const { result } = run;
    const decision = decideAttempt(task, result, held.abortCause, {
      nonRetryableErrorTypes,
      taskTimeoutMs: task.timeoutMs,
    });
    if (this.debugEnabled) {
      const outcome = decision.write?.kind ?? 'dropped';
      this.logger.debug({ ...taskFields(task), outcome, runMs: run.runMs }, 'task finished');
    }
    if (!decision.write) {
      this.stats.dropped++;
      this.release(held);
      return undefined;
    }
    // A busy runtime never started the handler: nothing ran to time.
    const ran = result.ok || result.reason !== 'busy' ? { startedAt: run.ranFrom, ms: run.runMs } : undefined;
    if (decision.write.kind !== 'succeeded') {
      this.record(held, decision.write, ran);
      return undefined;
    }
    const outcome = this.placeResult(held, result);
    if (!(outcome instanceof Promise)) {
      this.record(held, outcome, ran);
      return undefined;
    }
    return outcome.then((placed) => this.record(held, placed, ran));
  }

  /** Large results go to the payload store (the only case that waits); oversize ones fail the task. */
  private placeResult(held: HeldTask, result: InvokeResult): CompletionOutcome | Promise<CompletionOutcome> {
    if (!result.ok) throw new Error('placeResult called for a failed invocation');
    const bytes = Buffer.byteLength(result.resultJson);
    if (bytes > this.config.maxPayloadBytes) {
      return failure(
        held.task,
        'error',
        {
          type: 'Runtime.ResultTooLarge',
          message: `result of ${bytes} bytes exceeds max_payload_bytes (${this.config.maxPayloadBytes}); return less or write large outputs to your own store`,
          stack: [],
        },
        false,
        this.config,
      ).write!;
    }
    if (bytes <= this.config.inlinePayloadMaxBytes) return { kind: 'succeeded', result: { inline: result.resultJson } };
    const key = payloadKeys.result(held.task.sessionId, held.task.taskId, held.task.attempt);
    const { resultJson } = result;
    return this.untilWritten(() => this.store.put(key, resultJson)).then((): CompletionOutcome => ({
      kind: 'succeeded',
      result: { key, bytes },
    }));
  }

  /** Runs `write`, waiting out a full disk as often as it takes (the result is kept; the handler does not run again). */
  private async untilWritten(write: () => Promise<void>): Promise<void> {
    for (let waited = false; ; waited = true) {
      try {
        await write();
        if (waited) this.space.wrote();
        return;
      } catch (err) {
        if (!isDiskFull(err)) throw err;
        this.space.report(err);
        if (!(await this.space.whenWritable())) throw err;
      }
    }
  }

  /** A payload kept in the store (see `execute` for inline ones). */
  private async loadPayload(key: string, taskId: string): Promise<string | undefined> {
    try {
      return (await this.store.get(key)).toString('utf8');
    } catch (err) {
      this.logger.error({ err, taskId, key }, 'payload missing');
      return undefined;
    }
  }

  private record(held: HeldTask, outcome: CompletionOutcome, run?: AttemptRun): void {
    const { task } = held;
    const completion: Completion = {
      taskId: task.taskId,
      guard: { owner: this.owner, attempt: task.attempt },
      outcome,
      at: this.now(),
      ...(run ? { run } : {}),
    };
    const pending: PendingCompletion =
      outcome.kind === 'retry' || outcome.kind === 'released'
        ? { completion, requeue: requeueOf(task) }
        : { completion };
    this.batcher.add(pending);
    // The batch timer only delays when a batch can fill: with no other task held (running, ready or being written),
    // none will join this one, so it goes now.
    if (this.held.size <= this.batcher.waiting) this.batcher.flush();
  }

  /** Gives a task back unfinished (drain, unexpected error): pending again, no failure counted. */
  private handBack(held: HeldTask): void {
    held.abortCause ??= 'drain';
    this.record(held, { kind: 'released' });
  }

  private onWritten(item: PendingCompletion, written: 'recorded' | 'stale' | 'unwritten'): void {
    const { taskId, outcome } = item.completion;
    const held = this.held.get(taskId);
    // Unwritten: the task still shows as running under our lease; whatever guards it for recovery must stay.
    if (held) this.release(held, written === 'unwritten' ? 'abandoned' : 'done');
    const status = written === 'recorded' ? 'recorded' : 'stale';
    if (status === 'recorded') {
      if (outcome.kind === 'succeeded') this.stats.succeeded++;
      else if (outcome.kind === 'failed') this.stats.failed++;
      else if (outcome.kind === 'retry') this.stats.retried++;
      else this.stats.released++;
      if (held && this.options.onAttemptMeasured) this.options.onAttemptMeasured(measureOf(held, item.completion));
      if (outcome.kind === 'failed' || outcome.kind === 'retry') {
        this.logger.info(
          { taskId, reason: outcome.reason, errorType: outcome.error.type, retry: outcome.kind === 'retry' },
          'attempt failed',
        );
      }
    } else {
      this.logger.info({ taskId, outcome: outcome.kind }, 'attempt outcome not recorded: the task is no longer held');
    }
    this.options.onAttemptRecorded?.(taskId, outcome.kind, status);
  }

  private release(held: HeldTask, how: 'done' | 'abandoned' = 'done'): void {
    this.intake.settle(held.task, how);
    if (this.held.get(held.task.taskId) === held) this.held.delete(held.task.taskId);
    for (const waiter of this.capacityWaiters.splice(0)) waiter();
  }

  /** Stops a held task: a running one is aborted; a waiting one is dropped from the ready list. */
  private interrupt(held: HeldTask, cause: AbortCause): void {
    if (held.abortCause) return;
    held.abortCause = cause;
    this.logger.info({ taskId: held.task.taskId, cause }, 'interrupting task');
    if (held.running) {
      held.controller?.abort();
      return;
    }
    const index = this.ready.indexOf(held);
    if (index >= 0) this.ready.splice(index, 1);
    if (cause === 'drain') this.handBack(held);
    else this.release(held);
  }
}

/** One invocation of a held task: what it returned, when the handler's run started and how long it ran. */
interface InvocationRun {
  readonly result: InvokeResult;
  readonly ranFrom: number;
  readonly runMs: number;
}

/** The fields every per-task log line carries. */
function taskFields(task: TaskRecord) {
  return { taskId: task.taskId, sessionId: task.sessionId, attempt: task.attempt };
}

function invokeFailed(err: unknown): InvokeResult {
  return {
    ok: false,
    reason: 'runtime-crash',
    error: { type: 'Runtime.InvokeFailed', message: String(err), stack: [] },
  };
}

/** A task whose payload is gone from the store fails at once, without a retry (it would be gone again). */
function payloadMissing(task: TaskRecord, config: GridConfig): CompletionOutcome {
  const error = {
    type: 'Runtime.PayloadMissing',
    message: `payload of task ${task.taskId} is missing from the payload store`,
    stack: [],
  };
  return failure(task, 'error', error, false, config).write!;
}

function requeueOf(task: TaskRecord): QueueMessage {
  return { taskId: task.taskId, sessionId: task.sessionId, attempt: task.attempt, priority: task.priority };
}

/** What the task metrics count of an attempt whose end was recorded. */
function measureOf(held: HeldTask, completion: Completion): AttemptMeasure {
  const { task } = held;
  const previous = task.history.filter((a) => a.attempt < task.attempt).at(-1);
  const queuedFrom = previous?.finishedAt ?? task.submittedAt;
  const { outcome } = completion;
  return {
    outcome: outcome.kind,
    errorType: outcome.kind === 'failed' || outcome.kind === 'retry' ? outcome.error.type : undefined,
    // The handler's own run where it ran; else claim to end.
    queuedMs: (completion.run?.startedAt ?? held.claimedAt) - queuedFrom,
    runMs: completion.run?.ms ?? completion.at - held.claimedAt,
  };
}
