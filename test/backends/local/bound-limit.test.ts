// The local backends' statements take their row limits as `LIMIT ${BOUND_LIMIT}`, never a bare `LIMIT ?`, which the
// bundled SQLite compiles again at every run (see BOUND_LIMIT). Speed is not asserted here: the SQL text is.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BOUND_LIMIT } from '../../../lib/backends/local/sqlite-database';

const LOCAL_BACKENDS = path.resolve(__dirname, '..', '..', '..', 'lib', 'backends', 'local');

describe('row limits of the local backends’ statements', () => {
  it('are never a bare bound parameter', () => {
    const bare = fs
      .readdirSync(LOCAL_BACKENDS)
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) =>
        fs
          .readFileSync(path.join(LOCAL_BACKENDS, name), 'utf8')
          .split('\n')
          .map((line, i) => ({ where: `${name}:${i + 1}`, line }))
          // A bare `LIMIT ?` in SQL text (not in a comment that names it).
          .filter(({ line }) => /LIMIT \?(?![+\w])/.test(line) && !/^\s*(\/\/|\*)/.test(line)),
      );

    expect(bare).toEqual([]);
  });

  it('limit rows as the bound number says', () => {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE t (a INTEGER)');
      const insert = db.prepare('INSERT INTO t VALUES (?)');
      for (let i = 0; i < 5; i++) insert.run(i);
      const first = db.prepare<[number], { a: number }>(`SELECT a FROM t ORDER BY a LIMIT ${BOUND_LIMIT}`);

      expect([1, 3, 10].map((n) => first.all(n).length)).toEqual([1, 3, 5]);
    } finally {
      db.close();
    }
  });
});
