// The reaper on the local backends: re-queues an expired attempt, fails the last one, and skips a lease renewed late.
import fs from 'node:fs';
import { openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { newTask, type SessionRecord } from '../../lib/core';
import type { QueueMessage, TaskQueue } from '../../lib/ports';
import { reapExpiredLeases, reapTasks } from '../../lib/runtime/reaper';
import { tempDir } from '../support/local-grid';

const T0 = 1_700_000_000_000;

describe('the reaper', () => {
  let dir: string;
  let backends: LocalBackends;
  const session: SessionRecord = {
    sessionId: 'reaped',
    createdAt: T0,
    priority: 0,
    maxAttempts: 2,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };

  beforeEach(async () => {
    dir = tempDir('htcgrid-reaper-');
    backends = openLocalBackends(dir);
    await backends.table.createSession(session);
    await backends.table.createTasks([0, 1, 2].map((i) => newTask(session, i, { inline: `{"i":${i}}` }, T0)));
  });

  afterEach(async () => {
    await backends.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Claims `taskId` at `attempt` for `owner` with a lease that expires at `expiresAt`. */
  async function claim(taskId: string, attempt: number, owner: string, expiresAt: number): Promise<void> {
    const [outcome] = await backends.table.claim([{ taskId, attempt }], { owner, expiresAt }, expiresAt - 10_000);
    expect(outcome?.status).toBe('claimed');
  }

  it('re-queues a task whose lease expired while attempts remain, its message sent at the next attempt', async () => {
    await claim('reaped_0', 0, 'dead-agent', T0 + 1_000);

    const result = await reapExpiredLeases({ table: backends.table, queue: backends.queue, now: T0 + 2_000 });

    expect(result).toEqual({ requeued: 1, failed: 0, skipped: 0 });
    const task = await backends.table.getTask('reaped_0');
    expect(task).toMatchObject({ state: 'pending', attempt: 1, failures: 1, failureReason: 'lease-expired' });
    expect(task?.history).toEqual([
      expect.objectContaining({ attempt: 1, owner: 'dead-agent', outcome: 'lease-expired', finishedAt: T0 + 2_000 }),
    ]);
    const messages = await backends.queue.receive(10, { waitMs: 0, visibilityMs: 60_000 });
    expect(messages.map((m) => m.message)).toEqual([
      // The reap's mark (its write's leaseExpiredBefore guard), kept by the queue as SQS keeps it in the body.
      { taskId: 'reaped_0', sessionId: 'reaped', attempt: 1, priority: 0, leaseExpiredBefore: T0 + 2_000 },
    ]);
  });

  it('fails a task whose last attempt lost its lease, with the lease error, and sends no message', async () => {
    await claim('reaped_1', 0, 'agent-a', T0 + 1_000);
    await reapExpiredLeases({ table: backends.table, queue: backends.queue, now: T0 + 2_000 });
    await backends.queue
      .receive(10, { waitMs: 0, visibilityMs: 60_000 })
      .then((m) => backends.queue.ack(m.map((x) => x.receipt)));
    await claim('reaped_1', 1, 'agent-b', T0 + 3_000);

    const result = await reapExpiredLeases({ table: backends.table, queue: backends.queue, now: T0 + 4_000 });

    expect(result).toEqual({ requeued: 0, failed: 1, skipped: 0 });
    const task = await backends.table.getTask('reaped_1');
    expect(task).toMatchObject({
      state: 'failed',
      attempt: 2,
      failures: 2,
      failureReason: 'lease-expired',
      finishedAt: T0 + 4_000,
      error: { type: 'LeaseExpired' },
    });
    expect(task?.error?.message).toMatch(/attempt 2 of task reaped_1 stopped heartbeating \(agent agent-b/);
    expect(task?.lease).toBeUndefined();
    expect(await backends.queue.receive(10, { waitMs: 0, visibilityMs: 60_000 })).toEqual([]);
    expect((await backends.table.countByState('reaped')).failed).toBe(1);
  });

  it('counts as skipped a task whose lease was renewed between the scan and the write, and leaves it running', async () => {
    await claim('reaped_2', 0, 'slow-agent', T0 + 1_000);
    const expired = await backends.table.findExpiredLeases(T0 + 2_000, 10);
    expect(expired.map((t) => t.taskId)).toEqual(['reaped_2']);
    // The agent heartbeats just after the scan.
    await backends.table.extendLeases([{ taskId: 'reaped_2', owner: 'slow-agent', attempt: 1 }], T0 + 60_000);

    const result = await reapTasks(expired, { table: backends.table, queue: backends.queue, now: T0 + 2_000 });

    expect(result).toEqual({ requeued: 0, failed: 0, skipped: 1 });
    expect(await backends.table.getTask('reaped_2')).toMatchObject({
      state: 'running',
      attempt: 1,
      failures: 0,
      lease: { owner: 'slow-agent', expiresAt: T0 + 60_000 },
    });
  });

  it("deletes at its first receive a reap's message left over by a late heartbeat, never releasing it", async () => {
    await claim('reaped_2', 0, 'slow-agent', T0 + 1_000);
    const expired = await backends.table.findExpiredLeases(T0 + 2_000, 10);
    // The reaper sends the task's message, then the agent's late heartbeat lands before the reaper's write (the local
    // queue's other methods through its prototype).
    const racing: TaskQueue = Object.assign(Object.create(backends.queue) as TaskQueue, {
      send: async (messages: readonly QueueMessage[]) => {
        await backends.queue.send(messages);
        await backends.table.extendLeases([{ taskId: 'reaped_2', owner: 'slow-agent', attempt: 1 }], T0 + 60_000);
      },
    });
    expect(await reapTasks(expired, { table: backends.table, queue: racing, now: T0 + 2_000 })).toEqual({
      requeued: 0,
      failed: 0,
      skipped: 1,
    });
    expect(await backends.queue.countMessages()).toEqual({ visible: 1, invisible: 0 });

    // Another agent is offered it while the attempt runs on: the reap can never land, so the message is stale.
    const claimed = await backends.intake.receiveAndClaim(10, {
      owner: 'agent-b',
      leaseMs: 60_000,
      waitMs: 0,
      visibilityMs: 60_000,
      busyDelayMs: 1_000,
    });

    expect(claimed).toEqual([]);
    // Deleted, not released every busyDelayMs for as long as the attempt runs.
    expect(await backends.queue.countMessages()).toEqual({ visible: 0, invisible: 0 });
    expect(await backends.table.getTask('reaped_2')).toMatchObject({
      state: 'running',
      attempt: 1,
      lease: { owner: 'slow-agent', expiresAt: T0 + 60_000 },
    });
  });
});
