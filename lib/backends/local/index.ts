// The embedded backends of the local grid: SQLite task table and queue in one file, payloads as files.
import fs from 'node:fs';
import path from 'node:path';
import { silentLogger, type Logger } from '../../logging';
import { DatabaseChanges } from './database-changes';
import { FileAgentRegistry } from './file-agent-registry';
import { FilePayloadStore } from './file-payload-store';
import { openSqliteDatabase, type SqliteDatabase } from './sqlite-database';
import { SqliteSubmissionWriter } from './sqlite-submission-writer';
import { SqliteTaskIntake } from './sqlite-task-intake';
import { SqliteTaskQueue } from './sqlite-task-queue';
import { SqliteTaskTable } from './sqlite-task-table';
import { WriteLock } from './write-lock';

export { DatabaseChanges, watchChangeFiles } from './database-changes';
export * from './errors';
export { FileAgentRegistry, processLives } from './file-agent-registry';
export { FilePayloadStore } from './file-payload-store';
export {
  openSqliteDatabase,
  SCHEMA_VERSION,
  WAL_AUTOCHECKPOINT_PAGES,
  WAL_SIZE_LIMIT_BYTES,
  type OpenDatabaseOptions,
  type SqliteDatabase,
} from './sqlite-database';
export { ExpiryTimer, SessionExpiry, type ExpiryOptions, type ExpiryStep } from './retention';
export { REQUEST_LEDGER_FILE, SqliteRequestLedger } from './sqlite-request-ledger';
export { SqliteSubmissionWriter } from './sqlite-submission-writer';
export { SqliteTaskIntake } from './sqlite-task-intake';
export { InvalidReceiptError, SqliteTaskQueue, type Claimer, type SqliteTaskQueueOptions } from './sqlite-task-queue';
export { InvalidCursorError, SqliteTaskTable, type SqliteTaskTableOptions } from './sqlite-task-table';
export {
  CheckpointTimer,
  nextLookDelay,
  databaseSyncDescriptor,
  startWalCheckpoints,
  WAL_CHECKPOINT_IDLE_INTERVAL_MS,
  WAL_CHECKPOINT_INTERVAL_MS,
  WAL_CHECKPOINT_NEAR_BOUND_MS,
  WAL_CHECKPOINT_NEAR_BOUND_SHARE,
  WalCheckpointer,
  type CheckpointStep,
  type LogRestartOptions,
  type WalCheckpoints,
  type WalCheckpointsOptions,
} from './wal-checkpointer';
export { nameThisThread, THREAD_NAMES } from './thread-name';
export { WriteLock } from './write-lock';

/** File name of the grid database inside a grid directory. */
export const GRID_DB_FILE = 'grid.db';
/** Folder of the payload store inside a grid directory. */
export const PAYLOADS_DIR = 'payloads';
/** Folder of the agent registry inside a grid directory. */
export const AGENTS_DIR = 'agents';

export interface LocalBackendsOptions {
  /** @default - a silent logger */
  readonly logger?: Logger;
  /**
   * How long a write waits for another process holding the database's write lock.
   * @default 10000
   */
  readonly busyTimeoutMs?: number;
  /**
   * How often a long-polling receive looks at an empty queue again when nothing wakes it: sends in this process wake it
   * at once, commits of other processes through `changes` (the folder's file events).
   * @default 1000 where the folder can be watched, else 10
   */
  readonly pollIntervalMs?: number;
  /**
   * Memory of a `WriteLock` shared by the threads of this process that open the same grid (`WriteLock.memory()`).
   * @default - none: they wait for each other in SQLite's busy handler, which sleeps in steps of milliseconds
   */
  readonly writeLock?: SharedArrayBuffer;
}

export interface LocalBackends {
  readonly table: SqliteTaskTable;
  readonly queue: SqliteTaskQueue;
  readonly store: FilePayloadStore;
  /** Receive + claim + acknowledge in one transaction, on the table's and queue's shared connection. */
  readonly intake: SqliteTaskIntake;
  /** Session, tasks, queue messages and seal of a submission in one transaction, on the same connection. */
  readonly submissions: SqliteSubmissionWriter;
  /** Where the grid's agents register and heartbeat (`<dir>/agents`). */
  readonly agents: FileAgentRegistry;
  /** Commits to the database by any thread or process, as they happen: what pollers wait on between looks. */
  readonly changes: DatabaseChanges;
  /** Absolute path of the SQLite database. */
  readonly dbPath: string;
  /** The connection the table and queue share (for maintenance such as `SessionExpiry`). */
  readonly database: SqliteDatabase;
  /** Closes the table, queue and store, then the database connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens (creating if needed) the backends of a local grid kept in `dir`: the database `<dir>/grid.db` holding the
 * task table and the queue, and the payload store `<dir>/payloads`. Any number of processes may open the same
 * directory at once (client, agents, reaper); each gets its own connection.
 */
export function openLocalBackends(dir: string, options: LocalBackendsOptions = {}): LocalBackends {
  const logger = options.logger ?? silentLogger();
  const root = path.resolve(dir);
  fs.mkdirSync(path.join(root, PAYLOADS_DIR), { recursive: true });
  const dbPath = path.join(root, GRID_DB_FILE);
  const busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
  const db = openSqliteDatabase(dbPath, { busyTimeoutMs });
  const writeLock = options.writeLock ? new WriteLock(options.writeLock, busyTimeoutMs) : undefined;
  const changes = new DatabaseChanges(dbPath);
  const table = new SqliteTaskTable(db, { logger, writeLock, changes });
  const queue = new SqliteTaskQueue(db, { logger, pollIntervalMs: options.pollIntervalMs, writeLock, changes });
  const store = new FilePayloadStore(path.join(root, PAYLOADS_DIR));
  const intake = new SqliteTaskIntake(queue, table);
  const submissions = new SqliteSubmissionWriter(table, queue);
  const agents = new FileAgentRegistry(path.join(root, AGENTS_DIR));
  logger.debug({ dbPath }, 'opened local backends');
  let closing: Promise<void> | undefined;
  return {
    table,
    queue,
    store,
    intake,
    submissions,
    agents,
    changes,
    dbPath,
    database: db,
    close() {
      closing ??= (async () => {
        changes.close();
        await Promise.all([table.close(), queue.close(), store.close()]);
        if (db.open) db.close();
        logger.debug({ dbPath }, 'closed local backends');
      })();
      return closing;
    },
  };
}
