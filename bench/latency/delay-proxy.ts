// An HTTP proxy in front of an emulator that holds every request for a set time: a service's latency, injected.
import http from 'node:http';

export interface DelayProxy {
  /** `http://127.0.0.1:<port>`: point an SDK client here instead of at the emulator. */
  readonly endpoint: string;
  /** Requests forwarded so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/** Timings of each request (`performance.now()` ms), for `--aws-trace`. */
export interface DelayProxyTrace {
  onTiming(
    headers: http.IncomingHttpHeaders,
    timing: { readonly arrived: number; readonly forwarded: number; readonly answered: number },
  ): void;
  /** A client opened a connection. */
  onConnection(): void;
}

/**
 * Forwards every request to `target` after `delayMs` (the request body is read first, as a service reads it before it
 * answers), so each SDK call takes at least `delayMs` more than the emulator alone. Keep-alive on both sides.
 */
export async function startDelayProxy(target: string, delayMs: number, trace?: DelayProxyTrace): Promise<DelayProxy> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests++;
      const arrived = performance.now();
      setTimeout(() => {
        const forwarded = performance.now();
        const upstream = http.request(
          {
            host: to.hostname,
            port: to.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: to.host },
            agent,
          },
          (answer) => {
            trace?.onTiming(req.headers, { arrived, forwarded, answered: performance.now() });
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', (err) => {
          res.writeHead(502);
          res.end(String(err));
        });
        upstream.end(Buffer.concat(chunks));
      }, delayMs);
    });
  });
  if (trace) server.on('connection', () => trace.onConnection());
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
