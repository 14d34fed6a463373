// A Python or Node runtime process driven over pipe fds 3/4 with length-prefixed frames (the fast local path).
import type { Writable } from 'node:stream';
import { WorkerInitError } from '../../core/errors';
import type { Invocation, InvokeResult } from '../../ports';
import { sleep } from '../../timing';
import {
  encodeRequest,
  encodeWithdraw,
  FrameKind,
  PROTOCOL_VERSION,
  ResponseDecoder,
  type ResponseFrame,
} from './frame-codec';
import { busyResult, crashResult, handlerErrorResult, parseErrorDocument, withdrawnResult } from '../invoke-results';
import type { OutputCapture } from './output-capture';
import { type ExitInfo, RuntimeProcess, type RuntimeLaunch } from './runtime-process';
import { initErrorFrom, initExitError, type LoadTarget, type RuntimeSession } from './runtime-session';

export interface PipeRuntimeOptions extends RuntimeLaunch {
  readonly target: LoadTarget;
  readonly functionArn: string;
}

const EXIT_DRAIN_MS = 200;

/** A call written to the runtime: `number` is its place in the runtime's count of requests (the first is 1). */
interface Call {
  readonly taskId: string;
  readonly requestId: string;
  readonly number: number;
  readonly resolve: (result: InvokeResult) => void;
}

export class PipeRuntimeSession implements RuntimeSession {
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  private readonly process: RuntimeProcess;
  private readonly capture: OutputCapture;
  /** Calls written to the runtime and not answered yet, in order: the first one is running. */
  private readonly calls: Call[] = [];
  /** Requests written so far: each call's number, as the runtime counts them (for withdrawals). */
  private written = 0;
  /** Requests of this turn are being gathered into one write (see `write`). */
  private corked = false;
  readonly pipelined = true;
  private doomed = false;
  private settleReady: { resolve: () => void; reject: (error: WorkerInitError) => void } | undefined;

  constructor(private readonly options: PipeRuntimeOptions) {
    this.capture = options.capture;
    this.process = new RuntimeProcess({ ...options, transportPipes: true, detached: false });
    this.exited = this.process.exited;
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // A rejected `ready` nobody awaited yet must not count as unhandled.
    this.ready.catch(() => undefined);
    const decoder = new ResponseDecoder((frame) => this.onFrame(frame));
    this.process.responses?.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        this.kill();
      }
    });
    // 'exit' can come before the last frames were read: let the response pipe drain first (briefly, since a
    // process the worker started could hold it open).
    const drained = new Promise<void>((resolve) => {
      if (!this.process.responses) return resolve();
      this.process.responses.once('end', resolve);
      this.process.responses.once('close', resolve);
    });
    void this.exited
      .then(() => Promise.race([drained, sleep(EXIT_DRAIN_MS, undefined, { unref: true })]))
      .then(() => this.exited)
      .then((exit) => this.onExit(exit));
  }

  call(invocation: Invocation, timeoutMs: number): Promise<InvokeResult> {
    return new Promise<InvokeResult>((resolve) => {
      if (!this.process.alive || !this.process.requests) {
        resolve(crashResult(null, null));
        return;
      }
      this.calls.push({ taskId: invocation.taskId, requestId: invocation.requestId, number: ++this.written, resolve });
      // The bootstrap reads one request after the other: a call written behind another starts when that one answers.
      if (this.calls.length === 1) this.capture.begin(invocation.taskId);
      else this.capture.hold(true);
      const frame = encodeRequest(
        {
          requestId: invocation.requestId,
          timeoutMs,
          functionArn: this.options.functionArn,
          sessionId: invocation.sessionId,
          taskId: invocation.taskId,
          attempt: invocation.attempt,
        },
        invocation.eventJson,
      );
      this.write(this.process.requests, frame);
    });
  }

  /**
   * Writes a request frame, joined with the others written in the same turn of the event loop: one result read from
   * the runtime often carries several answers, each of which sends that runtime its next request, and one write
   * (`writev`) of them all wakes the runtime once instead of once a frame. The requests go out once the callbacks
   * that run now are done (`process.nextTick`), before any timer or I/O.
   */
  private write(requests: Writable, frame: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      requests.cork();
      process.nextTick(() => {
        this.corked = false;
        requests.uncork();
      });
    }
    requests.write(frame);
  }

  withdraw(invocation: Invocation): void {
    const call = this.calls.find((c) => c.requestId === invocation.requestId);
    if (!call || !this.process.alive || !this.process.withdrawals) return;
    this.process.withdrawals.write(encodeWithdraw(call.number));
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get healthy(): boolean {
    return !this.doomed && this.process.alive;
  }

  kill(): void {
    this.process.kill();
  }

  private onFrame(frame: ResponseFrame): void {
    switch (frame.kind) {
      case FrameKind.ready:
        this.capture.end(frame.stdoutBytes, frame.stderrBytes);
        if (frame.body !== PROTOCOL_VERSION) {
          this.settleReady?.reject(this.mismatch(frame.body));
          this.kill();
        } else {
          this.settleReady?.resolve();
        }
        this.settleReady = undefined;
        return;
      case FrameKind.initError:
        this.capture.end(frame.stdoutBytes, frame.stderrBytes);
        this.settleReady?.reject(initErrorFrom(parseErrorDocument(frame.body), this.options.target));
        this.settleReady = undefined;
        return;
      case FrameKind.withdrawn: {
        const index = this.calls.findIndex((c) => c.number === Number(frame.body));
        if (index < 0) return;
        const [call] = this.calls.splice(index, 1);
        // Taken back before it started: had it been the first in line, the next one's output is now the current.
        const next = this.calls[0];
        if (index === 0 && next) this.capture.begin(next.taskId);
        if (this.calls.length <= 1) this.capture.hold(false);
        call?.resolve(withdrawnResult());
        return;
      }
      case FrameKind.result:
      case FrameKind.error:
      case FrameKind.fatalError: {
        if (frame.kind === FrameKind.fatalError) {
          // The runtime is exiting after this answer: make sure, and let no task reach it.
          this.doomed = true;
          this.kill();
        }
        this.capture.end(frame.stdoutBytes, frame.stderrBytes);
        const call = this.calls.shift();
        const next = this.calls[0];
        if (next) this.capture.begin(next.taskId);
        if (this.calls.length <= 1) this.capture.hold(false);
        call?.resolve(
          frame.kind === FrameKind.result ? { ok: true, resultJson: frame.body } : handlerErrorResult(frame.body),
        );
        return;
      }
    }
  }

  private mismatch(spoken: string): WorkerInitError {
    return new WorkerInitError(
      `the runtime bootstrap ${this.options.args[0] ?? ''} speaks protocol '${spoken || 'htcgrid-runtime/1'}' but this ` +
        `code expects '${PROTOCOL_VERSION}': the compiled code and the bootstrap assets come from different builds`,
      'Runtime.BootstrapMismatch',
      { hint: 'rebuild with `npm run build` (it copies lib/runtime/bootstrap next to the compiled code)' },
    );
  }

  private onExit(exit: ExitInfo): void {
    this.settleReady?.reject(initExitError(exit, this.options.target, this.process.recentStderr));
    this.settleReady = undefined;
    const [running, ...waiting] = this.calls.splice(0);
    // Whatever output is still held is the running task's: the ones behind it never started.
    this.capture.hold(false);
    if (running) {
      this.capture.end();
      running.resolve(crashResult(exit.code, exit.signal));
    }
    // Written ahead but never started: nothing ran, the invoker gives them to the next runtime.
    for (const call of waiting) call.resolve(busyResult());
  }
}
