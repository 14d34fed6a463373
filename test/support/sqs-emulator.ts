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
 *    at least 40 ms unless it gathers `MaxNumberOfMessages` (its receive looks for messages every 10 ms from the
 *    moment it begins and answers when it has that many or after 40 ms + `WaitTimeSeconds`). It has no receive that
 *    answers at once: its queue's public methods either count (`getAttributes`) or start that same look
 *    (`receive`). The layer asks the emulator's queue how many messages are visible (`getAttributes`, behind
 *    GetQueueAttributes: not in flight, not delayed) and then:
 *    - some visible: it receives min(asked, visible) with no wait, which the emulator answers at its first look,
 *      10 ms on;
 *    - none visible and the wait not over: it keeps a receive for one message with no wait open in the emulator,
 *      one after another (each ends after 40 ms with nothing), so a message that becomes visible meanwhile (its
 *      delay or visibility timeout over) is taken at that receive's next look, 0–10 ms after. A message sent or
 *      released through the layer is taken at once, as SQS answers a waiting receive within milliseconds of a send:
 *      the layer keeps the look of each receive it has open in the emulator (the function the emulator's queue runs
 *      every 10 ms, caught as its `receive` sets that interval) and runs it once more right after the emulator made
 *      the message visible (its 0 ms timer), an extra look like any other. One message, not up to `MaxNumberOfMessages`:
 *      asked for more the emulator would hold its answer; SQS too may answer with fewer ("Fewer messages might be
 *      returned", MaxNumberOfMessages, same page), and the next receive gets the rest;
 *    - none visible and the wait over: it answers an empty receive itself ("If no messages are available and the
 *      wait time expires, the call returns successfully with an empty list of messages", same page).
 *    A receive kept open for a client that has gone (it aborted its long poll) cannot be stopped: it still ends at
 *    its own time, and a message it takes then was retrieved by no ReceiveMessage request (SQS hides a message
 *    "after being retrieved by a ReceiveMessage request", VisibilityTimeout, same page). The emulator has hidden it
 *    and counted the take toward its redrive (2.); making it visible again through the emulator would count once
 *    more (it counts visibility changes) and leave the take counted, so with `maxReceiveCount` 2 it would go to the
 *    DLQ never delivered. Instead the layer keeps such messages in a stash per queue and hands them, before anything
 *    else, to the next receive on that queue asking for the same attributes (every consumer of a queue here asks
 *    alike; a receive already waiting gets them when its open receive in the emulator ends, within 40 ms), as that
 *    receive's delivery: counted once (2.), its handle the latest (3.), and the take the emulator counted is then
 *    that delivery's, so its redrive counts deliveries as SQS's does. What remains of the emulator's departure: while
 *    stashed a message counts as in flight in GetQueueAttributes; the receive that gets it has it hidden for what is
 *    left of the timeout it was taken with (less the time it waited in the stash: milliseconds while consumers
 *    poll); and if no such receive comes within that timeout (the stash lets it go 1 ms before the emulator shows it
 *    again), or that timeout was 0, the take stays counted: one of `maxReceiveCount` for no delivery. A call naming
 *    a stashed message by an older handle (delete, visibility change), or purging or deleting its queue, reaches the
 *    emulator as it would without the stash, and the message leaves the stash.
 * 2. `ApproximateReceiveCount` is "the number of times a message has been received across all queues but not
 *    deleted" (ReceiveMessage, MessageSystemAttributeNames, same page): receives only, where the emulator also counts
 *    visibility changes. The layer counts deliveries per message id and rewrites the attribute. (The emulator's own
 *    count still drives its DLQ redrive: each ChangeMessageVisibility of a message costs one of its
 *    `maxReceiveCount`, so such a message reaches the DLQ after fewer deliveries than SQS would make.)
 * 3. "If you use an old ReceiptHandle, the request will succeed, but the message might not be deleted"
 *    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html; the same for each
 *    entry of DeleteMessageBatch): the emulator deletes by message id whatever the handle; the layer answers success
 *    for a handle older than the message's latest delivery and deletes nothing (what SQS does whenever it does not).
 * test/support/sqs-emulator.test.ts checks each of the three on the layer itself, with the emulator's clock.
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

/** The headers of an answer the layer gives itself, as the emulator's JSON answers carry them. */
function jsonHeaders(): Record<string, string> {
  return { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() };
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
interface EmulatorQueue {
  readonly QueueName: string;
  readonly FifoQueue: boolean;
  readonly VisibilityTimeout: number;
  getAttributes(names: readonly string[]): Record<string, string>;
}

interface EmulatorService {
  readonly Queues: readonly EmulatorQueue[];
}

interface SqsMessage {
  MessageId: string;
  ReceiptHandle: string;
  Attributes?: Record<string, string>;
}

/** A message the emulator took for a client that had gone, kept for the next receive on its queue (see 1.). */
interface Stashed {
  message: SqsMessage;
  /** The attributes the receive it was taken for asked for: it goes to a receive asking for the same. */
  selection: string;
  /** Ends its stay just before the emulator shows it again (the visibility timeout of its take). */
  timer: NodeJS.Timeout;
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

  const queueOf = (queueName: string): EmulatorQueue | undefined =>
    (service as unknown as EmulatorService).Queues.find((q) => q.QueueName === queueName);
  /** Messages a receive would get now (visible, not delayed); undefined for a queue the layer does not count. */
  const visibleIn = (queueName: string): number | undefined => {
    const queue = queueOf(queueName);
    // FIFO queues hand out messages by group: their receives go to the emulator as they come.
    if (queue === undefined || queue.FifoQueue) return undefined;
    const counts = queue.getAttributes(['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible']);
    return Number(counts.ApproximateNumberOfMessages) - Number(counts.ApproximateNumberOfMessagesNotVisible);
  };

  /** What the layer keeps of a delivery it hands out: its handle is the message's latest, its count one more. */
  const delivered = (messages: readonly SqsMessage[]): void => {
    for (const m of messages) {
      latestReceipt.set(m.MessageId, m.ReceiptHandle);
      const count = (deliveries.get(m.MessageId) ?? 0) + 1;
      deliveries.set(m.MessageId, count);
      if (m.Attributes?.ApproximateReceiveCount !== undefined) {
        m.Attributes.ApproximateReceiveCount = String(count);
      }
    }
  };

  const stash = new Map<string, Stashed[]>();

  /** By queue name, the looks of the receives the layer has open in the emulator (see 1.). */
  const looks = new Map<string, Set<() => void>>();
  const watched = new WeakSet<object>();
  /** Catches the look of every receive of the queue: the interval its `receive` sets before it first waits. */
  const watchLooks = (queueName: string): void => {
    const queue = queueOf(queueName) as (EmulatorQueue & { receive(...args: unknown[]): Promise<unknown> }) | undefined;
    if (queue === undefined || watched.has(queue)) return;
    watched.add(queue);
    const receive = queue.receive.bind(queue);
    queue.receive = (...args: unknown[]) => {
      const setInterval = globalThis.setInterval;
      let look: (() => void) | undefined;
      globalThis.setInterval = (fn: () => void, ms?: number) => {
        look = fn;
        return setInterval(fn, ms);
      };
      let receiving: Promise<unknown>;
      try {
        receiving = receive(...args);
      } finally {
        globalThis.setInterval = setInterval;
      }
      const caught = look;
      if (caught !== undefined) {
        const open = looks.get(queueName) ?? new Set();
        looks.set(queueName, open);
        open.add(caught);
        void receiving.finally(() => open.delete(caught)).catch(() => undefined);
      }
      return receiving;
    };
  };
  /** After the emulator's own 0 ms timer that makes a sent or released message visible: every open receive looks. */
  const lookSoon = (queueName: string): void => {
    setTimeout(() => {
      for (const look of [...(looks.get(queueName) ?? [])]) look();
    }, 0).unref();
  };

  const selectionOf = (input: Record<string, unknown>): string =>
    JSON.stringify([input.AttributeNames, input.MessageSystemAttributeNames, input.MessageAttributeNames]);

  /** Keeps messages taken for a client that has gone until the next receive on their queue, or their timeout. */
  const keep = (queueName: string, input: Record<string, unknown>, messages: readonly SqsMessage[]): void => {
    if (messages.length === 0) return;
    // The timeout the emulator hid them for: the receive's own, else the queue's.
    const asked = Number(input.VisibilityTimeout ?? Number.NaN);
    const timeoutMs = (Number.isNaN(asked) ? (queueOf(queueName)?.VisibilityTimeout ?? 0) : asked) * 1000;
    // Hidden for no time: the emulator shows them again at once (at its cost, see 2.).
    if (timeoutMs <= 0) return;
    const kept = stash.get(queueName) ?? [];
    stash.set(queueName, kept);
    for (const message of messages) {
      // Set in the same turn as the emulator's own timer (its take), so 1 ms less always ends first.
      const timer = setTimeout(() => drop(queueName, message.MessageId), timeoutMs - 1);
      timer.unref();
      kept.push({ message, selection: selectionOf(input), timer });
    }
  };

  /** Takes a message out of the stash (delivered, deleted, its visibility changed, or its timeout over). */
  const drop = (queueName: string, messageId: string | undefined): void => {
    const kept = stash.get(queueName);
    const at = kept?.findIndex((s) => s.message.MessageId === messageId) ?? -1;
    if (kept === undefined || at < 0) return;
    clearTimeout(kept[at]!.timer);
    kept.splice(at, 1);
    if (kept.length === 0) stash.delete(queueName);
  };

  /** Up to `max` stashed messages for a receive asking for `selection`, oldest first, out of the stash. */
  const fromStash = (queueName: string, selection: string, max: number): SqsMessage[] => {
    const taken = (stash.get(queueName) ?? []).filter((s) => s.selection === selection).slice(0, max);
    for (const s of taken) drop(queueName, s.message.MessageId);
    return taken.map((s) => s.message);
  };

  const onReceive = async (req: IncomingMessage, res: ServerResponse, input: Record<string, unknown>) => {
    const waitMs = Number(input.WaitTimeSeconds ?? 0) * 1000;
    const asked = Number(input.MaxNumberOfMessages ?? 1);
    const queueName = queueNameOf(input.QueueUrl);
    const deadline = Date.now() + waitMs;
    let closed = false;
    // The client gave up (aborted its long poll): stop receiving for it.
    res.once('close', () => (closed = true));
    for (;;) {
      if (closed) return send(res, { status: 200, headers: jsonHeaders(), body: '{}' });
      // Messages taken for a client that had gone are this receive's first.
      const stashed = fromStash(queueName, selectionOf(input), asked);
      if (stashed.length > 0) {
        delivered(stashed);
        return send(res, { status: 200, headers: jsonHeaders(), body: JSON.stringify({ Messages: stashed }) });
      }
      const visible = visibleIn(queueName);
      if (visible === 0 && Date.now() >= deadline) {
        // What the emulator answers for no messages, without its hold.
        return send(res, { status: 200, headers: jsonHeaders(), body: '{}' });
      }
      // Messages visible now: receive min(asked, visible) at once. None: keep a receive for one message open in
      // the emulator (its shortest, 40 ms), so one that becomes visible is taken at the emulator's next look.
      const max = visible === undefined ? asked : visible === 0 ? 1 : Math.min(asked, visible);
      const look = { ...input, WaitTimeSeconds: 0, MaxNumberOfMessages: max };
      watchLooks(queueName);
      const out = await forward(handler, req, JSON.stringify(look));
      if (out.status !== 200) return send(res, out);
      const parsed = JSON.parse(out.body || '{}') as { Messages?: SqsMessage[] };
      const messages = parsed.Messages ?? [];
      if (closed) {
        // Taken for a client that has gone: the next receive's (see the header).
        keep(queueName, input, messages);
        return send(res, { ...out, body: '{}' });
      }
      if (messages.length > 0 || Date.now() >= deadline) {
        delivered(messages);
        return send(res, { ...out, body: JSON.stringify(parsed) });
      }
    }
  };

  // By queue name: a URL may name the layer or a proxy in front of it.
  const queueNameOf = (queueUrl: unknown): string =>
    typeof queueUrl === 'string' ? (queueUrl.split('/').pop() ?? queueUrl) : '';

  const isStale = (receiptHandle: unknown): boolean => {
    if (typeof receiptHandle !== 'string') return false;
    const id = messageIdOf(receiptHandle);
    return id !== undefined && latestReceipt.has(id) && latestReceipt.get(id) !== receiptHandle;
  };

  /** The message ids a call (delete or visibility change, single or batch) names by handle. */
  const namedIn = (input: Record<string, unknown>): (string | undefined)[] => {
    const entries = Array.isArray(input.Entries) ? (input.Entries as { ReceiptHandle?: unknown }[]) : [input];
    return entries.map((e) => (typeof e.ReceiptHandle === 'string' ? messageIdOf(e.ReceiptHandle) : undefined));
  };

  const onDeleteBatch = async (req: IncomingMessage, res: ServerResponse, input: Record<string, unknown>) => {
    const entries = (input.Entries ?? []) as { Id: string; ReceiptHandle: string }[];
    const stale = entries.filter((e) => isStale(e.ReceiptHandle));
    const fresh = entries.filter((e) => !isStale(e.ReceiptHandle));
    if (fresh.length === 0) {
      const body = JSON.stringify({ Successful: stale.map((e) => ({ Id: e.Id })), Failed: [] });
      return send(res, { status: 200, headers: jsonHeaders(), body });
    }
    for (const id of namedIn({ Entries: fresh })) drop(queueNameOf(input.QueueUrl), id);
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
          return send(res, { status: 200, headers: jsonHeaders(), body: '{}' });
        }
        const queueName = queueNameOf(input.QueueUrl);
        // A stashed message named by an older handle, or its queue purged or deleted: the call reaches the
        // emulator as it would have without the stash, and the message is out of it.
        if (['DeleteMessage', 'ChangeMessageVisibility', 'ChangeMessageVisibilityBatch'].includes(action ?? '')) {
          for (const id of namedIn(input)) drop(queueName, id);
        }
        if (action === 'PurgeQueue' || action === 'DeleteQueue') {
          for (const s of stash.get(queueName) ?? []) clearTimeout(s.timer);
          stash.delete(queueName);
        }
        const out = await forward(handler, req, body);
        if (
          ['SendMessage', 'SendMessageBatch', 'ChangeMessageVisibility', 'ChangeMessageVisibilityBatch'].includes(
            action ?? '',
          )
        ) {
          lookSoon(queueName);
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
        for (const kept of stash.values()) for (const s of kept) clearTimeout(s.timer);
        stash.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
