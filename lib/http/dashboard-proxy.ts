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
    const fail = (res: http.ServerResponse, error: ApiError): void => {
      const answer = errorResponse(error);
      res.writeHead(answer.status, answer.headers).end(answer.body as string);
    };
    const server = http.createServer((req, res) => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (serveDashboard(req, res, url.pathname, uiDir)) return;
        const auth = checkToken(req.headers.authorization, expected);
        if (auth) return fail(res, auth);
        if (!url.pathname.startsWith('/v1'))
          return fail(res, ApiError.notFound(`no route ${url.pathname}`, 'open /ui/'));
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of req as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > API_LIMITS.maxBodyBytes) {
            return fail(res, new ApiError(413, 'RequestTooLargeError', 'the request body is too large', 'send less'));
          }
          chunks.push(chunk);
        }
        const body = chunks.length === 0 ? undefined : Buffer.concat(chunks).toString('utf8');
        const target = new URL(url.pathname + url.search, base);
        const headers: Record<string, string> = {};
        for (const name of FORWARDED) {
          const value = req.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const method = req.method ?? 'GET';
        const signed = await options.sign({ method, url: target, headers, body });
        const controller = new AbortController();
        streams.add(controller);
        res.once('close', () => {
          controller.abort();
          streams.delete(controller);
        });
        // `host` is fetch's to set (to the same value that was signed).
        const { host: _host, ...send } = signed;
        const answer = await fetch(target, { method, headers: send, body, signal: controller.signal });
        const out: Record<string, string> = {};
        for (const name of ['content-type', 'cache-control', 'retry-after', 'idempotent-replayed', 'allow']) {
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
      })().catch((err: unknown) => {
        if ((err as Error).name === 'AbortError') return;
        logger.error({ err, url: req.url }, 'dashboard proxy request failed');
        if (!res.headersSent) {
          fail(
            res,
            new ApiError(
              502,
              'UpstreamError',
              `the grid's API did not answer: ${(err as Error).message}`,
              'check the stack is deployed, its ApiUrl output, and your AWS credentials (they sign the requests)',
            ),
          );
        } else res.destroy();
      });
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
