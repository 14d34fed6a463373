// The HTTP API on a local Node server: bearer-token auth, bodies read within the limit, NDJSON streamed with back-pressure.
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger, type Logger } from '../logging';
import { ApiError } from './api-error';
import { dashboardDir, serveDashboard } from './dashboard-assets';
import { errorResponse, type ApiResponse, type ApiHandlers } from './api-handlers';
import { API_LIMITS } from './limits';

export interface GridApiServerOptions {
  readonly api: ApiHandlers;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port. @default 8642 */
  readonly port?: number;
  /** Every request must carry `Authorization: Bearer <token>`. */
  readonly token: string;
  /** @default API_LIMITS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  readonly logger?: Logger;
  /** Serve the dashboard under /ui/ from this folder. @default - the built dashboard (`dashboardDir()`), if any */
  readonly dashboardDir?: string;
}

/** The default port of `htcgrid local up --http` and `htcgrid serve`. */
export const DEFAULT_API_PORT = 8642;

/** A running API server. `close()` stops accepting, ends open result streams and waits for the sockets. */
export class GridApiServer {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    /** One per request in progress: aborting it ends a results stream. */
    private readonly streams: Set<AbortController>,
  ) {}

  static async start(options: GridApiServerOptions): Promise<GridApiServer> {
    const logger = options.logger ?? silentLogger();
    const expected = digest(options.token);
    const maxBodyBytes = options.maxBodyBytes ?? API_LIMITS.maxBodyBytes;
    const streams = new Set<AbortController>();
    const uiDir = options.dashboardDir ?? dashboardDir();
    const server = http.createServer((req, res) => {
      void serve(req, res).catch((err: unknown) => {
        logger.error({ err, url: req.url }, 'HTTP request failed');
        if (!res.headersSent)
          void send(res, errorResponse(new ApiError(500, 'InternalError', 'the server failed', 'see its logs')));
        else res.destroy();
      });
    });
    async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (serveDashboard(req, res, url.pathname, uiDir)) return;
      const auth = checkToken(req.headers.authorization, expected);
      if (auth) return send(res, errorResponse(auth));
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > maxBodyBytes) return refuseBody(req, res, maxBodyBytes);
      const body = await readBody(req, maxBodyBytes);
      if (body === undefined) return refuseBody(req, res, maxBodyBytes);
      const controller = new AbortController();
      streams.add(controller);
      res.once('close', () => {
        controller.abort();
        streams.delete(controller);
      });
      const headers: Record<string, string | undefined> = {};
      for (const [name, value] of Object.entries(req.headers))
        headers[name] = Array.isArray(value) ? value.join(', ') : value;
      const response = await options.api.handle({
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
        caller: 'token',
        signal: controller.signal,
      });
      await send(res, response);
    }
    server.listen(options.port ?? DEFAULT_API_PORT, options.host ?? '127.0.0.1');
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => Promise.reject(err as Error)),
    ]);
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const instance = new GridApiServer(server, `http://${host}:${address.port}`, streams);
    logger.info({ url: instance.url }, 'HTTP API listening');
    return instance;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const stream of this.streams) stream.abort();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      await closed;
    })();
    return this.closing;
  }
}

/** The SHA-256 of a token, compared in constant time by `checkToken`. */
export function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** The 401 error for an `Authorization` header that does not carry the token whose digest is `expected`. */
export function checkToken(header: string | undefined, expected: Buffer): ApiError | undefined {
  const fix =
    'send Authorization: Bearer <token>, the token `htcgrid local up --http` printed (also in <grid dir>/client.json)';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) {
    return new ApiError(
      401,
      'UnauthorizedError',
      'this API needs a bearer token',
      fix,
      {},
      { 'www-authenticate': 'Bearer' },
    );
  }
  if (!timingSafeEqual(digest(match[1]!), expected)) {
    return new ApiError(
      401,
      'UnauthorizedError',
      'the bearer token is not this grid’s',
      fix,
      {},
      { 'www-authenticate': 'Bearer' },
    );
  }
  return undefined;
}

/** The body as text, or undefined once it grew past `max` bytes (reading stops there). */
async function readBody(req: http.IncomingMessage, max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function refuseBody(req: http.IncomingMessage, res: http.ServerResponse, max: number): Promise<void> {
  const error = new ApiError(
    413,
    'RequestTooLargeError',
    `the request body is larger than ${max} bytes`,
    `send the tasks in several batches (POST /v1/sessions/{sessionId}/tasks), each under ${max} bytes`,
    { maxBodyBytes: max },
    { connection: 'close' },
  );
  // The rest of the body is not read: the connection closes after the answer.
  res.once('finish', () => req.destroy());
  return send(res, errorResponse(error));
}

async function send(res: http.ServerResponse, response: ApiResponse): Promise<void> {
  res.statusCode = response.status;
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  if (typeof response.body === 'string') {
    res.setHeader('content-length', Buffer.byteLength(response.body));
    res.end(response.body);
    return;
  }
  res.flushHeaders();
  for await (const chunk of response.body) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
  res.end();
}
