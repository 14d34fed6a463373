// The AWS grid's task intake: SQS receives, DynamoDB claims, and a claimed task's message kept as its guard until its
// lease is extended (DynamoDB's lease index holds a task only from its first extension, which saves a write per task).
import {
  EARLY_MESSAGE_GRACE_MS,
  EARLY_MESSAGE_RECEIVES,
  planLeaseExpiry,
  type Completion,
  type TaskRecord,
} from '../../core';
import { HtcGridError, TransientServiceError } from '../../core/errors';
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
import type { ClaimWithdrawal, MessageClaimOutcome, UnsettledClaim } from './dynamodb-task-table';

/**
 * What the intake needs of the table: `DynamoDbTaskTable`'s message claims, the withdrawal of claims left unsettled,
 * and completions to reap.
 */
export interface MessageClaimTable {
  claimMessages(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<MessageClaimOutcome[]>;
  withdrawClaims(claims: readonly UnsettledClaim[]): Promise<ClaimWithdrawal[]>;
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
  /**
   * Unsettled claims (see `DynamoDbTaskTable.claimMessages`) whose messages this intake may hold while it withdraws
   * them. At this many, a receive first tries to withdraw them all again, and rejects without receiving while they
   * stay unanswered (DynamoDB is failing: the agent backs off), so none is ever dropped unsettled; below it, a receive
   * takes no more messages than there is room for.
   * @default 1000
   */
  readonly maxUnsettledClaims?: number;
  /**
   * How long a held message is kept in flight while its claim's withdrawal goes unanswered: after it, the message is
   * released for any agent (which reaps a landed try once its lease expired: an attempt counted, as for an agent that
   * died). Without a bound, an agent that reaches SQS but not DynamoDB would keep up to `maxUnsettledClaims` tasks
   * from every healthy agent for as long as it runs.
   * @default 120000 (2 minutes)
   */
  readonly maxClaimHoldMs?: number;
}

/** A claim left unsettled whose message this intake holds in flight until the claim is withdrawn. */
interface HeldClaim {
  readonly claim: UnsettledClaim;
  /** Withdrawals tried and left unanswered. */
  tries: number;
  /** When to try the next withdrawal (this intake's clock). */
  dueAt: number;
  /** The visibility timeout its message was received with: extended by as much while held. */
  readonly visibilityMs: number;
  /** When this intake started holding a message of this claim (its clock): held until `maxClaimHoldMs` after. */
  readonly since: number;
}

const DEFAULT_MAX_UNSETTLED_CLAIMS = 1_000;
const DEFAULT_MAX_CLAIM_HOLD_MS = 120_000;
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
 *   which was answered: see `DynamoDbTaskTable.claimMessages`), never twice.
 * - Unsettled (neither the claim nor its fence was answered: the claim may have landed, or a try of it may land
 *   later): the message is held in flight, neither released nor deleted, and the claim withdrawn in the background
 *   (`DynamoDbTaskTable.withdrawClaims`: the task put back pending at its attempt behind the claim's fence, a landed
 *   try undone) 1 s later, then 2, 4, 8 s apart while unanswered; once withdrawn (or moot), the message is released at
 *   once for any agent. The task is never handed over by it (no run twice) and never left pending without its
 *   message. While held, the message is kept in flight on a timer of its own (`keepHeldInFlight`: extended by its
 *   visibility timeout at once, then every third of it), whatever DynamoDB does; another message of the same task
 *   and attempt that this intake receives meanwhile and finds busy or expired (under the landed try, or the same
 *   message back under a new receipt) brings the withdrawal forward instead of being reaped, and is held with the
 *   claim (one withdrawal per claim, all its receipts released when it settles). A message is held at most
 *   `maxClaimHoldMs` (then released with a warning: an agent that reaches SQS but not DynamoDB keeps no task from the
 *   healthy agents for longer). `drain` stops the extensions, tries every held claim once more and releases the
 *   messages of those still unanswered at once. At most `maxUnsettledClaims` are held (then receives wait on them,
 *   see there). Released by a drain or at the hold's end (DynamoDB still failing), or left by a process that dies
 *   holding it, or if SQS refuses the extensions for a whole visibility timeout, the message reaches another agent
 *   and a landed try is reaped by its receiver once
 *   its lease expired, as for any claim of an agent that died (an attempt counted; with `maxAttempts` 1, failed
 *   without running); the withdrawal, conditional on the claim's nonce, never undoes another claim, and a reap it
 *   overtakes is refused, that message released for its next receive (see Expired).
 * - Busy: released after `busyDelayMs`, or, for a live lease only the message guards, just after that lease would
 *   expire (each early receive counts towards the dead-letter queue's limit), at most one lease term ahead. Neither
 *   lasts while the attempt runs on: a duplicate of the message it was claimed from is stale once its lease was
 *   extended, and a reap's message of the running attempt (`QueueMessage.leaseExpiredBefore`) once a late heartbeat
 *   moved the lease past the reap's time; only a holder's own retry message is busy, until its write lands.
 * - Expired (the message of an attempt whose holder died before extending its lease, which no reaper sees): reaped
 *   here as the reaper would (re-queued or failed), then the message deleted once the reap's completion was recorded;
 *   a reap refused (the attempt moved on meanwhile, e.g. a withdrawal put the task back pending) releases the message
 *   at once instead, for its next receive to classify.
 * - Missing, and younger than `EARLY_MESSAGE_GRACE_MS` by the queue's send time or offered fewer than
 *   `EARLY_MESSAGE_RECEIVES` times (sent beside its task's write, which may still be landing, see
 *   `TaskTable.createSealedSession`): claimed again after 20, 40 and 80 ms, then, still missing, released for 1 s,
 *   2 s, 4 s… by its receive count (a few receives in all, inside the dead-letter queue's limit, see `TaskQueues`).
 *   The batch's other tasks are handed over before those pauses (`IntakeOptions.onClaimed`); a claim that fails
 *   during them releases its messages.
 * - Stale, and missing once past both (or of unknown age): deleted.
 * - Failed (the claim's write failed after its retries and did not land, or was fenced off for good: see
 *   `DynamoDbTaskTable.claimMessages`): released, never deleted, for 1 s, 2 s, 4 s… by its receive count, as an early
 *   message, while the batch's claimed tasks are handed over; one warning tells how many and the first error. When no
 *   claim of a batch succeeded (every one failed or is unsettled), the call rejects with the first error instead, so
 *   the agent backs off; the failed claims' messages received for the first time are released at once (visibility 0,
 *   one request for ten) for any agent, and the others wait out their visibility timeout: a table down for long
 *   spends one receive of each message early towards the dead-letter queue's limit, then one a visibility timeout
 *   (the quick return of every failed batch spent three within seconds, bringing the dead-letter queue minutes
 *   nearer; nothing brings a message back from it).
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
  /** Unsettled claims whose messages this intake holds, by receipt (see the class comment). */
  private readonly held = new Map<string, HeldClaim>();
  private readonly maxUnsettled: number;
  private readonly maxHoldMs: number;
  private withdrawTimer: NodeJS.Timeout | undefined;
  /** The withdrawal round under way, if any: rounds run one at a time. */
  private withdrawing: Promise<void> | undefined;
  /** Set by `drain` (the agent stopped): no background round is scheduled until the next receive. */
  private resting = false;
  /** Set by `close`: no background round or extension any more, and no receive. */
  private closed = false;
  /** The timer keeping held messages in flight (see `keepHeldInFlight`). */
  private keepTimer: NodeJS.Timeout | undefined;
  /** The extension of held messages under way, if any: a release of one waits for it (see `withdrawDue`). */
  private extending: Promise<void> = Promise.resolve();

  constructor(options: SqsDynamoDbTaskIntakeOptions) {
    this.queue = options.queue;
    this.table = options.table;
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleep;
    this.maxUnsettled = options.maxUnsettledClaims ?? DEFAULT_MAX_UNSETTLED_CLAIMS;
    if (!Number.isSafeInteger(this.maxUnsettled) || this.maxUnsettled < 1) {
      throw new HtcGridError(
        `SqsDynamoDbTaskIntake: maxUnsettledClaims must be a whole number of at least 1, got ` +
          `${String(options.maxUnsettledClaims)}; leave it out for the default ${DEFAULT_MAX_UNSETTLED_CLAIMS}`,
      );
    }
    this.maxHoldMs = options.maxClaimHoldMs ?? DEFAULT_MAX_CLAIM_HOLD_MS;
    if (!Number.isFinite(this.maxHoldMs) || this.maxHoldMs < 0) {
      throw new HtcGridError(
        `SqsDynamoDbTaskIntake: maxClaimHoldMs must be a number of milliseconds ≥ 0, got ` +
          `${String(options.maxClaimHoldMs)}; leave it out for the default ${DEFAULT_MAX_CLAIM_HOLD_MS}`,
      );
    }
    this.acks = new MicroBatcher<string>({
      maxBatch: ACK_BATCH,
      maxDelayMs: ACK_DELAY_MS,
      write: (receipts) => this.queue.ack(receipts),
      // Not lost: the messages reappear after their visibility timeout and their claims drop them.
      onError: (err, receipts) => this.logger.warn({ err, messages: receipts.length }, 'acknowledging messages failed'),
    });
  }

  async receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    if (this.closed) {
      throw new HtcGridError('SqsDynamoDbTaskIntake: receiveAndClaim after close; open the backends again to receive');
    }
    if (this.resting) {
      this.resting = false;
      this.scheduleWithdrawals();
      this.keepHeldInFlight();
    }
    if (this.held.size >= this.maxUnsettled) {
      await untilAborted(this.withdrawDue(Infinity), options.signal);
      if (this.held.size >= this.maxUnsettled) {
        throw new TransientServiceError(
          `${this.held.size} claims whose outcome DynamoDB has not answered wait to be withdrawn ` +
            `(maxUnsettledClaims ${this.maxUnsettled}); receiving no more until they are`,
        );
      }
    }
    // No more than the claims it could still hold, should every one of them be left unsettled.
    const messages = await this.queue.receive(Math.min(max, this.maxUnsettled - this.held.size), options);
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
    const failed = outcomes.flatMap((o) => (o.status === 'failed' || o.status === 'unsettled' ? [o] : []));
    if (failed.length === outcomes.length) {
      // Nothing was claimed (no claim is lost by rejecting): the agent backs off as on any service failure, and the
      // messages go to other agents now rather than after their visibility timeout (see the class comment).
      await this.settleFailedBatch(messages, outcomes, options);
      throw failed[0]!.error;
    }
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

  /**
   * Stops the background rounds and the extensions of held messages, tries every held unsettled claim's withdrawal
   * once more (see the class comment) until `signal` aborts (the agent's grace ended: the round goes on unawaited),
   * releases the messages of those still unanswered at once (not left in flight for a visibility timeout: another
   * agent's claim carries another nonce, and a landed try is reaped once its lease expired, as it would be then), then
   * writes the deletes.
   */
  async drain(signal?: AbortSignal): Promise<void> {
    this.rest();
    await untilAborted(this.withdrawDue(Infinity), signal);
    await untilAborted(this.letGo([...this.held.keys()]), signal);
    return this.acks.drain();
  }

  /**
   * Stops the background rounds and the extensions of held messages for good (`AwsBackends.close`), without another
   * try: held messages reappear after their visibility timeout. The next receive is refused.
   */
  close(): void {
    this.closed = true;
    this.rest();
  }

  private rest(): void {
    this.resting = true;
    clearTimeout(this.keepTimer);
    this.keepTimer = undefined;
    clearTimeout(this.withdrawTimer);
    this.withdrawTimer = undefined;
  }

  /**
   * A batch none of whose claims succeeded: unsettled claims' messages are held until withdrawn, failed ones are
   * released at once on their first receive, later ones left to their visibility timeout (see the class comment).
   */
  private async settleFailedBatch(
    messages: readonly ReceivedMessage[],
    outcomes: readonly MessageClaimOutcome[],
    options: IntakeOptions,
  ): Promise<void> {
    const release: string[] = [];
    const hold: string[] = [];
    outcomes.forEach((outcome, i) => {
      const message = messages[i]!;
      if (outcome.status === 'unsettled') {
        this.holdUnsettled(message.receipt, outcome.claim, options.visibilityMs);
        hold.push(message.receipt);
      } else if (message.receiveCount <= 1) release.push(message.receipt);
    });
    await Promise.all([
      release.length > 0 ? this.release(release, 0) : undefined,
      hold.length > 0 ? this.extendHeld(hold) : undefined,
    ]);
  }

  /** Holds an unsettled claim's message in flight until the claim is withdrawn (see the class comment). */
  private holdUnsettled(receipt: string, claim: UnsettledClaim, visibilityMs: number): void {
    const now = this.now();
    this.held.set(receipt, { claim, tries: 0, dueAt: now + withdrawDelayMs(0), visibilityMs, since: now });
    this.scheduleWithdrawals();
    this.keepHeldInFlight();
  }

  /**
   * The held claim of `message`'s task and attempt, if this intake holds one: a claim of another message of it that
   * comes back busy or expired is (or may be) that claim's landed try, which is withdrawn, never reaped.
   */
  private heldClaimOf(message: ReceivedMessage): HeldClaim | undefined {
    const { taskId, attempt } = message.message;
    for (const held of this.held.values()) {
      if (held.claim.taskId === taskId && held.claim.attempt === attempt) return held;
    }
    return undefined;
  }

  /**
   * Keeps held messages in flight while their claims wait to be withdrawn: every third of the shortest visibility
   * timeout among them, each is extended by its own (a message that reappeared would reach another agent, which finds
   * the task busy under the landed try's lease, never extended, and reaps it once it expired: an attempt counted).
   * Stopped by `drain` (and `close`), started again by the next receive.
   */
  private keepHeldInFlight(): void {
    if (this.keepTimer !== undefined || this.resting || this.closed || this.held.size === 0) return;
    const held = [...this.held.values()];
    // Every third of the shortest visibility timeout, or at the first hold's end if sooner (else a hold could run a
    // third of a visibility timeout past `maxClaimHoldMs`).
    const periodMs = Math.max(
      0,
      Math.min(
        Math.min(...held.map((h) => h.visibilityMs)) / 3,
        Math.min(...held.map((h) => h.since)) + this.maxHoldMs - this.now(),
      ),
    );
    this.keepTimer = setTimeout(() => {
      this.keepTimer = undefined;
      const expired = [...this.held].filter(([, held]) => this.now() - held.since >= this.maxHoldMs);
      if (expired.length > 0) {
        this.logger.warn(
          { messages: expired.length, heldMs: this.maxHoldMs },
          'DynamoDB has not answered the withdrawal of these unsettled claims for maxClaimHoldMs: releasing their ' +
            'messages to any agent (a landed try is reaped once its lease expired, an attempt counted)',
        );
      }
      void this.letGo(expired.map(([receipt]) => receipt))
        .then(() => this.extendHeld([...this.held.keys()]))
        .finally(() => this.keepHeldInFlight());
    }, periodMs);
    this.keepTimer.unref();
  }

  /** Extends the held messages among `receipts` by their visibility timeouts, one request per ten. Never rejects. */
  private extendHeld(receipts: readonly string[]): Promise<void> {
    const byVisibility = groupBy(
      receipts.filter((receipt) => this.held.has(receipt)),
      (receipt) => this.held.get(receipt)!.visibilityMs,
    );
    const extending = this.extending.then(() =>
      Promise.all(
        [...byVisibility].map(([visibilityMs, group]) =>
          this.queue
            .extend(group, visibilityMs)
            .catch((err: unknown) =>
              this.logger.warn({ err, messages: group.length }, 'keeping held messages in flight failed'),
            ),
        ),
      ).then(() => undefined),
    );
    this.extending = extending;
    return extending;
  }

  /**
   * Stops holding the messages of `receipts` (their claims no longer withdrawn by this intake) and releases them at
   * once, after any extension under way. Never rejects.
   */
  private async letGo(receipts: readonly string[]): Promise<void> {
    const gone = receipts.filter((receipt) => this.held.delete(receipt));
    if (gone.length === 0) return;
    await this.extending;
    await this.release(gone, 0);
  }

  /**
   * One try at withdrawing every held claim due by `dueBy` (`Infinity`: all of them), after the round under way:
   * withdrawn or moot, its message is released at once; unanswered, it is tried again later. Never rejects.
   */
  private withdrawDue(dueBy: number): Promise<void> {
    const round = async (): Promise<void> => {
      const due = [...this.held].filter(([, held]) => held.dueAt <= dueBy);
      if (due.length === 0) return;
      // One withdrawal per claim, however many of its messages are held (see `settleClaims`).
      const claims = [...new Map(due.map(([, held]) => [held.claim.token, held.claim])).values()];
      const answers = await this.table.withdrawClaims(claims).catch((err: unknown) => {
        this.logger.warn({ err, claims: claims.length }, 'withdrawing unsettled claims failed; trying later');
        return claims.map((): ClaimWithdrawal => 'unknown');
      });
      const byToken = new Map(claims.map((claim, i) => [claim.token, answers[i]]));
      for (const [, held] of due) {
        if (byToken.get(held.claim.token) !== 'unknown') continue;
        held.tries++;
        held.dueAt = this.now() + withdrawDelayMs(held.tries);
      }
      // Every receipt still held of a claim now settled, due in this round or not (another receipt of it may have
      // been held since with a later due time); one let go meanwhile (`letGo`: the hold's end, a drain cut short) was
      // released there already and is not released again.
      const settled = new Set([...byToken].filter(([, answer]) => answer !== 'unknown').map(([token]) => token));
      const release = [...this.held].filter(([, held]) => settled.has(held.claim.token)).map(([receipt]) => receipt);
      for (const receipt of release) this.held.delete(receipt);
      // After any extension sent before they left `held`: SQS must not see it after the release.
      await this.extending;
      if (release.length > 0) await this.release(release, 0);
    };
    const next: Promise<void> = (this.withdrawing ?? Promise.resolve())
      .then(round)
      .catch((err: unknown) => this.logger.warn({ err }, 'releasing withdrawn claims failed'))
      .finally(() => {
        if (this.withdrawing === next) this.withdrawing = undefined;
        this.scheduleWithdrawals();
      });
    this.withdrawing = next;
    return next;
  }

  /** Arms the timer for the next held claim due, unless a round is under way (it arms it when done) or at rest. */
  private scheduleWithdrawals(): void {
    clearTimeout(this.withdrawTimer);
    this.withdrawTimer = undefined;
    if (this.resting || this.closed || this.withdrawing !== undefined || this.held.size === 0) return;
    const dueAt = Math.min(...[...this.held.values()].map((held) => held.dueAt));
    this.withdrawTimer = setTimeout(
      () => {
        this.withdrawTimer = undefined;
        // Those due when it was armed, at least: a timer may fire a little before this clock reaches its time.
        void this.withdrawDue(Math.max(this.now(), dueAt));
      },
      Math.max(0, dueAt - this.now()),
    );
    this.withdrawTimer.unref();
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
    const hold: string[] = [];
    let withdrawNow = false;
    outcomes.forEach((outcome, i) => {
      const { receipt } = messages[i]!;
      const held =
        outcome.status === 'busy' || outcome.status === 'expired' ? this.heldClaimOf(messages[i]!) : undefined;
      if (outcome.status === 'unsettled') {
        failed.push(outcome.error);
        this.holdUnsettled(receipt, outcome.claim, options.visibilityMs);
        hold.push(receipt);
      } else if (held !== undefined) {
        // Another message of an attempt whose claim this intake holds unsettled (or the same message again, under a
        // new receipt, after its extensions failed for a visibility timeout): busy under (or expired past) that
        // claim's landed try, most likely. The withdrawal is tried now instead of reaping, and this message is held
        // with the claim until it is settled: released after a pause instead, each of its returns would spend a
        // receive of the task's only message while the withdrawals go unanswered, up to the dead-letter queue.
        held.dueAt = Math.min(held.dueAt, now);
        withdrawNow = true;
        this.held.set(receipt, { ...held, visibilityMs: options.visibilityMs });
        hold.push(receipt);
      } else if (outcome.status === 'failed' || this.isEarlyMissing(outcome, messages[i]!, now)) {
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
        'claiming tasks failed; releasing their messages (holding those of unsettled claims until withdrawn)',
      );
    }
    if (withdrawNow) this.scheduleWithdrawals();
    await Promise.all([
      ...[...busy].map(([delayMs, receipts]) => this.release(receipts, delayMs)),
      expired.length > 0 ? this.reap(expired, now) : undefined,
      hold.length > 0 ? this.extendHeld(hold) : undefined,
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
      // A reap refused (the attempt moved on since the claim saw it expired, e.g. withdrawn back to pending by the
      // claim's holder): the message may be the task's only one; released at once, its next receive classifies it.
      const unrecorded: string[] = [];
      expired.forEach(({ receipt }, i) =>
        results[i]?.status === 'recorded' ? this.acks.add(receipt) : unrecorded.push(receipt),
      );
      if (unrecorded.length > 0) await this.release(unrecorded, 0);
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

/** How long after its last unanswered try a held claim's withdrawal is tried again: 1 s, 2 s, 4 s, then 8 s. */
function withdrawDelayMs(tries: number): number {
  return 1_000 * 2 ** Math.min(tries, 3);
}

/** How long an early message stays away: 1 s, 2 s, 4 s, then 8 s by its receive count. */
function earlyDelayMs(message: ReceivedMessage): number {
  return 1_000 * 2 ** Math.min(Math.max(message.receiveCount - 1, 0), 3);
}

/** `work`, or less once `signal` aborts (then `work` goes on unawaited; it must never reject). */
function untilAborted(work: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return work;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    void work.then(done);
  });
}

function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item]);
  return groups;
}

function guardKey(task: TaskRecord): string {
  return `${task.taskId}#${task.attempt}`;
}
