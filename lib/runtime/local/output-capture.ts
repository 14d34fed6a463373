// Attributes a runtime's stdout/stderr to the task that wrote it, with a byte cap per task, draining continuously.
import { StringDecoder } from 'node:string_decoder';

export type OutputStream = 'stdout' | 'stderr';
export type OutputListener = (taskId: string | undefined, stream: OutputStream, chunk: string) => void;

interface TaskOutput {
  readonly taskId: string | undefined;
  bytes: number;
  truncated: boolean;
}

interface StreamState {
  readonly name: OutputStream;
  readonly decoder: StringDecoder;
  /** Bytes received so far on this stream. */
  received: number;
  /** Offset where the running (or next) task's output starts. */
  boundary: number;
  /** Ended tasks whose output is still in flight: bytes up to `until` are theirs. */
  readonly marks: { until: number; owner: TaskOutput }[];
  /** Bytes arrived but not attributed yet (see `hold`), oldest first. */
  readonly pending: Buffer[];
  pendingBytes: number;
}

/**
 * The runtime tells, with each answer, how many bytes the task wrote through its stdout/stderr objects; output that
 * arrives after the answer is still given to that task. Bytes written around those objects (native code, child
 * processes) go to the task running when they arrive, and the count re-synchronises at the next answer.
 */
export class OutputCapture {
  private current: TaskOutput = { taskId: undefined, bytes: 0, truncated: false };
  private holding = false;
  private readonly streams: Record<OutputStream, StreamState> = {
    stdout: newStream('stdout'),
    stderr: newStream('stderr'),
  };

  constructor(
    private readonly listener: OutputListener | undefined,
    private readonly maxBytesPerTask: number,
  ) {}

  /** A task starts running: output from now on is its own. */
  begin(taskId: string): void {
    this.current = { taskId, bytes: 0, truncated: false };
  }

  /**
   * The running task (or the init phase) ended, having written `stdoutBytes`/`stderrBytes`; `undefined` when the
   * runtime cannot tell (then whatever has arrived is all of it).
   */
  end(stdoutBytes?: number, stderrBytes?: number): void {
    this.close(this.streams.stdout, stdoutBytes);
    this.close(this.streams.stderr, stderrBytes);
    this.current = { taskId: undefined, bytes: 0, truncated: false };
    this.flush(this.streams.stdout);
    this.flush(this.streams.stderr);
  }

  /**
   * While other tasks are queued behind the running one, output beyond what ended tasks wrote may belong to any of
   * them: it is held until an answer tells how many bytes were whose (or, past a bound, given to the running task).
   */
  hold(holding: boolean): void {
    if (this.holding === holding) return;
    this.holding = holding;
    this.flush(this.streams.stdout);
    this.flush(this.streams.stderr);
  }

  data(stream: OutputStream, chunk: Buffer): void {
    const state = this.streams[stream];
    state.pending.push(chunk);
    state.pendingBytes += chunk.length;
    this.flush(state);
  }

  /** Attributes pending bytes: to ended tasks up to their marks, the rest to the running task unless holding. */
  private flush(state: StreamState): void {
    // Bounded: a running task printing a lot while others wait behind it keeps its output flowing.
    const release = !this.holding || state.pendingBytes > HOLD_LIMIT_BYTES;
    while (state.pending.length > 0) {
      let rest = state.pending[0]!;
      while (rest.length > 0) {
        const mark = state.marks[0];
        if (!mark) break;
        const take = Math.min(rest.length, mark.until - state.received);
        state.received += take;
        state.pendingBytes -= take;
        this.emit(state, mark.owner, rest.subarray(0, take));
        rest = rest.subarray(take);
        if (state.received >= mark.until) state.marks.shift();
      }
      if (rest.length > 0 && !release) {
        state.pending[0] = rest;
        return;
      }
      state.pending.shift();
      if (rest.length > 0) {
        state.received += rest.length;
        state.pendingBytes -= rest.length;
        this.emit(state, this.current, rest);
      }
    }
  }

  private close(state: StreamState, bytes: number | undefined): void {
    const until = bytes === undefined ? state.received : state.boundary + bytes;
    if (until > state.received) state.marks.push({ until, owner: this.current });
    state.boundary = Math.max(until, state.received);
  }

  private emit(state: StreamState, owner: TaskOutput, bytes: Buffer): void {
    if (!this.listener || owner.truncated) return;
    const room = this.maxBytesPerTask - owner.bytes;
    const kept = bytes.length > room ? bytes.subarray(0, Math.max(0, room)) : bytes;
    owner.bytes += kept.length;
    const text = state.decoder.write(kept);
    if (text) this.listener(owner.taskId, state.name, text);
    if (kept.length < bytes.length) {
      owner.truncated = true;
      this.listener(
        owner.taskId,
        state.name,
        `${state.decoder.end()}\n[htcgrid: output of this task truncated after ${this.maxBytesPerTask} bytes]\n`,
      );
    }
  }
}

function newStream(name: OutputStream): StreamState {
  return {
    name,
    decoder: new StringDecoder('utf8'),
    received: 0,
    boundary: 0,
    marks: [],
    pending: [],
    pendingBytes: 0,
  };
}

/** Output held back per stream at most, while tasks are queued (see `hold`). */
const HOLD_LIMIT_BYTES = 4 * 1024 * 1024;
