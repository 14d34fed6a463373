// The local Lambda-compatible runtime: one slot = one long-lived runtime process, restarted after timeouts and crashes.
import path from 'node:path';
import { WorkerInitError } from '../../core/errors';
import type { WorkerRuntime } from '../../core/runtime-kind';
import type { Logger } from '../../logging';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../ports';
import { ApiRuntimeSession } from './api-runtime';
import { busyResult, cancelledResult, timeoutResult, unavailableResult } from './invoke-failures';
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
}

const DEFAULT_MAX_OUTPUT = 1024 * 1024;
const DEFAULT_INIT_TIMEOUT_MS = 120_000;
const MAX_RESTART_DELAY_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** No delay for the first restart, then 100 ms doubling up to 5 s, so a runtime that keeps dying never spins. */
export function restartDelayMs(consecutiveFailures: number): number {
  if (consecutiveFailures <= 1) return 0;
  return Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (consecutiveFailures - 2));
}

interface Slot {
  readonly promise: Promise<RuntimeSession>;
  session?: RuntimeSession;
  /** Set once `ready` resolved. */
  live?: RuntimeSession;
  killedByUs: boolean;
}

export class LocalInvoker implements WorkerInvoker {
  private readonly identity: LambdaIdentity;
  private readonly output: OutputListener | undefined;
  private readonly target: LoadTarget;
  private readonly bootstrapDir: string;
  private readonly logger: Logger | undefined;
  private slot: Slot | undefined;
  private readonly slots = new WeakMap<RuntimeSession, Slot>();
  private failures = 0;
  private busy = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private server: RuntimeApiServer | undefined;
  private cancelRunning: ((why: string) => void) | undefined;

  constructor(private readonly options: LocalRuntimeOptions) {
    this.logger = options.logger?.child({ slot: options.slotIndex ?? 0 });
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
  }

  async start(): Promise<void> {
    if (this.closed) throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    await this.session();
  }

  invoke(invocation: Invocation, signal?: AbortSignal): Promise<InvokeResult> {
    if (this.closed) return Promise.resolve(cancelledResult('the local runtime is closed'));
    if (this.busy) return Promise.resolve(busyResult());
    if (signal?.aborted) return Promise.resolve(cancelledResult(abortReason(signal)));
    const startedAt = Date.now();
    // Already past its deadline (it waited too long in a queue): don't disturb the runtime for it.
    if (invocation.deadline <= startedAt) return Promise.resolve(timeoutResult(0));
    this.busy = true;
    return new Promise<InvokeResult>((resolve) => {
      let settled = false;
      let running: Slot | undefined;
      const finish = (result: InvokeResult, kill: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.cancelRunning = undefined;
        this.busy = false;
        if (kill && running)
          this.recycle(running, !result.ok && result.reason === 'timeout' ? 'timeout' : 'cancelled', invocation);
        resolve(result);
      };
      const timeoutMs = invocation.deadline - startedAt;
      // Beyond what a timer can hold (about 24.8 days) the deadline is as good as none.
      const timer =
        timeoutMs <= MAX_TIMER_MS ? setTimeout(() => finish(timeoutResult(timeoutMs), true), timeoutMs) : undefined;
      const onAbort = (): void => finish(cancelledResult(abortReason(signal)), true);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.cancelRunning = (why) => finish(cancelledResult(why), true);
      const run = (slot: Slot, session: RuntimeSession): void => {
        if (settled) return;
        running = slot;
        void session.call(invocation).then((result) => {
          // The runtime answered (a result or the handler's error): it works, forget past failures.
          if (result.ok || result.reason === 'error') this.failures = 0;
          // A runtime that answered and is going down (uncaught error) gets no further task: replace it now.
          if (!session.healthy && this.slot === slot) this.retire(slot);
          finish(result, false);
        });
      };
      const slot = this.slot;
      if (slot?.live) {
        run(slot, slot.live);
      } else {
        this.session().then(
          (session) => {
            const owner = this.slots.get(session);
            if (owner) run(owner, session);
            else finish(unavailableResult(new Error('the local runtime is closed')), false);
          },
          (error: Error) => finish(unavailableResult(error), false),
        );
      }
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    const slot = this.slot;
    this.slot = undefined;
    this.cancelRunning?.('the local runtime is closed');
    if (slot?.session) {
      slot.killedByUs = true;
      slot.session.kill();
      await slot.session.exited;
    }
    await this.server?.close();
  }

  /** The running session, or a new one (after the back-off delay of past failures). */
  private session(): Promise<RuntimeSession> {
    if (this.slot) return this.slot.promise;
    const delayMs = restartDelayMs(this.failures);
    const slot: Slot = { promise: undefined as unknown as Promise<RuntimeSession>, killedByUs: false };
    (slot as { promise: Promise<RuntimeSession> }).promise = this.launch(slot, delayMs);
    this.slot = slot;
    slot.promise.catch((error: unknown) => {
      if (this.slot === slot) this.slot = undefined;
      if (!this.closed) {
        this.failures++;
        this.logger?.warn({ err: error, failures: this.failures }, 'local runtime failed to start');
      }
    });
    return slot.promise;
  }

  private async launch(slot: Slot, delayMs: number): Promise<RuntimeSession> {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (this.closed) throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    const session = await this.spawn();
    slot.session = session;
    this.slots.set(session, slot);
    if (this.closed) {
      slot.killedByUs = true;
      session.kill();
      throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    }
    void session.exited.then((exit) => this.onExit(slot, exit.code, exit.signal));
    let timer: NodeJS.Timeout | undefined;
    const initTimeoutMs = this.options.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS;
    try {
      await Promise.race([
        session.ready,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
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
    } catch (error) {
      slot.killedByUs = true;
      session.kill();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (this.closed) {
      slot.killedByUs = true;
      session.kill();
      throw new WorkerInitError('the local runtime is closed', 'Runtime.Closed');
    }
    slot.live = session;
    this.logger?.debug({ runtime: this.target.runtimeName }, 'local runtime ready');
    return session;
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
  private retire(slot: Slot): void {
    slot.killedByUs = true;
    slot.session?.kill();
    this.slot = undefined;
    if (!this.closed) this.session().catch(() => undefined);
  }

  /** Kills the runtime running `invocation` and starts a fresh one for the next. */
  private recycle(slot: Slot, why: 'timeout' | 'cancelled', invocation: Invocation): void {
    this.logger?.info({ taskId: invocation.taskId, sessionId: invocation.sessionId, why }, 'killing the local runtime');
    slot.killedByUs = true;
    slot.session?.kill();
    if (this.slot === slot) this.slot = undefined;
    if (!this.closed) this.session().catch(() => undefined);
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    if (this.closed) return;
    if (!slot.killedByUs && slot.live) {
      this.failures++;
      this.logger?.warn({ code, signal, failures: this.failures }, 'local runtime exited unexpectedly; restarting');
    }
    if (this.slot !== slot) return;
    this.slot = undefined;
    // Warm the next runtime now rather than on the next task; a start that fails waits for the next invoke.
    if (slot.live) this.session().catch(() => undefined);
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

function abortReason(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason.message;
  if (typeof reason === 'string') return reason;
  return 'the invocation was aborted';
}
