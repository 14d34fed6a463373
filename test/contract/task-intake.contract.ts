// The TaskIntake contract: every intake (SQLite; SQS + DynamoDB) must give these answers. Adapter-agnostic by design:
// whether a claimed message is deleted at the claim or kept as the task's guard until the lease is extended is the
// adapter's business; what an agent sees (claims, busy messages offered again, dead holders recovered, nothing left
// in the queue once settled) is the same.
import { newTask, type SessionRecord, type TaskRecord } from '../../lib/core/task';
import type { IntakeOptions, TaskIntake, TaskQueue, TaskTable } from '../../lib/ports';
import { reapTasks } from '../../lib/runtime/reaper';
import { uniqueId } from './contract-helpers';

export interface TaskIntakeUnderTest {
  readonly table: TaskTable;
  /** An empty queue of its own, on the table. */
  readonly queue: TaskQueue;
  /**
   * A new intake on `queue` and `table`, as one agent has it. `pastEarlyGrace`: for an intake that keeps the messages
   * of unknown tasks while young (`EARLY_MESSAGE_GRACE_MS`, `EARLY_MESSAGE_RECEIVES`), one that sees every message as
   * past both (its clock that much ahead, each message offered that many times).
   */
  openIntake(options?: { readonly pastEarlyGrace?: boolean }): TaskIntake;
  /** Messages left in the queue: visible, in flight or delayed. */
  messagesLeft(): Promise<number>;
  cleanup(): Promise<void>;
}

const options: IntakeOptions = {
  waitMs: 0,
  visibilityMs: 60_000,
  owner: 'agent-a',
  leaseMs: 60_000,
  busyDelayMs: 0,
};

/** Registers the TaskIntake contract tests. `factory` runs before each test. */
export function describeTaskIntakeContract(name: string, factory: () => Promise<TaskIntakeUnderTest>): void {
  describe(`${name} (TaskIntake contract)`, () => {
    let under: TaskIntakeUnderTest;
    let table: TaskTable;
    let queue: TaskQueue;

    beforeEach(async () => {
      under = await factory();
      ({ table, queue } = under);
    });

    afterEach(async () => {
      await under.cleanup();
    });

    /** A session of `count` pending tasks, written and enqueued as a client submits them. */
    async function submit(count: number) {
      const session: SessionRecord = {
        sessionId: uniqueId('s'),
        createdAt: Date.now(),
        priority: 0,
        maxAttempts: 3,
        timeoutMs: 60_000,
        nonRetryableErrorTypes: [],
      };
      await table.createSession(session);
      const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: `{"i":${i}}` }, Date.now()));
      await table.createTasks(tasks);
      await queue.send(tasks.map((t) => ({ taskId: t.taskId, sessionId: t.sessionId, attempt: 0, priority: 0 })));
      return { session, ids: tasks.map((t) => t.taskId) };
    }

    /** Receives with `intake` until it claims something (bounded), as an agent's receive loop does. */
    async function claimNext(intake: TaskIntake, opts: Partial<IntakeOptions> = {}): Promise<TaskRecord | undefined> {
      for (let tries = 0; tries < 20; tries++) {
        const [task] = await intake.receiveAndClaim(10, { ...options, waitMs: 200, ...opts });
        if (task) return task;
      }
      return undefined;
    }

    async function settleAll(intake: TaskIntake, tasks: readonly TaskRecord[]) {
      for (const task of tasks) intake.settle(task, 'done');
      await intake.drain();
    }

    it('claims the tasks of received messages, leased to the owner; once settled no message is left', async () => {
      const { ids } = await submit(3);
      const intake = under.openIntake();
      const before = Date.now();

      const claimed = await intake.receiveAndClaim(10, options);

      expect(claimed.map((t) => t.taskId).sort()).toEqual([...ids].sort());
      for (const task of claimed) {
        expect(task).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent-a' } });
        expect(task.startedAt).toBeGreaterThanOrEqual(before);
        expect(task.lease!.expiresAt - task.startedAt!).toBe(60_000);
        expect(await table.getTask(task.taskId)).toMatchObject({ state: 'running', attempt: 1 });
      }
      await settleAll(intake, claimed);
      expect(await under.messagesLeft()).toBe(0);
      expect(await under.openIntake().receiveAndClaim(10, options)).toEqual([]);
    });

    it('claims at most `max` tasks; the rest stay for the next receive', async () => {
      await submit(3);
      const intake = under.openIntake();

      const first = await intake.receiveAndClaim(2, options);
      const second = await claimNext(intake);

      expect(first).toHaveLength(2);
      expect(second?.attempt).toBe(1);
      await settleAll(intake, [...first, second!]);
      expect(await under.messagesLeft()).toBe(0);
    });

    it('a task whose lease was extended needs its message no more', async () => {
      const { ids } = await submit(1);
      const intake = under.openIntake();
      const [task] = await intake.receiveAndClaim(10, options);

      const [status] = await table.extendLeases(
        [{ taskId: ids[0]!, owner: 'agent-a', attempt: 1 }],
        Date.now() + 60_000,
      );
      intake.leaseExtended(task!);
      await intake.drain();

      expect(status).toBe('held');
      expect(await under.messagesLeft()).toBe(0);
      expect(await table.getTask(ids[0]!)).toMatchObject({ state: 'running', attempt: 1 });
    });

    it('drops the messages of finished tasks, and of unknown ones past the early-message grace, claiming nothing', async () => {
      const { session, ids } = await submit(1);
      const intake = under.openIntake();
      const [task] = await intake.receiveAndClaim(10, options);
      await table.complete([
        {
          taskId: ids[0]!,
          guard: { owner: 'agent-a', attempt: 1 },
          outcome: { kind: 'succeeded', result: { inline: '1' } },
          at: Date.now(),
        },
      ]);
      await settleAll(intake, [task!]);
      await queue.send([
        { taskId: ids[0]!, sessionId: session.sessionId, attempt: 0, priority: 0 },
        { taskId: `${session.sessionId}_nope`, sessionId: session.sessionId, attempt: 0, priority: 0 },
      ]);
      const other = under.openIntake({ pastEarlyGrace: true });

      const claimed = await other.receiveAndClaim(10, { ...options, owner: 'agent-b' });
      await other.drain();

      expect(claimed).toEqual([]);
      expect(await under.messagesLeft()).toBe(0);
      expect(await table.getTask(ids[0]!)).toMatchObject({ state: 'succeeded', attempt: 1 });
    });

    it('a message for an attempt still running is busy: kept, offered again, and claimed once the retry is written', async () => {
      const { session, ids } = await submit(1);
      const holder = under.openIntake();
      const [running] = await holder.receiveAndClaim(10, options);
      // The holder's retry: the message for attempt 1 goes out before the table says pending.
      await queue.send([{ taskId: ids[0]!, sessionId: session.sessionId, attempt: 1, priority: 0 }]);
      const other = under.openIntake();

      const early = await other.receiveAndClaim(10, { ...options, owner: 'agent-b' });
      await table.complete([
        {
          taskId: ids[0]!,
          guard: { owner: 'agent-a', attempt: 1 },
          outcome: { kind: 'retry', reason: 'error', error: { type: 'ValueError', message: 'boom', stack: [] } },
          at: Date.now(),
        },
      ]);
      await settleAll(holder, [running!]);
      // Only the busy message names attempt 1: claiming it proves it was kept and delivered again.
      const again = await claimNext(other, { owner: 'agent-b' });

      expect(early).toEqual([]);
      expect(again).toMatchObject({ taskId: ids[0], state: 'running', attempt: 2, failures: 1 });
      expect(again?.lease?.owner).toBe('agent-b');
      await settleAll(other, [again!]);
      expect(await under.messagesLeft()).toBe(0);
    });

    it('a claim whose holder died before extending its lease is recovered: its task runs again at the next attempt', async () => {
      const { session, ids } = await submit(1);
      const dying = under.openIntake();
      // Its message becomes visible again after a second (SQS's smallest timeout; 0 means the queue's default), and its
      // lease expires at once: the holder never extends it.
      const [dead] = await dying.receiveAndClaim(10, { ...options, visibilityMs: 1_000, leaseMs: 1 });
      expect(dead).toMatchObject({ taskId: ids[0], attempt: 1 });
      while (Date.now() <= dead!.lease!.expiresAt) await new Promise((resolve) => setImmediate(resolve));
      const other = under.openIntake();

      // Between them, the reaper's sweep and another agent's receives put the task back and claim it again.
      let again: TaskRecord | undefined;
      for (let round = 0; round < 10 && again === undefined; round++) {
        // A reaper's sweep, of this session only (the table may be shared with other tests).
        const now = Date.now();
        const expired = await table.findExpiredLeases(now, 100_000);
        await reapTasks(
          expired.filter((t) => t.sessionId === session.sessionId),
          { table, queue, now },
        );
        again = await claimNext(other, { owner: 'agent-b' });
      }

      expect(again).toMatchObject({ taskId: ids[0], state: 'running', attempt: 2, failures: 1 });
      expect(again?.lease?.owner).toBe('agent-b');
      const task = await table.getTask(ids[0]!);
      expect(task?.history.find((h) => h.attempt === 1)).toMatchObject({ owner: 'agent-a' });
      await settleAll(other, [again!]);
      expect(await under.messagesLeft()).toBe(0);
    });

    it('a receive whose signal is aborted claims nothing and leaves the messages for others', async () => {
      const { ids } = await submit(2);
      const controller = new AbortController();
      controller.abort();

      const claimed = await under.openIntake().receiveAndClaim(10, { ...options, signal: controller.signal });

      expect(claimed).toEqual([]);
      for (const id of ids) expect((await table.getTask(id))?.state).toBe('pending');
      const later = under.openIntake();
      const claimedLater: TaskRecord[] = [];
      for (let tries = 0; tries < 20 && claimedLater.length < 2; tries++) {
        claimedLater.push(...(await later.receiveAndClaim(10, { ...options, waitMs: 200 })));
      }
      expect(claimedLater.map((t) => t.taskId).sort()).toEqual([...ids].sort());
    });
  });
}
