// A stand-in for lambda-rie's invoke API, served in front of any WorkerInvoker and answering in the emulator's exact
// shapes: the twin's aws-lambda-rie stand-in and the tests of the agent's RieInvoker run on it.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { silentLogger, type Logger } from '../../lib/logging';
import type { InvokeResult, WorkerInvoker } from '../../lib/ports';
import { WorkerInitError } from '../../lib/core/errors';
import {
  CLIENT_CONTEXT_HEADER,
  RIE_DEFAULT_TIMEOUT_SEC,
  RIE_INVOKE_PATH,
  decodeClientContext,
  functionErrorBody,
  runtimeFailureBody,
  timeoutBody,
} from '../../lib/runtime/rie/rie-protocol';

export interface RieServerOptions {
  /** The runtime behind the API (e.g. the local runtime). Started on the first invoke, as the RIE inits lazily. */
  readonly invoker: WorkerInvoker;
  /** @default 0 (any free port) */
  readonly port?: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** The function timeout every invocation gets (`AWS_LAMBDA_FUNCTION_TIMEOUT`). @default 300 */
  readonly functionTimeoutSec?: number;
  /**
   * What a running invocation does when its client hangs up. `'abort'` stops it (the local runtime restarts its
   * process), which is what the agent wants; `'run-on'` is what lambda-rie does: the handler runs on until it returns
   * or the function timeout resets it, and meanwhile every other invoke is answered 400 (busy).
   * @default 'abort'
   */
  readonly onClientGone?: 'abort' | 'run-on';
  /** Close the invoker in `close()`. @default true */
  readonly ownsInvoker?: boolean;
  readonly logger?: Logger;
}

/**
 * An HTTP server speaking lambda-rie's invoke API (see `rie-protocol.ts`) in front of a `WorkerInvoker`, so the
 * agent's `RieInvoker` can be tested end to end against the local runtime exactly as against the RIE.
 *
 * Responses match the RIE's: status, body bytes and headers (Go's `Date`, `Content-Length` and sniffed
 * `Content-Type: text/plain; charset=utf-8` on a body; never `X-Amz-Function-Error`). One difference: when the
 * client goes away mid-invocation the RIE lets the handler run on, while this server aborts the invocation (the
 * local runtime then restarts its process), which is what the agent wants after a timeout or a cancellation;
 * `onClientGone: 'run-on'` behaves as the RIE does.
 */
export class RieServer {
  private readonly server: http.Server;
  private readonly invoker: WorkerInvoker;
  private readonly functionTimeoutSec: number;
  private readonly ownsInvoker: boolean;
  private readonly onClientGone: 'abort' | 'run-on';
  private readonly logger: Logger;
  private started: Promise<void> | undefined;
  private busy = false;
  private closed = false;

  private constructor(options: RieServerOptions) {
    this.invoker = options.invoker;
    this.functionTimeoutSec = options.functionTimeoutSec ?? RIE_DEFAULT_TIMEOUT_SEC;
    this.ownsInvoker = options.ownsInvoker ?? true;
    this.onClientGone = options.onClientGone ?? 'abort';
    this.logger = options.logger ?? silentLogger();
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.logger.error({ err: error }, 'RIE server failed to answer an invoke');
        if (!res.headersSent) reply(res, 500);
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 60_000;
  }

  static async start(options: RieServerOptions): Promise<RieServer> {
    const server = new RieServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    return server;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  /** `http://<host>:<port>`, what `RieInvoker` takes as its endpoint. */
  get endpoint(): string {
    const address = this.server.address();
    const host = typeof address === 'object' && address !== null ? address.address : '127.0.0.1';
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.ownsInvoker) await this.invoker.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const path = (req.url ?? '/').split('?')[0];
    if (path !== RIE_INVOKE_PATH) return reply(res, 404, '404 page not found\n');
    const rawContext = decodeClientContext(String(req.headers[CLIENT_CONTEXT_HEADER] ?? ''));
    if (rawContext === undefined) return reply(res, 500);
    if (this.busy) return reply(res, 400);
    this.busy = true;
    const requestId = randomUUID();
    const controller = new AbortController();
    // The client went away before the answer: stop the invocation (see the class comment), unless emulating
    // lambda-rie to the letter.
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error('the invoking client disconnected'));
    };
    if (this.onClientGone === 'abort') res.once('close', onClose);
    try {
      try {
        this.started ??= this.invoker.start();
        await this.started;
      } catch (error) {
        this.started = undefined;
        const initError =
          error instanceof WorkerInitError
            ? { type: error.errorType, message: error.message, stack: [] }
            : { type: 'Runtime.Unknown', message: String(error), stack: [] };
        return reply(res, 502, runtimeFailureBody(initError, requestId));
      }
      const identity = identityOf(rawContext);
      const result = await this.invoker.invoke(
        {
          requestId,
          taskId: identity.taskId,
          sessionId: identity.sessionId,
          attempt: identity.attempt,
          eventJson: body.length > 0 ? body : '{}',
          deadline: Date.now() + this.functionTimeoutSec * 1000,
        },
        controller.signal,
      );
      this.answer(res, result, requestId);
    } finally {
      res.removeListener('close', onClose);
      this.busy = false;
    }
  }

  private answer(res: ServerResponse, result: InvokeResult, requestId: string): void {
    if (result.ok) return reply(res, 200, result.resultJson);
    switch (result.reason) {
      case 'error':
        return reply(res, 200, functionErrorBody(result.error, requestId));
      case 'timeout':
        return reply(res, 200, timeoutBody(this.functionTimeoutSec));
      case 'busy':
        return reply(res, 400);
      case 'runtime-crash':
        return reply(res, 502, runtimeFailureBody(result.error, requestId));
      case 'cancelled':
        // Only when the client already left: nobody reads this.
        return reply(res, 504);
    }
  }
}

/** The grid's ids from the client context (`{"custom": {session_id, task_id, attempt}}`); blanks when absent. */
function identityOf(rawContext: string): { sessionId: string; taskId: string; attempt: number } {
  let custom: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(rawContext || '{}') as { custom?: Record<string, unknown> };
    custom = parsed.custom ?? {};
  } catch {
    custom = {};
  }
  return {
    sessionId: typeof custom.session_id === 'string' ? custom.session_id : '',
    taskId: typeof custom.task_id === 'string' ? custom.task_id : '',
    attempt: typeof custom.attempt === 'number' ? custom.attempt : 0,
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Writes a response as Go's net/http does for the RIE: sniffed text content type on a body, none without. */
function reply(res: ServerResponse, status: number, body?: string): void {
  if (res.writableEnded || res.destroyed) return;
  const bytes = body === undefined ? undefined : Buffer.from(body, 'utf8');
  res.statusCode = status;
  res.sendDate = true;
  res.setHeader('Content-Length', String(bytes?.length ?? 0));
  if (bytes !== undefined && bytes.length > 0) res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(bytes);
}
