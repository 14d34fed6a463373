// A `provided` runtime: the task root's executable `bootstrap`, driven through our Lambda Runtime API server.
import type { WorkerInitError } from '../../core/errors';
import { isResultJson } from '../../core/result-json';
import type { Invocation, InvokeResult } from '../../ports';
import { crashResult } from '../invoke-results';
import { clientContextOf, traceIdOf } from './lambda-environment';
import type { RuntimeApiServer } from './runtime-api-server';
import { type ExitInfo, RuntimeProcess, type RuntimeLaunch } from './runtime-process';
import { initErrorFrom, initExitError, type LoadTarget, type RuntimeSession } from './runtime-session';

/** The bootstrap takes no arguments: it finds the Runtime API through its environment. */
export interface ApiRuntimeOptions extends Omit<RuntimeLaunch, 'args'> {
  readonly target: LoadTarget;
  readonly functionArn: string;
  readonly server: RuntimeApiServer;
}

export class ApiRuntimeSession implements RuntimeSession {
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  private readonly process: RuntimeProcess;
  private pending: ((result: InvokeResult) => void) | undefined;
  private settleReady: { resolve: () => void; reject: (error: WorkerInitError) => void } | undefined;

  constructor(private readonly options: ApiRuntimeOptions) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    this.ready.catch(() => undefined);
    options.server.bind({
      onFirstPoll: () => {
        options.capture.end();
        this.settleReady?.resolve();
        this.settleReady = undefined;
      },
      onInitError: (error) => {
        options.capture.end();
        this.settleReady?.reject(initErrorFrom(error, options.target));
        this.settleReady = undefined;
        this.kill();
      },
    });
    this.process = new RuntimeProcess({ ...options, args: [], transportPipes: false, detached: true });
    this.exited = this.process.exited;
    void this.exited.then((exit) => this.onExit(exit));
  }

  /** The Runtime API runs one invocation at a time: the invoker never calls again before this one ended. */
  readonly pipelined = false;

  call(invocation: Invocation): Promise<InvokeResult> {
    return new Promise<InvokeResult>((resolve) => {
      if (!this.process.alive) {
        resolve(crashResult(null, null));
        return;
      }
      this.pending = resolve;
      this.options.capture.begin(invocation.taskId);
      void this.options.server
        .dispatch({
          requestId: invocation.requestId,
          deadline: invocation.deadline,
          functionArn: this.options.functionArn,
          traceId: traceIdOf(),
          clientContextJson: JSON.stringify(clientContextOf(invocation)),
          eventJson: invocation.eventJson,
        })
        .then((answer) => {
          if (this.pending !== resolve) return;
          this.pending = undefined;
          this.options.capture.end();
          resolve(toResult(answer.ok ? answer.body : undefined, answer.ok ? undefined : answer.error));
        });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get healthy(): boolean {
    return this.process.alive;
  }

  kill(): void {
    this.process.kill();
  }

  private onExit(exit: ExitInfo): void {
    this.settleReady?.reject(initExitError(exit, this.options.target, this.process.recentStderr));
    this.settleReady = undefined;
    const resolve = this.pending;
    this.pending = undefined;
    if (resolve) {
      this.options.capture.end();
      resolve(crashResult(exit.code, exit.signal));
    }
  }
}

function toResult(body: string | undefined, error: Parameters<typeof errorResult>[0] | undefined): InvokeResult {
  if (error) return errorResult(error);
  const text = body ?? '';
  if (text.trim() === '') return { ok: true, resultJson: 'null' };
  // The grid stores results as JSON text (NaN, Infinity and big integers allowed, as Python's json writes them); a
  // runtime posting anything else gets Lambda's marshal error.
  if (!isResultJson(text)) {
    return errorResult({
      type: 'Runtime.MarshalError',
      message: `Unable to marshal response: the runtime posted a body that is not JSON (${text.length} characters)`,
      stack: [],
    });
  }
  return { ok: true, resultJson: text };
}

function errorResult(error: { type: string; message: string; stack: readonly string[] }): InvokeResult {
  return { ok: false, reason: 'error', error };
}
