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
}

/**
 * The runtime tells, with each answer, how many bytes the task wrote through its stdout/stderr objects; output that
 * arrives after the answer is still given to that task. Bytes written around those objects (native code, child
 * processes) go to the task running when they arrive, and the count re-synchronises at the next answer.
 */
export class OutputCapture {
  private current: TaskOutput = { taskId: undefined, bytes: 0, truncated: false };
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
  }

  data(stream: OutputStream, chunk: Buffer): void {
    const state = this.streams[stream];
    let rest = chunk;
    while (rest.length > 0) {
      const mark = state.marks[0];
      if (!mark) {
        state.received += rest.length;
        this.emit(state, this.current, rest);
        return;
      }
      const take = Math.min(rest.length, mark.until - state.received);
      state.received += take;
      this.emit(state, mark.owner, rest.subarray(0, take));
      rest = rest.subarray(take);
      if (state.received >= mark.until) state.marks.shift();
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
  return { name, decoder: new StringDecoder('utf8'), received: 0, boundary: 0, marks: [] };
}
