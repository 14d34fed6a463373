// The TaskTable contract: every adapter (SQLite, DynamoDB) must give these answers. Adapter-agnostic by design.
import { InvalidCursorError, SessionExistsError } from '../../lib/core/errors';
import { newTask, type SessionRecord, type TaskError, type TaskRecord } from '../../lib/core/task';
import type { Completion, LeaseRef, TaskTable } from '../../lib/ports';
import { setUpEachTest, uniqueId } from './contract-helpers';

export interface TaskTableUnderTest {
  readonly table: TaskTable;
  cleanup(): Promise<void>;
}

/** What an adapter documents of itself where the contract lets adapters differ. */
export interface TaskTableTraits {
  /**
   * From when `findExpiredLeases` sees a claimed task: from its claim, or only once its lease was extended (then its
   * intake keeps the queue message as the task's guard until that extension).
   */
  readonly reaperSeesLeasesFrom: 'claim' | 'extension';
  /** Whether it offers `readTerminalWanted` (a re-read that fetches only the tasks a reader lacks). @default false */
  readonly readsTerminalWanted?: boolean;
}

const SECOND = 1000;
const boom: TaskError = { type: 'ValueError', message: 'boom', stack: ['  File "w.py", line 3, in handler'] };

/**
 * Registers the TaskTable contract tests. `factory` runs before each test; it may hand out one shared table
 * (every test uses its own session and task ids), but must not share it with a concurrently running suite.
 * Timestamps are explicit (`now` arguments), except `findExpiredLeases`, which uses leases from 1970 that no other
 * test writes.
 */
export function describeTaskTableContract(
  name: string,
  factory: () => Promise<TaskTableUnderTest>,
  traits: TaskTableTraits = { reaperSeesLeasesFrom: 'claim' },
): void {
  const { reaperSeesLeasesFrom, readsTerminalWanted = false } = traits;
  describe(`${name} (TaskTable contract)`, () => {
    let table: TaskTable;
    setUpEachTest(factory, (underTest) => (table = underTest.table));

    function sessionRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
      return {
        sessionId: uniqueId('s'),
        createdAt: 1_700_000_000_000,
        priority: 1,
        maxAttempts: 3,
        timeoutMs: 60 * SECOND,
        nonRetryableErrorTypes: ['KeyError'],
        ...overrides,
      };
    }

    /** A session with `count` pending tasks, written to the table. */
    async function seed(count: number, sessionOverrides: Partial<SessionRecord> = {}) {
      const session = sessionRecord(sessionOverrides);
      await table.createSession(session);
      const tasks = Array.from({ length: count }, (_, i) =>
        newTask(session, i, { inline: `{"i":${i}}` }, 1_700_000_000_000),
      );
      await table.createTasks(tasks);
      return { session, tasks, ids: tasks.map((t) => t.taskId) };
    }

    const now = () => Date.now();
    const lease = (owner: string, ttlMs = 60 * SECOND) => ({ owner, expiresAt: now() + ttlMs });

    /** Claims one pending task at `attempt` and returns its running record. */
    async function claimOne(taskId: string, owner: string, attempt = 0, ttlMs = 60 * SECOND): Promise<TaskRecord> {
      const [outcome] = await table.claim([{ taskId, attempt }], lease(owner, ttlMs), now());
      if (outcome?.status !== 'claimed') throw new Error(`expected to claim ${taskId}, got ${outcome?.status}`);
      return outcome.task;
    }

    function succeed(taskId: string, owner: string, attempt: number, result = '{"ok":true}'): Completion {
      return {
        taskId,
        guard: { owner, attempt },
        outcome: { kind: 'succeeded', result: { inline: result } },
        at: now(),
      };
    }

    /** The completion of an attempt whose handler raised (`boom`). */
    function failWithError(taskId: string, owner: string, attempt: number): Completion {
      return {
        taskId,
        guard: { owner, attempt },
        outcome: { kind: 'failed', reason: 'error', error: boom },
        at: now(),
      };
    }

    async function readTask(taskId: string): Promise<TaskRecord> {
      const task = await table.getTask(taskId);
      if (task === undefined) throw new Error(`task ${taskId} is missing`);
      return task;
    }

    describe('sessions', () => {
      it('a created session reads back as written, without a task count until it is sealed', async () => {
        const session = sessionRecord();

        await table.createSession(session);

        const read = await table.getSession(session.sessionId);
        expect(read).toEqual(session);
        expect(read).not.toHaveProperty('taskCount');
      });

      it('sealing a session records its task count', async () => {
        const session = sessionRecord();
        await table.createSession(session);

        await table.sealSession(session.sessionId, 42);

        expect(await table.getSession(session.sessionId)).toEqual({ ...session, taskCount: 42 });
      });

      it('creating a session whose id exists is refused, leaving the first one as it was', async () => {
        const session = sessionRecord();
        await table.createSession(session);

        await expect(table.createSession({ ...session, priority: 2 })).rejects.toThrow(SessionExistsError);

        expect(await table.getSession(session.sessionId)).toEqual(session);
      });

      it('an unknown session reads as undefined', async () => {
        expect(await table.getSession(uniqueId('nope'))).toBeUndefined();
      });

      it('deleting a session removes it and all its tasks, and no other session', async () => {
        const doomed = await seed(30);
        const kept = await seed(2);

        await table.deleteSession(doomed.session.sessionId);

        expect(await table.getSession(doomed.session.sessionId)).toBeUndefined();
        expect(await table.getTask(doomed.ids[0]!)).toBeUndefined();
        expect(await table.getTask(doomed.ids[29]!)).toBeUndefined();
        expect((await table.countByState(doomed.session.sessionId)).pending).toBe(0);
        expect(await table.getSession(kept.session.sessionId)).toBeDefined();
        expect((await table.countByState(kept.session.sessionId)).pending).toBe(2);
      });
    });

    describe('creating tasks', () => {
      it('a created task reads back pending at attempt 0, with no optional field set', async () => {
        const { tasks } = await seed(1);

        const read = await readTask(tasks[0]!.taskId);

        expect(read).toEqual(tasks[0]);
        for (const field of ['result', 'error', 'failureReason', 'lease', 'startedAt', 'finishedAt']) {
          expect(read).not.toHaveProperty(field);
        }
      });

      it('a payload stored by reference reads back as the same key and size', async () => {
        const session = sessionRecord();
        await table.createSession(session);
        const task = newTask(session, 0, { key: `sessions/${session.sessionId}/x/input.json`, bytes: 123_456 }, 1);

        await table.createTasks([task]);

        expect((await readTask(task.taskId)).payload).toEqual(task.payload);
      });

      it('writing the same batch twice (a retry) leaves one pending task per id', async () => {
        const { session, tasks, ids } = await seed(3);

        await table.createTasks(tasks);

        expect((await table.countByState(session.sessionId)).pending).toBe(3);
        expect(await readTask(ids[1]!)).toEqual(tasks[1]);
      });

      it('an unknown task reads as undefined', async () => {
        expect(await table.getTask(uniqueId('nope'))).toBeUndefined();
      });
    });

    describe('claiming', () => {
      it('claiming a pending task makes it running under the lease at attempt + 1', async () => {
        const { ids } = await seed(1);
        const at = now();
        const expiresAt = at + 30 * SECOND;

        const outcomes = await table.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'agent-a', expiresAt }, at);

        expect(outcomes).toHaveLength(1);
        const outcome = outcomes[0]!;
        expect(outcome).toMatchObject({ taskId: ids[0], status: 'claimed' });
        const task = outcome.status === 'claimed' ? outcome.task : undefined;
        expect(task).toMatchObject({
          state: 'running',
          attempt: 1,
          lease: { owner: 'agent-a', expiresAt },
          startedAt: at,
        });
        expect(await readTask(ids[0]!)).toEqual(task);
      });

      it('a duplicate of a claimed message is stale once the reaper sees the lease, busy while only the message guards it', async () => {
        const { ids } = await seed(2);
        await claimOne(ids[0]!, 'agent-a');
        const extended = await claimOne(ids[1]!, 'agent-a');
        await table.extendLeases(
          [{ taskId: ids[1]!, owner: 'agent-a', attempt: extended.attempt }],
          now() + 60 * SECOND,
        );

        const outcomes = await table.claim(
          ids.map((taskId) => ({ taskId, attempt: 0 })),
          lease('agent-b'),
          now(),
        );

        expect(outcomes).toEqual([
          { taskId: ids[0], status: reaperSeesLeasesFrom === 'claim' ? 'stale' : 'busy' },
          { taskId: ids[1], status: 'stale' },
        ]);
        expect((await readTask(ids[0]!)).lease?.owner).toBe('agent-a');
        expect((await readTask(ids[1]!)).lease?.owner).toBe('agent-a');
      });

      it('a duplicate of a claimed message whose lease expired is stale where the reaper sees it, else busy (kept to be reaped)', async () => {
        const { ids } = await seed(1);
        await claimOne(ids[0]!, 'agent-a', 0, -SECOND);

        const [outcome] = await table.claim([{ taskId: ids[0]!, attempt: 0 }], lease('agent-b'), now());

        if (reaperSeesLeasesFrom === 'claim') {
          // The reaper sees it: the message is outdated.
          expect(outcome).toEqual({ taskId: ids[0], status: 'stale' });
          const found = await table.findExpiredLeases(now(), 100_000);
          expect(found.map((t) => t.taskId)).toContain(ids[0]);
        } else {
          // Only the message guards it: it must not be dropped (the intake holding it reaps the attempt).
          expect(outcome).toEqual({ taskId: ids[0], status: 'busy' });
        }
        expect((await readTask(ids[0]!)).lease?.owner).toBe('agent-a');
      });

      it('a message for the attempt still running (its retry not yet written) is busy, then claimable', async () => {
        const { ids } = await seed(1);
        const running = await claimOne(ids[0]!, 'agent-a');

        const [early] = await table.claim([{ taskId: ids[0]!, attempt: running.attempt }], lease('agent-b'), now());
        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: running.attempt },
            outcome: { kind: 'retry', reason: 'error', error: boom },
            at: now(),
          },
        ]);
        const [later] = await table.claim([{ taskId: ids[0]!, attempt: running.attempt }], lease('agent-b'), now());

        expect(early).toEqual({ taskId: ids[0], status: 'busy' });
        expect(later).toMatchObject({ status: 'claimed', task: { attempt: 2, lease: { owner: 'agent-b' } } });
      });

      it('a message for a terminal task or for another pending attempt is stale, an unknown task missing', async () => {
        const { ids } = await seed(2);
        const done = await claimOne(ids[0]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', done.attempt)]);
        const missingId = uniqueId('missing');

        const outcomes = await table.claim(
          [
            { taskId: ids[0]!, attempt: 1 },
            { taskId: ids[1]!, attempt: 5 },
            { taskId: missingId, attempt: 0 },
          ],
          lease('agent-b'),
          now(),
        );

        expect(outcomes).toEqual([
          { taskId: ids[0], status: 'stale' },
          { taskId: ids[1], status: 'stale' },
          { taskId: missingId, status: 'missing' },
        ]);
        expect((await readTask(ids[1]!)).state).toBe('pending');
      });

      it('one claim call answers every request in order', async () => {
        const { ids } = await seed(3);
        const taken = await claimOne(ids[1]!, 'agent-a');
        await table.extendLeases([{ taskId: ids[1]!, owner: 'agent-a', attempt: taken.attempt }], now() + 60 * SECOND);

        const outcomes = await table.claim(
          ids.map((taskId) => ({ taskId, attempt: 0 })),
          lease('agent-b'),
          now(),
        );

        expect(outcomes.map((o) => [o.taskId, o.status])).toEqual([
          [ids[0], 'claimed'],
          [ids[1], 'stale'],
          [ids[2], 'claimed'],
        ]);
      });
    });

    describe('leases', () => {
      it('extending a held lease moves its expiry; other leases report lost', async () => {
        const { ids } = await seed(2);
        const task = await claimOne(ids[0]!, 'agent-a');
        const later = now() + 120 * SECOND;
        const missing = uniqueId('missing');

        const statuses = await table.extendLeases(
          [
            { taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt },
            { taskId: ids[0]!, owner: 'agent-b', attempt: task.attempt },
            { taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt + 1 },
            { taskId: ids[1]!, owner: 'agent-a', attempt: 1 },
            { taskId: missing, owner: 'agent-a', attempt: 1 },
          ],
          later,
        );

        expect(statuses).toEqual(['held', 'lost', 'lost', 'lost', 'lost']);
        expect((await readTask(ids[0]!)).lease).toEqual({ owner: 'agent-a', expiresAt: later });
      });

      it('reading lease status writes nothing', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');

        const statuses = await table.leaseStatus([
          { taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt },
          { taskId: ids[0]!, owner: 'agent-b', attempt: task.attempt },
        ]);

        expect(statuses).toEqual(['held', 'lost']);
        expect((await readTask(ids[0]!)).lease).toEqual(task.lease);
      });

      it('a lease whose task finished is lost', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', task.attempt)]);

        const statuses = await table.leaseStatus([{ taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt }]);

        expect(statuses).toEqual(['lost']);
      });
    });

    describe('completing', () => {
      it('a success is terminal with its result, finish time and one history record', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        const at = now();

        const results = await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: task.attempt },
            outcome: { kind: 'succeeded', result: { inline: '[1,2]' } },
            at,
          },
        ]);

        expect(results).toEqual([{ taskId: ids[0], status: 'recorded' }]);
        const done = await readTask(ids[0]!);
        expect(done).toMatchObject({ state: 'succeeded', result: { inline: '[1,2]' }, finishedAt: at, failures: 0 });
        expect(done).not.toHaveProperty('lease');
        expect(done).not.toHaveProperty('failureReason');
        expect(done.history).toEqual([
          { attempt: 1, owner: 'agent-a', startedAt: task.startedAt, finishedAt: at, outcome: 'succeeded' },
        ]);
      });

      it('a result stored by reference reads back as the same key and size', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        const result = { key: `results/${ids[0]}`, bytes: 9_999_999 };

        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: task.attempt },
            outcome: { kind: 'succeeded', result },
            at: now(),
          },
        ]);

        expect((await readTask(ids[0]!)).result).toEqual(result);
      });

      it('a terminal failure records its reason and error and counts as a failure', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        const at = now();

        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: task.attempt },
            outcome: { kind: 'failed', reason: 'timeout', error: boom },
            at,
          },
        ]);

        const failed = await readTask(ids[0]!);
        expect(failed).toMatchObject({
          state: 'failed',
          failureReason: 'timeout',
          error: boom,
          failures: 1,
          finishedAt: at,
        });
        expect(failed).not.toHaveProperty('result');
        expect(failed).not.toHaveProperty('lease');
        expect(failed.history).toEqual([
          { attempt: 1, owner: 'agent-a', startedAt: task.startedAt, finishedAt: at, outcome: 'timeout', error: boom },
        ]);
      });

      it('a retry goes back to pending at the same attempt, counts the failure and keeps the error', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');

        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: task.attempt },
            outcome: { kind: 'retry', reason: 'runtime-crash', error: boom },
            at: now(),
          },
        ]);

        const retried = await readTask(ids[0]!);
        expect(retried).toMatchObject({
          state: 'pending',
          attempt: 1,
          failures: 1,
          error: boom,
          failureReason: 'runtime-crash',
        });
        expect(retried).not.toHaveProperty('lease');
        expect(retried).not.toHaveProperty('finishedAt');
        expect(retried.history).toEqual([
          expect.objectContaining({ attempt: 1, outcome: 'runtime-crash', error: boom }),
        ]);
      });

      it('a released attempt goes back to pending without counting as a failure', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');

        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: task.attempt },
            outcome: { kind: 'released' },
            at: now(),
          },
        ]);

        const released = await readTask(ids[0]!);
        expect(released).toMatchObject({ state: 'pending', attempt: 1, failures: 0 });
        expect(released).not.toHaveProperty('lease');
        expect(released.history).toEqual([
          expect.objectContaining({ attempt: 1, owner: 'agent-a', outcome: 'released' }),
        ]);
      });

      it('the history keeps one record per attempt, in order, across retries', async () => {
        const { ids } = await seed(1);
        const first = await claimOne(ids[0]!, 'agent-a', 0);
        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: first.attempt },
            outcome: { kind: 'retry', reason: 'error', error: boom },
            at: now(),
          },
        ]);
        const second = await claimOne(ids[0]!, 'agent-b', first.attempt);
        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-b', attempt: second.attempt },
            outcome: { kind: 'released' },
            at: now(),
          },
        ]);
        const third = await claimOne(ids[0]!, 'agent-c', second.attempt);

        await table.complete([succeed(ids[0]!, 'agent-c', third.attempt)]);

        const done = await readTask(ids[0]!);
        expect(done).toMatchObject({ state: 'succeeded', attempt: 3, failures: 1 });
        expect(done.history.map((h) => [h.attempt, h.owner, h.outcome])).toEqual([
          [1, 'agent-a', 'error'],
          [2, 'agent-b', 'released'],
          [3, 'agent-c', 'succeeded'],
        ]);
        expect(done.history[0]!.error).toEqual(boom);
        expect(done.history[2]).not.toHaveProperty('error');
      });

      it('each attempt record keeps when the handler ran and for how long, where the agent measured it', async () => {
        const { ids } = await seed(1);
        const first = await claimOne(ids[0]!, 'agent-a', 0);
        const ranAt = first.startedAt! + 40;
        await table.complete([
          {
            taskId: ids[0]!,
            guard: { owner: 'agent-a', attempt: first.attempt },
            outcome: { kind: 'retry', reason: 'error', error: boom },
            at: ranAt + 7,
            run: { startedAt: ranAt, ms: 7 },
          },
        ]);
        const second = await claimOne(ids[0]!, 'agent-b', first.attempt);
        await table.complete([succeed(ids[0]!, 'agent-b', second.attempt)]);

        const done = await readTask(ids[0]!);
        expect(done.history[0]).toMatchObject({ attempt: 1, outcome: 'error', runStartedAt: ranAt, runMs: 7 });
        // A completion without a run (the handler never ran, or an agent that does not measure) records none.
        expect(done.history[1]).not.toHaveProperty('runMs');
        expect(done.history[1]).not.toHaveProperty('runStartedAt');
      });

      it('a finish by an old owner after the task was re-claimed is stale and writes nothing', async () => {
        const { ids } = await seed(1);
        const old = await claimOne(ids[0]!, 'agent-a');
        await table.complete([
          {
            taskId: ids[0]!,
            guard: { leaseExpiredBefore: now() + 120 * SECOND, attempt: old.attempt },
            outcome: { kind: 'retry', reason: 'lease-expired', error: boom },
            at: now(),
          },
        ]);
        const current = await claimOne(ids[0]!, 'agent-b', old.attempt);

        const results = await table.complete([succeed(ids[0]!, 'agent-a', old.attempt, '"late"')]);

        expect(results).toEqual([{ taskId: ids[0], status: 'stale' }]);
        expect(await readTask(ids[0]!)).toEqual(current);
      });

      it('a result is recorded at most once', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', task.attempt, '"first"')]);

        const again = await table.complete([succeed(ids[0]!, 'agent-a', task.attempt, '"second"')]);

        expect(again).toEqual([{ taskId: ids[0], status: 'stale' }]);
        const done = await readTask(ids[0]!);
        expect(done.result).toEqual({ inline: '"first"' });
        expect(done.history).toHaveLength(1);
      });

      it('completing a task that is pending, unknown, or held by someone else is stale', async () => {
        const { ids } = await seed(2);
        const task = await claimOne(ids[1]!, 'agent-a');
        const missing = uniqueId('missing');

        const results = await table.complete([
          succeed(ids[0]!, 'agent-a', 1),
          succeed(missing, 'agent-a', 1),
          succeed(ids[1]!, 'agent-b', task.attempt),
          succeed(ids[1]!, 'agent-a', task.attempt + 1),
        ]);

        expect(results.map((r) => r.status)).toEqual(['stale', 'stale', 'stale', 'stale']);
        expect((await readTask(ids[0]!)).state).toBe('pending');
        expect(await readTask(ids[1]!)).toEqual(task);
      });

      it('the reaper may only finish an attempt whose lease expired', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a', 0, 5 * SECOND);
        const expiry = task.lease!.expiresAt;
        const reap = (before: number, attempt: number): Completion => ({
          taskId: ids[0]!,
          guard: { leaseExpiredBefore: before, attempt },
          outcome: { kind: 'failed', reason: 'lease-expired', error: boom },
          at: before,
        });

        const early = await table.complete([reap(expiry - 1, task.attempt)]);
        const wrongAttempt = await table.complete([reap(expiry + 1, task.attempt + 1)]);
        const due = await table.complete([reap(expiry + 1, task.attempt)]);

        expect(early).toEqual([{ taskId: ids[0], status: 'stale' }]);
        expect(wrongAttempt).toEqual([{ taskId: ids[0], status: 'stale' }]);
        expect(due).toEqual([{ taskId: ids[0], status: 'recorded' }]);
        const reaped = await readTask(ids[0]!);
        expect(reaped).toMatchObject({ state: 'failed', failureReason: 'lease-expired' });
        expect(reaped.history).toEqual([
          expect.objectContaining({ attempt: 1, owner: 'agent-a', outcome: 'lease-expired' }),
        ]);
      });

      it('a lease extended by its holder is not reaped', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a', 0, 5 * SECOND);
        const oldExpiry = task.lease!.expiresAt;
        await table.extendLeases(
          [{ taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt }],
          oldExpiry + 60 * SECOND,
        );

        const results = await table.complete([
          {
            taskId: ids[0]!,
            guard: { leaseExpiredBefore: oldExpiry + 1, attempt: task.attempt },
            outcome: { kind: 'retry', reason: 'lease-expired', error: boom },
            at: oldExpiry + 1,
          },
        ]);

        expect(results).toEqual([{ taskId: ids[0], status: 'stale' }]);
        expect((await readTask(ids[0]!)).state).toBe('running');
      });

      it('an extension never moves a lease back: one sent before a later one that landed leaves it, still held', async () => {
        const { ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a', 0, 5 * SECOND);
        const ref = { taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt };
        const later = task.lease!.expiresAt + 60 * SECOND;
        await table.extendLeases([ref], later);

        const statuses = await table.extendLeases([ref], later - 30 * SECOND);

        expect(statuses).toEqual(['held']);
        expect((await readTask(ids[0]!)).lease).toEqual({ owner: 'agent-a', expiresAt: later });
        expect(await table.extendLeases([{ ...ref, owner: 'agent-b' }], later + SECOND)).toEqual(['lost']);
      });
    });

    describe('cancelling', () => {
      it('a cancelled pending task is terminal, has a finish time and can no longer be claimed', async () => {
        const { session, ids } = await seed(1);
        const at = now();

        const changed = await table.cancel(session.sessionId, undefined, at);

        expect(changed).toBe(1);
        expect(await readTask(ids[0]!)).toMatchObject({ state: 'cancelled', finishedAt: at });
        expect(await table.claim([{ taskId: ids[0]!, attempt: 0 }], lease('agent-a'), now())).toEqual([
          { taskId: ids[0], status: 'stale' },
        ]);
        const page = await table.listTerminal(session.sessionId, undefined, 10);
        expect(page.tasks.map((t) => t.taskId)).toEqual([ids[0]]);
      });

      it('a cancelled running task tells its agent through the lease, and its late finish is stale', async () => {
        const { session, ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        const ref: LeaseRef = { taskId: ids[0]!, owner: 'agent-a', attempt: task.attempt };

        await table.cancel(session.sessionId);

        expect(await table.leaseStatus([ref])).toEqual(['cancelled']);
        expect(await table.extendLeases([ref], now() + 60 * SECOND)).toEqual(['cancelled']);
        expect(await table.complete([succeed(ids[0]!, 'agent-a', task.attempt)])).toEqual([
          { taskId: ids[0], status: 'stale' },
        ]);
        const cancelled = await readTask(ids[0]!);
        expect(cancelled.state).toBe('cancelled');
        expect(cancelled).not.toHaveProperty('result');
        expect(cancelled.history).toEqual([
          expect.objectContaining({ attempt: 1, owner: 'agent-a', outcome: 'cancelled' }),
        ]);
      });

      it('cancelling some task ids leaves the others and terminal tasks alone', async () => {
        const { session, ids } = await seed(4);
        const task = await claimOne(ids[3]!, 'agent-a');
        await table.complete([succeed(ids[3]!, 'agent-a', task.attempt)]);
        const other = await seed(1);

        const changed = await table.cancel(session.sessionId, [ids[0]!, ids[1]!, ids[3]!, other.ids[0]!]);

        expect(changed).toBe(2);
        expect((await readTask(ids[0]!)).state).toBe('cancelled');
        expect((await readTask(ids[1]!)).state).toBe('cancelled');
        expect((await readTask(ids[2]!)).state).toBe('pending');
        expect((await readTask(ids[3]!)).state).toBe('succeeded');
        expect((await readTask(other.ids[0]!)).state).toBe('pending');
      });

      it('cancelling a finished session changes nothing', async () => {
        const { session } = await seed(2);
        await table.cancel(session.sessionId);

        expect(await table.cancel(session.sessionId)).toBe(0);
      });
    });

    describe('querying a session', () => {
      it('counts tasks per state', async () => {
        const { session, ids } = await seed(6);
        const a = await claimOne(ids[0]!, 'agent-a');
        const b = await claimOne(ids[1]!, 'agent-a');
        const c = await claimOne(ids[2]!, 'agent-a');
        await table.extendLeases([{ taskId: ids[2]!, owner: 'agent-a', attempt: c.attempt }], now() + 60 * SECOND);
        await table.complete([succeed(ids[0]!, 'agent-a', a.attempt), failWithError(ids[1]!, 'agent-a', b.attempt)]);
        await table.cancel(session.sessionId, [ids[3]!]);

        const counts = await table.countByState(session.sessionId);

        expect(counts).toEqual({ pending: 2, running: 1, succeeded: 1, failed: 1, cancelled: 1 });
      });

      it('counts the terminal tasks of a session, of every terminal state and of that session only', async () => {
        const { session, ids } = await seed(5);
        const other = await seed(2);
        const a = await claimOne(ids[0]!, 'agent-a');
        const b = await claimOne(ids[1]!, 'agent-a');
        await claimOne(ids[2]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', a.attempt), failWithError(ids[1]!, 'agent-a', b.attempt)]);
        await table.cancel(session.sessionId, [ids[3]!]);
        await table.cancel(other.session.sessionId);

        expect(await table.countTerminal(session.sessionId)).toBe(3);
        expect(await table.countTerminal(other.session.sessionId)).toBe(2);
        expect(await table.countTerminal(uniqueId('none'))).toBe(0);
      });

      if (readsTerminalWanted) {
        it('reads the terminal tasks a reader lacks, each once, and no task that has not ended', async () => {
          const { session, ids } = await seed(6);
          const other = await seed(1);
          for (const id of ids.slice(0, 4)) {
            const claimed = await claimOne(id, 'agent-a');
            await table.complete([succeed(id, 'agent-a', claimed.attempt)]);
          }
          await table.cancel(session.sessionId, [ids[4]!]);
          await table.cancel(other.session.sessionId);
          const asked: string[] = [];
          const lacking = (taskId: string): boolean => {
            asked.push(taskId);
            return taskId !== ids[1];
          };

          const pages: (readonly TaskRecord[])[] = [];
          for await (const page of table.readTerminalWanted!(session.sessionId, lacking, 2)) pages.push(page);

          const read = pages.flat();
          expect(read.map((t) => t.taskId).sort()).toEqual([ids[0], ids[2], ids[3], ids[4]].sort());
          expect(read.find((t) => t.taskId === ids[4])?.state).toBe('cancelled');
          expect(read.find((t) => t.taskId === ids[0])).toMatchObject({ state: 'succeeded', index: 0 });
          expect(pages.every((page) => page.length <= 2)).toBe(true);
          expect(asked.sort()).toEqual(ids.slice(0, 5).sort());
        });
      } else {
        it('offers no readTerminalWanted (its readers re-read through the listing)', () => {
          expect('readTerminalWanted' in table && table.readTerminalWanted !== undefined).toBe(false);
        });
      }

      it('counts a claimed task whose lease was never extended as running only where the reaper sees it', async () => {
        const { session, ids } = await seed(2);
        await claimOne(ids[0]!, 'agent-a');

        const counts = await table.countByState(session.sessionId);

        expect(counts).toEqual(
          reaperSeesLeasesFrom === 'claim'
            ? { pending: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0 }
            : { pending: 2, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
        );
      });

      it('counts of an unknown session are all zero', async () => {
        expect(await table.countByState(uniqueId('nope'))).toEqual({
          pending: 0,
          running: 0,
          succeeded: 0,
          failed: 0,
          cancelled: 0,
        });
      });

      it('lists terminal tasks in the order they finished, not in task order', async () => {
        const { session, ids } = await seed(4);
        for (const i of [2, 0, 3]) {
          const task = await claimOne(ids[i]!, 'agent-a');
          await table.complete([succeed(ids[i]!, 'agent-a', task.attempt)]);
        }

        const page = await table.listTerminal(session.sessionId, undefined, 100);

        expect(page.tasks.map((t) => t.taskId)).toEqual([ids[2], ids[0], ids[3]]);
        expect(page.tasks.every((t) => t.state === 'succeeded')).toBe(true);
      });

      it('paging terminal tasks with the cursor never skips nor repeats a task while tasks keep finishing', async () => {
        const { session, ids } = await seed(23);
        const finishOrder: string[] = [];
        const seen: string[] = [];
        let cursor: string | undefined;
        const order = ids.map((_, i) => (i * 7) % ids.length); // a permutation: completion order != task order
        let next = 0;

        for (let round = 0; seen.length < ids.length && round < 100; round++) {
          // Finish 1..3 tasks, then read a page of 2, so reads and finishes interleave and the reader lags behind.
          const burst = order.slice(next, next + (round % 3) + 1);
          next += burst.length;
          for (const i of burst) {
            const task = await claimOne(ids[i]!, 'agent-a');
            await table.complete([succeed(ids[i]!, 'agent-a', task.attempt)]);
            finishOrder.push(ids[i]!);
          }
          const page = await table.listTerminal(session.sessionId, cursor, 2);
          seen.push(...page.tasks.map((t) => t.taskId));
          cursor = page.cursor;
          expect(seen).toEqual(finishOrder.slice(0, seen.length));
        }

        expect(seen).toEqual(finishOrder);
        const after = await table.listTerminal(session.sessionId, cursor, 10);
        expect(after.tasks).toEqual([]);
      });

      it('an empty page hands back a cursor that still finds tasks finishing later', async () => {
        const { session, ids } = await seed(2);
        const first = await claimOne(ids[0]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', first.attempt)]);
        const page1 = await table.listTerminal(session.sessionId, undefined, 10);
        const empty = await table.listTerminal(session.sessionId, page1.cursor, 10);
        const second = await claimOne(ids[1]!, 'agent-a');

        await table.complete([succeed(ids[1]!, 'agent-a', second.attempt)]);
        const page2 = await table.listTerminal(session.sessionId, empty.cursor, 10);

        expect(empty.tasks).toEqual([]);
        expect(page2.tasks.map((t) => t.taskId)).toEqual([ids[1]]);
      });

      it('a cursor the listing handed out passes its check; one it did not is refused, naming it', async () => {
        const { session, ids } = await seed(1);
        const task = await claimOne(ids[0]!, 'agent-a');
        await table.complete([succeed(ids[0]!, 'agent-a', task.attempt)]);
        const page = await table.listTerminal(session.sessionId, undefined, 10);

        expect(() => table.checkTerminalCursor(page.cursor!)).not.toThrow();
        expect(() => table.checkTerminalCursor('not-a-cursor')).toThrow(InvalidCursorError);
        expect(() => table.checkTerminalCursor('not-a-cursor')).toThrow(/not-a-cursor/);
      });

      it('terminal tasks of other sessions are not listed', async () => {
        const mine = await seed(1);
        const theirs = await seed(1);
        await table.cancel(theirs.session.sessionId);

        const page = await table.listTerminal(mine.session.sessionId, undefined, 10);

        expect(page.tasks).toEqual([]);
      });

      it('finds running tasks whose extended lease expired, oldest first, up to the limit', async () => {
        const { ids } = await seed(4);
        // Leases in 1970, so no other test's leases (and no real agent's) fall before `cutoff`.
        const expiries = [2_000, 1_000, 9_000];
        for (const [i, expiresAt] of expiries.entries()) {
          await table.claim([{ taskId: ids[i]!, attempt: 0 }], { owner: 'agent-a', expiresAt: 500 }, 1);
          await table.extendLeases([{ taskId: ids[i]!, owner: 'agent-a', attempt: 1 }], expiresAt);
        }
        const cutoff = 3_000;

        const expired = (await table.findExpiredLeases(cutoff, 1000)).filter((t) => ids.includes(t.taskId));
        const limited = await table.findExpiredLeases(cutoff, 1);

        expect(expired.map((t) => t.taskId)).toEqual([ids[1], ids[0]]);
        expect(expired[0]).toMatchObject({ state: 'running', lease: { owner: 'agent-a', expiresAt: 1_000 } });
        expect(limited).toHaveLength(1);
        expect(limited[0]!.lease!.expiresAt).toBeLessThan(cutoff);
      });

      it('a task no longer running is not reported as expired', async () => {
        const { session, ids } = await seed(2);
        await table.claim([{ taskId: ids[0]!, attempt: 0 }], { owner: 'agent-a', expiresAt: 1_500 }, 1);
        await table.claim([{ taskId: ids[1]!, attempt: 0 }], { owner: 'agent-a', expiresAt: 1_500 }, 1);
        await table.extendLeases(
          ids.map((taskId) => ({ taskId, owner: 'agent-a', attempt: 1 })),
          1_500,
        );
        await table.complete([succeed(ids[0]!, 'agent-a', 1)]);
        await table.cancel(session.sessionId, [ids[1]!]);

        const expired = await table.findExpiredLeases(3_000, 1000);

        expect(expired.filter((t) => ids.includes(t.taskId))).toEqual([]);
      });
    });

    describe('batches larger than a service batch (DynamoDB 25, SQS 10)', () => {
      it('creates, claims, extends, completes and lists 130 tasks in single calls', async () => {
        const { session, ids } = await seed(130);
        const owner = 'agent-big';

        const claims = await table.claim(
          ids.map((taskId) => ({ taskId, attempt: 0 })),
          lease(owner),
          now(),
        );
        const refs = ids.map((taskId) => ({ taskId, owner, attempt: 1 }));
        const extended = await table.extendLeases(refs, now() + 90 * SECOND);
        const statuses = await table.leaseStatus(refs);
        const completed = await table.complete(ids.map((taskId) => succeed(taskId, owner, 1, `"${taskId}"`)));
        const listed: TaskRecord[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10 && listed.length < ids.length; page++) {
          const result = await table.listTerminal(session.sessionId, cursor, 60);
          listed.push(...result.tasks);
          cursor = result.cursor;
        }

        expect(claims.map((c) => c.status)).toEqual(ids.map(() => 'claimed'));
        expect(claims.map((c) => c.taskId)).toEqual(ids);
        expect(extended).toEqual(ids.map(() => 'held'));
        expect(statuses).toEqual(ids.map(() => 'held'));
        expect(completed).toEqual(ids.map((taskId) => ({ taskId, status: 'recorded' })));
        expect(listed.map((t) => t.taskId)).toEqual(ids);
        expect(listed.map((t) => t.result)).toEqual(ids.map((taskId) => ({ inline: `"${taskId}"` })));
        expect(await table.countByState(session.sessionId)).toMatchObject({ succeeded: 130, pending: 0, running: 0 });
      });

      it('cancels a session of 130 tasks in one call', async () => {
        const { session } = await seed(130);

        const changed = await table.cancel(session.sessionId);

        expect(changed).toBe(130);
        expect((await table.countByState(session.sessionId)).cancelled).toBe(130);
      });
    });
  });
}
