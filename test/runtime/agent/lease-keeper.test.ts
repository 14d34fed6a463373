// The lease keeper against a fake table and a fake clock: what it extends, what it only reads, what it reports lost.
import { silentLogger } from '../../../lib/logging';
import type { LeaseStatus, TaskTable } from '../../../lib/ports';
import type { HeldTask } from '../../../lib/runtime/agent/held-task';
import { LeaseKeeper } from '../../../lib/runtime/agent/lease-keeper';
import { FakeTable, pendingTask } from '../../support/fake-ports';

function held(index: number, claimedAt: number): HeldTask {
  const task = { ...pendingTask(index), state: 'running' as const, attempt: 1 };
  return { task, claimedAt, lastExtendedAt: claimedAt, running: true };
}

/** A table that answers every lease with `answer(taskId)` and records the calls; `failNextExtend` refuses one. */
function fakeTable(answer: (taskId: string) => LeaseStatus = () => 'held') {
  let failNext = false;
  const fake = new FakeTable(undefined, (what) => {
    if (failNext && what.startsWith('extend')) {
      failNext = false;
      throw new Error('table unavailable');
    }
  });
  fake.leaseAs = (lease) => answer(lease.taskId);
  return {
    table: fake.asTaskTable(),
    calls: fake.calls,
    failNextExtend: () => {
      failNext = true;
    },
  };
}

function keeper(table: TaskTable, tasks: HeldTask[], clock: { now: number }) {
  const lost: string[] = [];
  const extended: string[] = [];
  const map = new Map(tasks.map((t) => [t.task.taskId, t]));
  const k = new LeaseKeeper({
    table,
    held: map,
    owner: 'me',
    logger: silentLogger(),
    now: () => clock.now,
    checkIntervalMs: 1_000,
    refreshIntervalMs: 10_000,
    expiryMs: 30_000,
    onLost: (h, status) => lost.push(`${h.task.taskId}:${status}`),
    onExtended: (h) => extended.push(h.task.taskId),
  });
  return { keeper: k, lost, extended, map };
}

describe('LeaseKeeper', () => {
  it('skips a task claimed less than half a tick ago: most tasks end before they need any lease write or read', async () => {
    const clock = { now: 100_000 };
    const { table, calls } = fakeTable();
    const { keeper: k } = keeper(table, [held(0, 99_600)], clock);
    await k.tick();
    expect(calls).toEqual([]);
  });

  it('only reads a lease not yet due for refresh, and reports a cancelled task', async () => {
    const clock = { now: 100_000 };
    const { table, calls } = fakeTable((id) => (id === 's_1' ? 'cancelled' : 'held'));
    const { keeper: k, lost, extended } = keeper(table, [held(0, 98_000), held(1, 98_000)], clock);
    await k.tick();
    expect(calls).toEqual([{ kind: 'status', ids: ['s_0', 's_1'] }]);
    expect(lost).toEqual(['s_1:cancelled']);
    expect(extended).toEqual([]);
  });

  it('extends a lease one tick before its refresh is due, to now + expiry, and says so', async () => {
    const clock = { now: 100_000 };
    const { table, calls } = fakeTable();
    const task = held(0, 91_000);
    const { keeper: k, extended } = keeper(table, [task], clock);
    await k.tick();
    expect(calls).toEqual([{ kind: 'extend', ids: ['s_0'], expiresAt: 130_000 }]);
    expect(extended).toEqual(['s_0']);
    expect(task.lastExtendedAt).toBe(100_000);
  });

  it('reports a lease another agent took over, and does not count it as extended', async () => {
    const clock = { now: 100_000 };
    const { table } = fakeTable(() => 'lost');
    const task = held(0, 80_000);
    const { keeper: k, lost, extended } = keeper(table, [task], clock);
    await k.tick();
    expect(lost).toEqual(['s_0:lost']);
    expect(extended).toEqual([]);
    expect(task.lastExtendedAt).toBe(80_000);
  });

  it('leaves alone a task the agent is already interrupting', async () => {
    const clock = { now: 100_000 };
    const { table, calls } = fakeTable();
    const task = { ...held(0, 80_000), abortCause: 'drain' as const };
    const { keeper: k } = keeper(table, [task], clock);
    await k.tick();
    expect(calls).toEqual([]);
  });

  it('reads leases once per check interval, not on every tick', async () => {
    const clock = { now: 100_000 };
    const { table, calls } = fakeTable();
    const { keeper: k } = keeper(table, [held(0, 98_000)], clock);
    await k.tick();
    clock.now += 400;
    await k.tick();
    expect(calls).toHaveLength(1);
    clock.now += 600;
    await k.tick();
    expect(calls).toHaveLength(2);
  });

  it('survives a failed write and extends the lease at the next tick', async () => {
    const clock = { now: 100_000 };
    const { table, calls, failNextExtend } = fakeTable();
    const task = held(0, 90_000);
    const { keeper: k, extended } = keeper(table, [task], clock);
    failNextExtend();
    await expect(k.tick()).resolves.toBeUndefined();
    expect(extended).toEqual([]);
    clock.now += 1_000;
    await k.tick();
    expect(calls).toHaveLength(2);
    expect(extended).toEqual(['s_0']);
    expect(task.lastExtendedAt).toBe(101_000);
  });
});

describe('LeaseKeeper ticks', () => {
  it('stop while no task is held, and start again one period after wake', async () => {
    jest.useFakeTimers();
    try {
      const clock = { now: 100_000 };
      const { table, calls } = fakeTable();
      const { keeper: k, map } = keeper(table, [], clock);
      k.start();
      jest.advanceTimersByTime(1_000);
      // The tick found nothing held: no timer left to wake the agent's thread.
      expect(jest.getTimerCount()).toBe(0);

      const task = held(0, 98_000);
      map.set(task.task.taskId, task);
      k.wake();
      expect(calls).toEqual([]);
      jest.advanceTimersByTime(1_000);
      await Promise.resolve();
      expect(calls).toEqual([{ kind: 'status', ids: ['s_0'] }]);
      expect(jest.getTimerCount()).toBe(1);
      k.stop();
      k.wake(); // a task held after stop: no ticks
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
