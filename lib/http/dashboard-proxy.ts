// `htcgrid ui` for a deployed grid: the dashboard on loopback, its API calls signed with SigV4 and sent to the API URL.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { silentLogger, type Logger } from '../logging';
import { ApiError } from './api-error';
import { errorResponse } from './api-handlers';
import { dashboardDir, serveDashboard } from './dashboard-assets';
import { API_LIMITS } from './limits';
import { checkToken, digest } from './node-server';

/** Request headers passed on to the API (the rest, cookies and the local token included, stay here). */
const FORWARDED = ['content-type', 'accept', 'idempotency-key'];
/** Response headers passed back to the page. */
const RETURNED = ['content-type', 'cache-control', 'retry-after', 'idempotent-replayed', 'allow'];

export interface DashboardProxyOptions {
  /** The grid's API (the `ApiUrl` output: a Lambda function URL). */
  readonly apiUrl: string;
  /** Headers to add to a request to the API: its SigV4 signature (see `requestSigner`). */
  readonly sign: (request: {
    method: string;
    url: URL;
    headers: Record<string, string>;
    body?: string;
  }) => Promise<Record<string, string>>;
  /** The page's calls must carry it (`Authorization: Bearer`): other local users cannot use the signer. */
  readonly token: string;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port. @default 8643 */
  readonly port?: number;
  readonly logger?: Logger;
  /** @default - the built dashboard */
  readonly dashboardDir?: string;
}

export const DEFAULT_UI_PORT = 8643;

/** A running proxy; `close()` ends open streams and stops listening. */
export class DashboardProxy {
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    private readonly streams: Set<AbortController>,
  ) {}

  static async start(options: DashboardProxyOptions): Promise<DashboardProxy> {
    const logger = options.logger ?? silentLogger();
    const expected = digest(options.token);
    const base = new URL(options.apiUrl);
    const uiDir = options.dashboardDir ?? dashboardDir();
    const streams = new Set<AbortController>();
    const server = http.createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (serveDashboard(req, res, url.pathname, uiDir)) return;
        const auth = checkToken(req.headers.authorization, expected);
        if (auth) return fail(res, auth);
        if (!url.pathname.startsWith('/v1'))
          return fail(res, ApiError.notFound(`no route ${url.pathname}`, 'open /ui/'));
        const body = await readBody(req);
        if (body instanceof ApiError) return fail(res, body);
        const answer = await forward(req, res, new URL(url.pathname + url.search, base), body, options.sign, streams);
        await streamBack(answer, res);
      })().catch((err: unknown) => failedUpstream(err, req, res, logger));
    });
    server.listen(options.port ?? DEFAULT_UI_PORT, options.host ?? '127.0.0.1');
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => Promise.reject(err as Error)),
    ]);
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return new DashboardProxy(server, `http://${host}:${address.port}`, streams);
  }

  async close(): Promise<void> {
    for (const stream of this.streams) stream.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await closed;
  }
}

function fail(res: http.ServerResponse, error: ApiError): void {
  const answer = errorResponse(error);
  res.writeHead(answer.status, answer.headers).end(answer.body as string);
}

/** The request's body (undefined when empty), or the 413 to answer when it is over the API's limit. */
async function readBody(req: http.IncomingMessage): Promise<string | undefined | ApiError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > API_LIMITS.maxBodyBytes) {
      return new ApiError(413, 'RequestTooLargeError', 'the request body is too large', 'send less');
    }
    chunks.push(chunk);
  }
  return chunks.length === 0 ? undefined : Buffer.concat(chunks).toString('utf8');
}

/** Signs the request for the API and sends it; the call is aborted when the page's connection closes. */
async function forward(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: URL,
  body: string | undefined,
  sign: DashboardProxyOptions['sign'],
  streams: Set<AbortController>,
): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const method = req.method ?? 'GET';
  const signed = await sign({ method, url: target, headers, body });
  const controller = new AbortController();
  streams.add(controller);
  res.once('close', () => {
    controller.abort();
    streams.delete(controller);
  });
  // `host` is fetch's to set (to the same value that was signed).
  const { host: _host, ...send } = signed;
  return fetch(target, { method, headers: send, body, signal: controller.signal });
}

/** The API's answer to the page: status, the headers it needs, and the body streamed as it comes. */
async function streamBack(answer: Response, res: http.ServerResponse): Promise<void> {
  const out: Record<string, string> = {};
  for (const name of RETURNED) {
    const value = answer.headers.get(name);
    if (value !== null) out[name] = value;
  }
  res.writeHead(answer.status, out);
  res.flushHeaders();
  if (answer.body) {
    // Streamed through as it comes: the event stream and results are long-lived.
    for await (const chunk of Readable.fromWeb(answer.body)) {
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
  }
  res.end();
}

function failedUpstream(err: unknown, req: http.IncomingMessage, res: http.ServerResponse, logger: Logger): void {
  if ((err as Error).name === 'AbortError') return;
  logger.error({ err, url: req.url }, 'dashboard proxy request failed');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  fail(
    res,
    new ApiError(
      502,
      'UpstreamError',
      `the grid's API did not answer: ${(err as Error).message}`,
      'check the stack is deployed, its ApiUrl output, and your AWS credentials (they sign the requests)',
    ),
  );
}
