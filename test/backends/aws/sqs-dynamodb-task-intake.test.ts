// The AWS intake's message guard against a fake queue and table (the emulators run the contract in aws-contracts):
// busy delays in whole seconds and capped at a lease term, expired claims reaped here, claimed messages kept until
// the lease is extended or the attempt settled, every delete batched.
import {
  SqsDynamoDbTaskIntake,
  type ClaimWithdrawal,
  type MessageClaimTable,
  type MessageClaimOutcome,
  type UnsettledClaim,
} from '../../../lib/backends/aws';
import { EARLY_MESSAGE_GRACE_MS, EARLY_MESSAGE_RECEIVES, type TaskRecord } from '../../../lib/core';
import type { ClaimRequest, IntakeOptions } from '../../../lib/ports';
import type { Logger } from '../../../lib/logging';
import { silentLogger } from '../../../lib/logging';
import { FakeQueue, FakeTable, messagesOf, pendingTask } from '../../support/fake-ports';
import { waitFor } from '../../support/local-grid';

const options: IntakeOptions = { waitMs: 0, visibilityMs: 60_000, owner: 'me', leaseMs: 30_000, busyDelayMs: 1_000 };

/**
 * Claims follow `claimAs` (default: claimed at attempt + 1); withdrawals answer `withdrawAs` (default: withdrawn) and
 * are recorded by task id; completions are recorded.
 */
class FakeClaimTable extends FakeTable implements MessageClaimTable {
  claimAs: (request: ClaimRequest) => MessageClaimOutcome | undefined = () => undefined;
  withdrawAs: (claim: UnsettledClaim) => ClaimWithdrawal = () => 'withdrawn';
  readonly withdrawals: string[][] = [];

  async withdrawClaims(claims: readonly UnsettledClaim[]): Promise<ClaimWithdrawal[]> {
    this.withdrawals.push(claims.map((c) => c.taskId));
    return claims.map((c) => this.withdrawAs(c));
  }

  async claimMessages(
    requests: readonly ClaimRequest[],
    lease: { owner: string; expiresAt: number },
    now: number,
  ): Promise<MessageClaimOutcome[]> {
    return requests.map((request) => {
      const scripted = this.claimAs(request);
      if (scripted) return scripted;
      const task: TaskRecord = {
        ...pendingTask(Number(request.taskId.split('_')[1])),
        state: 'running',
        attempt: request.attempt + 1,
        lease,
        startedAt: now,
      };
      return { taskId: request.taskId, status: 'claimed', task };
    });
  }
}

/** `count` pending tasks, one message each (`r0`, `r1`, …), received once. */
function setup(count: number) {
  const tasks = Array.from({ length: count }, (_, i) => pendingTask(i));
  const queue = new FakeQueue(messagesOf(tasks));
  const table = new FakeClaimTable();
  const intake = new SqsDynamoDbTaskIntake({ queue, table, now: () => 100_000 });
  return { queue, table, intake };
}

describe('SqsDynamoDbTaskIntake', () => {
  it('keeps a claimed message until the attempt is settled, then deletes it', async () => {
    const { queue, intake } = setup(1);

    const [task] = await intake.receiveAndClaim(10, options);
    await intake.drain();
    expect(queue.acked).toEqual([]);

    intake.settle(task!, 'done');
    await intake.drain();
    expect(queue.acked).toEqual([['r0']]);
  });

  it('deletes a claimed message once the lease was extended, and only once', async () => {
    const { queue, intake } = setup(1);
    const [task] = await intake.receiveAndClaim(10, options);

    intake.leaseExtended(task!);
    intake.settle(task!, 'done');
    await intake.drain();

    expect(queue.acked).toEqual([['r0']]);
  });

  it('leaves the message of an abandoned attempt in flight, to reappear and be reaped', async () => {
    const { queue, intake } = setup(1);
    const [task] = await intake.receiveAndClaim(10, options);

    intake.settle(task!, 'abandoned');
    intake.settle(task!, 'done');
    await intake.drain();

    expect(queue.acked).toEqual([]);
    expect(queue.released).toEqual([]);
  });

  it('deletes messages ten to a request', async () => {
    const { queue, intake } = setup(25);
    const tasks = await intake.receiveAndClaim(25, options);

    for (const task of tasks) intake.settle(task, 'done');
    await intake.drain();

    expect(queue.acked.map((batch) => batch.length)).toEqual([10, 10, 5]);
  });

  it('busy: released after busyDelayMs, or just after a lease only the message guards would expire, in whole seconds', async () => {
    const { queue, table, intake } = setup(2);
    table.claimAs = (r) =>
      r.taskId === 's_0'
        ? { taskId: r.taskId, status: 'busy' }
        : { taskId: r.taskId, status: 'busy', retryAfterMs: 5_500 };

    expect(await intake.receiveAndClaim(10, options)).toEqual([]);
    await intake.drain();

    expect(queue.released).toEqual(
      expect.arrayContaining([
        { receipts: ['r0'], delayMs: 1_000 },
        { receipts: ['r1'], delayMs: 6_000 },
      ]),
    );
    expect(queue.acked).toEqual([]);
  });

  it('busy: a delay beyond one lease term is capped at the lease term (a clock running ahead must not park it)', async () => {
    const { queue, table, intake } = setup(1);
    table.claimAs = (r) => ({ taskId: r.taskId, status: 'busy', retryAfterMs: 10 * 60_000 });

    await intake.receiveAndClaim(10, options);

    expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 31_000 }]);
  });

  it('expired: an attempt claimed from this message whose holder died unseen by the reaper is reaped here, then its message deleted', async () => {
    const dead: TaskRecord = {
      ...pendingTask(0),
      state: 'running',
      attempt: 1,
      lease: { owner: 'dead-agent', expiresAt: 1 },
      startedAt: 0,
    };
    const { queue, table, intake } = setup(1);
    table.claimAs = (r) => ({ taskId: r.taskId, status: 'expired', task: dead });

    expect(await intake.receiveAndClaim(10, options)).toEqual([]);
    await intake.drain();

    expect(table.completions).toEqual([
      expect.objectContaining({
        taskId: 's_0',
        guard: { attempt: 1, leaseExpiredBefore: 100_000 },
        outcome: expect.objectContaining({ kind: 'retry', reason: 'lease-expired' }),
      }),
    ]);
    // Marked with the reap's guard: should a late heartbeat win, its claims know it for a leftover (see classifyClaim).
    expect(queue.sent).toEqual([
      { taskId: 's_0', sessionId: 's', attempt: 1, priority: 0, leaseExpiredBefore: 100_000 },
    ]);
    expect(queue.acked).toEqual([['r0']]);
  });

  it('stale messages, and missing ones of unknown age, are deleted', async () => {
    const { queue, table, intake } = setup(2);
    table.claimAs = (r) => ({ taskId: r.taskId, status: r.taskId === 's_0' ? 'stale' : 'missing' });

    expect(await intake.receiveAndClaim(10, options)).toEqual([]);
    await intake.drain();

    expect(queue.acked).toEqual([['r0', 'r1']]);
  });

  it("failed: the claimed tasks are returned and a failed claim's message released (never deleted), by its receive count", async () => {
    const { queue, table, intake } = setup(3);
    const error = new Error('DynamoDB claim still failing after 8 tries');
    table.claimAs = (r) => (r.taskId === 's_1' ? { taskId: r.taskId, status: 'failed', error } : undefined);

    const claimed = await intake.receiveAndClaim(10, options);
    await intake.drain();

    expect(claimed.map((t) => t.taskId)).toEqual(['s_0', 's_2']);
    expect(queue.released).toEqual([{ receipts: ['r1'], delayMs: 1_000 }]);
    expect(queue.acked).toEqual([]);
  });

  it('failed: when every claim of the batch failed, the call rejects with the first error and releases the messages at once on their first receive only', async () => {
    const tasks = Array.from({ length: 3 }, (_, i) => pendingTask(i));
    const messages = messagesOf(tasks).map((m, i) => (i === 2 ? { ...m, receiveCount: 2 } : m));
    const queue = new FakeQueue(messages);
    const table = new FakeClaimTable();
    const intake = new SqsDynamoDbTaskIntake({ queue, table, now: () => 100_000 });
    table.claimAs = (r) => ({ taskId: r.taskId, status: 'failed', error: new Error(`down for ${r.taskId}`) });

    await expect(intake.receiveAndClaim(10, options)).rejects.toThrow('down for s_0');
    await intake.drain();

    // One request for the batch; the message offered before waits out its visibility timeout (the table may be down
    // for long: its receives towards the dead-letter queue are kept for when it is back).
    expect(queue.released).toEqual([{ receipts: ['r0', 'r1'], delayMs: 0 }]);
    expect(queue.acked).toEqual([]);
  });

  describe('unsettled (a claim whose fence was not answered either: it may have landed)', () => {
    const unsettled = (r: ClaimRequest): MessageClaimOutcome => ({
      taskId: r.taskId,
      status: 'unsettled',
      error: new Error(`no answer for ${r.taskId}`),
      claim: { taskId: r.taskId, attempt: r.attempt, owner: 'me', token: `t-${r.taskId}` },
    });

    it('its message is held in flight, neither released nor deleted, until the claim is withdrawn; then released at once', async () => {
      const { queue, table, intake } = setup(3);
      table.claimAs = (r) => (r.taskId === 's_1' ? unsettled(r) : undefined);

      const claimed = await intake.receiveAndClaim(10, options);

      expect(claimed.map((t) => t.taskId)).toEqual(['s_0', 's_2']);
      expect(queue.released).toEqual([]);
      expect(table.withdrawals).toEqual([]);
      // The background round (1 s on), or the drain's, withdraws it.
      await intake.drain();
      expect(table.withdrawals).toEqual([['s_1']]);
      expect(queue.released).toEqual([{ receipts: ['r1'], delayMs: 0 }]);
      expect(queue.acked).toEqual([]);
    });

    it('is withdrawn in the background a second after the receive, without another call', async () => {
      const { queue, table, intake } = setup(2);
      table.claimAs = (r) => (r.taskId === 's_1' ? unsettled(r) : undefined);

      await intake.receiveAndClaim(10, options);
      const deadline = Date.now() + 10_000;
      while (queue.released.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      expect(table.withdrawals).toEqual([['s_1']]);
      expect(queue.released).toEqual([{ receipts: ['r1'], delayMs: 0 }]);
    });

    it('a withdrawal left unanswered keeps the message held and is tried again; a moot one releases it too', async () => {
      const { queue, table, intake } = setup(2);
      table.claimAs = unsettled;
      table.withdrawAs = () => 'unknown';

      await expect(intake.receiveAndClaim(10, options)).rejects.toThrow('no answer for s_0');
      // The background round a second on finds no answer: both stay held.
      await waitFor(() => table.withdrawals.length === 1);
      expect(queue.released).toEqual([]);

      table.withdrawAs = (c) => (c.taskId === 's_0' ? 'withdrawn' : 'moot');
      // The next round, 2 s after the first.
      await waitFor(() => queue.released.length > 0);
      expect(table.withdrawals).toEqual([
        ['s_0', 's_1'],
        ['s_0', 's_1'],
      ]);
      expect(queue.released).toEqual([{ receipts: ['r0', 'r1'], delayMs: 0 }]);
      expect(queue.acked).toEqual([]);
      await intake.drain();
    });

    it('a drain tries the withdrawals once more and releases the messages of those still unanswered at once', async () => {
      const { queue, table, intake } = setup(2);
      table.claimAs = unsettled;
      table.withdrawAs = (c) => (c.taskId === 's_0' ? 'withdrawn' : 'unknown');

      await expect(intake.receiveAndClaim(10, options)).rejects.toThrow('no answer for s_0');
      await intake.drain();

      expect(table.withdrawals).toEqual([['s_0', 's_1']]);
      // Left in flight, s_1's message would wait out its visibility timeout before any agent could take it.
      expect(queue.released).toEqual([
        { receipts: ['r0'], delayMs: 0 },
        { receipts: ['r1'], delayMs: 0 },
      ]);
      // Nothing held any more: a later drain has nothing to withdraw.
      await intake.drain();
      expect(table.withdrawals).toHaveLength(1);
    });

    it('a message is held at most maxClaimHoldMs while its withdrawal goes unanswered, then released to any agent', async () => {
      const tasks = [pendingTask(0)];
      const queue = new FakeQueue(messagesOf(tasks));
      const table = new FakeClaimTable();
      let now = 100_000;
      const warnings: string[] = [];
      const logger = { ...silentLogger(), warn: (_: unknown, message: string) => warnings.push(message) };
      const intake = new SqsDynamoDbTaskIntake({
        queue,
        table,
        now: () => now,
        maxClaimHoldMs: 5_000,
        logger: logger as unknown as Logger,
      });
      table.claimAs = unsettled;
      table.withdrawAs = () => 'unknown';
      const extend = jest.spyOn(queue, 'extend');
      // Kept in flight every 100 ms (a third of the visibility timeout).
      const shortVisibility = { ...options, visibilityMs: 300 };

      await expect(intake.receiveAndClaim(1, shortVisibility)).rejects.toThrow('no answer for s_0');
      await waitFor(() => extend.mock.calls.length >= 3);
      expect(queue.released).toEqual([]);

      // DynamoDB still unanswered past the bound (an agent that reaches SQS only): let go.
      now += 5_000;
      await waitFor(() => queue.released.length > 0);
      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 0 }]);
      expect(warnings.some((w) => w.includes('maxClaimHoldMs'))).toBe(true);
      const extensions = extend.mock.calls.length;
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(extend.mock.calls.length).toBe(extensions);
      // No longer held: a drain neither withdraws nor releases it again.
      await intake.drain();
      expect(table.withdrawals).toEqual([]);
      expect(queue.released).toHaveLength(1);
    });

    it('another receipt of an attempt it holds unsettled, found busy or expired, is held with it, not released', async () => {
      const { queue, table, intake } = setup(1);
      table.claimAs = unsettled;
      table.withdrawAs = () => 'unknown';
      await expect(intake.receiveAndClaim(1, options)).rejects.toThrow('no answer for s_0');

      // The same message again under a new receipt (its extensions failed for a visibility timeout), now found
      // expired under the landed try: withdrawn, never reaped, and held, so no receive of it is spent meanwhile.
      queue.deliver(...messagesOf([pendingTask(0)]).map((m) => ({ ...m, receipt: 'r0-again', receiveCount: 2 })));
      table.claimAs = (r) => ({
        taskId: r.taskId,
        status: 'expired',
        task: { ...pendingTask(0), state: 'running', attempt: 1, lease: { owner: 'me', expiresAt: 1 } },
      });
      await intake.receiveAndClaim(1, options);
      expect(queue.released).toEqual([]);
      expect(table.completions).toEqual([]);

      // Once withdrawn (one withdrawal for the claim, however many of its messages are held), both are released.
      table.withdrawAs = () => 'withdrawn';
      await intake.drain();
      expect(table.withdrawals.at(-1)).toEqual(['s_0']);
      expect(queue.released).toEqual([{ receipts: ['r0', 'r0-again'], delayMs: 0 }]);
    });

    it('a message let go while its withdrawal is under way (a drain cut short) is released once, not again when it settles', async () => {
      const { queue, table, intake } = setup(1);
      table.claimAs = unsettled;
      table.withdrawAs = () => 'unknown';
      await expect(intake.receiveAndClaim(1, options)).rejects.toThrow('no answer for s_0');
      let answer!: (withdrawal: ClaimWithdrawal) => void;
      const answered = new Promise<ClaimWithdrawal>((resolve) => (answer = resolve));
      jest.spyOn(table, 'withdrawClaims').mockImplementation(async (claims) => {
        table.withdrawals.push(claims.map((c) => c.taskId));
        const withdrawal = await answered;
        return claims.map(() => withdrawal);
      });

      const grace = new AbortController();
      const drained = intake.drain(grace.signal);
      await waitFor(() => table.withdrawals.length === 1);
      grace.abort();
      await drained;
      await waitFor(() => queue.released.length === 1);
      answer('withdrawn');
      await new Promise((resolve) => setTimeout(resolve, 100));

      // A second release of the receipt could reach a message another agent received meanwhile.
      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 0 }]);
    });

    it('the hold ends at maxClaimHoldMs, not at the next extension after it', async () => {
      const queue = new FakeQueue(messagesOf([pendingTask(0)]));
      const table = new FakeClaimTable();
      const started = Date.now();
      const intake = new SqsDynamoDbTaskIntake({ queue, table, maxClaimHoldMs: 300 });
      table.claimAs = unsettled;
      table.withdrawAs = () => 'unknown';

      // Extensions every 20 s (a minute's visibility): the hold's end must not wait for the next one.
      await expect(intake.receiveAndClaim(1, options)).rejects.toThrow('no answer for s_0');
      await waitFor(() => queue.released.length > 0, 5_000, 'the release at the end of the hold');

      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 0 }]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      await intake.drain();
    });

    it('maxClaimHoldMs below 0 is refused, naming the option and the default', () => {
      expect(
        () => new SqsDynamoDbTaskIntake({ queue: new FakeQueue(), table: new FakeClaimTable(), maxClaimHoldMs: -1 }),
      ).toThrow(/maxClaimHoldMs must be a number of milliseconds ≥ 0, got -1; leave it out for the default 120000/);
    });

    it('at maxUnsettledClaims, a receive first tries the withdrawals again and rejects without receiving while they stay unanswered', async () => {
      const tasks = Array.from({ length: 2 }, (_, i) => pendingTask(i));
      const queue = new FakeQueue(messagesOf(tasks));
      const table = new FakeClaimTable();
      const intake = new SqsDynamoDbTaskIntake({ queue, table, now: () => 100_000, maxUnsettledClaims: 1 });
      table.claimAs = (r) => (r.taskId === 's_0' ? unsettled(r) : undefined);
      table.withdrawAs = () => 'unknown';
      const receive = jest.spyOn(queue, 'receive');

      await expect(intake.receiveAndClaim(1, options)).rejects.toThrow('no answer for s_0');
      await expect(intake.receiveAndClaim(1, options)).rejects.toThrow(/1 claims .*\(maxUnsettledClaims 1\)/);
      expect(receive).toHaveBeenCalledTimes(1);
      expect(table.withdrawals).toEqual([['s_0']]);

      table.withdrawAs = () => 'withdrawn';
      const claimed = await intake.receiveAndClaim(1, options);
      expect(claimed.map((t) => t.taskId)).toEqual(['s_1']);
      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 0 }]);
      await intake.drain();
    });

    it('maxUnsettledClaims below 1 is refused, naming the option and the default', () => {
      expect(
        () => new SqsDynamoDbTaskIntake({ queue: new FakeQueue(), table: new FakeClaimTable(), maxUnsettledClaims: 0 }),
      ).toThrow(/maxUnsettledClaims must be a whole number of at least 1, got 0; leave it out for the default 1000/);
    });
  });

  it('a receive that returns after the signal was aborted gives its messages back at once, unclaimed', async () => {
    const { queue, table, intake } = setup(2);
    const controller = new AbortController();
    const claimMessages = jest.spyOn(table, 'claimMessages');
    // The abort lands while the receive is under way.
    const receive = queue.receive.bind(queue);
    jest.spyOn(queue, 'receive').mockImplementation(async (max) => {
      controller.abort();
      return receive(max);
    });

    expect(await intake.receiveAndClaim(10, { ...options, signal: controller.signal })).toEqual([]);

    expect(queue.released).toEqual([{ receipts: ['r0', 'r1'], delayMs: 0 }]);
    expect(claimMessages).not.toHaveBeenCalled();
  });

  describe("a message whose task is missing, sent beside its task's write (EARLY_MESSAGE_GRACE_MS)", () => {
    const NOW = 100_000;

    /** One message sent `ageMs` before NOW and received `receiveCount` times; claims find no task until `written`. */
    function early(ageMs: number, receiveCount = 1, landsAtPause?: number) {
      const tasks = [pendingTask(0)];
      const queue = new FakeQueue(messagesOf(tasks).map((m) => ({ ...m, sentAt: NOW - ageMs, receiveCount })));
      const table = new FakeClaimTable();
      const state = { written: false, claims: 0 };
      const claimAs = (r: ClaimRequest): MessageClaimOutcome | undefined => {
        state.claims++;
        return state.written ? undefined : { taskId: r.taskId, status: 'missing' };
      };
      table.claimAs = claimAs;
      const pauses: number[] = [];
      const sleep = async (ms: number) => {
        pauses.push(ms);
        if (pauses.length === landsAtPause) state.written = true;
      };
      const intake = new SqsDynamoDbTaskIntake({ queue, table, now: () => NOW, sleep });
      return { queue, table, intake, state, pauses };
    }

    it('is claimed again after short pauses, and claimed once its task was written meanwhile', async () => {
      // The write lands during the second pause.
      const { queue, intake, state, pauses } = early(30, 1, 2);

      const claimed = await intake.receiveAndClaim(10, options);
      await intake.drain();

      expect(claimed.map((t) => t.taskId)).toEqual(['s_0']);
      expect(pauses).toEqual([20, 40]);
      expect(state.claims).toBe(3);
      expect(queue.acked).toEqual([]);
      expect(queue.released).toEqual([]);
    });

    it('still missing after the pauses: released (never deleted) for 1 s, then 2 s and 4 s as its receives add up', async () => {
      for (const [receiveCount, delayMs] of [
        [1, 1_000],
        [2, 2_000],
        [3, 4_000],
      ] as const) {
        const { queue, intake, pauses } = early(1_000, receiveCount);

        expect(await intake.receiveAndClaim(10, options)).toEqual([]);
        await intake.drain();

        expect(pauses).toEqual([20, 40, 80]);
        expect(queue.released).toEqual([{ receipts: ['r0'], delayMs }]);
        expect(queue.acked).toEqual([]);
      }
    });

    it('older than the grace by this clock but offered fewer than 4 times: still released (a clock ahead of the queue drops nothing)', async () => {
      const { queue, intake, pauses } = early(60_000, EARLY_MESSAGE_RECEIVES - 1);

      expect(await intake.receiveAndClaim(10, options)).toEqual([]);
      await intake.drain();

      expect(pauses).toEqual([20, 40, 80]);
      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 4_000 }]);
      expect(queue.acked).toEqual([]);
    });

    it('offered 4 times but younger than the grace by its send time: released for 8 s', async () => {
      const { queue, intake } = early(1_000, EARLY_MESSAGE_RECEIVES);

      expect(await intake.receiveAndClaim(10, options)).toEqual([]);
      await intake.drain();

      expect(queue.released).toEqual([{ receipts: ['r0'], delayMs: 8_000 }]);
      expect(queue.acked).toEqual([]);
    });

    it('older than the grace and offered 4 times: deleted at once, as any missing message', async () => {
      const { queue, intake, pauses, state } = early(EARLY_MESSAGE_GRACE_MS, EARLY_MESSAGE_RECEIVES);

      expect(await intake.receiveAndClaim(10, options)).toEqual([]);
      await intake.drain();

      expect(pauses).toEqual([]);
      expect(state.claims).toBe(1);
      expect(queue.acked).toEqual([['r0']]);
      expect(queue.released).toEqual([]);
    });
  });
});
