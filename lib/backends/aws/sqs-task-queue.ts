// The grid's task queue on SQS: one queue per priority level, batched send/delete/visibility calls.
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type BatchResultErrorEntry,
} from '@aws-sdk/client-sqs';
import { ConfigError, HtcGridError, InvalidReceiptError } from '../../core/errors';
import { silentLogger, type Logger } from '../../logging';
import type { QueueMessage, ReceiveOptions, ReceivedMessage, TaskQueue } from '../../ports';
import { backoffDelay, chunk, mapLimit, withRetry, type RetryPolicy } from './aws-retry';
import { sleep } from '../../timing';
import { newSqsClient } from './aws-clients';
import { sqsJsonText } from './sqs-message-text';

/** A receipt this queue did not hand out. */
export { InvalidReceiptError };

/** A queue message body that is not a grid message (someone else wrote to the queue). */
export class MalformedQueueMessageError extends HtcGridError {}

export interface SqsTaskQueueOptions {
  /** Queue URLs indexed by priority level, lowest first. */
  readonly queueUrls: readonly string[];
  /** @default - a new client from env; destroyed in `close()` only then */
  readonly client?: SQSClient;
  /** @default - a silent logger */
  readonly logger?: Logger;
  readonly retry?: RetryPolicy;
  /**
   * A higher priority level found empty is polled again only after this long (see the class comment), so an agent
   * does not spend one request per empty level on every receive. @default 1000
   */
  readonly emptyLevelRecheckMs?: number;
  /** Clock, for tests. @default Date.now */
  readonly now?: () => number;
}

/** SQS caps: 10 entries per batch call, visibility at most 12 hours, long poll at most 20 s. */
const SQS_BATCH = 10;
const MAX_VISIBILITY_SEC = 12 * 3600;
const MAX_WAIT_SEC = 20;

/** Entry errors that mean the receipt is gone for good (already deleted, or expired): nothing left to do. */
const GONE_CODES = new Set(['ReceiptHandleIsInvalid', 'InvalidParameterValue', 'MessageNotInflight']);

/**
 * `TaskQueue` on SQS standard queues, one per priority level (index = priority, clamped to the levels there are).
 *
 * Receive rule: levels are drained from the highest down with short polls (no wait), each asked for what is still
 * wanted, so higher-priority work is taken first. A level above the lowest that came back empty is skipped for
 * `emptyLevelRecheckMs` (1 s): new high-priority work waits at most that long, and a busy agent spends at most one
 * request per empty level per second rather than one per receive. Only when every level is empty does the receive
 * long-poll, and then on one level: the one that last had messages (at first the lowest, where default-priority
 * work goes). Work arriving meanwhile on another level waits at most that one poll (`waitMs`, ≤ 20 s), and the
 * next receive drains from the highest level again. An idle agent makes one request per `waitMs`.
 *
 * Receipt = `<level>:<receipt handle>`. Message body = the `QueueMessage` as compact JSON.
 */
export class SqsTaskQueue implements TaskQueue {
  private readonly client: SQSClient;
  private readonly ownsClient: boolean;
  private readonly queueUrls: readonly string[];
  private readonly logger: Logger;
  private readonly retryPolicy: RetryPolicy;
  private lastBusyLevel = 0;
  /** Per level: until when it counts as empty (epoch ms). */
  private readonly emptyUntil: number[];
  private readonly recheckMs: number;
  private readonly clock: () => number;
  private closed = false;

  constructor(options: SqsTaskQueueOptions) {
    if (options.queueUrls.length === 0) {
      throw new ConfigError(['SqsTaskQueue needs at least one queue URL (one per priority level, lowest first)']);
    }
    this.queueUrls = options.queueUrls;
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? newSqsClient();
    this.logger = options.logger ?? silentLogger();
    this.retryPolicy = options.retry ?? {};
    this.emptyUntil = options.queueUrls.map(() => 0);
    this.recheckMs = options.emptyLevelRecheckMs ?? 1000;
    this.clock = options.now ?? Date.now;
  }

  /** The level a priority goes to. */
  levelOf(priority: number): number {
    return Math.min(this.queueUrls.length - 1, Math.max(0, Math.floor(priority)));
  }

  async send(messages: readonly QueueMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const byLevel = new Map<number, QueueMessage[]>();
    for (const m of messages) {
      const level = this.levelOf(m.priority);
      const list = byLevel.get(level) ?? [];
      list.push(m);
      byLevel.set(level, list);
    }
    const batches: { level: number; messages: QueueMessage[] }[] = [];
    for (const [level, list] of byLevel) {
      this.emptyUntil[level] = 0;
      for (const group of chunk(list, SQS_BATCH)) batches.push({ level, messages: group });
    }
    await mapLimit(batches, 8, async ({ level, messages: group }) => {
      const entries = group.map((m, i) => ({ Id: String(i), MessageBody: encodeMessage(m) }));
      await this.batchWithRetry('SendMessageBatch', entries, async (pending) => {
        const out = await this.client.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrls[level], Entries: pending }),
        );
        return out.Failed ?? [];
      });
    });
  }

  async receive(max: number, options: ReceiveOptions): Promise<ReceivedMessage[]> {
    const want = Math.max(1, Math.min(SQS_BATCH, Math.floor(max)));
    const visibilitySec = toSeconds(options.visibilityMs, 0, MAX_VISIBILITY_SEC);
    const out: ReceivedMessage[] = [];
    const now = this.clock();
    for (let level = this.queueUrls.length - 1; level >= 0 && out.length < want; level--) {
      if (options.signal?.aborted) return out;
      if (level > 0 && (this.emptyUntil[level] ?? 0) > now) continue;
      const got = await this.receiveFrom(level, want - out.length, visibilitySec, 0, options.signal);
      if (got.length > 0) this.lastBusyLevel = level;
      else this.emptyUntil[level] = now + this.recheckMs;
      out.push(...got);
    }
    if (out.length > 0 || options.waitMs <= 0 || options.signal?.aborted) return out;
    const waitSec = toSeconds(options.waitMs, 1, MAX_WAIT_SEC);
    return this.receiveFrom(this.lastBusyLevel, want, visibilitySec, waitSec, options.signal);
  }

  async ack(receipts: readonly string[]): Promise<void> {
    await this.perLevel('DeleteMessageBatch', receipts, async (url, entries) => {
      const out = await this.client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: entries }));
      return out.Failed ?? [];
    });
  }

  async release(receipts: readonly string[], delayMs: number): Promise<void> {
    await this.changeVisibility(receipts, toSeconds(delayMs, 0, MAX_VISIBILITY_SEC));
  }

  async extend(receipts: readonly string[], visibilityMs: number): Promise<void> {
    await this.changeVisibility(receipts, toSeconds(visibilityMs, 0, MAX_VISIBILITY_SEC));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.destroy();
  }

  // --- helpers -------------------------------------------------------------------------------------------------

  private async receiveFrom(
    level: number,
    max: number,
    visibilitySec: number,
    waitSec: number,
    signal: AbortSignal | undefined,
  ): Promise<ReceivedMessage[]> {
    const url = this.queueUrls[level]!;
    let response;
    try {
      response = await withRetry(
        `SQS ReceiveMessage on ${url}`,
        () =>
          this.client.send(
            new ReceiveMessageCommand({
              QueueUrl: url,
              MaxNumberOfMessages: max,
              VisibilityTimeout: visibilitySec,
              WaitTimeSeconds: waitSec,
              MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
              // The deprecated name too: SQS accepts both, and emulators may know only this one.
              AttributeNames: ['All'],
            }),
            { abortSignal: signal },
          ),
        this.retryPolicy,
      );
    } catch (error) {
      // An aborted long poll is a normal way to stop receiving; SQS keeps anything it had not returned.
      if (signal?.aborted) return [];
      throw error;
    }
    const out: ReceivedMessage[] = [];
    for (const m of response.Messages ?? []) {
      if (m.ReceiptHandle === undefined) continue;
      try {
        const sentAt = Number(m.Attributes?.SentTimestamp);
        out.push({
          message: decodeMessage(m.Body ?? ''),
          receipt: `${level}:${m.ReceiptHandle}`,
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1'),
          ...(Number.isFinite(sentAt) && sentAt > 0 ? { sentAt } : {}),
        });
      } catch (error) {
        // Leave it: after maxReceiveCount receives SQS moves it to the dead-letter queue.
        this.logger.warn({ err: error, queue: url, messageId: m.MessageId }, 'skipping a malformed queue message');
      }
    }
    return out;
  }

  private async changeVisibility(receipts: readonly string[], visibilitySec: number): Promise<void> {
    await this.perLevel('ChangeMessageVisibilityBatch', receipts, async (url, entries) => {
      const out = await this.client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: url,
          Entries: entries.map((e) => ({ ...e, VisibilityTimeout: visibilitySec })),
        }),
      );
      return out.Failed ?? [];
    });
  }

  /** Groups receipts by level and runs `call` on batches of 10, retrying failed entries. */
  private async perLevel(
    what: string,
    receipts: readonly string[],
    call: (url: string, entries: { Id: string; ReceiptHandle: string }[]) => Promise<readonly BatchResultErrorEntry[]>,
  ): Promise<void> {
    if (receipts.length === 0) return;
    const byLevel = new Map<number, string[]>();
    for (const receipt of receipts) {
      const { level, handle } = this.parseReceipt(receipt);
      const list = byLevel.get(level) ?? [];
      list.push(handle);
      byLevel.set(level, list);
    }
    const batches: { level: number; handles: string[] }[] = [];
    for (const [level, handles] of byLevel) {
      for (const group of chunk(handles, SQS_BATCH)) batches.push({ level, handles: group });
    }
    await mapLimit(batches, 8, async ({ level, handles }) => {
      const url = this.queueUrls[level]!;
      const entries = handles.map((h, i) => ({ Id: String(i), ReceiptHandle: h }));
      await this.batchWithRetry(what, entries, (pending) => call(url, pending));
    });
  }

  /** Runs a batch call; retries its failed entries (sender faults that mean "gone" are dropped) with back-off. */
  private async batchWithRetry<E extends { Id: string }>(
    what: string,
    entries: E[],
    call: (pending: E[]) => Promise<readonly BatchResultErrorEntry[]>,
  ): Promise<void> {
    let pending = entries;
    const maxRounds = this.retryPolicy.maxAttempts ?? 8;
    for (let round = 1; pending.length > 0; round++) {
      const failed = await withRetry(`SQS ${what}`, () => call(pending), this.retryPolicy);
      const retryIds = new Set<string>();
      for (const f of failed) {
        if (f.SenderFault && GONE_CODES.has(f.Code ?? '')) {
          this.logger.debug({ what, code: f.Code }, 'queue entry already gone');
          continue;
        }
        if (f.SenderFault) {
          throw new HtcGridError(`SQS ${what} rejected an entry: ${f.Code ?? 'unknown'}: ${f.Message ?? ''}`);
        }
        if (f.Id !== undefined) retryIds.add(f.Id);
      }
      pending = pending.filter((e) => retryIds.has(e.Id));
      if (pending.length === 0) return;
      if (round >= maxRounds) {
        throw new HtcGridError(`SQS ${what}: ${pending.length} entries still failing after ${round} tries`);
      }
      const delay = backoffDelay(round, this.retryPolicy);
      await (this.retryPolicy.sleep ?? sleep)(delay);
    }
  }

  private parseReceipt(receipt: string): { level: number; handle: string } {
    const colon = receipt.indexOf(':');
    const level = Number(receipt.slice(0, colon));
    if (colon <= 0 || !Number.isInteger(level) || level < 0 || level >= this.queueUrls.length) {
      throw new InvalidReceiptError(receipt);
    }
    return { level, handle: receipt.slice(colon + 1) };
  }
}

function toSeconds(ms: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.ceil(ms / 1000)));
}

/** A task's message body; its ids are the client's text (a named session), so escaped where SQS would refuse them. */
export function encodeMessage(m: QueueMessage): string {
  return sqsJsonText(
    JSON.stringify({
      taskId: m.taskId,
      sessionId: m.sessionId,
      attempt: m.attempt,
      priority: m.priority,
      ...(m.leaseExpiredBefore === undefined ? {} : { leaseExpiredBefore: m.leaseExpiredBefore }),
    }),
  );
}

export function decodeMessage(body: string): QueueMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (error) {
    throw new MalformedQueueMessageError('queue message body is not JSON', { cause: error });
  }
  const m = raw as Partial<Record<keyof QueueMessage, unknown>>;
  if (
    typeof m.taskId !== 'string' ||
    typeof m.sessionId !== 'string' ||
    typeof m.attempt !== 'number' ||
    typeof m.priority !== 'number' ||
    (m.leaseExpiredBefore !== undefined && typeof m.leaseExpiredBefore !== 'number')
  ) {
    throw new MalformedQueueMessageError(`queue message body is not a grid task message: ${body.slice(0, 200)}`);
  }
  const message = { taskId: m.taskId, sessionId: m.sessionId, attempt: m.attempt, priority: m.priority };
  return m.leaseExpiredBefore === undefined ? message : { ...message, leaseExpiredBefore: m.leaseExpiredBefore };
}
