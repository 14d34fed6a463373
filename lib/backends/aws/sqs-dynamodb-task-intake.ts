// The AWS grid's task intake: SQS receives, DynamoDB claims, and a claimed task's message kept as its guard until its
// lease is extended (DynamoDB's lease index holds a task only from its first extension, which saves a write per task).
import {
  EARLY_MESSAGE_GRACE_MS,
  EARLY_MESSAGE_RECEIVES,
  planLeaseExpiry,
  type Completion,
  type TaskRecord,
} from '../../core';
import { silentLogger, type Logger } from '../../logging';
import { MicroBatcher } from '../../micro-batcher';
import { sleep } from '../../timing';
import {
  reapMessageOf,
  type ClaimRequest,
  type CompletionResult,
  type IntakeOptions,
  type ReceivedMessage,
  type TaskIntake,
  type TaskQueue,
} from '../../ports';
import type { MessageClaimOutcome } from './dynamodb-task-table';

/** What the intake needs of the table: `DynamoDbTaskTable`'s message claims, and completions to reap. */
export interface MessageClaimTable {
  claimMessages(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<MessageClaimOutcome[]>;
  complete(completions: readonly Completion[]): Promise<CompletionResult[]>;
}

export interface SqsDynamoDbTaskIntakeOptions {
  readonly queue: TaskQueue;
  readonly table: MessageClaimTable;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /** Clock of the claims (lease start and expiry) and of messages' ages. @default Date.now */
  readonly now?: () => number;
  /** @default - a real timer */
  readonly sleep?: (ms: number) => Promise<unknown>;
}

/** SQS deletes at most 10 messages a request. */
const ACK_BATCH = 10;
/** A message deleted a little later only risks being received again, which its claim then drops. */
const ACK_DELAY_MS = 1_000;
/**
 * An early message (see `EARLY_MESSAGE_GRACE_MS`) is claimed again after these pauses while its task is not found,
 * before it is released: its task's write is usually landing within milliseconds.
 */
const EARLY_RECLAIM_PAUSES_MS = [20, 40, 80];

/**
 * `TaskIntake` on an SQS queue and a DynamoDB task table (see the port for the message guard).
 *
 * - Claimed: the message stays in flight (not deleted) until `leaseExtended` or `settle(…, 'done')`; with
 *   `settle(…, 'abandoned')` it is forgotten, to reappear after its visibility timeout. A claim whose write landed but
 *   whose answer was lost is claimed too, by this receive (its retry, or the fence that settles a claim no try of
 *   which was answered), or at its message's next receive when even the fence failed (see
 *   `DynamoDbTaskTable.claimMessages`), never twice.
 * - Busy: released after `busyDelayMs`, or, for a live lease only the message guards, just after that lease would
 *   expire (each early receive counts towards the dead-letter queue's limit), at most one lease term ahead. Neither
 *   lasts while the attempt runs on: a duplicate of the message it was claimed from is stale once its lease was
 *   extended, and a reap's message of the running attempt (`QueueMessage.leaseExpiredBefore`) once a late heartbeat
 *   moved the lease past the reap's time; only a holder's own retry message is busy, until its write lands.
 * - Expired (the message of an attempt whose holder died before extending its lease, which no reaper sees): reaped
 *   here as the reaper would (re-queued or failed), then the message deleted.
 * - Missing, and younger than `EARLY_MESSAGE_GRACE_MS` by the queue's send time or offered fewer than
 *   `EARLY_MESSAGE_RECEIVES` times (sent beside its task's write, which may still be landing, see
 *   `TaskTable.createSealedSession`): claimed again after 20, 40 and 80 ms, then, still missing, released for 1 s,
 *   2 s, 4 s… by its receive count (a few receives in all, inside the dead-letter queue's limit, see `TaskQueues`).
 *   The batch's other tasks are handed over before those pauses (`IntakeOptions.onClaimed`); a claim that fails
 *   during them releases its messages.
 * - Stale, and missing once past both (or of unknown age): deleted.
 * - Failed (the claim's write failed after its retries and did not land, fenced off for good, or its outcome is still
 *   unknown: see `DynamoDbTaskTable.claimMessages`): released, never deleted, for 1 s, 2 s, 4 s… by its receive count, as an early message, while the batch's claimed tasks are
 *   handed over; one warning tells how many and the first error. When every claim of a batch failed (the table is
 *   down), the call rejects with the first error instead, so the agent backs off, and the messages reappear after
 *   their visibility timeout.
 * Every delete goes through one batcher, ten messages a request.
 */
export class SqsDynamoDbTaskIntake implements TaskIntake {
  private readonly queue: TaskQueue;
  private readonly table: MessageClaimTable;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<unknown>;
  /** Receipts of the messages still guarding claimed tasks, by task and attempt. */
  private readonly guards = new Map<string, string>();
  private readonly acks: MicroBatcher<string>;

  constructor(options: SqsDynamoDbTaskIntakeOptions) {
    this.queue = options.queue;
    this.table = options.table;
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleep;
    this.acks = new MicroBatcher<string>({
      maxBatch: ACK_BATCH,
      maxDelayMs: ACK_DELAY_MS,
      write: (receipts) => this.queue.ack(receipts),
      // Not lost: the messages reappear after their visibility timeout and their claims drop them.
      onError: (err, receipts) => this.logger.warn({ err, messages: receipts.length }, 'acknowledging messages failed'),
    });
  }

  async receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    const messages = await this.queue.receive(max, options);
    if (messages.length === 0) return [];
    if (options.signal?.aborted) {
      // The agent stopped taking tasks while this receive waited: leave them to another agent at once.
      await this.release(
        messages.map((m) => m.receipt),
        0,
      );
      return [];
    }
    const now = this.now();
    const outcomes = await this.claim(messages, options, now);
    const failed = outcomes.filter((o) => o.status === 'failed');
    // Nothing was claimed (no claim is lost by rejecting): the agent backs off as on any service failure.
    if (failed.length === outcomes.length) throw failed[0]!.error;
    const early = messages.flatMap((m, i) => (this.isEarlyMissing(outcomes[i]!, m, now) ? [i] : []));
    if (early.length === 0) return this.settleClaims(messages, outcomes, options, now);
    // The batch's other messages are settled, and their tasks handed over, before the pauses for the early ones.
    const rest = messages.flatMap((_, i) => (early.includes(i) ? [] : [i]));
    const claimed = await this.settleClaims(
      rest.map((i) => messages[i]!),
      rest.map((i) => outcomes[i]!),
      options,
      now,
    );
    const handOver = options.onClaimed;
    if (handOver && claimed.length > 0) handOver(claimed.splice(0));
    const late = await this.claimEarly(
      early.map((i) => messages[i]!),
      options,
    );
    return [...claimed, ...late];
  }

  private claim(messages: readonly ReceivedMessage[], options: IntakeOptions, now: number) {
    return this.table.claimMessages(
      messages.map(({ message: m }) => ({
        taskId: m.taskId,
        attempt: m.attempt,
        ...(m.leaseExpiredBefore === undefined ? {} : { leaseExpiredBefore: m.leaseExpiredBefore }),
      })),
      { owner: options.owner, expiresAt: now + options.leaseMs },
      now,
    );
  }

  /**
   * Claims early messages (their tasks missing) again after each of `EARLY_RECLAIM_PAUSES_MS` while their tasks stay
   * missing, then settles them. A call that rejects ends the pauses: its messages are released as early ones (their
   * tasks may exist by now, so they are never deleted for it); a message whose own claim failed is released so too.
   */
  private async claimEarly(messages: readonly ReceivedMessage[], options: IntakeOptions): Promise<TaskRecord[]> {
    const outcomes: MessageClaimOutcome[] = messages.map((m) => ({ taskId: m.message.taskId, status: 'missing' }));
    let settling = messages.map((_, i) => i);
    let now = this.now();
    for (const pauseMs of EARLY_RECLAIM_PAUSES_MS) {
      const waiting = settling.filter((i) => this.isEarlyMissing(outcomes[i]!, messages[i]!, now));
      if (waiting.length === 0) break;
      await this.sleep(pauseMs);
      now = this.now();
      try {
        const again = await this.claim(
          waiting.map((i) => messages[i]!),
          options,
          now,
        );
        waiting.forEach((i, k) => (outcomes[i] = again[k]!));
      } catch (err) {
        this.logger.warn({ err, messages: waiting.length }, 'claiming early messages again failed; releasing them');
        await Promise.all(
          [
            ...groupBy(
              waiting.map((i) => messages[i]!),
              earlyDelayMs,
            ),
          ].map(([delayMs, group]) =>
            this.release(
              group.map((m) => m.receipt),
              delayMs,
            ),
          ),
        );
        settling = settling.filter((i) => !waiting.includes(i));
        break;
      }
    }
    return this.settleClaims(
      settling.map((i) => messages[i]!),
      settling.map((i) => outcomes[i]!),
      options,
      now,
    );
  }

  /**
   * A message whose task is missing and may still be being written (see `EARLY_MESSAGE_GRACE_MS`): younger than the
   * grace by the queue's send time and this intake's clock, or offered fewer than `EARLY_MESSAGE_RECEIVES` times (the
   * queue's own timing: a clock ahead of the queue's cannot drop it early).
   */
  private isEarlyMissing(outcome: MessageClaimOutcome, message: ReceivedMessage, now: number): boolean {
    if (outcome.status !== 'missing' || message.sentAt === undefined) return false;
    return message.receiveCount < EARLY_MESSAGE_RECEIVES || now - message.sentAt < EARLY_MESSAGE_GRACE_MS;
  }

  leaseExtended(task: TaskRecord): void {
    this.settle(task, 'done');
  }

  settle(task: TaskRecord, how: 'done' | 'abandoned'): void {
    const key = guardKey(task);
    const receipt = this.guards.get(key);
    if (receipt === undefined) return;
    this.guards.delete(key);
    if (how === 'done') this.acks.add(receipt);
  }

  drain(): Promise<void> {
    return this.acks.drain();
  }

  /** Keeps the claimed messages as guards, settles the others by their outcome; returns the claimed tasks. */
  private async settleClaims(
    messages: readonly ReceivedMessage[],
    outcomes: readonly MessageClaimOutcome[],
    options: IntakeOptions,
    now: number,
  ): Promise<TaskRecord[]> {
    const claimed: TaskRecord[] = [];
    const busy = new Map<number, string[]>();
    const expired: { task: TaskRecord; receipt: string }[] = [];
    const failed: unknown[] = [];
    outcomes.forEach((outcome, i) => {
      const { receipt } = messages[i]!;
      if (outcome.status === 'failed' || this.isEarlyMissing(outcome, messages[i]!, now)) {
        // A failed claim's task may exist, claimable next time: its message comes back soon, never deleted.
        if (outcome.status === 'failed') failed.push(outcome.error);
        const delayMs = earlyDelayMs(messages[i]!);
        busy.set(delayMs, [...(busy.get(delayMs) ?? []), receipt]);
      } else if (outcome.status === 'claimed') {
        this.guards.set(guardKey(outcome.task), receipt);
        claimed.push(outcome.task);
      } else if (outcome.status === 'busy') {
        const delayMs = busyDelayMs(options, 'retryAfterMs' in outcome ? outcome.retryAfterMs : undefined);
        busy.set(delayMs, [...(busy.get(delayMs) ?? []), receipt]);
      } else if (outcome.status === 'expired') {
        expired.push({ task: outcome.task, receipt });
      } else {
        this.acks.add(receipt);
      }
    });
    if (failed.length > 0) {
      this.logger.warn(
        { err: failed[0], messages: failed.length, claimed: claimed.length },
        'claiming tasks failed; releasing their messages',
      );
    }
    await Promise.all([
      ...[...busy].map(([delayMs, receipts]) => this.release(receipts, delayMs)),
      expired.length > 0 ? this.reap(expired, now) : undefined,
    ]);
    return claimed;
  }

  /**
   * Attempts whose holder died before their lease was ever extended, so no reaper sees them: this intake, holding
   * their message, does the reaper's job (re-queue or fail), then deletes the message. On failure it reappears.
   */
  private async reap(expired: readonly { task: TaskRecord; receipt: string }[], now: number): Promise<void> {
    try {
      const plans = expired.map(({ task }) => ({ task, ...planLeaseExpiry(task, now) }));
      const requeue = plans.filter((p) => p.requeue).map((p) => reapMessageOf(p.task, now));
      if (requeue.length > 0) await this.queue.send(requeue);
      const results = await this.table.complete(plans.map((p) => p.completion));
      for (const { receipt } of expired) this.acks.add(receipt);
      const recorded = results.filter((r) => r.status === 'recorded').length;
      this.logger.info(
        { requeued: requeue.length, recorded, tasks: expired.map((e) => e.task.taskId).slice(0, 20) },
        'reaped claims whose holder died before extending its lease',
      );
    } catch (err) {
      this.logger.warn({ err }, 'reaping expired claims failed; their messages will reappear');
    }
  }

  private async release(receipts: readonly string[], delayMs: number): Promise<void> {
    try {
      await this.queue.release(receipts, delayMs);
    } catch (err) {
      this.logger.warn({ err }, 'releasing messages failed; they reappear after their visibility timeout');
    }
  }
}

/**
 * How long a busy message stays away: as the table says (a lease only the message guards: until it would expire),
 * at most one lease term (a clock running ahead must not park it longer), else `busyDelayMs`; in whole seconds
 * (SQS's unit), so messages released together share one request.
 */
function busyDelayMs(options: IntakeOptions, retryAfterMs: number | undefined): number {
  const base = options.busyDelayMs;
  const delay = retryAfterMs === undefined ? base : Math.min(Math.max(retryAfterMs, base), options.leaseMs + 1_000);
  return Math.ceil(delay / 1_000) * 1_000;
}

/** How long an early message stays away: 1 s, 2 s, 4 s, then 8 s by its receive count. */
function earlyDelayMs(message: ReceivedMessage): number {
  return 1_000 * 2 ** Math.min(Math.max(message.receiveCount - 1, 0), 3);
}

function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item]);
  return groups;
}

function guardKey(task: TaskRecord): string {
  return `${task.taskId}#${task.attempt}`;
}
