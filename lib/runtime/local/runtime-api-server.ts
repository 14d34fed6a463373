// The Lambda Runtime API (2018-06-01) on 127.0.0.1, for `provided` runtimes: next / response / error / init error.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TaskError } from '../../core/task';
import { parseErrorDocument } from '../invoke-results';

const API = '/2018-06-01/runtime';
const NEXT = `${API}/invocation/next`;
const INIT_ERROR = `${API}/init/error`;
const INVOCATION = new RegExp(`^${API}/invocation/([^/]+)/(response|error)$`);
/** Lambda's limit is 6 MB; anything far beyond it is a broken runtime. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** One event to hand out on `GET .../invocation/next`. */
export interface RuntimeApiEvent {
  readonly requestId: string;
  readonly deadline: number;
  readonly functionArn: string;
  readonly traceId: string;
  /** JSON text of the client context. */
  readonly clientContextJson: string;
  readonly eventJson: string;
}

export type RuntimeApiAnswer =
  { readonly ok: true; readonly body: string } | { readonly ok: false; readonly error: TaskError };

/** What the runtime process tells the server; bound to the session currently running. */
export interface RuntimeApiListener {
  /** The runtime asked for its first event: its init is done. */
  onFirstPoll(): void;
  onInitError(error: TaskError): void;
}

export class RuntimeApiServer {
  private readonly server: http.Server;
  private address: string | undefined;
  private listener: RuntimeApiListener | undefined;
  private polled = false;
  private waiting: http.ServerResponse | undefined;
  private queued: RuntimeApiEvent | undefined;
  private active: { requestId: string; answer: (answer: RuntimeApiAnswer) => void } | undefined;

  /** `maxBodyBytes` (default 64 MiB) is the largest body a runtime may post; larger ones get 413. */
  constructor(private readonly maxBodyBytes = MAX_BODY_BYTES) {
    this.server = http.createServer((req, res) => this.route(req, res));
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
    this.server.keepAliveTimeout = 60_000;
  }

  /**
   * Starts listening (by default on an ephemeral port of 127.0.0.1); returns `<host>:<port>` (the
   * AWS_LAMBDA_RUNTIME_API value). Rejects when the address is taken (`EADDRINUSE`).
   */
  async listen(at: { readonly host?: string; readonly port?: number } = {}): Promise<string> {
    if (this.address) return this.address;
    const host = at.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port ?? 0, host, () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.address = `${host}:${port}`;
    return this.address;
  }

  /** Forgets everything about the previous runtime process and listens to the next one. */
  bind(listener: RuntimeApiListener): void {
    this.reset();
    this.listener = listener;
  }

  /** Drops the pending poll and any event in flight (the process behind them is gone). */
  reset(): void {
    this.listener = undefined;
    this.polled = false;
    this.queued = undefined;
    this.active = undefined;
    this.waiting?.destroy();
    this.waiting = undefined;
  }

  /** Hands an event to the runtime (now if it is polling, else on its next poll); resolves with its answer. */
  dispatch(event: RuntimeApiEvent): Promise<RuntimeApiAnswer> {
    return new Promise<RuntimeApiAnswer>((resolve) => {
      this.active = { requestId: event.requestId, answer: resolve };
      this.queued = event;
      this.deliver();
    });
  }

  async close(): Promise<void> {
    this.reset();
    this.server.closeAllConnections();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private deliver(): void {
    const res = this.waiting;
    const event = this.queued;
    if (!res || !event) return;
    this.waiting = undefined;
    this.queued = undefined;
    const body = Buffer.from(event.eventJson);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': body.length,
      'Lambda-Runtime-Aws-Request-Id': event.requestId,
      'Lambda-Runtime-Deadline-Ms': String(event.deadline),
      'Lambda-Runtime-Invoked-Function-Arn': event.functionArn,
      'Lambda-Runtime-Trace-Id': event.traceId,
      'Lambda-Runtime-Client-Context': event.clientContextJson,
    });
    res.end(body);
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = (req.url ?? '').split('?')[0] ?? '';
    if (req.method === 'GET' && url === NEXT) return this.onNext(res);
    if (req.method === 'POST' && url === INIT_ERROR) {
      return this.readBody(req, res, (body) => {
        this.listener?.onInitError(parseErrorDocument(body, errorTypeHeader(req) ?? 'Runtime.Unknown'));
        accepted(res);
      });
    }
    const match = req.method === 'POST' ? INVOCATION.exec(url) : null;
    if (match) {
      const requestId = decodeURIComponent(match[1] ?? '');
      const kind = match[2];
      return this.readBody(req, res, (body) => {
        const active = this.active;
        if (!active || active.requestId !== requestId) {
          return reply(res, 400, { errorMessage: `Invalid request ID: ${requestId}`, errorType: 'InvalidRequestID' });
        }
        this.active = undefined;
        active.answer(
          kind === 'response'
            ? { ok: true, body }
            : { ok: false, error: parseErrorDocument(body, errorTypeHeader(req) ?? 'Unhandled') },
        );
        accepted(res);
      });
    }
    reply(res, 404, { errorMessage: `Unknown resource ${req.method ?? ''} ${url}`, errorType: 'InvalidRequest' });
  }

  private onNext(res: http.ServerResponse): void {
    if (this.waiting) this.waiting.destroy();
    this.waiting = res;
    res.on('close', () => {
      if (this.waiting === res) this.waiting = undefined;
    });
    if (!this.polled) {
      this.polled = true;
      this.listener?.onFirstPoll();
    }
    this.deliver();
  }

  private readBody(req: http.IncomingMessage, res: http.ServerResponse, then: (body: string) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxBodyBytes) {
        reply(res, 413, { errorMessage: 'Payload too large', errorType: 'RequestEntityTooLarge' });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size <= this.maxBodyBytes) then(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', () => undefined);
  }
}

function errorTypeHeader(req: http.IncomingMessage): string | undefined {
  const value = req.headers['lambda-runtime-function-error-type'];
  return typeof value === 'string' && value ? value : undefined;
}

function accepted(res: http.ServerResponse): void {
  reply(res, 202, { status: 'OK' });
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
