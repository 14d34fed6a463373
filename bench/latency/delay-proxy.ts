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
 *
 * `sqsDeliveryMs` (SQS's JSON protocol only) models SQS's own delivery time, which the emulator does not have: an
 * answer to a ReceiveMessage that brings messages is held until that long after the last send to its queue was
 * forwarded to the emulator (a long poll waiting when a message is sent sees it that much later; a message sent long
 * before is not held). The send is stamped as it goes to the emulator, not when its answer comes back: the emulator
 * may hand the message to a waiting receive before it answers the send, and a stamp taken after that receive's answer
 * would miss it. Other answers go through as they come.
 */
export async function startDelayProxy(
  target: string,
  delayMs: number,
  trace?: DelayProxyTrace,
  sqsDeliveryMs = 0,
): Promise<DelayProxy> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let requests = 0;
  /** When the last send to each queue (by its URL's path) went to the emulator, `performance.now()` ms. */
  const lastSend = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests++;
      const arrived = performance.now();
      const sqs = sqsDeliveryMs > 0 ? sqsCallOf(req.headers, chunks) : undefined;
      setTimeout(() => {
        const forwarded = performance.now();
        if (sqs?.operation === 'SendMessage' || sqs?.operation === 'SendMessageBatch')
          lastSend.set(sqs.queue, forwarded);
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
            if (sqs?.operation === 'ReceiveMessage') {
              holdDelivery(answer, res, lastSend.get(sqs.queue), sqsDeliveryMs);
              return;
            }
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

/** The SQS operation and queue (its URL's path) of a request in SQS's JSON protocol, if it is one. */
function sqsCallOf(
  headers: http.IncomingHttpHeaders,
  chunks: readonly Buffer[],
): { readonly operation: string; readonly queue: string } | undefined {
  const target = headers['x-amz-target'];
  if (typeof target !== 'string' || !target.startsWith('AmazonSQS.')) return undefined;
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { QueueUrl?: unknown };
    if (typeof body.QueueUrl !== 'string') return undefined;
    return { operation: target.slice('AmazonSQS.'.length), queue: new URL(body.QueueUrl).pathname };
  } catch {
    return undefined;
  }
}

/** Answers a receive once it was `deliveryMs` after `sentAt` if it brings messages, at once otherwise. */
function holdDelivery(
  answer: http.IncomingMessage,
  res: http.ServerResponse,
  sentAt: number | undefined,
  deliveryMs: number,
): void {
  const chunks: Buffer[] = [];
  answer.on('data', (chunk: Buffer) => chunks.push(chunk));
  answer.on('end', () => {
    const body = Buffer.concat(chunks);
    const brings = /"Messages"\s*:\s*\[\s*\{/.test(body.toString());
    const waitMs = brings && sentAt !== undefined ? Math.max(0, sentAt + deliveryMs - performance.now()) : 0;
    setTimeout(() => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      res.end(body);
    }, waitMs);
  });
}
