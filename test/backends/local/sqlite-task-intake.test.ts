// The local intake: the TaskIntake contract, plus receive, claim and acknowledge in one SQLite transaction, settling
// every message it takes.
import { openLocalBackends, SqliteTaskIntake, type LocalBackends } from '../../../lib/backends/local';
import { newTask, type SessionRecord } from '../../../lib/core';
import type { IntakeOptions } from '../../../lib/ports';
import { describeTaskIntakeContract } from '../../contract/task-intake.contract';
import { makeTempDir } from './temp-grid-dir';

describeTaskIntakeContract('SqliteTaskIntake', async () => {
  const temp = makeTempDir();
  const backends = openLocalBackends(temp.dir);
  return {
    table: backends.table,
    queue: backends.queue,
    openIntake: () => new SqliteTaskIntake(backends.queue, backends.table),
    messagesLeft: async () => {
      const { visible, invisible } = await backends.queue.countMessages();
      return visible + invisible;
    },
    cleanup: async () => {
      await backends.close();
      temp.remove();
    },
  };
});

const session: SessionRecord = {
  sessionId: 's',
  createdAt: 1,
  priority: 0,
  maxAttempts: 3,
  timeoutMs: 60_000,
  nonRetryableErrorTypes: [],
};

const options: IntakeOptions = {
  waitMs: 0,
  visibilityMs: 60_000,
  owner: 'agent-a',
  leaseMs: 30_000,
  busyDelayMs: 60_000,
};

describe('SqliteTaskIntake', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let backends: LocalBackends;

  beforeEach(async () => {
    temp = makeTempDir();
    backends = openLocalBackends(temp.dir);
    await backends.table.createSession(session);
  });

  afterEach(async () => {
    await backends.close();
    temp.remove();
  });

  async function submit(count: number, priority = 0): Promise<string[]> {
    const tasks = Array.from({ length: count }, (_, i) =>
      newTask(session, priority * 100 + i, { inline: `{"i":${i}}` }, 1, { priority }),
    );
    await backends.table.createTasks(tasks);
    await backends.queue.send(tasks.map((t) => ({ taskId: t.taskId, sessionId: 's', attempt: 0, priority })));
    return tasks.map((t) => t.taskId);
  }

  it('claims the tasks of received messages and deletes those messages', async () => {
    const ids = await submit(3);
    const before = Date.now();

    const claimed = await backends.intake.receiveAndClaim(10, options);

    expect(claimed.map((t) => t.taskId)).toEqual(ids);
    for (const task of claimed) {
      expect(task).toMatchObject({ state: 'running', attempt: 1, payload: { inline: expect.any(String) as string } });
      expect(task.lease?.owner).toBe('agent-a');
      expect(task.lease!.expiresAt - task.startedAt!).toBe(30_000);
      expect(task.startedAt).toBeGreaterThanOrEqual(before);
      expect(await backends.table.getTask(task.taskId)).toEqual(task);
    }
    expect(await backends.queue.countMessages()).toEqual({ visible: 0, invisible: 0 });
  });

  it('takes at most max messages, highest priority first', async () => {
    await submit(2, 0);
    const high = await submit(2, 1);

    const claimed = await backends.intake.receiveAndClaim(3, options);

    expect(claimed.map((t) => t.taskId).slice(0, 2)).toEqual(high);
    expect(claimed).toHaveLength(3);
    expect(await backends.queue.countMessages()).toEqual({ visible: 1, invisible: 0 });
  });

  it('drops duplicate messages of a claimed task and delays a message whose attempt is still running', async () => {
    const [id] = await submit(1);
    await backends.intake.receiveAndClaim(10, options);
    // A duplicate of the message the claim consumed (attempt 0, now stale) and an early retry message (attempt 1,
    // still running): the first is deleted, the second waits for its holder.
    await backends.queue.send([
      { taskId: id!, sessionId: 's', attempt: 0, priority: 0 },
      { taskId: id!, sessionId: 's', attempt: 1, priority: 0 },
    ]);

    const claimed = await backends.intake.receiveAndClaim(10, options);

    expect(claimed).toEqual([]);
    expect(await backends.queue.countMessages()).toEqual({ visible: 0, invisible: 1 });
    expect(await backends.table.getTask(id!)).toMatchObject({ state: 'running', attempt: 1 });
  });

  it('deletes the message of a task that does not exist', async () => {
    await backends.queue.send([{ taskId: 'nope', sessionId: 's', attempt: 0, priority: 0 }]);

    expect(await backends.intake.receiveAndClaim(10, options)).toEqual([]);
    expect(await backends.queue.countMessages()).toEqual({ visible: 0, invisible: 0 });
  });

  it('long-polls an empty queue until a message is sent', async () => {
    const waiting = backends.intake.receiveAndClaim(10, { ...options, waitMs: 10_000 });
    const ids = await submit(1);

    expect((await waiting).map((t) => t.taskId)).toEqual(ids);
  });

  it('an aborted long poll returns nothing and leaves the queue as it was', async () => {
    const controller = new AbortController();
    const waiting = backends.intake.receiveAndClaim(10, { ...options, waitMs: 10_000, signal: controller.signal });
    controller.abort();

    expect(await waiting).toEqual([]);
    await submit(1);
    expect(await backends.queue.countMessages()).toEqual({ visible: 1, invisible: 0 });
  });
});
