// Retention of a local grid: finished sessions older than the retention period are deleted in small batches (rows,
// queued messages, payload files), and the pages they freed go back to the file system a few at a time.
import { DISK_FULL_WARN_EVERY_MS, isDiskFull } from '../../core';
import type { Logger } from '../../logging';
import { BOUND_LIMIT, type SqliteDatabase } from './sqlite-database';
import type { FilePayloadStore } from './file-payload-store';
import { payloadKeys } from '../../ports';
import { translateSqliteError } from './errors';

export interface ExpiryStep {
  /** Task rows deleted by this step. */
  readonly tasks: number;
  /** Sessions removed completely by this step. */
  readonly sessions: number;
  /** Database pages given back to the file system by this step. */
  readonly pagesFreed: number;
  /** True when an expired session may remain: call again soon. */
  readonly more: boolean;
}

export interface ExpiryOptions {
  /** Task rows deleted per transaction. @default 500 */
  readonly batchTasks?: number;
  /** Free pages given back per step (`PRAGMA incremental_vacuum(N)`). @default 256 (1 MiB of 4 KiB pages) */
  readonly vacuumPages?: number;
}

/**
 * Expires the finished sessions of a local grid: a session is finished when it was sealed and no task of it is pending
 * or running; it expires `retentionMs` after its last task finished (after its creation if it had none). Each `step`
 * holds the write lock for one short transaction (at most `batchTasks` rows), so a busy grid never pauses for a whole
 * session.
 */
export class SessionExpiry {
  private readonly batchTasks: number;
  private readonly vacuumPages: number;
  private readonly stmt;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly store: FilePayloadStore,
    private readonly retentionMs: number,
    options: ExpiryOptions = {},
  ) {
    this.batchTasks = Math.max(1, Math.floor(options.batchTasks ?? 500));
    this.vacuumPages = Math.max(0, Math.floor(options.vacuumPages ?? 256));
    this.stmt = {
      // A session's tasks finish after it was created, so one created within the retention period cannot have expired:
      // that first test keeps the step from running the subqueries for every session kept (every 5 s, on the thread
      // of an embedded grid's client: 10 ms a step at 3,000 sessions, 0.1 ms with it; bench/README.md, bench/latency).
      expired: db.prepare<[number, number], { session_id: string; remaining: number }>(
        `SELECT s.session_id,
                EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.session_id) AS remaining
           FROM sessions s
          WHERE s.created_at < ?
            AND s.task_count IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.session_id AND t.done_seq IS NULL
                              AND t.state IN ('pending', 'running'))
            AND COALESCE((SELECT t.finished_at FROM tasks t WHERE t.session_id = s.session_id AND t.done_seq IS NOT NULL
                           ORDER BY t.done_seq DESC LIMIT 1), s.created_at) < ?
          LIMIT 1`,
      ),
      deleteTasks: db.prepare<[string, number]>(
        `DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks WHERE session_id = ? LIMIT ${BOUND_LIMIT})`,
      ),
      deleteMessages: db.prepare<[string]>('DELETE FROM queue_messages WHERE session_id = ?'),
      deleteSession: db.prepare<[string]>('DELETE FROM sessions WHERE session_id = ?'),
      freePages: db.prepare<[], { freelist_count: number }>('PRAGMA freelist_count'),
    };
  }

  /** One batch: deletes up to `batchTasks` rows of one expired session (or the session, once empty), then vacuums. */
  async step(now: number = Date.now()): Promise<ExpiryStep> {
    let tasks = 0;
    let sessions = 0;
    let more = false;
    try {
      const cutoff = now - this.retentionMs;
      const found = this.stmt.expired.get(cutoff, cutoff);
      if (found !== undefined) {
        more = true;
        if (found.remaining) {
          tasks = this.db
            .transaction(() => this.stmt.deleteTasks.run(found.session_id, this.batchTasks).changes)
            .immediate();
        } else {
          // Files first, the session row last: a step stopped in between finds the session again.
          await this.store.deletePrefix(payloadKeys.sessionPrefix(found.session_id));
          this.db
            .transaction(() => {
              this.stmt.deleteMessages.run(found.session_id);
              this.stmt.deleteSession.run(found.session_id);
            })
            .immediate();
          sessions = 1;
        }
      }
      return { tasks, sessions, pagesFreed: this.vacuum(), more };
    } catch (error) {
      return translateSqliteError(error, 'expiring finished sessions');
    }
  }

  /** Gives back up to `vacuumPages` free pages to the file system (nothing on a database without auto_vacuum). */
  vacuum(): number {
    if (this.vacuumPages === 0) return 0;
    const before = this.stmt.freePages.get()?.freelist_count ?? 0;
    if (before === 0) return 0;
    this.db.pragma(`incremental_vacuum(${this.vacuumPages})`);
    return before - (this.stmt.freePages.get()?.freelist_count ?? 0);
  }
}

/**
 * Runs `SessionExpiry` steps every `intervalMs` (a few steps a tick, yielding between them), so a grid left running
 * keeps its database bounded by what the retention period holds.
 */
export class ExpiryTimer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Steps fail on a full disk, and none has written since. */
  private diskFull = false;
  /** When a full disk was last logged (once per `DISK_FULL_WARN_EVERY_MS`, however often steps find it full). */
  private diskFullWarnedAt: number | undefined;

  constructor(
    private readonly expiry: SessionExpiry,
    private readonly options: {
      intervalMs: number;
      stepsPerTick?: number;
      logger?: Logger;
      /** The clock retention is measured on, and the full-disk warning's period. @default Date.now */
      now?: () => number;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async tick(): Promise<void> {
    let tasks = 0;
    let sessions = 0;
    let pagesFreed = 0;
    const now = this.options.now ?? Date.now;
    try {
      for (let i = 0; i < (this.options.stepsPerTick ?? 20) && !this.stopped; i++) {
        const step = await this.expiry.step(now());
        tasks += step.tasks;
        sessions += step.sessions;
        pagesFreed += step.pagesFreed;
        if (!step.more && step.pagesFreed === 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Only a step that wrote tells space is back: one with nothing to write goes through on a full disk too.
      if (this.diskFull && tasks + sessions + pagesFreed > 0) {
        this.diskFull = false;
        this.options.logger?.info('disk space is back: expiring finished sessions again');
      }
    } catch (err) {
      this.failed(err, now());
    }
    if (tasks > 0 || sessions > 0) this.options.logger?.info({ tasks, sessions }, 'expired finished sessions');
  }

  /** A failed step is logged; a full disk once per `DISK_FULL_WARN_EVERY_MS` while it stays full, as the agent does. */
  private failed(err: unknown, now: number): void {
    if (!isDiskFull(err)) {
      this.options.logger?.warn({ err }, 'expiring finished sessions failed; trying again later');
      return;
    }
    this.diskFull = true;
    if (this.diskFullWarnedAt !== undefined && now - this.diskFullWarnedAt < DISK_FULL_WARN_EVERY_MS) return;
    this.diskFullWarnedAt = now;
    this.options.logger?.warn({ err }, 'expiring finished sessions failed; trying again every few seconds');
  }
}
