// The local grid's request ledger: requests the HTTP API already applied, in a SQLite file of the grid folder.
import path from 'node:path';
import Database from 'better-sqlite3';
import type { LedgerEntry, RequestLedger } from '../../ports';
import { translateSqliteError } from './errors';

/** File of the ledger inside a grid directory (apart from the grid database, whose schema it leaves alone). */
export const REQUEST_LEDGER_FILE = 'requests.db';

interface LedgerRow {
  fingerprint: string;
  response: string | null;
  held_until: number;
}

/**
 * `RequestLedger` on SQLite, shared by every process serving the same grid folder: `begin` reads and takes a key in
 * one IMMEDIATE transaction, so two servers handed the same request at once cannot both apply it.
 */
export class SqliteRequestLedger implements RequestLedger {
  private readonly db: Database.Database;
  private readonly beginTx: (key: string, fingerprint: string, now: number, holdMs: number) => LedgerEntry;
  private readonly stmt: ReturnType<typeof prepareStatements>;

  /** Opens (creating if needed) `<dir>/requests.db`. */
  static open(dir: string): SqliteRequestLedger {
    return new SqliteRequestLedger(path.join(dir, REQUEST_LEDGER_FILE));
  }

  constructor(file: string) {
    this.db = new Database(file);
    try {
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('journal_mode = WAL');
      this.db.exec(`CREATE TABLE IF NOT EXISTS requests (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        response TEXT,
        held_until INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID`);
    } catch (error) {
      this.db.close();
      translateSqliteError(error, 'opening the request ledger');
    }
    this.stmt = prepareStatements(this.db);
    const tx = this.db.transaction((key: string, fingerprint: string, now: number, holdMs: number): LedgerEntry => {
      const row = this.stmt.get.get(key);
      if (row !== undefined && row.response !== null)
        return { status: 'done', fingerprint: row.fingerprint, response: row.response };
      if (row !== undefined && row.held_until > now) return { status: 'busy', fingerprint: row.fingerprint };
      this.stmt.take.run(key, fingerprint, now + holdMs, now);
      return { status: 'new' };
    });
    this.beginTx = (key, fingerprint, now, holdMs) => tx.immediate(key, fingerprint, now, holdMs);
  }

  async begin(key: string, fingerprint: string, now: number, holdMs: number): Promise<LedgerEntry> {
    try {
      return this.beginTx(key, fingerprint, now, holdMs);
    } catch (error) {
      return translateSqliteError(error, 'request ledger begin');
    }
  }

  async finish(key: string, response: string): Promise<void> {
    try {
      this.stmt.finish.run(response, key);
    } catch (error) {
      translateSqliteError(error, 'request ledger finish');
    }
  }

  async release(key: string): Promise<void> {
    try {
      this.stmt.release.run(key);
    } catch (error) {
      translateSqliteError(error, 'request ledger release');
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string], LedgerRow>('SELECT fingerprint, response, held_until FROM requests WHERE key = ?'),
    take: db.prepare<[string, string, number, number]>(
      `INSERT INTO requests (key, fingerprint, response, held_until, created_at) VALUES (?, ?, NULL, ?, ?)
       ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, held_until = excluded.held_until`,
    ),
    finish: db.prepare<[string, string]>('UPDATE requests SET response = ? WHERE key = ?'),
    release: db.prepare<[string]>('DELETE FROM requests WHERE key = ? AND response IS NULL'),
  };
}
