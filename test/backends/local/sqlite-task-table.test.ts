// Runs the TaskTable contract against the SQLite task table, plus what only the local adapter promises.
import { openLocalBackends } from '../../../lib/backends/local';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { describeTaskBrowserContract } from '../../contract/task-browser.contract';
import { describeTaskTableContract } from '../../contract/task-table.contract';
import { onLocalBackends } from '../../support/local-backends';
import { makeTempDir } from './temp-grid-dir';

/** A SQLite task table on a fresh folder, removed with it by `cleanup`. */
async function sqliteTable() {
  const temp = makeTempDir();
  const backends = openLocalBackends(temp.dir);
  return {
    table: backends.table,
    cleanup: async () => {
      await backends.close();
      temp.remove();
    },
  };
}

describeTaskTableContract('SqliteTaskTable', sqliteTable);
describeTaskBrowserContract('SqliteTaskTable', sqliteTable);

describe('SqliteTaskTable', () => {
  const session: SessionRecord = {
    sessionId: 's1',
    createdAt: 1,
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 1000,
    nonRetryableErrorTypes: [],
  };

  it('rejects a cursor it did not hand out', async () => {
    await onLocalBackends(async (backends) => {
      await expect(backends.table.listTerminal('s1', 'not-a-cursor', 10)).rejects.toThrow(
        /invalid terminal-task cursor/,
      );
    });
  });

  it('keeps completion order across two connections to the same file', async () => {
    const temp = makeTempDir();
    const a = openLocalBackends(temp.dir);
    const b = openLocalBackends(temp.dir);
    try {
      await a.table.createSession(session);
      await a.table.createTasks([0, 1, 2, 3].map((i) => newTask(session, i, { inline: 'null' }, 1)));
      const now = Date.now();
      await a.table.claim(
        [0, 1, 2, 3].map((i) => ({ taskId: `s1_${i}`, attempt: 0 })),
        { owner: 'x', expiresAt: now + 60_000 },
        now,
      );

      for (const [backends, i] of [
        [b, 3],
        [a, 0],
        [b, 2],
        [a, 1],
      ] as const) {
        const done = {
          taskId: `s1_${i}`,
          guard: { owner: 'x', attempt: 1 },
          at: now,
          outcome: { kind: 'succeeded', result: { inline: '1' } },
        } as const;
        expect(await backends.table.complete([done])).toEqual([{ taskId: `s1_${i}`, status: 'recorded' }]);
      }

      const page = await b.table.listTerminal('s1', undefined, 10);
      expect(page.tasks.map((t) => t.index)).toEqual([3, 0, 2, 1]);
    } finally {
      await a.close();
      await b.close();
      temp.remove();
    }
  });

  it('says a page short of its limit holds every task ended when it was read (more: false), a full one may not', async () => {
    await onLocalBackends(async (backends) => {
      const { table } = backends;
      await table.createSession(session);
      await table.createTasks([0, 1, 2, 3].map((i) => newTask(session, i, { inline: 'null' }, 1)));
      const now = Date.now();
      await table.claim(
        [0, 1, 2, 3].map((i) => ({ taskId: `s1_${i}`, attempt: 0 })),
        { owner: 'x', expiresAt: now + 60_000 },
        now,
      );
      const done = (i: number) =>
        ({
          taskId: `s1_${i}`,
          guard: { owner: 'x', attempt: 1 },
          at: now,
          outcome: { kind: 'succeeded', result: { inline: '1' } },
        }) as const;
      await table.complete([done(0), done(1)]);

      const full = await table.listTerminal('s1', undefined, 2);
      expect([full.tasks.length, full.more]).toEqual([2, true]);
      const rest = await table.listTerminal('s1', full.cursor, 2);
      expect([rest.tasks.length, rest.more]).toEqual([0, false]);
      // A task ending after that read comes after the cursor it handed out.
      await table.complete([done(3), done(2)]);
      const later = await table.listTerminal('s1', rest.cursor, 10);
      expect(later.tasks.map((t) => t.index)).toEqual([3, 2]);
      expect(later.more).toBe(false);
    });
  });

  it("numbers each session's ended tasks 1, 2, 3… in commit order, whatever other sessions and stale writes do", async () => {
    await onLocalBackends(async (backends) => {
      const other: SessionRecord = { ...session, sessionId: 's2' };
      const { table } = backends;
      for (const s of [session, other]) {
        await table.createSession(s);
        await table.createTasks([0, 1, 2].map((i) => newTask(s, i, { inline: 'null' }, 1)));
      }
      const now = Date.now();
      const lease = { owner: 'x', expiresAt: now + 60_000 };
      await table.claim(
        ['s1_0', 's1_1', 's1_2', 's2_0'].map((taskId) => ({ taskId, attempt: 0 })),
        lease,
        now,
      );
      const done = (taskId: string, attempt = 1) =>
        ({
          taskId,
          guard: { owner: 'x', attempt },
          at: now,
          outcome: { kind: 'succeeded', result: { inline: '1' } },
        }) as const;

      await table.complete([done('s2_0'), done('s1_1')]);
      // A stale completion (wrong attempt) takes no number.
      expect(await table.complete([done('s1_0', 7)])).toEqual([{ taskId: 's1_0', status: 'stale' }]);
      await table.complete([done('s1_0')]);
      await table.cancel('s1', ['s1_2'], now);

      const first = await table.listTerminal('s1', undefined, 2);
      expect(first.tasks.map((t) => t.index)).toEqual([1, 0]);
      expect(first.cursor).toBe('2');
      const second = await table.listTerminal('s1', first.cursor, 10);
      expect(second.tasks.map((t) => [t.index, t.state])).toEqual([[2, 'cancelled']]);
      expect(second.cursor).toBe('3');
      const others = await table.listTerminal('s2', undefined, 10);
      expect(others.tasks.map((t) => t.index)).toEqual([0]);
      expect(others.cursor).toBe('1');
    });
  });
});
