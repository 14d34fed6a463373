// A full disk on a local grid: SQLite's SQLITE_FULL (simulated with PRAGMA max_page_count) is reported as such, the
// failed submission leaves nothing half-written, what was recorded before stays, and the grid carries on with space.
import Database from 'better-sqlite3';
import { DiskFullError, type LocalBackends } from '../../../lib/backends/local';
import type { GridClient } from '../../../lib/client';
import { localClientOfEachTest } from './temp-grid-dir';

describe('a full disk under a local grid', () => {
  let backends: LocalBackends;
  let client: GridClient;
  localClientOfEachTest({}, (grid) => ({ backends, client } = grid));

  const taskCount = (): number => {
    const db = new Database(backends.dbPath, { readonly: true });
    try {
      return (db.prepare('SELECT COUNT(*) AS n FROM tasks').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  it('reports SQLITE_FULL as a full disk, keeps what was recorded, and accepts work once space is back', async () => {
    await client.submit([{ i: 0 }, { i: 1 }], { sessionId: 'before' });
    const pages = backends.database.pragma('page_count', { simple: true }) as number;
    // The file may not grow any more: the next pages cannot be written, as on a full file system.
    backends.database.pragma(`max_page_count = ${pages + 1}`);
    const many = Array.from({ length: 5000 }, (_, i) => ({ i, pad: 'z'.repeat(200) }));
    const failed = client.submit(many, { sessionId: 'too-big' });
    await expect(failed).rejects.toThrow(DiskFullError);
    await expect(client.submit(many, { sessionId: 'too-big-2' })).rejects.toThrow(
      /disk holding the grid folder is full/,
    );
    expect(taskCount()).toBe(2);
    await expect((await client.session('before')).status()).resolves.toMatchObject({ total: 2 });

    backends.database.pragma('max_page_count = 1073741823');
    await client.submit(many, { sessionId: 'after' });
    expect(taskCount()).toBe(5002);
  });
});
