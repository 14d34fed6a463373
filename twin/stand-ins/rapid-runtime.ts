// The half of lambda-rie that runs the runtime ("rapid"): the Runtime API on its address, the bootstrap process
// started on the first invoke, one invocation at a time, a reset (runtime killed) on timeout or when it dies.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { WorkerInitError } from '../../lib/core/errors';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../lib/ports';
import { RuntimeApiServer } from '../../lib/runtime/local';

export interface RapidRuntimeOptions {
  /** The bootstrap command and its arguments (lambda-rie's positional arguments). */
  readonly bootstrap: readonly string[];
  readonly cwd: string;
  /** The environment the runtime gets (the container's, plus what rapid adds). */
  readonly env: Readonly<Record<string, string>>;
  /** The Runtime API server, already listening on the runtime API address. */
  readonly server: RuntimeApiServer;
  /** `host:port` the server listens on (`AWS_LAMBDA_RUNTIME_API`). */
  readonly runtimeApi: string;
  readonly functionArn: string;
  /** Where the runtime's stdout/stderr go (the container's own). */
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** How long a reset waits after SIGTERM before SIGKILL (rapid's SIGTERM reset timeout). */
const RESET_GRACE_MS = 2000;

export class RapidRuntime implements WorkerInvoker {
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  private ready: Promise<void> | undefined;

  constructor(private readonly options: RapidRuntimeOptions) {}

  /** Starts the bootstrap and waits for its first `next` poll (init done), an init error, or its exit. */
  start(): Promise<void> {
    this.ready ??= this.init().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  async invoke(invocation: Invocation): Promise<InvokeResult> {
    try {
      await this.start();
    } catch (error) {
      const e = error as WorkerInitError;
      return {
        ok: false,
        reason: 'runtime-crash',
        error: { type: e.errorType ?? 'Runtime.Unknown', message: e.message, stack: [] },
      };
    }
    const exited = this.exited!;
    const timeoutMs = Math.max(0, invocation.deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const answer = this.options.server.dispatch({
      requestId: invocation.requestId || randomUUID(),
      deadline: invocation.deadline,
      functionArn: this.options.functionArn,
      traceId: `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`,
      clientContextJson: JSON.stringify({
        custom: { session_id: invocation.sessionId, task_id: invocation.taskId, attempt: invocation.attempt },
      }),
      eventJson: invocation.eventJson,
    });
    const outcome = await Promise.race([
      answer.then((a) => ({ kind: 'answer' as const, a })),
      exited.then((exit) => ({ kind: 'exit' as const, exit })),
      new Promise<{ kind: 'timeout' }>((resolve) => {
        timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (outcome.kind === 'answer') {
      if (outcome.a.ok) return { ok: true, resultJson: outcome.a.body.trim() === '' ? 'null' : outcome.a.body };
      return { ok: false, reason: 'error', error: outcome.a.error };
    }
    if (outcome.kind === 'timeout') {
      await this.reset();
      return { ok: false, reason: 'timeout', error: { type: 'Sandbox.Timedout', message: 'timed out', stack: [] } };
    }
    this.forget();
    const { code, signal } = outcome.exit;
    const how = signal ? `signal: ${signal === 'SIGKILL' ? 'killed' : signal}` : `exit status ${code ?? 'unknown'}`;
    return {
      ok: false,
      reason: 'runtime-crash',
      error: { type: 'Runtime.ExitError', message: `Runtime exited with error: ${how}`, stack: [] },
    };
  }

  async close(): Promise<void> {
    await this.reset();
    await this.options.server.close();
  }

  /** Kills the runtime (SIGTERM, then SIGKILL after the grace) and forgets it; the next invoke starts a fresh one. */
  async reset(): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    this.forget();
    if (!child || !exited || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), RESET_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private forget(): void {
    this.child = undefined;
    this.exited = undefined;
    this.ready = undefined;
    this.options.server.reset();
  }

  private async init(): Promise<void> {
    const [command, ...args] = this.options.bootstrap;
    if (!command) throw new WorkerInitError('no bootstrap to run', 'Runtime.InvalidEntrypoint');
    const polled = new Promise<void>((resolve, reject) => {
      this.options.server.bind({
        onFirstPoll: () => resolve(),
        onInitError: (error) => reject(new WorkerInitError(error.message, error.type)),
      });
    });
    const child = spawn(command, args, {
      cwd: this.options.cwd,
      env: { ...this.options.env, AWS_LAMBDA_RUNTIME_API: this.options.runtimeApi },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(this.options.stdout, { end: false });
    child.stderr.pipe(this.options.stderr, { end: false });
    this.child = child;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: 127, signal: null }));
    });
    this.exited = exited;
    const outcome = await Promise.race([polled.then(() => 'ready' as const), exited.then((exit) => exit)]).catch(
      (error: unknown) => {
        void this.reset();
        throw error;
      },
    );
    if (outcome !== 'ready') {
      this.forget();
      const how = outcome.signal ? `signal: ${outcome.signal}` : `exit status ${outcome.code ?? 'unknown'}`;
      throw new WorkerInitError(`Runtime exited with error: ${how}`, 'Runtime.ExitError');
    }
  }
}
