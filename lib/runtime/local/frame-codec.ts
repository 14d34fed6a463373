// The length-prefixed frames spoken with the Python and Node bootstraps over pipe fds 3 and 4 (see bootstrap.py).
import { clientContextOf } from '../client-context';

/**
 * Sent by the bootstraps in their ready frame. Bumped whenever the frames change, so compiled code and bootstrap
 * assets from different builds fail at start with a clear message instead of misreading each other.
 */
export const PROTOCOL_VERSION = 'htcgrid-runtime/3';

/**
 * What a bootstrap sends back. `fatalError`: the task failed and the runtime is exiting (uncaught error).
 * `withdrawn`: a request written ahead was taken back before it started (body: its number, see `encodeWithdraw`).
 */
export const FrameKind = { result: 0, error: 1, ready: 2, initError: 3, fatalError: 4, withdrawn: 5 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface ResponseFrame {
  readonly kind: FrameKind;
  /** Bytes the worker wrote through sys.stdout / process.stdout since the previous frame. */
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
  /** The frame's body: result JSON text, or error JSON text. */
  readonly body: string;
}

/** Per-invocation fields the bootstrap turns into the Lambda context. */
export interface RequestFields {
  readonly requestId: string;
  /**
   * The invocation's time budget in ms. The runtime counts it from when it starts the invocation, which for a request
   * written ahead (queued behind the one running) is later than when it was written.
   */
  readonly timeoutMs: number;
  readonly functionArn: string;
  readonly sessionId: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly traceId?: string;
}

/**
 * Builds a request frame; the event JSON text is copied as is, never parsed. The header is tab-separated
 * (`timeoutMs attempt arn requestId sessionId taskId`), cheap to split on the other side, or JSON when a field
 * would not fit that form.
 */
export function encodeRequest(fields: RequestFields, eventJson: string): Buffer {
  const { requestId, timeoutMs, functionArn, sessionId, taskId, attempt, traceId } = fields;
  const compact =
    traceId === undefined &&
    Number.isSafeInteger(timeoutMs) &&
    Number.isSafeInteger(attempt) &&
    !`${functionArn}${requestId}${sessionId}${taskId}`.includes('\t');
  const header = compact
    ? `${timeoutMs}\t${attempt}\t${functionArn}\t${requestId}\t${sessionId}\t${taskId}`
    : JSON.stringify({
        id: requestId,
        timeout: timeoutMs,
        arn: functionArn,
        cc: clientContextOf({ sessionId, taskId, attempt }),
        trace: traceId,
      });
  const headerBytes = Buffer.byteLength(header);
  const bodyBytes = Buffer.byteLength(eventJson);
  const frame = Buffer.allocUnsafe(8 + headerBytes + bodyBytes);
  frame.writeUInt32BE(headerBytes, 0);
  frame.writeUInt32BE(bodyBytes, 4);
  frame.write(header, 8, 'utf8');
  frame.write(eventJson, 8 + headerBytes, 'utf8');
  return frame;
}

/**
 * Asks the runtime to take back request number `n` (the first request written to a runtime is 1) if it has not
 * started; the runtime answers `withdrawn` then, and nothing otherwise (the request's own answer follows).
 */
export function encodeWithdraw(n: number): Buffer {
  const frame = Buffer.allocUnsafe(4);
  frame.writeUInt32BE(n, 0);
  return frame;
}

const RESPONSE_HEAD = 13;

/** Splits the response byte stream into frames, whatever the chunking (large frames are joined once, not per chunk). */
export class ResponseDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes the frame being assembled needs in total, once its length prefix is known. */
  private needed = 0;

  constructor(private readonly onFrame: (frame: ResponseFrame) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.needed > 0 && this.buffered < this.needed) return;
    let buf = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    this.needed = 0;
    while (buf.length >= 4) {
      const end = 4 + buf.readUInt32BE(0);
      if (end < RESPONSE_HEAD) throw new Error(`corrupt runtime frame (length ${end - 4})`);
      if (buf.length < end) {
        this.needed = end;
        break;
      }
      const kind = buf.readUInt8(4);
      if (kind > FrameKind.withdrawn) throw new Error(`corrupt runtime frame (kind ${kind})`);
      this.onFrame({
        kind: kind as FrameKind,
        stdoutBytes: buf.readUInt32BE(5),
        stderrBytes: buf.readUInt32BE(9),
        body: buf.toString('utf8', RESPONSE_HEAD, end),
      });
      buf = buf.subarray(end);
    }
    if (buf.length > 0) {
      this.chunks.push(buf);
      this.buffered = buf.length;
    }
  }
}
