// Runs the TaskQueue contract against the SQLite queue, plus what only the local adapter promises.
import { openLocalBackends } from '../../../lib/backends/local';
import type { QueueMessage } from '../../../lib/ports';
import { describeTaskQueueContract } from '../../contract/task-queue.contract';
import { onLocalBackends } from '../../support/local-backends';
import { makeTempDir } from './temp-grid-dir';

describeTaskQueueContract('SqliteTaskQueue', async () => {
  const temp = makeTempDir();
  const backends = openLocalBackends(temp.dir);
  return {
    queue: backends.queue,
    cleanup: async () => {
      await backends.close();
      temp.remove();
    },
  };
});

describe('SqliteTaskQueue', () => {
  const message = (i: number, priority = 0): QueueMessage => ({
    taskId: `s_${i}`,
    sessionId: 's',
    attempt: 0,
    priority,
  });

  it('delivers messages of one priority in the order they were sent', async () => {
    await onLocalBackends(async (backends) => {
      await backends.queue.send([0, 1, 2, 3, 4].map((i) => message(i)));
      await backends.queue.send([5, 6].map((i) => message(i)));

      const got = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 60_000 });

      expect(got.map((r) => r.message.taskId)).toEqual(['s_0', 's_1', 's_2', 's_3', 's_4', 's_5', 's_6']);
    });
  });

  it('a long poll in another connection sees a message sent through the first one', async () => {
    const temp = makeTempDir();
    const a = openLocalBackends(temp.dir);
    const b = openLocalBackends(temp.dir, { pollIntervalMs: 20 });
    try {
      const waiting = b.queue.receive(10, { waitMs: 10_000, visibilityMs: 60_000 });
      await a.queue.send([message(1)]);

      expect((await waiting).map((r) => r.message.taskId)).toEqual(['s_1']);
    } finally {
      await a.close();
      await b.close();
      temp.remove();
    }
  });

  it("an acknowledged message's receipt leaves alone the next message, which takes its id", async () => {
    await onLocalBackends(async (backends) => {
      const { queue } = backends;
      const retry: QueueMessage = { ...message(1), attempt: 1 };
      for (const next of [message(2), retry]) {
        await queue.send([message(1)]);
        const [old] = await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });
        await queue.ack([old!.receipt]);
        // The newest message gone, the next one sent takes its id: the same task's retry, or another task.
        await queue.send([next]);
        const [taken] = await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });
        expect(taken!.receipt.split(':')[0]).toBe(old!.receipt.split(':')[0]);

        await queue.ack([old!.receipt]);
        await queue.release([old!.receipt], 0);
        await queue.extend([old!.receipt], 1);
        expect(await queue.countMessages()).toEqual({ visible: 0, invisible: 1 });
        await queue.ack([taken!.receipt]);
        expect(await queue.countMessages()).toEqual({ visible: 0, invisible: 0 });
      }
    });
  });

  it('rejects a receipt it never handed out', async () => {
    await onLocalBackends(async (backends) => {
      await expect(backends.queue.ack(['nonsense'])).rejects.toThrow(/invalid queue receipt 'nonsense'/);
    });
  });

  it('closing the backends ends a pending long poll', async () => {
    const temp = makeTempDir();
    const backends = openLocalBackends(temp.dir);
    try {
      const waiting = backends.queue.receive(10, { waitMs: 30_000, visibilityMs: 60_000 });

      await backends.close();

      expect(await waiting).toEqual([]);
    } finally {
      temp.remove();
    }
  });

  it('counts visible and in-flight messages', async () => {
    await onLocalBackends(async (backends) => {
      await backends.queue.send([1, 2, 3].map((i) => message(i)));
      await backends.queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });

      expect(await backends.queue.countMessages()).toEqual({ visible: 2, invisible: 1 });
    });
  });
});
