// A submission on the local grid: session, tasks, queue messages and seal written together, or none of them.
import path from 'node:path';
import { GRID_DB_FILE, openLocalBackends, openSqliteDatabase, type LocalBackends } from '../../../lib/backends/local';
import { GridClient } from '../../../lib/client';
import { SessionExistsError, compileConfig } from '../../../lib/core';
import { makeTempDir } from './temp-grid-dir';

describe('SqliteSubmissionWriter', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let backends: LocalBackends;
  let client: GridClient;
  beforeEach(() => {
    temp = makeTempDir('htcgrid-submit-');
    backends = openLocalBackends(temp.dir);
    client = new GridClient({ config: compileConfig({}, 'test'), ...backends });
  });
  afterEach(async () => {
    await backends.close();
    temp.remove();
  });

  const rows = (table: string): number =>
    (backends.database.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

  it('submits a session of one batch in one write: no separate session, task, send or seal writes', async () => {
    const writes = jest.spyOn(backends.submissions, 'writeSubmission');
    const separate = [
      jest.spyOn(backends.table, 'createSession'),
      jest.spyOn(backends.table, 'createTasks'),
      jest.spyOn(backends.table, 'sealSession'),
      jest.spyOn(backends.queue, 'send'),
    ];

    const handle = await client.submit([{ n: 1 }, { n: 2 }]);

    expect(writes).toHaveBeenCalledTimes(1);
    for (const spy of separate) expect(spy).not.toHaveBeenCalled();
    expect(await backends.table.getSession(handle.sessionId)).toMatchObject({ taskCount: 2 });
    expect((await backends.table.countByState(handle.sessionId)).pending).toBe(2);
    expect(await backends.queue.countMessages()).toEqual({ visible: 2, invisible: 0 });
  });

  it('writes the last batch of an array with the seal even when it is full: a one-task session is one write', async () => {
    const writes = jest.spyOn(backends.submissions, 'writeSubmission');

    await client.submit([{ n: 1 }], { batchSize: 1 });
    await client.submit([1, 2, 3, 4], { batchSize: 2 });

    expect(writes.mock.calls.map(([part]) => [part.tasks.length, part.seal])).toEqual([
      [1, 1],
      [2, undefined],
      [2, 4],
    ]);
  });

  it('creates the session with the first batch and seals it with the last', async () => {
    const writes = jest.spyOn(backends.submissions, 'writeSubmission');

    const handle = await client.submit([1, 2, 3, 4, 5], { batchSize: 2 });

    const parts = writes.mock.calls.map(([part]) => ({
      session: part.session !== undefined,
      tasks: part.tasks.map((t) => t.index),
      seal: part.seal,
    }));
    expect(parts).toEqual([
      { session: true, tasks: [0, 1], seal: undefined },
      { session: false, tasks: [2, 3], seal: undefined },
      { session: false, tasks: [4], seal: 5 },
    ]);
    expect(await backends.table.getSession(handle.sessionId)).toMatchObject({ taskCount: 5 });
    expect(await backends.queue.countMessages()).toEqual({ visible: 5, invisible: 0 });
  });

  it('a write that fails half-way leaves no session, task or message, with no clean-up needed', async () => {
    // Real SQLite failures: the queue refuses the message after the session and the tasks were inserted in the same
    // transaction, and a clean-up deleting the session afterwards would fail too (a submission written step by step
    // would leave its session and tasks behind).
    // The triggers are in the database before the grid opens it, as a schema the grid finds.
    await backends.close();
    const db = openSqliteDatabase(path.join(temp.dir, GRID_DB_FILE));
    db.exec(`
      CREATE TRIGGER refuse_send BEFORE INSERT ON queue_messages BEGIN SELECT RAISE(ABORT, 'queue refused'); END;
      CREATE TRIGGER refuse_cleanup BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'no delete'); END;
    `);
    db.close();
    backends = openLocalBackends(temp.dir);
    client = new GridClient({ config: compileConfig({}, 'test'), ...backends });

    // Matched by message: better-sqlite3's errors may come from another jest realm, where toThrow sees no Error.
    // A drawn session id (a named one is created first, on its own: it may be taken, see below).
    await expect(client.submit([{ n: 1 }])).rejects.toMatchObject({
      message: expect.stringMatching(/queue refused/),
    });

    expect(rows('sessions')).toBe(0);
    expect(rows('tasks')).toBe(0);
    expect(rows('queue_messages')).toBe(0);
  });

  it('a taken session id fails with SessionExistsError and leaves that session as it was', async () => {
    await client.submit([{ n: 1 }], { sessionId: 's-taken' });

    await expect(client.submit([{ n: 2 }, { n: 3 }], { sessionId: 's-taken' })).rejects.toThrow(SessionExistsError);

    expect(await backends.table.getSession('s-taken')).toMatchObject({ taskCount: 1 });
    expect(rows('tasks')).toBe(1);
    expect(rows('queue_messages')).toBe(1);
  });

  it("a taken session id touches none of that session's stored inputs (they are keyed by session and index)", async () => {
    const big = (tag: string) => ({ tag, pad: 'x'.repeat(64 * 1024) });
    const first = await client.submit([big('FIRST')], { sessionId: 's-stored' });
    const [task] = (await backends.table.listLive('s-stored', 'pending', undefined, 10)).items;
    const key = task && 'key' in task.payload ? task.payload.key : undefined;
    expect(key).toBeDefined();

    await expect(client.submit([big('SECOND')], { sessionId: 's-stored' })).rejects.toThrow(SessionExistsError);

    expect(first.sessionId).toBe('s-stored');
    const stored = JSON.parse((await backends.store.get(key!)).toString('utf8')) as { tag: string };
    expect(stored.tag).toBe('FIRST');
  });

  it('a later batch that fails removes the batches written before it', async () => {
    await expect(
      client.submit([{ n: 1 }, { n: 2 }, { n: 3, bad: 1n }], { sessionId: 's-later', batchSize: 1 }),
    ).rejects.toThrow(/task #2/);

    expect(await backends.table.getSession('s-later')).toBeUndefined();
    expect(rows('tasks')).toBe(0);
    expect(rows('queue_messages')).toBe(0);
  });
});
