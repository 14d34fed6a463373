// The local Lambda-compatible runtime behind one agent slot: one runtime process at a time, restarted after timeouts
// and crashes.
import path from 'node:path';
import { WorkerInitError } from '../../core/errors';
import type { GridConfig } from '../../core/config';
import type { WorkerRuntime } from '../../core/runtime-kind';
import type { Logger } from '../../logging';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../ports';
import { backoffDelay } from '../../timing';
import { ApiRuntimeSession } from './api-runtime';
import {
  abortReason,
  busyResult,
  cancelledResult,
  notStartedResult,
  timeoutResult,
  unavailableResult,
  isWithdrawn,
  withdrawnResult,
} from '../invoke-results';
import { lambdaEnvironment, lambdaIdentity, type LambdaIdentity } from './lambda-environment';
import { OutputCapture, type OutputListener } from './output-capture';
import { PipeRuntimeSession } from './pipe-runtime';
import { RuntimeApiServer } from './runtime-api-server';
import type { LoadTarget, RuntimeSession } from './runtime-session';

export interface LocalRuntimeOptions {
  /** The unpacked worker zip: the handler module (or `bootstrap` for `provided`) at its root. */
  taskRoot: string;
  /** `<file>.<function>` (Python: `path/module.function` or `pkg.module.function`). */
  handler: string;
  runtime: WorkerRuntime;
  /** @default 'function' */
  functionName?: string;
  /** @default 3008 (what lambda-rie reports) */
  memorySizeMb?: number;
  /** @default 'python3' */
  pythonExecutable?: string;
  /** @default process.execPath */
  nodeExecutable?: string;
  /** The function's environment variables (Lambda's reserved variables still win). */
  env?: Record<string, string>;
  logger?: Logger;
  /**
   * Receives what the worker writes on stdout/stderr, with the id of the task that wrote it (`undefined` during init
   * or between tasks). When absent, output is logged at `info` if a logger is given, else dropped.
   */
  onOutput?: (taskId: string | undefined, stream: 'stdout' | 'stderr', chunk: string) => void;
  /** Output kept per task; the rest is drained and dropped. @default 1 MiB */
  maxOutputBytesPerTask?: number;
  /** This slot's number, for logs. @default 0 */
  slotIndex?: number;
  /** Where bootstrap.py / bootstrap.js live. @default the `bootstrap` folder next to this module's folder */
  bootstrapDir?: string;
  /** How long loading the handler may take before start fails. @default 120000 */
  initTimeoutMs?: number;
  /**
   * Invocations accepted while one runs, their requests written to the runtime ahead, so it starts the next as soon
   * as it answers instead of waiting for this process to send it. Each one's timeout counts from when it starts.
   * Python only: the Node bootstrap starts whatever it reads at once, and the Runtime API serves one at a time.
   * The agent feeds them through `AgentOptions.queuedPerSlot`.
   * @default 0
   */
  maxQueued?: number;
  /** Time and timers: the invocation budgets, the leftover grace, restart back-off and init timeout. @default the real clock */
  clock?: InvokerClock;
  /**
   * Starts one runtime process. Tests pass a fake session here to drive the invoker without Python or Node.
   * @default a pipe session for python and node, a Runtime API session for provided
   */
  startSession?: () => Promise<RuntimeSession>;
}

/** The clock the invoker counts budgets and delays with; injected in tests. */
export interface InvokerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_CLOCK: InvokerClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};

/**
 * Invocations a local Python runtime takes ahead in a local grid: enough that it never waits for the agent between
 * short tasks (measured in bench/README.md), few enough that little waits behind a task that turns out long until the
 * agent takes it back (`withdrawQueued`, `AgentOptions.stalledAfterMs`).
 */
export const DEFAULT_PYTHON_MAX_QUEUED = 2;

/** `DEFAULT_PYTHON_MAX_QUEUED` for Python runtimes, 0 for the others (they cannot take requests ahead). */
export function defaultMaxQueued(runtime: WorkerRuntime): number {
  return runtime.family === 'python' ? DEFAULT_PYTHON_MAX_QUEUED : 0;
}

const DEFAULT_MAX_OUTPUT = 1024 * 1024;
const DEFAULT_INIT_TIMEOUT_MS = 120_000;
const MAX_RESTART_DELAY_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** No delay for the first restart, then 100 ms doubling up to 5 s, so a runtime that keeps dying never spins. */
export function restartDelayMs(consecutiveFailures: number): number {
  if (consecutiveFailures <= 1) return 0;
  return backoffDelay(consecutiveFailures - 2, { baseMs: 100, maxMs: MAX_RESTART_DELAY_MS, jitter: 'none' });
}

/**
 * Where an accepted invocation stands. It moves only forward: `waiting` → `running` → (result given, out of line);
 * or `waiting` → `leftover` → (out of line) when it is stopped while its request already sits in a runtime.
 */
type EntryState =
  /** In line behind the running one; its budget has not started. Its request may already be written ahead. */
  | { readonly kind: 'waiting' }
  /** First in line: its budget counts down (no timer beyond what a timer can hold). */
  | { readonly kind: 'running'; readonly timer: unknown }
  /**
   * Its result was given (stopped while it waited), but its request sits unanswered in `session`: it keeps its place
   * so the runtime's answer is matched to it and dropped. At the head of the line the runtime gets `grace` to answer
   * before it is killed.
   */
  | { readonly kind: 'leftover'; readonly grace?: unknown }
  /** Its result was given and it left the line. */
  | { readonly kind: 'done' };

/** An invocation this invoker accepted. */
interface Entry {
  readonly invocation: Invocation;
  /** Its budget, counted from when it starts. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  /** Told when it starts after waiting behind another (set once `invoke` has queued it). */
  onStarted?: () => void;
  readonly resolve: (result: InvokeResult) => void;
  state: EntryState;
  /** The runtime its request was written to, while an answer may come from there. */
  session?: RuntimeSession;
  /** Asked to be taken back (`withdrawQueued`): if its runtime dies before it starts, it comes back withdrawn. */
  withdrawing?: boolean;
}

/**
 * How long a cancelled request that reached the head of the line may take to answer before its runtime is killed.
 * Killing at once would also cut off the requests queued behind it, which the runtime may have begun already.
 */
const LEFTOVER_GRACE_MS = 500;

/** One start of a runtime process, from spawning to its exit. */
interface RuntimeInstance {
  readonly promise: Promise<RuntimeSession>;
  /** Set once spawned. */
  session?: RuntimeSession;
  /** Set once `ready` resolved: it takes requests. */
  live?: RuntimeSession;
  /** We killed it (timeout, cancel, close, replaced): its exit is no failure. */
  killedByUs: boolean;
}

export class LocalInvoker implements WorkerInvoker {
  private readonly identity: LambdaIdentity;
  private readonly output: OutputListener | undefined;
  private readonly target: LoadTarget;
  private readonly bootstrapDir: string;
  private readonly logger: Logger | undefined;
  private readonly clock: InvokerClock;
  /** The runtime the line is served by (starting or live); undefined between one's death and the next start. */
  private runtime: RuntimeInstance | undefined;
  private readonly instances = new WeakMap<RuntimeSession, RuntimeInstance>();
  private failures = 0;
  /** Accepted invocations in order: the first one is running (or a leftover), the others wait. */
  private readonly line: Entry[] = [];
  /** The entries each signal stops when it aborts, not settled yet (see `watchAbort`). */
  private readonly abortWatches = new WeakMap<AbortSignal, Set<Entry>>();
  private readonly maxQueued: number;
  /** The runtime start the line waits for, so one start moves it on once. */
  private awaiting: Promise<RuntimeSession> | undefined;
  /** Inside `advance`: a change meanwhile asks for another pass instead of entering it again. */
  private advancing = false;
  private advanceAgain = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private server: RuntimeApiServer | undefined;

  constructor(private readonly options: LocalRuntimeOptions) {
    this.logger = options.logger?.child({ slot: options.slotIndex ?? 0 });
    this.clock = options.clock ?? REAL_CLOCK;
    const configured = options.env ?? {};
    this.identity = lambdaIdentity(options.functionName ?? 'function', options.memorySizeMb ?? 3008, {
      ...process.env,
      ...configured,
    });
    this.output = options.onOutput ?? this.defaultOutput();
    this.bootstrapDir = options.bootstrapDir ?? path.resolve(__dirname, '..', 'bootstrap');
    this.target = {
      handler: options.handler,
      taskRoot: options.taskRoot,
      runtimeName: options.runtime.name,
      command: this.command(),
    };
    this.maxQueued = options.runtime.family === 'python' ? Math.max(0, Math.floor(options.maxQueued ?? 0)) : 0;
  }

  /** The process id of the runtime taking invocations now, if one is up (for diagnostics and tests). */
  get runtimePid(): number | undefined {
    return this.runtime?.live?.pid;
  }

  async start(): Promise<void> {
    if (this.closed) throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    await this.session();
  }

  invoke(invocation: Invocation, signal?: AbortSignal, onStarted?: () => void): Promise<InvokeResult> {
    if (this.closed) return Promise.resolve(cancelledResult('the local runtime is closed'));
    let waiting = 0;
    for (const entry of this.line) if (entry.state.kind !== 'leftover') waiting++;
    if (waiting > this.maxQueued) return Promise.resolve(busyResult());
    if (signal?.aborted) return Promise.resolve(cancelledResult(abortReason(signal)));
    const timeoutMs = invocation.deadline - this.clock.now();
    // Already past its deadline (it waited too long in a queue): don't disturb the runtime for it.
    if (timeoutMs <= 0) return Promise.resolve(timeoutResult(0));
    return new Promise<InvokeResult>((resolve) => {
      const entry: Entry = {
        invocation,
        timeoutMs,
        signal,
        // Stopped while it waited (the agent's own deadline guard can fire then): it never ran, so it costs nothing.
        onAbort: () =>
          this.settle(
            entry,
            entry.state.kind === 'running'
              ? cancelledResult(abortReason(signal))
              : notStartedResult(abortReason(signal)),
            'interrupted',
          ),
        resolve,
        state: { kind: 'waiting' },
      };
      this.watchAbort(entry);
      this.line.push(entry);
      this.advance();
      // Started at once: no news to the caller. Otherwise it hears when its turn comes.
      if (entry.state.kind === 'waiting') entry.onStarted = onStarted;
    });
  }

  /**
   * Takes back the invocations waiting behind the running one: one not written to a runtime at once, one written to
   * the live runtime once that runtime says it has not started it (a runtime that cannot take requests back keeps
   * them; they run in turn).
   */
  withdrawQueued(): void {
    for (const entry of this.line.slice(1)) {
      if (entry.state.kind !== 'waiting' || entry.withdrawing) continue;
      if (!entry.session) {
        this.settle(entry, withdrawnResult(), 'answered');
        continue;
      }
      if (!entry.session.withdraw) continue;
      entry.withdrawing = true;
      entry.session.withdraw(entry.invocation);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * The one way the line moves on, after any change (an invocation accepted, answered, stopped; a runtime started,
   * killed or dead). Never re-entered: a change made while it runs (a caller's `onStarted` invoking again) asks for
   * another pass.
   */
  private advance(): void {
    if (this.advancing) {
      this.advanceAgain = true;
      return;
    }
    this.advancing = true;
    try {
      do {
        this.advanceAgain = false;
        this.moveLine();
      } while (this.advanceAgain);
    } finally {
      this.advancing = false;
    }
  }

  /**
   * One pass: drops leftovers at the head of the line (giving the runtime a grace to answer one it may be running),
   * starts the first entry's budget, and writes every request not yet written to the live runtime (or starts one).
   */
  private moveLine(): void {
    if (!this.dropLeftoversAtHead()) return;
    // Asked back, and its runtime went away before answering (nothing of it started there): it ends withdrawn rather
    // than going to the next runtime. Settling it asks for another pass.
    const stranded = this.line.find((e) => e.withdrawing && !e.session && e.state.kind === 'waiting');
    if (stranded) return this.settle(stranded, withdrawnResult(), 'answered');
    const head = this.line[0];
    if (head?.state.kind === 'waiting') this.begin(head);
    if (this.closed || !this.line.some((entry) => !entry.session && entry.state.kind !== 'leftover')) return;
    const live = this.runtime?.live;
    if (live) {
      for (const entry of this.line) {
        if (entry.session || entry.state.kind === 'leftover') continue;
        // A runtime serving one at a time gets the next request once the one before was answered.
        if (!live.pipelined && entry !== this.line[0]) break;
        this.dispatch(entry, live);
      }
      return;
    }
    this.awaitRuntime();
  }

  /** False when the head is a leftover the live runtime may be running: the line waits for it (up to its grace). */
  private dropLeftoversAtHead(): boolean {
    for (let head = this.line[0]; head?.state.kind === 'leftover'; head = this.line[0]) {
      const runtime = this.runtime;
      if (!head.session || runtime?.live !== head.session) {
        this.leave(head);
        continue;
      }
      // Cancelled while it waited, but its request is in the runtime, which runs it now: the line waits for its
      // answer a moment, then stops it there.
      if (head.state.grace === undefined) {
        const leftover = head;
        const grace = this.clock.setTimeout(() => {
          if (this.line[0] !== leftover || runtime.live !== leftover.session) return;
          this.leave(leftover);
          this.recycle(runtime, 'cancelled', leftover.invocation);
          this.advance();
        }, LEFTOVER_GRACE_MS);
        head.state = { kind: 'leftover', grace };
      }
      return false;
    }
    return true;
  }

  /** Starts a runtime for the line (once per start) and moves the line on when it is up. */
  private awaitRuntime(): void {
    const starting = this.session();
    if (this.awaiting === starting) return;
    this.awaiting = starting;
    starting.then(
      () => {
        if (this.awaiting === starting) this.awaiting = undefined;
        this.advance();
      },
      (error: Error) => {
        if (this.awaiting === starting) this.awaiting = undefined;
        // The runtime cannot start: the running invocation fails; the next one tries again (after a back-off).
        const first = this.line[0];
        if (first && !first.session) this.settle(first, unavailableResult(error), 'answered');
      },
    );
  }

  /** The entry's turn came: its timeout runs from now. */
  private begin(entry: Entry): void {
    // Beyond what a timer can hold (about 24.8 days) the deadline is as good as none.
    const timer =
      entry.timeoutMs <= MAX_TIMER_MS
        ? this.clock.setTimeout(
            () => this.settle(entry, timeoutResult(entry.timeoutMs), 'interrupted'),
            entry.timeoutMs,
          )
        : undefined;
    entry.state = { kind: 'running', timer };
    entry.onStarted?.();
  }

  private dispatch(entry: Entry, session: RuntimeSession): void {
    entry.session = session;
    void session.call(entry.invocation, entry.timeoutMs).then((result) => this.answered(entry, session, result));
  }

  private answered(entry: Entry, session: RuntimeSession, result: InvokeResult): void {
    // An answer from a runtime this entry was taken away from (killed, replaced): no longer its answer.
    if (entry.session !== session) return;
    // Taken back, or asked to be and its runtime died before it started it: it never ran.
    if (isWithdrawn(result) || (entry.withdrawing && !result.ok && result.reason === 'busy')) {
      if (entry.state.kind === 'waiting' || entry.state.kind === 'running')
        this.settle(entry, withdrawnResult(), 'answered');
      else this.leave(entry);
      this.advance();
      return;
    }
    if (!result.ok && result.reason === 'busy') {
      // The runtime died before it started this one: nothing ran; the next runtime gets it.
      entry.session = undefined;
      if (entry.state.kind !== 'waiting' && entry.state.kind !== 'running') this.leave(entry);
      this.advance();
      return;
    }
    // The runtime answered (a result or the handler's error): it works, forget past failures.
    if (result.ok || result.reason === 'error') this.failures = 0;
    // A runtime that answered and is going down (uncaught error) gets no further task: replace it now.
    if (!session.healthy && this.runtime?.live === session) this.retire(this.runtime);
    if (entry.state.kind === 'leftover' || entry.state.kind === 'done') {
      // A leftover answered before we could stop it: drop the answer.
      this.leave(entry);
      this.advance();
      return;
    }
    this.settle(entry, result, 'answered');
  }

  /**
   * Has `entry` stopped when its signal aborts. One listener per signal serves all its entries: the agent passes each
   * slot loop's signal to every invocation of that loop, and adding and removing a listener of an `AbortSignal` per
   * invocation costs more than a no-op task's pipe write.
   */
  private watchAbort(entry: Entry): void {
    const { signal } = entry;
    if (!signal) return;
    let entries = this.abortWatches.get(signal);
    if (entries === undefined) {
      const watched = new Set<Entry>();
      this.abortWatches.set(signal, watched);
      // In the order the entries came, as their own listeners would have run; each one stopped leaves the set.
      signal.addEventListener('abort', () => [...watched].forEach((e) => e.onAbort()), { once: true });
      entries = watched;
    }
    entries.add(entry);
  }

  /**
   * Gives an entry its result. `interrupted` (timeout, abort, close): a running entry's runtime is killed; a waiting
   * one whose request the runtime already holds stays in line as a leftover until the runtime answers or reaches it.
   */
  private settle(entry: Entry, result: InvokeResult, how: 'answered' | 'interrupted'): void {
    const { state } = entry;
    if (state.kind === 'leftover' || state.kind === 'done') return;
    if (state.kind === 'running') this.clock.clearTimeout(state.timer);
    if (entry.signal) this.abortWatches.get(entry.signal)?.delete(entry);
    const running = this.line[0] === entry;
    if (how === 'interrupted' && running && entry.session) {
      const runtime = this.instances.get(entry.session);
      if (runtime) {
        this.recycle(runtime, !result.ok && result.reason === 'timeout' ? 'timeout' : 'cancelled', entry.invocation);
      }
    }
    if (how === 'answered' || running || !entry.session) this.leave(entry);
    else entry.state = { kind: 'leftover' };
    entry.resolve(result);
    this.advance();
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    const runtime = this.runtime;
    this.runtime = undefined;
    for (const entry of [...this.line]) {
      this.settle(entry, cancelledResult('the local runtime is closed'), 'interrupted');
      this.leave(entry);
    }
    if (runtime?.session) {
      runtime.killedByUs = true;
      runtime.session.kill();
      await runtime.session.exited;
    }
    await this.server?.close();
  }

  /** The running session, or a new one (after the back-off delay of past failures). */
  private session(): Promise<RuntimeSession> {
    if (this.runtime) return this.runtime.promise;
    const delayMs = restartDelayMs(this.failures);
    const runtime: RuntimeInstance = { promise: undefined as unknown as Promise<RuntimeSession>, killedByUs: false };
    (runtime as { promise: Promise<RuntimeSession> }).promise = this.launch(runtime, delayMs);
    this.runtime = runtime;
    runtime.promise.catch((error: unknown) => {
      if (this.runtime === runtime) this.runtime = undefined;
      if (!this.closed) {
        this.failures++;
        this.logger?.warn({ err: error, failures: this.failures }, 'local runtime failed to start');
      }
    });
    return runtime.promise;
  }

  private async launch(runtime: RuntimeInstance, delayMs: number): Promise<RuntimeSession> {
    if (delayMs > 0) await new Promise<void>((resolve) => this.clock.setTimeout(resolve, delayMs));
    if (this.closed) throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    const session = await (this.options.startSession ?? (() => this.spawn()))();
    runtime.session = session;
    this.instances.set(session, runtime);
    if (this.closed) {
      runtime.killedByUs = true;
      session.kill();
      throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    }
    void session.exited.then((exit) => this.onExit(runtime, exit.code, exit.signal));
    try {
      await this.whenReady(session);
    } catch (error) {
      runtime.killedByUs = true;
      session.kill();
      throw error;
    }
    if (this.closed) {
      runtime.killedByUs = true;
      session.kill();
      throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    }
    runtime.live = session;
    this.logger?.debug({ runtime: this.target.runtimeName }, 'local runtime ready');
    return session;
  }

  /** The session's `ready`, or `Runtime.InitTimeout` when the handler takes longer than the init timeout to load. */
  private async whenReady(session: RuntimeSession): Promise<void> {
    const initTimeoutMs = this.options.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS;
    let timer: unknown;
    try {
      await Promise.race([
        session.ready,
        new Promise<never>((_, reject) => {
          timer = this.clock.setTimeout(
            () =>
              reject(
                new WorkerInitError(
                  `handler '${this.target.handler}' from ${this.target.taskRoot} did not load within ${initTimeoutMs} ms`,
                  'Runtime.InitTimeout',
                ),
              ),
            initTimeoutMs,
          );
        }),
      ]);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  private async spawn(): Promise<RuntimeSession> {
    const { runtime, taskRoot } = this.options;
    const common = {
      command: this.target.command,
      cwd: taskRoot,
      // One capture per process: a killed runtime's last output stays with its task, never the next one's.
      capture: new OutputCapture(this.output, this.options.maxOutputBytesPerTask ?? DEFAULT_MAX_OUTPUT),
      target: this.target,
      functionArn: this.identity.functionArn,
    };
    if (runtime.family === 'provided') {
      this.server ??= new RuntimeApiServer();
      const runtimeApi = await this.server.listen();
      return new ApiRuntimeSession({ ...common, env: this.environment(runtimeApi), server: this.server });
    }
    const script = path.join(this.bootstrapDir, runtime.family === 'python' ? 'bootstrap.py' : 'bootstrap.js');
    return new PipeRuntimeSession({ ...common, args: [script], env: this.environment(undefined) });
  }

  private environment(runtimeApi: string | undefined): Record<string, string> {
    return lambdaEnvironment({
      identity: this.identity,
      runtime: this.options.runtime,
      handler: this.options.handler,
      taskRoot: this.options.taskRoot,
      runtimeDir: this.bootstrapDir,
      inherited: process.env,
      configured: this.options.env ?? {},
      runtimeApi,
    });
  }

  private command(): string {
    switch (this.options.runtime.family) {
      case 'python':
        return this.options.pythonExecutable ?? 'python3';
      case 'node':
        return this.options.nodeExecutable ?? process.execPath;
      case 'provided':
        return path.join(this.options.taskRoot, 'bootstrap');
    }
  }

  /** Replaces a runtime that is dying on its own (after answering its task) with a fresh one. */
  private retire(runtime: RuntimeInstance): void {
    runtime.killedByUs = true;
    runtime.session?.kill();
    this.runtime = undefined;
    this.takeBack(runtime);
    if (!this.closed) this.session().catch(() => undefined);
  }

  /** Kills the runtime running `invocation` and starts a fresh one for the next. */
  private recycle(runtime: RuntimeInstance, why: 'timeout' | 'cancelled', invocation: Invocation): void {
    this.logger?.info({ taskId: invocation.taskId, sessionId: invocation.sessionId, why }, 'killing the local runtime');
    runtime.killedByUs = true;
    runtime.session?.kill();
    if (this.runtime === runtime) this.runtime = undefined;
    this.takeBack(runtime);
    if (!this.closed) this.session().catch(() => undefined);
  }

  /** Requests written to a runtime being killed go to the next one (they never started); its leftovers go away. */
  private takeBack(runtime: RuntimeInstance): void {
    for (const entry of [...this.line]) {
      if (!runtime.session || entry.session !== runtime.session) continue;
      entry.session = undefined;
      if (entry.state.kind === 'leftover') this.leave(entry);
    }
  }

  /** Takes the entry out of line (its result was given or is being given). */
  private leave(entry: Entry): void {
    if (entry.state.kind === 'leftover') this.clock.clearTimeout(entry.state.grace);
    entry.state = { kind: 'done' };
    const index = this.line.indexOf(entry);
    if (index >= 0) this.line.splice(index, 1);
  }

  private onExit(runtime: RuntimeInstance, code: number | null, signal: string | null): void {
    if (this.closed) return;
    if (!runtime.killedByUs && runtime.live) {
      this.failures++;
      this.logger?.warn({ code, signal, failures: this.failures }, 'local runtime exited unexpectedly; restarting');
    }
    if (this.runtime !== runtime) return;
    this.runtime = undefined;
    // Warm the next runtime now rather than on the next task; a start that fails waits for the next invoke.
    if (runtime.live) this.session().catch(() => undefined);
  }

  private defaultOutput(): OutputListener | undefined {
    const logger = this.options.logger;
    if (!logger) return undefined;
    return (taskId, stream, chunk) =>
      logger.info({ taskId, stream, slot: this.options.slotIndex ?? 0 }, chunk.trimEnd());
  }
}

export function createLocalInvoker(options: LocalRuntimeOptions): WorkerInvoker {
  return new LocalInvoker(options);
}

/** The local invoker of one slot of a grid: the worker, runtime and limits from its compiled configuration. */
export function createGridSlotInvoker(
  config: Pick<GridConfig, 'handler' | 'runtime' | 'functionName' | 'memorySizeMb' | 'pythonExecutable'>,
  slot: Pick<LocalRuntimeOptions, 'taskRoot' | 'logger' | 'slotIndex' | 'onOutput'>,
): WorkerInvoker {
  return new LocalInvoker({
    ...slot,
    handler: config.handler,
    runtime: config.runtime,
    functionName: config.functionName,
    memorySizeMb: config.memorySizeMb,
    pythonExecutable: config.pythonExecutable,
    maxQueued: defaultMaxQueued(config.runtime),
  });
}
