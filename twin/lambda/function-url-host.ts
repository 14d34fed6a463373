// One Lambda function behind its function URL, hosted as the Node.js Lambda runtime hosts a streaming handler: the
// function's own code (its unpacked asset) in a process of its own, with the function's environment and role
// credentials, the runtime's `awslambda` global (streamifyResponse, HttpResponseStream), each request handed over as
// a payload-2.0 event. The twin's front (function-url.ts) authenticates callers and forwards to it. Bundled by the
// twin; prints `listening <port>` once ready.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';

type Prelude = { statusCode?: number; headers?: Record<string, string> };
type StreamingHandler = (event: unknown, stream: Writable, context: unknown) => Promise<void>;

/** The response stream a streaming handler writes: the prelude (status, headers) first, then the body as written. */
class ResponseStream extends Writable {
  prelude: Prelude | undefined;

  constructor(private readonly res: ServerResponse) {
    super();
    res.once('close', () => {
      if (!res.writableFinished) this.destroy();
    });
  }

  private head(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(this.prelude?.statusCode ?? 200, {
      'content-type': 'application/octet-stream',
      ...this.prelude?.headers,
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.head();
    this.res.write(chunk, () => done());
  }

  override _final(done: (error?: Error | null) => void): void {
    this.head();
    this.res.end(() => done());
  }
}

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
(globalThis as Record<string, unknown>).awslambda = {
  streamifyResponse(handler: StreamingHandler) {
    (handler as unknown as Record<symbol, unknown>)[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream: {
    from(stream: Writable, prelude: Prelude) {
      (stream as ResponseStream).prelude = prelude;
      return stream;
    },
  },
};

const env = process.env;
const taskRoot = env.LAMBDA_TASK_ROOT!;
const [moduleName, functionName] = env._HANDLER!.split('.') as [string, string];
const timeoutMs = Number(env.TWIN_FUNCTION_TIMEOUT_SEC) * 1000;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The function URL event (payload format 2.0) of a request, as the Lambda service builds it. */
function eventOf(req: IncomingMessage, body: Buffer, requestId: string): unknown {
  const url = new URL(req.url ?? '/', 'http://function-url');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-twin-') || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const text = /json|text|ndjson|x-www-form-urlencoded/.test(String(req.headers['content-type'] ?? ''));
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    body: body.length > 0 ? (text ? body.toString('utf8') : body.toString('base64')) : undefined,
    isBase64Encoded: body.length > 0 && !text,
    requestContext: {
      accountId: 'anonymous',
      requestId,
      domainName: String(req.headers.host ?? ''),
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: String(req.headers['x-twin-source-ip'] ?? '127.0.0.1'),
        userAgent: String(req.headers['user-agent'] ?? ''),
      },
      authorizer: {
        iam: {
          accessKey: String(req.headers['x-twin-access-key'] ?? ''),
          accountId: String(req.headers['x-twin-account'] ?? ''),
          callerId: String(req.headers['x-twin-caller-id'] ?? ''),
          userArn: String(req.headers['x-twin-caller-arn'] ?? ''),
        },
      },
      timeEpoch: Date.now(),
    },
  };
}

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const module = require(path.join(taskRoot, moduleName)) as Record<string, unknown>;
  const handler = module[functionName] as StreamingHandler | undefined;
  if (typeof handler !== 'function' || !(handler as unknown as Record<symbol, unknown>)[STREAMING]) {
    throw new Error(`${env._HANDLER} is not a streaming handler (awslambda.streamifyResponse) in ${taskRoot}`);
  }
  const server = http.createServer((req, res) => {
    void (async () => {
      const requestId = randomUUID();
      const deadline = Date.now() + timeoutMs;
      const stream = new ResponseStream(res);
      // Lambda ends an invocation at its timeout, streamed or not.
      const timer = setTimeout(() => res.destroy(), timeoutMs);
      try {
        const event = eventOf(req, await readBody(req), requestId);
        await handler(event, stream, {
          awsRequestId: requestId,
          functionName: env.AWS_LAMBDA_FUNCTION_NAME,
          getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
        });
      } catch (error) {
        process.stderr.write(`${JSON.stringify({ requestId, error: String((error as Error)?.stack ?? error) })}\n`);
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ Message: 'Internal Server Error' }));
        } else res.destroy();
      } finally {
        clearTimeout(timer);
      }
    })();
  });
  server.requestTimeout = 0;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
