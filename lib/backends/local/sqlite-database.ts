// Opens the local grid's SQLite database (WAL, shared by several processes) and creates its schema once.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SchemaVersionError, translateSqliteError } from './errors';

/** Bumped whenever a table or column changes; a database of another version is refused, never migrated. */
export const SCHEMA_VERSION = 5;

export type SqliteDatabase = Database.Database;

/**
 * How a statement takes a row limit bound at each run: `LIMIT ${BOUND_LIMIT}`. The SQLite that better-sqlite3 bundles
 * (3.53) plans a bare `LIMIT ?` by the value bound to it, so every bind of that parameter (better-sqlite3 binds them
 * all at each run) marks the statement to be compiled again at its next step: 6–30 µs a run, a results read or a look
 * at the queue compiled anew each time. The planner does not read the value of an expression such as `?+0`, and the
 * plans of these statements do not depend on it.
 */
export const BOUND_LIMIT = '?+0';

/**
 * Log pages past which a commit of a grid connection checkpoints the write-ahead log itself (`wal_autocheckpoint`,
 * SQLite's default). A process running an agent also checkpoints from a thread of its own (`startWalCheckpoints`), off
 * the commits' path: when the grid pauses, a look copies the whole log and the next writer starts it again; under a
 * load that never pauses only a writer can start the log again, so the log grows to this bound and the commit that
 * reaches it finds all but the last millisecond or so of pages copied by the thread (see `WalCheckpointer`). It stays at
 * SQLite's 1,000 pages (4 MiB of log at most): at 4,096 the log outgrew a nearly full disk under a steady load and no
 * checkpoint could then grow the database file to let it start again (test/faults/disk-full-process.test.ts).
 */
export const WAL_AUTOCHECKPOINT_PAGES = 1_000;

/**
 * Bytes the log file keeps when it starts again (`journal_size_limit`): twice what `WAL_AUTOCHECKPOINT_PAGES` frames of
 * 4 KiB pages take. SQLite never shrinks the log file by itself, so a log that a long reader let grow past its bound
 * (a reader holding a snapshot stops it starting again) would keep that size, disk space included, for the grid's
 * life. With the limit, the first commit after the log starts again cuts it back; a log within its bound, as under a
 * steady load, is never cut (no truncate and regrow on the commits' path).
 */
export const WAL_SIZE_LIMIT_BYTES = 2 * WAL_AUTOCHECKPOINT_PAGES * (4096 + 24) + 32;

export interface OpenDatabaseOptions {
  /**
   * How long a write waits for another process holding the write lock before failing with `DatabaseBusyError`.
   * @default 10000
   */
  readonly busyTimeoutMs?: number;
}

/*
 * Tasks keep their DataRefs in plain columns (inline text, or key + bytes) so the hot path never escapes JSON
 * inside JSON; errors and the attempt history are compact JSON text. `done_seq` orders a session's terminal tasks by
 * completion: one more than the session's highest, read inside the writing transaction, which SQLite serialises
 * across processes, so a reader never sees seq N+1 before seq N (version 1 took it from a grid-wide counter in
 * `grid_meta`, a page of its own written by every completion).
 *
 * A queue message's id is its rowid, without AUTOINCREMENT (version 2 and before: `sqlite_sequence`, a page written by
 * every send): an id can then come back once the newest message is gone, so a receipt names the message's task and
 * attempt as well (see `SqliteTaskQueue`).
 *
 * One index serves a session's live tasks and its ended ones, `tasks_by_session (session_id, done_seq, state)`: live
 * tasks have no completion number, so they sit at the front of the session's range by state, then rowid (the order of
 * `listLive`); ended tasks follow in completion order (`listTerminal`). A completion moves its task's entry within it;
 * with an index by state and another by completion number (version 3 and before) it wrote a page of each.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS grid_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  non_retryable TEXT NOT NULL,
  task_count INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  timeout_ms INTEGER NOT NULL,
  payload_inline TEXT,
  payload_key TEXT,
  payload_bytes INTEGER,
  result_inline TEXT,
  result_key TEXT,
  result_bytes INTEGER,
  error TEXT,
  failure_reason TEXT,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  submitted_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  history TEXT NOT NULL DEFAULT '[]',
  done_seq INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, done_seq, state);
CREATE INDEX IF NOT EXISTS tasks_by_lease_expiry ON tasks (lease_expires_at) WHERE state = 'running';

CREATE TABLE IF NOT EXISTS queue_messages (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  -- A reap's message: QueueMessage.leaseExpiredBefore (NULL for every other message).
  lease_expired_before INTEGER
);
CREATE INDEX IF NOT EXISTS queue_by_priority ON queue_messages (priority, visible_at, id);
`;

/**
 * Opens (creating if needed) the grid database at `dbPath`: WAL journal, `synchronous=NORMAL`, checkpoints left to
 * `startWalCheckpoints` up to `WAL_AUTOCHECKPOINT_PAGES`, a busy timeout so several processes (agents, client,
 * reaper) can share the file. Throws `SchemaVersionError` for a database of
 * another schema version.
 */
export function openSqliteDatabase(dbPath: string, options: OpenDatabaseOptions = {}): SqliteDatabase {
  fs.mkdirSync(path.dirname(path.resolve(dbPath)), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(dbPath);
  } catch (error) {
    return translateSqliteError(error, 'opening the grid database');
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 10_000))}`);
    // Freed pages can go back to the file system in small steps (`incremental_vacuum`, see retention.ts). Only takes
    // effect on a database without tables yet: an older grid.db keeps auto_vacuum off (its free pages are reused).
    // Set on a new database only: setting it writes, and opening a grid to read it must work on a full disk.
    if (db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get() === undefined) db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    db.pragma('foreign_keys = OFF');
    // Reads through the OS page cache shared by every process of the grid, instead of a per-connection copy.
    db.pragma(`mmap_size = ${256 * 1024 * 1024}`);
    db.pragma('cache_size = -16000');
    ensureSchema(db, dbPath);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof SchemaVersionError) throw error;
    // Opening a grid on a full disk (setting it up writes) is a DiskFullError like any other write there.
    return translateSqliteError(error, 'opening the grid database');
  }
}

function ensureSchema(db: SqliteDatabase, dbPath: string): void {
  const readVersion = (): string | undefined => {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'grid_meta'").get();
    if (!hasMeta) return undefined;
    const row = db.prepare("SELECT value FROM grid_meta WHERE key = 'schema_version'").get() as
      { value: string } | undefined;
    return row?.value;
  };
  const found = readVersion();
  if (found === String(SCHEMA_VERSION)) return;
  if (found !== undefined) throw new SchemaVersionError(dbPath, found, SCHEMA_VERSION);
  try {
    db.transaction(() => {
      // Another process may have created the schema between our check and taking the write lock.
      const again = readVersion();
      if (again !== undefined && again !== String(SCHEMA_VERSION)) {
        throw new SchemaVersionError(dbPath, again, SCHEMA_VERSION);
      }
      db.exec(SCHEMA);
      db.prepare("INSERT OR IGNORE INTO grid_meta (key, value) VALUES ('schema_version', ?)").run(
        String(SCHEMA_VERSION),
      );
    }).immediate();
  } catch (error) {
    if (error instanceof SchemaVersionError) throw error;
    translateSqliteError(error, 'creating the grid schema');
  }
}
