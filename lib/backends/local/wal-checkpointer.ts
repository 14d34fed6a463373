// Checkpoints the grid database's write-ahead log from a thread and connection of its own, off the commits' path.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { silentLogger, type Logger } from '../../logging';
import { watchChangeFiles } from './database-changes';
import { translateSqliteError } from './errors';
import { openSqliteDatabase, WAL_AUTOCHECKPOINT_PAGES, type SqliteDatabase } from './sqlite-database';
import { WriteLock } from './write-lock';

/**
 * Time between a `startWalCheckpoints` thread's looks while the grid commits: back-to-back single-task round trips
 * write ~18 log pages a millisecond, so a commit reaches `WAL_AUTOCHECKPOINT_PAGES` every ~55 ms, and every such
 * stretch needs a look or that commit copies and syncs the whole log itself.
 */
export const WAL_CHECKPOINT_INTERVAL_MS = 25;

/**
 * Time to the next look after one that found nothing committed, where the grid's change files are not watched (see
 * `WAL_CHECKPOINT_IDLE_WATCHED_MS`): an idle grid's looks then stay ~10 a second.
 */
export const WAL_CHECKPOINT_IDLE_INTERVAL_MS = 100;

/**
 * Time to the next look after one that found the whole log copied and nothing committed since, while the grid's
 * change files are watched (`CheckpointTimerOptions.idleWake`): a commit that notifies wakes the looks, and
 * this is only for the commits that notify nobody (claims, lease extensions), whose pages can wait a second.
 */
export const WAL_CHECKPOINT_IDLE_WATCHED_MS = 1_000;

/**
 * Longest time between the looks at a grid that stays idle while its change files are watched: each look that again
 * finds nothing doubles the wait from `WAL_CHECKPOINT_IDLE_WATCHED_MS` up to this. A grid at rest then wakes this
 * thread every 8 s, not every second; pages of unnotified commits wait at most that long (commits past the bound
 * still checkpoint themselves).
 */
export const WAL_CHECKPOINT_IDLE_WATCHED_MAX_MS = 8_000;

/** What one look of a `WalCheckpointer` did. */
export interface CheckpointStep {
  /** A checkpoint ran: something was committed since the last look that copied the whole log. */
  readonly ran: boolean;
  /**
   * Something was committed since the previous look. A look that ran without (the one before could not copy the whole
   * log: a reader still reads its older pages) is no sign of commits coming.
   */
  readonly committed: boolean;
  /**
   * This look copied pages into the database file: more of the log than the look before, or any of a log started
   * again since. A look that copies nothing while commits go on has a reader holding the log back.
   */
  readonly copied: boolean;
  /** Pages in the log as the checkpoint saw it (0 when none ran). */
  readonly logPages: number;
  /** Of those, pages now copied into the database file. */
  readonly checkpointedPages: number;
}

interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

const NOTHING: CheckpointStep = { ran: false, committed: false, copied: false, logPages: 0, checkpointedPages: 0 };

/** How a `WalCheckpointer` starts the log again after a look that copied all of it (see there). */
export interface LogRestartOptions {
  /** The process's write lock (`WriteLock`): taken without waiting around the restart's commit, skipped if held. */
  readonly writeLock?: WriteLock;
  /** Called when that commit failed (a full disk): the restart is skipped, the next writer does it. */
  readonly onSkipped?: (err: unknown) => void;
}

/**
 * Checkpoints the write-ahead log of the database `db` is open on, passively, from a connection that commits nothing
 * itself: each look syncs the log, copies the pages committed since the last look into the database file and syncs
 * that, without waiting for or blocking any reader or writer.
 *
 * Why: SQLite runs a checkpoint inside a commit (`wal_autocheckpoint`, every 1,000 log pages by default), in the
 * committing thread. With 8–9 log pages per commit and three commits per task, every ~54th single-task round trip of
 * the local grid waited 5–10 ms for it, most of it syncing 4 MB of log (bench/README.md, bench/latency, fifth pass).
 * A process running an agent now runs these looks in a thread of its own (`startWalCheckpoints`), and the grid's
 * connections still checkpoint past `WAL_AUTOCHECKPOINT_PAGES` (SQLite's 1,000). What that leaves to a commit:
 * - When the grid pauses between tasks, a look copies the whole log and the next writer starts it again from its first
 *   page: no commit checkpoints.
 * - Under a load without pauses, commits land during every look's syncs, so no look copies the whole log and the log
 *   grows until a commit reaches `WAL_AUTOCHECKPOINT_PAGES`. The looks come every `WAL_CHECKPOINT_NEAR_BOUND_MS`
 *   over the last half of that bound (`nextLookDelay`), so that commit's checkpoint finds all but the last millisecond
 *   of log copied and synced and does only the rest; then the log starts again.
 * A look that finds nothing committed since the last look that copied the whole log (`PRAGMA data_version`, which
 * changes when another connection commits) does nothing more: an idle grid costs one read of the log's index a look.
 *
 * A look that copied the whole log with nothing committed meanwhile then starts the log again itself (`restartLog`):
 * SQLite starts it again in the next commit that finds it all copied, and writes and **syncs** the log's header inside
 * that commit (`sqlite3WalFrames`, even under `synchronous=NORMAL`), and cuts the file back to `journal_size_limit`.
 * When the grid pauses between tasks (a trader's screen, a notebook) that was every round's first commit, the client's
 * submit: 0.3–7 ms of `fsync` on the client's thread a round, p50 5.8–6.8 ms against 1.1–1.6 ms back-to-back at load
 * 6 (bench/README.md, "the log started again by the checkpoint thread"). This connection's own commit does not change
 * its `data_version`, so the looks stay idle after it until another connection commits; that commit appends to the
 * log after the restart's page, without a sync, and the next look copies both and starts the log again. An idle grid
 * gets one such commit after its last activity, none at rest. A log of one page is left to the next writer: it is
 * another checkpointer's restart when two agent processes share the grid folder (each thread's commit is a commit the
 * other sees), so there only one of them starts the log again after a commit, and at times the next writer does.
 */
export class WalCheckpointer {
  private readonly version;
  private seenVersion: number | undefined;
  private caughtUp = false;
  /** The log and its copied part as the last look that ran left them. */
  private last = { log: 0, checkpointed: 0 };

  /**
   * @param syncFd a descriptor of the database file (`databaseSyncDescriptor`) to sync after a look that copied pages
   * SQLite left unsynced; without, those pages wait for the checkpoint that copies the whole log, the one of the commit
   * that reaches `WAL_AUTOCHECKPOINT_PAGES` under a load without pauses.
   */
  constructor(
    private readonly db: SqliteDatabase,
    private readonly syncFd?: number,
    private readonly restart: LogRestartOptions = {},
  ) {
    this.version = db.prepare<[], number>('PRAGMA data_version').pluck();
  }

  /** One look: a passive checkpoint, unless nothing was committed since the last one copied the whole log. */
  step(): CheckpointStep {
    try {
      const version = this.version.get();
      if (this.caughtUp && version === this.seenVersion) return NOTHING;
      // A look that fails is taken again next time, whether or not anything was committed meanwhile.
      this.caughtUp = false;
      const committed = version !== this.seenVersion;
      this.seenVersion = version;
      const [row] = this.db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
      // busy: another connection was checkpointing. A commit during this checkpoint is not in its `log`, but it
      // changed `data_version`, so the next look checkpoints again.
      const caughtUp = row !== undefined && row.busy === 0 && row.checkpointed >= row.log;
      const log = Math.max(0, row?.log ?? 0);
      const checkpointed = Math.max(0, row?.checkpointed ?? 0);
      // `checkpointed` counts from the log's first page: a shorter log than last time was started again since.
      const copied = log < this.last.log ? checkpointed > 0 : checkpointed > this.last.checkpointed;
      // SQLite syncs the database file after a checkpoint only if the log then ends where it stopped copying: no commit
      // landed during it and no reader held it back. Under a steady load no look sees that, and the pages the looks
      // copied stayed unsynced until the commit reaching the bound wrote them all back (1.4-1.7 ms of its round,
      // strace). A look that caught up with nothing committed meanwhile was synced by SQLite.
      const quiet = caughtUp && this.version.get() === version;
      if (this.syncFd !== undefined && copied && !quiet) fs.fdatasyncSync(this.syncFd);
      // Only now: a look whose sync failed is taken again.
      this.caughtUp = caughtUp;
      this.last = { log, checkpointed };
      // Counted from the log's start again at the next look. Not after a log of one page: that is the restart commit
      // of another process's checkpointer (two agents on one grid folder), or so few pages that the next writer's
      // sync is no loss; restarting after it, each restart a commit the other thread sees, set two such threads
      // against each other for ever (hundreds of restarts a second at rest).
      if (quiet && log > 1 && this.restartLog()) this.last = { log: 0, checkpointed: 0 };
      return { ran: true, committed, copied, logPages: log, checkpointedPages: checkpointed };
    } catch (error) {
      return translateSqliteError(error, 'checkpointing the grid database');
    }
  }

  /**
   * Starts the log again from its first page with a commit of this connection that writes one page and changes
   * nothing (the database header's `user_version`, rewritten to its own value: a row rewritten to its own value writes
   * no page, so no log), so that SQLite's sync of the new log header happens here, at rest, not in the next writer's
   * commit. Never waits: another writer at work (the process's `WriteLock`, or SQLite's lock: no busy wait) starts
   * the log itself. A failed commit (a full disk) is skipped and reported to `onSkipped`; the next writer then starts
   * the log as before. Should a reader hold the log back, SQLite appends the page instead (no harm: the next look
   * copies it). Returns whether the commit went through.
   */
  private restartLog(): boolean {
    const commit = (): boolean => {
      const busyTimeout = this.db.pragma('busy_timeout', { simple: true }) as number;
      this.db.pragma('busy_timeout = 0');
      try {
        this.db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        if ((err as { code?: unknown }).code === 'SQLITE_BUSY') return false;
        throw err;
      } finally {
        this.db.pragma(`busy_timeout = ${busyTimeout}`);
      }
      try {
        const userVersion = this.db.pragma('user_version', { simple: true }) as number;
        this.db.pragma(`user_version = ${Math.trunc(userVersion)}`);
        this.db.exec('COMMIT');
        return true;
      } finally {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
      }
    };
    try {
      let done = false;
      const { writeLock } = this.restart;
      if (writeLock === undefined) done = commit();
      else writeLock.tryRun(() => (done = commit()));
      return done;
    } catch (err) {
      this.restart.onSkipped?.(err);
      return false;
    }
  }
}

export interface CheckpointTimerOptions {
  /** Time between looks (shorter near the bound, see `nextLookDelay`). */
  readonly intervalMs: number;
  /** Log pages at which commits checkpoint themselves. @default WAL_AUTOCHECKPOINT_PAGES */
  readonly boundPages?: number;
  /**
   * Called with the error of the first failed look of a streak (the next looks try again, at twice the last wait up to
   * `WAL_CHECKPOINT_RETRY_MAX_MS`; a full disk fails every look until there is space). @default - ignored
   */
  readonly onError?: (err: unknown) => void;
  /**
   * Starts watching for the grid's next notified commit (`watchChangeFiles`) and calls `wake` at it, until the
   * returned function stops the watch; returns undefined where nothing can be watched. With it, an idle grid's looks
   * wait for a commit (or `idleWatchedMs`) instead of coming every `WAL_CHECKPOINT_IDLE_INTERVAL_MS`: ten looks a
   * second were most of an idle grid's CPU (bench/latency). @default - no watch
   */
  readonly idleWake?: (wake: () => void) => (() => void) | undefined;
  /**
   * Time to the first look after an idle one while `idleWake` watches; it doubles at each idle look after it, up to
   * `idleWatchedMaxMs`. @default WAL_CHECKPOINT_IDLE_WATCHED_MS
   */
  readonly idleWatchedMs?: number;
  /** @default WAL_CHECKPOINT_IDLE_WATCHED_MAX_MS */
  readonly idleWatchedMaxMs?: number;
}

/** Longest wait between looks while they keep failing. */
export const WAL_CHECKPOINT_RETRY_MAX_MS = 5_000;

/** Time to the next look once the log holds half the commits' own bound (see `nextLookDelay`). */
export const WAL_CHECKPOINT_NEAR_BOUND_MS = 1;

/** Share of the commits' bound from which the looks come every `WAL_CHECKPOINT_NEAR_BOUND_MS`. */
export const WAL_CHECKPOINT_NEAR_BOUND_SHARE = 0.5;

/**
 * When to look next after `step`: after `WAL_CHECKPOINT_IDLE_INTERVAL_MS` (or `intervalMs` if longer) when nothing
 * was committed since the look before; every `WAL_CHECKPOINT_NEAR_BOUND_MS` once the log holds
 * `WAL_CHECKPOINT_NEAR_BOUND_SHARE` of `boundPages` and the look copied pages; else after `intervalMs`.
 *
 * Under a load without pauses the log only starts again when a commit reaches its bound (`WAL_AUTOCHECKPOINT_PAGES`,
 * see `WalCheckpointer`), and that commit syncs and copies the log written since the last look. Back-to-back
 * single-task round trips write ~18 pages a millisecond: looks every 10 ms over the last quarter of the bound left
 * that commit 0.4–1.7 ms of log to sync, a round of 3–4.3 ms every ~54 rounds (`strace` of the latency bench);
 * looks every millisecond over the last half leave it about a millisecond of log. p99 over 200 rounds after 3,000
 * warm-up rounds went from 3.0–4.9 to 2.2–3.0 ms, rounds over 3 ms from 9–13 to 1–2 of 600, throughput unchanged
 * (bench/README.md, issue 16, seventh pass).
 *
 * The quick looks stop with the commits, and while a reader holds the log back (a look that copied nothing): a look
 * every millisecond would find the same log again and again. Looking every 25 ms at an idle grid cost 1.0–1.6 % of a
 * core (bench/latency's idle CPU), hence the slower looks while nothing commits.
 */
export function nextLookDelay(step: CheckpointStep, intervalMs: number, boundPages: number): number {
  if (!step.ran || !step.committed) return Math.max(intervalMs, WAL_CHECKPOINT_IDLE_INTERVAL_MS);
  return step.copied && step.logPages >= boundPages * WAL_CHECKPOINT_NEAR_BOUND_SHARE
    ? Math.min(intervalMs, WAL_CHECKPOINT_NEAR_BOUND_MS)
    : intervalMs;
}

/**
 * Runs `WalCheckpointer` looks on this thread, `nextLookDelay` apart; the first failed look of a streak is reported,
 * and the next ones come at twice the last wait, up to `WAL_CHECKPOINT_RETRY_MAX_MS`.
 */
export class CheckpointTimer {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Wait before the next look after a failed one; 0 while looks succeed. */
  private retryMs = 0;
  /** Stops the `idleWake` watch, while one is on (from an idle look to the next look that finds commits). */
  private stopWatching: (() => void) | undefined;
  /** `idleWake` could not watch once: not tried again at each idle look (the looks then come as without it). */
  private cannotWatch = false;
  /** The wait after the last idle look while watching; 0 when the last look was not one. */
  private idleWaitMs = 0;

  constructor(
    private readonly checkpointer: WalCheckpointer,
    private readonly options: CheckpointTimerOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.options.intervalMs);
  }

  /** Stops the looks, then takes a last one so what was committed before is in the database file. Idempotent. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.unwatch();
    this.look();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      const step = this.look();
      if (step === undefined) this.unwatch();
      if (this.running) this.schedule(step ? this.delayAfter(step) : this.retryMs);
    }, delayMs);
    this.timer.unref();
  }

  /**
   * `nextLookDelay`, but for a look that found the whole log copied and nothing committed since (`ran` false): then
   * the watch of `idleWake` starts (or stays on), and the next look comes at the next notified commit or after
   * `idleWatchedMs`, twice that after the next idle look and so on up to `idleWatchedMaxMs`. A commit between this
   * look and the watch's start shows at that later look (or at the next notified commit). A look that finds commits
   * stops the watch: under load its events would wake this thread at every commit for nothing. Where `idleWake`
   * cannot watch, it is not tried again.
   */
  private delayAfter(step: CheckpointStep): number {
    if (step.ran) this.unwatch();
    else if (this.options.idleWake !== undefined && !this.cannotWatch) {
      this.stopWatching ??= this.options.idleWake(() => this.wake());
      if (this.stopWatching !== undefined) {
        const first = this.options.idleWatchedMs ?? WAL_CHECKPOINT_IDLE_WATCHED_MS;
        const longest = Math.max(first, this.options.idleWatchedMaxMs ?? WAL_CHECKPOINT_IDLE_WATCHED_MAX_MS);
        this.idleWaitMs = this.idleWaitMs === 0 ? first : Math.min(longest, this.idleWaitMs * 2);
        return this.idleWaitMs;
      }
      this.cannotWatch = true;
    }
    return nextLookDelay(step, this.options.intervalMs, this.options.boundPages ?? WAL_AUTOCHECKPOINT_PAGES);
  }

  /**
   * A notified commit while the watch is on: the next look comes `intervalMs` later, as under load, not at once. At
   * once, each task sent to an idle grid would have a look (a log sync and a copy) run beside its own round trip.
   */
  private wake(): void {
    if (!this.running || this.stopWatching === undefined) return;
    this.unwatch();
    clearTimeout(this.timer);
    this.schedule(this.options.intervalMs);
  }

  private unwatch(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.idleWaitMs = 0;
  }

  private look(): CheckpointStep | undefined {
    try {
      const step = this.checkpointer.step();
      this.retryMs = 0;
      return step;
    } catch (err) {
      if (this.retryMs === 0) this.options.onError?.(err);
      this.retryMs = Math.min(WAL_CHECKPOINT_RETRY_MAX_MS, Math.max(this.options.intervalMs, this.retryMs * 2));
      return undefined;
    }
  }
}

/** Start data of the checkpoint thread (`wal-checkpoint-thread.ts`). */
export interface CheckpointThreadData {
  readonly dbPath: string;
  readonly intervalMs: number;
  /** `databaseSyncDescriptor(dbPath)`, opened by the starting thread (descriptors belong to the process). */
  readonly syncFd?: number;
  /** Memory of the process's `WriteLock` on the grid (see `LogRestartOptions`). */
  readonly writeLock?: SharedArrayBuffer;
}

/**
 * Messages from the checkpoint thread: `started` once its connection is open (with the thread's id in the operating
 * system, where it could lower the thread's priority), `warning` for a failed look, `debug` for a skipped restart of
 * the log (`LogRestartOptions.onSkipped`).
 */
export type CheckpointThreadEvent =
  | { readonly type: 'started'; readonly lowPriorityTid?: number }
  | { readonly type: 'start-failed'; readonly message: string }
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'debug'; readonly message: string };

/** Checkpoints started by `startWalCheckpoints`. */
export interface WalCheckpoints {
  /** True when the looks run in a thread of their own; false on this thread (running from TypeScript sources). */
  readonly inThread: boolean;
  /**
   * The operating system's id of that thread when its priority was lowered (Linux: `nice` 19, see
   * `lowerThisThreadPriority`), else undefined.
   */
  readonly lowPriorityTid?: number;
  /** Stops the looks after a last one and closes their connection. Idempotent. */
  stop(): Promise<void>;
}

export interface WalCheckpointsOptions {
  /** Time between looks. @default WAL_CHECKPOINT_INTERVAL_MS */
  readonly intervalMs?: number;
  /** Where failed looks are reported. @default - a silent logger */
  readonly logger?: Logger;
  /** Memory of the process's `WriteLock` on the grid (`WriteLock.memory()`), see `LogRestartOptions`. */
  readonly writeLock?: SharedArrayBuffer;
}

/** The checkpointer of the database at `dbPath` on a connection of its own (see `WalCheckpointer` for `syncFd`). */
export function openWalCheckpointer(
  dbPath: string,
  syncFd?: number,
  restart: { readonly writeLock?: SharedArrayBuffer; readonly onSkipped?: (err: unknown) => void } = {},
): {
  readonly db: SqliteDatabase;
  readonly checkpointer: WalCheckpointer;
} {
  const db = openSqliteDatabase(dbPath);
  // The lock's wait bound does not matter: the checkpointer never waits for it.
  const writeLock = restart.writeLock ? new WriteLock(restart.writeLock, 10_000) : undefined;
  return { db, checkpointer: new WalCheckpointer(db, syncFd, { writeLock, onSkipped: restart.onSkipped }) };
}

/** Descriptors of database files, by device and inode, for `databaseSyncDescriptor`. Never closed. */
const syncDescriptors = new Map<string, number>();

/**
 * A read-only descriptor of the database file at `dbPath` for a `WalCheckpointer` to sync it with, opened once per
 * process and file and **never closed**: closing any descriptor of a file drops every POSIX lock the process holds on
 * it, SQLite's connections' included, and another process's SQLite may then take itself for the last connection,
 * checkpoint and delete the log under this one (sqlite.org/howtocorrupt.html, 2.2; a test holds this). One descriptor
 * per grid database a process runs an agent on, for the process's life. Linux only (undefined elsewhere: macOS's
 * `fdatasync` is a full flush of the drive's cache, Windows needs write access), and undefined when the file cannot be
 * opened: the looks then leave the sync to SQLite.
 */
export function databaseSyncDescriptor(dbPath: string): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // Looked up by the file's identity before opening: a second descriptor could not be closed again.
    const { dev, ino } = fs.statSync(dbPath);
    const key = `${dev}:${ino}`;
    let fd = syncDescriptors.get(key);
    if (fd === undefined) {
      fd = fs.openSync(dbPath, 'r');
      syncDescriptors.set(key, fd);
    }
    return fd;
  } catch {
    return undefined;
  }
}

/** Path of the compiled checkpoint thread next to this file, or undefined when running from TypeScript sources. */
function checkpointThreadEntry(): string | undefined {
  if (!__filename.endsWith('.js')) return undefined;
  const entry = path.join(__dirname, 'wal-checkpoint-thread.js');
  return fs.existsSync(entry) ? entry : undefined;
}

/**
 * Checkpoints the grid database at `dbPath` every `intervalMs` from a worker thread with its own connection (see
 * `WalCheckpointer`), so the threads that commit the grid's work do not checkpoint (but for the rare bound of
 * `WAL_AUTOCHECKPOINT_PAGES` under a load without pauses, and then only what the thread did not copy yet). From
 * TypeScript sources (no compiled thread entry) the looks run on this thread's event loop instead. The thread does not
 * keep the process alive. Rejects when the database cannot be opened.
 */
export async function startWalCheckpoints(
  dbPath: string,
  options: WalCheckpointsOptions = {},
): Promise<WalCheckpoints> {
  const intervalMs = options.intervalMs ?? WAL_CHECKPOINT_INTERVAL_MS;
  const logger = options.logger ?? silentLogger();
  const warn = (err: unknown): void =>
    logger.warn({ err, dbPath }, 'checkpointing the grid database failed; trying again at the next look');
  const skipped = (err: unknown): void =>
    logger.debug({ err, dbPath }, 'the checkpoint thread could not start the log again; the next commit does');
  const entry = checkpointThreadEntry();
  const syncFd = databaseSyncDescriptor(dbPath);
  if (entry === undefined) {
    const { db, checkpointer } = openWalCheckpointer(dbPath, syncFd, {
      writeLock: options.writeLock,
      onSkipped: skipped,
    });
    const timer = new CheckpointTimer(checkpointer, {
      intervalMs,
      onError: warn,
      idleWake: (wake) => watchChangeFiles(dbPath, wake),
    });
    timer.start();
    return {
      inThread: false,
      stop: async () => {
        timer.stop();
        if (db.open) db.close();
      },
    };
  }
  return startCheckpointThread(entry, { dbPath, intervalMs, syncFd, writeLock: options.writeLock }, warn, skipped);
}

/**
 * Starts the checkpoint thread whose entry is `entry` (`wal-checkpoint-thread.js`) and resolves once its connection is
 * open; rejects when it cannot start. A thread that fails later is reported to `warn` (the grid's commits then
 * checkpoint the log themselves, past `WAL_AUTOCHECKPOINT_PAGES`).
 */
export async function startCheckpointThread(
  entry: string,
  data: CheckpointThreadData,
  warn: (err: unknown) => void,
  debug: (err: unknown) => void = () => {},
): Promise<WalCheckpoints> {
  const worker = new Worker(entry, { workerData: data });
  // Not events.once: it rejects on the thread's 'error' event, and nothing would handle that rejection.
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  let started = false;
  let lowPriorityTid: number | undefined;
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (event: CheckpointThreadEvent) => {
      if (event.type === 'started') {
        started = true;
        lowPriorityTid = event.lowPriorityTid;
        resolve();
      } else if (event.type === 'start-failed')
        reject(new Error(`the checkpoint thread could not start: ${event.message}`));
      else if (event.type === 'debug') debug(new Error(event.message));
      else warn(new Error(event.message));
    });
    worker.on('error', (err) => {
      if (started)
        warn(
          new Error(`the checkpoint thread failed; the grid's commits checkpoint the log themselves: ${String(err)}`),
        );
      else reject(new Error(`the checkpoint thread could not start: ${String(err)}`));
    });
    void exited.then((code) => reject(new Error(`the checkpoint thread exited with code ${code}`)));
  });
  worker.unref();
  let stopping: Promise<void> | undefined;
  return {
    inThread: true,
    lowPriorityTid,
    stop() {
      stopping ??= (async () => {
        // Held until the thread ends: a caller awaiting this must not see the process exit first.
        worker.ref();
        worker.postMessage('stop');
        await exited;
      })();
      return stopping;
    },
  };
}

/**
 * Lowers the calling thread's CPU priority to the lowest (`nice` 19) and returns its id, on Linux (where
 * `setpriority` takes a thread's id, read from `/proc/thread-self`); returns undefined where that cannot be done.
 *
 * For the checkpoint thread: nobody waits for its looks (a commit's own checkpoint skips while a look runs), so on a
 * busy machine it should leave the cores to the threads that carry tasks. A look copies a few MB and syncs them: at
 * load 10, rounds that overlapped a look were over 5 ms in 7–38 % of cases at normal priority, 2–7 % at nice 19
 * (bench/README.md, bench/latency, fifth pass).
 */
export function lowerThisThreadPriority(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const tid = Number(path.basename(fs.readlinkSync('/proc/thread-self')));
    if (!Number.isInteger(tid) || tid <= 0) return undefined;
    os.setPriority(tid, os.constants.priority.PRIORITY_LOW);
    return tid;
  } catch {
    return undefined;
  }
}
