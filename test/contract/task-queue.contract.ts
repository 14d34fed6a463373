// The TaskQueue contract: every adapter (SQLite, SQS) must pass it. Visibility in whole seconds, waits by polling.
import type { QueueMessage, ReceivedMessage, TaskQueue } from '../../lib/ports';
import { eventually, setUpEachTest, uniqueId } from './contract-helpers';

export interface TaskQueueUnderTest {
  readonly queue: TaskQueue;
  cleanup(): Promise<void>;
}

const SECOND = 1000;
/** Long enough that a message stays hidden for the rest of a test. */
const HIDDEN = 60 * SECOND;

/**
 * Registers the TaskQueue contract tests. `factory` runs before each test and must hand out an EMPTY queue (the
 * tests assert what a receive returns). Visibility timeouts are whole seconds, as in SQS; nothing is expected to
 * happen faster than a second, and redeliveries are awaited by polling with a generous timeout.
 */
export function describeTaskQueueContract(name: string, factory: () => Promise<TaskQueueUnderTest>): void {
  describe(`${name} (TaskQueue contract)`, () => {
    let queue: TaskQueue;
    setUpEachTest(factory, (underTest) => (queue = underTest.queue));

    function messages(count: number, overrides: Partial<QueueMessage> = {}): QueueMessage[] {
      const sessionId = uniqueId('s');
      return Array.from({ length: count }, (_, i) => ({
        taskId: `${sessionId}_${i}`,
        sessionId,
        attempt: 0,
        priority: 0,
        ...overrides,
      }));
    }

    /** Receives until `count` messages arrived (or fails after `timeoutMs`). */
    async function receiveAll(
      count: number,
      visibilityMs = HIDDEN,
      timeoutMs = 15 * SECOND,
    ): Promise<ReceivedMessage[]> {
      const got: ReceivedMessage[] = [];
      await eventually(
        `${count} messages`,
        async () => {
          got.push(...(await queue.receive(10, { waitMs: SECOND, visibilityMs })));
          return got.length >= count ? got : undefined;
        },
        { timeoutMs, intervalMs: 0 },
      );
      return got;
    }

    /** Waits until `taskId` is delivered again and returns that delivery. */
    async function redelivery(taskId: string, visibilityMs = HIDDEN): Promise<ReceivedMessage> {
      return eventually(
        `redelivery of ${taskId}`,
        async () =>
          (await queue.receive(10, { waitMs: SECOND, visibilityMs })).find((r) => r.message.taskId === taskId),
        { timeoutMs: 15 * SECOND, intervalMs: 0 },
      );
    }

    it('a sent message is received with its fields, receive count 1 and a receipt', async () => {
      const [message] = messages(1, { attempt: 2, priority: 1 });
      await queue.send([message!]);

      const [received] = await receiveAll(1);

      expect(received!.message).toEqual(message);
      expect(received!.receiveCount).toBe(1);
      expect(typeof received!.receipt).toBe('string');
      expect(received!.receipt.length).toBeGreaterThan(0);
    });

    it('a receive returns at most the number of messages asked for', async () => {
      await queue.send(messages(5));

      const got = await eventually(
        'a non-empty receive',
        async () => {
          const r = await queue.receive(2, { waitMs: SECOND, visibilityMs: HIDDEN });
          return r.length > 0 ? r : undefined;
        },
        { intervalMs: 0 },
      );

      expect(got.length).toBeGreaterThanOrEqual(1);
      expect(got.length).toBeLessThanOrEqual(2);
    });

    it('sends and receives batches larger than a service batch, each message once', async () => {
      const sent = messages(25);
      await queue.send(sent);

      const got = await receiveAll(25);
      await queue.ack(got.map((r) => r.receipt));

      expect(got.map((r) => r.message.taskId).sort()).toEqual(sent.map((m) => m.taskId).sort());
      expect(new Set(got.map((r) => r.receipt)).size).toBe(25);
      expect(await queue.receive(10, { waitMs: 2 * SECOND, visibilityMs: SECOND })).toEqual([]);
    });

    it('higher priorities are received first', async () => {
      const low = messages(2, { priority: 0 });
      const mid = messages(2, { priority: 1 });
      const high = messages(2, { priority: 2 });
      await queue.send([low[0]!, mid[0]!, high[0]!, low[1]!, mid[1]!, high[1]!]);
      const order: number[] = [];

      await eventually(
        'all six messages, one at a time',
        async () => {
          const got = await queue.receive(1, { waitMs: SECOND, visibilityMs: HIDDEN });
          order.push(...got.map((r) => r.message.priority));
          return order.length >= 6 ? order : undefined;
        },
        { timeoutMs: 20 * SECOND, intervalMs: 0 },
      );

      expect(order).toEqual([2, 2, 1, 1, 0, 0]);
    });

    it('a received message stays hidden for its visibility timeout, then is delivered again with a new receipt', async () => {
      // The look while hidden only counts if it returned within the visibility timeout counted from before the
      // receive (the queue starts it later, never earlier); on a machine too slow for that, try a fresh message.
      let message: QueueMessage | undefined;
      let first: ReceivedMessage | undefined;
      let whileHidden: ReceivedMessage[] | undefined;
      for (let tries = 0; tries < 5 && whileHidden === undefined; tries++) {
        message = messages(1)[0]!;
        await queue.send([message]);
        const receivedFrom = Date.now();
        [first] = await receiveAll(1, 2 * SECOND);
        const look = await queue.receive(10, { waitMs: 0, visibilityMs: HIDDEN });
        if (Date.now() < receivedFrom + 2 * SECOND) whileHidden = look;
        else if (look.length === 0) await redelivery(message.taskId);
      }
      const again = await redelivery(message!.taskId);

      expect(whileHidden).toEqual([]);
      expect(again.message).toEqual(message);
      expect(again.receiveCount).toBe(2);
      expect(again.receipt).not.toBe(first!.receipt);
    });

    it('an acknowledged message is never delivered again', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const [received] = await receiveAll(1, SECOND);

      await queue.ack([received!.receipt]);

      // Past the one-second visibility: an unacknowledged message would be back by now.
      expect(await queue.receive(10, { waitMs: 2500, visibilityMs: HIDDEN })).toEqual([]);
    });

    it('a message released without delay is delivered again at once', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const [received] = await receiveAll(1, HIDDEN);

      await queue.release([received!.receipt], 0);

      const again = await redelivery(message!.taskId);
      expect(again.receiveCount).toBe(2);
    });

    it('a message released with a delay stays hidden until the delay passed', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const [received] = await receiveAll(1, HIDDEN);

      await queue.release([received!.receipt], 2 * SECOND);

      expect(await queue.receive(10, { waitMs: 0, visibilityMs: HIDDEN })).toEqual([]);
      const again = await redelivery(message!.taskId);
      expect(again.receiveCount).toBe(2);
    });

    it('extending a message keeps it hidden past its first visibility timeout', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const [received] = await receiveAll(1, SECOND);

      await queue.extend([received!.receipt], 10 * SECOND);

      // Past the one-second visibility: without the extension the message would be back by now.
      expect(await queue.receive(10, { waitMs: 2500, visibilityMs: HIDDEN })).toEqual([]);
      await queue.release([received!.receipt], 0);
      expect((await redelivery(message!.taskId)).receiveCount).toBe(2);
    });

    it('a receipt of an earlier delivery no longer acknowledges the message once it was delivered again', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const [first] = await receiveAll(1, SECOND);
      const second = await redelivery(message!.taskId, HIDDEN);

      await queue.ack([first!.receipt]);
      await queue.release([second.receipt], 0);

      const third = await redelivery(message!.taskId);
      expect(third.receiveCount).toBe(3);
    });

    it('a long poll on an empty queue returns as soon as a message arrives', async () => {
      const [message] = messages(1);
      const started = Date.now();
      const sender = setTimeout(() => void queue.send([message!]), 500);

      try {
        const got = await queue.receive(10, { waitMs: 15 * SECOND, visibilityMs: HIDDEN });

        expect(got.map((r) => r.message)).toEqual([message]);
        expect(Date.now() - started).toBeLessThan(12 * SECOND);
      } finally {
        clearTimeout(sender);
      }
    });

    it('aborting the signal ends a long poll early with no messages', async () => {
      const controller = new AbortController();
      const started = Date.now();
      const aborter = setTimeout(() => controller.abort(), 300);

      try {
        const got = await queue.receive(10, { waitMs: 15 * SECOND, visibilityMs: HIDDEN, signal: controller.signal });

        expect(got).toEqual([]);
        expect(Date.now() - started).toBeLessThan(12 * SECOND);
      } finally {
        clearTimeout(aborter);
      }
    });

    it('a receive with an already aborted signal takes no message', async () => {
      const [message] = messages(1);
      await queue.send([message!]);
      const controller = new AbortController();
      controller.abort();

      const aborted = await queue.receive(10, { waitMs: SECOND, visibilityMs: HIDDEN, signal: controller.signal });
      const [received] = await receiveAll(1);

      expect(aborted).toEqual([]);
      expect(received!.message).toEqual(message);
      expect(received!.receiveCount).toBe(1);
    });
  });
}
