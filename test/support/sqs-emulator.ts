// local-aws-sqs behind a thin HTTP layer that fixes where it departs from SQS, so tests see SQS's documented behaviour.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';

/**
 * What the layer fixes (local-aws-sqs 2.0.2, JSON protocol), each a behaviour SQS documents, and nothing else:
 * 1. A long poll returns as soon as at least one message is available: "If a message is available, the call returns
 *    sooner than WaitTimeSeconds" (ReceiveMessage, WaitTimeSeconds:
 *    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html; and
 *    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html).
 *    The emulator waits until it has `MaxNumberOfMessages` or the wait ends, and even a receive with no wait holds
 *    at least 40 ms unless it gathers `MaxNumberOfMessages` (its receive looks for messages every 10 ms and answers
 *    when it has that many or after 40 ms + `WaitTimeSeconds`). The layer asks the emulator's queue how many messages
 *    are visible (`getAttributes`, the emulator's public method behind GetQueueAttributes: not in flight, not
 *    delayed) and only then receives, with `MaxNumberOfMessages` = min(asked, visible) and no wait, so the emulator
 *    answers at its first 10 ms look, as SQS answers a waiting receive as soon as messages are there; with none
 *    visible it does not receive at all but looks again when a send (or a visibility change) to the queue passes
 *    through the layer, or every 25 ms (visibility timeouts end inside the emulator), and answers an empty receive
 *    itself when the wait ends ("If no messages are available and the wait time expires, the call returns
 *    successfully with an empty list of messages", same page). This brings the emulator closer to SQS's documented
 *    behaviour, no further: SQS too may answer with fewer messages than asked for ("Fewer messages might be
 *    returned", MaxNumberOfMessages, same page).
 * 2. `ApproximateReceiveCount` is "the number of times a message has been received across all queues but not
 *    deleted" (ReceiveMessage, MessageSystemAttributeNames, same page): receives only, where the emulator also counts
 *    visibility changes. The layer counts deliveries per message id and rewrites the attribute. (The emulator's own
 *    count still drives its DLQ redrive, so a message whose visibility was changed reaches the DLQ a little early.)
 * 3. "If you use an old ReceiptHandle, the request will succeed, but the message might not be deleted"
 *    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html; the same for each
 *    entry of DeleteMessageBatch): the emulator deletes by message id whatever the handle; the layer answers success
 *    for a handle older than the message's latest delivery and deletes nothing (what SQS does whenever it does not).
 * test/support/sqs-emulator.test.ts checks each of the three on the layer itself.
 */
export interface FaithfulSqs {
  readonly server: Server;
  readonly endpoint: string;
  close(): Promise<void>;
}

interface Captured {
  status: number;
  headers: Record<string, string>;
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Runs the emulator's handler on a request body of our choosing and captures its response. */
async function forward(handler: Handler, req: IncomingMessage, body: string): Promise<Captured> {
  const fakeReq = Object.assign(Readable.from([Buffer.from(body)]), {
    headers: req.headers,
    method: req.method,
    url: req.url,
  }) as unknown as IncomingMessage;
  return new Promise<Captured>((resolve) => {
    const captured: Captured = { status: 200, headers: {}, body: '' };
    const fakeRes = {
      get statusCode() {
        return captured.status;
      },
      set statusCode(value: number) {
        captured.status = value;
      },
      setHeader(name: string, value: string) {
        captured.headers[name.toLowerCase()] = String(value);
      },
      getHeader(name: string) {
        return captured.headers[name.toLowerCase()];
      },
      end(data?: string | Buffer) {
        captured.body = data === undefined ? '' : data.toString();
        resolve(captured);
      },
    } as unknown as ServerResponse;
    void handler(fakeReq, fakeRes);
  });
}

function send(res: ServerResponse, out: Captured): void {
  res.statusCode = out.status;
  for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
  res.end(out.body);
}

/** The message id inside a local-aws-sqs receipt handle (base64 of a uuid followed by JSON). */
function messageIdOf(receiptHandle: string): string | undefined {
  try {
    const text = Buffer.from(receiptHandle, 'base64').toString('utf8');
    const parsed = JSON.parse(text.slice(text.indexOf('{'))) as { MessageId?: string };
    return parsed.MessageId;
  } catch {
    return undefined;
  }
}

/** What the layer reads of the emulator's queues (public members of its service and queue classes). */
interface EmulatorService {
  readonly Queues: readonly {
    readonly QueueName: string;
    readonly FifoQueue: boolean;
    getAttributes(names: readonly string[]): Record<string, string>;
  }[];
}

interface SqsMessage {
  MessageId: string;
  ReceiptHandle: string;
  Attributes?: Record<string, string>;
}

export async function startFaithfulSqs(options: { region: string }): Promise<FaithfulSqs> {
  const { createRequestHandler } = await import('local-aws-sqs');
  const { requestHandler, service } = createRequestHandler({
    // The emulator builds queue URLs from these; the real port is patched in below once known.
    port: 0,
    hostname: '127.0.0.1',
    region: options.region,
    emulateQueueCreationLifecycle: false,
  });
  const handler = requestHandler as Handler;
  const latestReceipt = new Map<string, string>();
  const deliveries = new Map<string, number>();

  /** Messages a receive would get now (visible, not delayed); undefined for a queue the layer does not count. */
  const visibleIn = (queueName: string): number | undefined => {
    const queue = (service as unknown as EmulatorService).Queues.find((q) => q.QueueName === queueName);
    // FIFO queues hand out messages by group: their receives go to the emulator as they come.
    if (queue === undefined || queue.FifoQueue) return undefined;
    const counts = queue.getAttributes(['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible']);
    return Number(counts.ApproximateNumberOfMessages) - Number(counts.ApproximateNumberOfMessagesNotVisible);
  };

  const onReceive = async (req: IncomingMessage, res: ServerResponse, input: Record<string, unknown>) => {
    const waitMs = Number(input.WaitTimeSeconds ?? 0) * 1000;
    const asked = Number(input.MaxNumberOfMessages ?? 1);
    const queueName = queueNameOf(input.QueueUrl);
    const deadline = Date.now() + waitMs;
    let closed = false;
    // The client gave up (aborted its long poll): stop polling for it.
    res.once('close', () => (closed = true));
    for (;;) {
      const visible = visibleIn(queueName);
      const over = Date.now() >= deadline || closed;
      if (visible === 0 && over) {
        // What the emulator answers for no messages, without its hold.
        const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() };
        return send(res, { status: 200, headers, body: '{}' });
      }
      if (visible !== 0) {
        const max = visible === undefined ? asked : Math.min(asked, visible);
        const look = { ...input, WaitTimeSeconds: 0, MaxNumberOfMessages: max };
        const out = await forward(handler, req, JSON.stringify(look));
        if (out.status !== 200) return send(res, out);
        const parsed = JSON.parse(out.body || '{}') as { Messages?: SqsMessage[] };
        const messages = parsed.Messages ?? [];
        if (messages.length > 0 || Date.now() >= deadline || closed) {
          for (const m of messages) {
            latestReceipt.set(m.MessageId, m.ReceiptHandle);
            const count = (deliveries.get(m.MessageId) ?? 0) + 1;
            deliveries.set(m.MessageId, count);
            if (m.Attributes?.ApproximateReceiveCount !== undefined) {
              m.Attributes.ApproximateReceiveCount = String(count);
            }
          }
          return send(res, { ...out, body: JSON.stringify(parsed) });
        }
        // Another receive took them first: wait for more.
        if (visible !== undefined) continue;
      }
      await pauseFor(queueName, 25);
    }
  };

  // A long poll looks again as soon as a message may have become visible on its queue, not at its next short poll
  // (SQS answers a waiting receive within milliseconds of a send).
  const pausedReceives = new Map<string, Set<() => void>>();
  // By queue name: a URL may name the layer or a proxy in front of it.
  const queueNameOf = (queueUrl: unknown): string =>
    typeof queueUrl === 'string' ? (queueUrl.split('/').pop() ?? queueUrl) : '';
  const pauseFor = (queueName: string, ms: number): Promise<void> =>
    new Promise((resolve) => {
      const waiters = pausedReceives.get(queueName) ?? new Set<() => void>();
      pausedReceives.set(queueName, waiters);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  const wakeReceives = (queueUrl: unknown): void => {
    const waiters = pausedReceives.get(queueNameOf(queueUrl));
    if (!waiters || waiters.size === 0) return;
    // A message sent (or released) without a delay becomes visible on the emulator's own 0 ms timer, set while it
    // answered: a timer set now runs after it.
    setTimeout(() => {
      for (const wake of [...waiters]) wake();
    }, 0);
  };

  const isStale = (receiptHandle: unknown): boolean => {
    if (typeof receiptHandle !== 'string') return false;
    const id = messageIdOf(receiptHandle);
    return id !== undefined && latestReceipt.has(id) && latestReceipt.get(id) !== receiptHandle;
  };

  const onDeleteBatch = async (req: IncomingMessage, res: ServerResponse, input: Record<string, unknown>) => {
    const entries = (input.Entries ?? []) as { Id: string; ReceiptHandle: string }[];
    const stale = entries.filter((e) => isStale(e.ReceiptHandle));
    const fresh = entries.filter((e) => !isStale(e.ReceiptHandle));
    if (fresh.length === 0) {
      const body = JSON.stringify({ Successful: stale.map((e) => ({ Id: e.Id })), Failed: [] });
      return send(res, { status: 200, headers: { 'content-type': 'application/x-amz-json-1.0' }, body });
    }
    const out = await forward(handler, req, JSON.stringify({ ...input, Entries: fresh }));
    if (out.status === 200 && stale.length > 0) {
      const parsed = JSON.parse(out.body || '{}') as { Successful?: { Id: string }[] };
      parsed.Successful = [...(parsed.Successful ?? []), ...stale.map((e) => ({ Id: e.Id }))];
      return send(res, { ...out, body: JSON.stringify(parsed) });
    }
    return send(res, out);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const target = String(req.headers['x-amz-target'] ?? '');
      const action = target.split('.')[1];
      let input: Record<string, unknown> = {};
      try {
        input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      } catch {
        // Not JSON (query protocol): pass through untouched.
      }
      const run = async () => {
        if (action === 'ReceiveMessage') return onReceive(req, res, input);
        if (action === 'DeleteMessageBatch') return onDeleteBatch(req, res, input);
        if (action === 'DeleteMessage' && isStale(input.ReceiptHandle)) {
          return send(res, { status: 200, headers: { 'content-type': 'application/x-amz-json-1.0' }, body: '{}' });
        }
        const out = await forward(handler, req, body);
        if (
          /^(SendMessage|SendMessageBatch|ChangeMessageVisibility|ChangeMessageVisibilityBatch)$/.test(action ?? '')
        ) {
          wakeReceives(input.QueueUrl);
        }
        return send(res, out);
      };
      run().catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  // Queue URLs the emulator hands out carry its configured port: point them at this layer.
  (service as unknown as { PORT: number }).PORT = port;
  return {
    server,
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
