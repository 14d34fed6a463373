// The TaskBrowser contract (read-only listings for the dashboard): every TaskTable adapter must give these answers.
import { InvalidBrowseCursorError } from '../../lib/backends/browse-cursor';
import { newTask, type SessionRecord, type TaskRecord } from '../../lib/core/task';
import type { BrowsePage, TaskTable } from '../../lib/ports';
import { setUpEachTest, uniqueId } from './contract-helpers';
import type { TaskTableUnderTest } from './task-table.contract';

/** Registers the browsing tests; `factory` is the TaskTable contract's (tables may be shared between tests). */
export function describeTaskBrowserContract(name: string, factory: () => Promise<TaskTableUnderTest>): void {
  describe(`${name} (TaskBrowser contract)`, () => {
    let table: TaskTable;
    setUpEachTest(factory, (underTest) => (table = underTest.table));

    function sessionRecord(createdAt: number): SessionRecord {
      return {
        sessionId: uniqueId('b'),
        createdAt,
        priority: 0,
        maxAttempts: 3,
        timeoutMs: 60_000,
        nonRetryableErrorTypes: [],
      };
    }

    /** Every item of a listing, following cursors (a page may be short or empty and still have a cursor). */
    async function all<T>(read: (cursor: string | undefined) => Promise<BrowsePage<T>>): Promise<T[]> {
      const items: T[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await read(cursor);
        items.push(...page.items);
        cursor = page.cursor;
        if (cursor === undefined) return items;
      }
      throw new Error('the listing did not end within 100 pages');
    }

    it('lists sessions newest first, page by page, with their task count once sealed', async () => {
      // Later than any other test's sessions, and later on each run against a persistent table.
      const base = 9_000_000_000_000 + Date.now();
      const [older, middle, newest] = [sessionRecord(base + 1), sessionRecord(base + 2), sessionRecord(base + 3)];
      for (const s of [middle, newest, older]) await table.createSession(s);
      await table.sealSession(newest.sessionId, 0);

      const first = await table.listSessions(undefined, 2);
      const second = await table.listSessions(first.cursor, 1);

      expect(first.items.map((s) => s.sessionId)).toEqual([newest.sessionId, middle.sessionId]);
      expect(first.items[0]).toEqual({ ...newest, taskCount: 0 });
      expect(second.items.map((s) => s.sessionId)).toEqual([older.sessionId]);
    });

    it('lists a session’s pending and running tasks apart, every one once across pages', async () => {
      const session = sessionRecord(1_700_000_000_000);
      await table.createSession(session);
      const tasks = Array.from({ length: 7 }, (_, i) =>
        newTask(session, i, { inline: `{"i":${i}}` }, 1_700_000_000_000),
      );
      await table.createTasks(tasks);
      const claimed = await table.claim(
        [0, 3, 5].map((i) => ({ taskId: tasks[i]!.taskId, attempt: 0 })),
        { owner: 'browser-test', expiresAt: Date.now() + 60_000 },
        Date.now(),
      );
      expect(claimed.map((c) => c.status)).toEqual(['claimed', 'claimed', 'claimed']);
      await table.complete([
        {
          taskId: tasks[5]!.taskId,
          guard: { owner: 'browser-test', attempt: 1 },
          outcome: { kind: 'succeeded', result: { inline: '1' } },
          at: Date.now(),
        },
      ]);

      const ids = (list: TaskRecord[]) => list.map((t) => t.index).sort((a, b) => a - b);
      const pending = await all((c) => table.listLive(session.sessionId, 'pending', c, 2));
      const running = await all((c) => table.listLive(session.sessionId, 'running', c, 2));

      expect(ids(pending)).toEqual([1, 2, 4, 6]);
      expect(ids(running)).toEqual([0, 3]);
      expect(running.every((t) => t.state === 'running' && t.lease?.owner === 'browser-test')).toBe(true);
      expect(await table.listLive(uniqueId('none'), 'pending', undefined, 10)).toEqual({
        items: [],
        cursor: undefined,
      });
    });

    it('refuses a cursor it did not hand out, naming it', async () => {
      await expect(table.listSessions('not-a-cursor', 10)).rejects.toThrow(InvalidBrowseCursorError);
      await expect(table.listLive('s', 'pending', 'eyJ4IjoxfQ', 10)).rejects.toThrow(/invalid cursor 'eyJ4IjoxfQ'/);
    });
  });
}
