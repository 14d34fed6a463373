// Wakes waiters of any thread or process when the grid database commits: a one-byte file the writers touch, watched.
import fs from 'node:fs';
import path from 'node:path';

/**
 * What a poller of the grid database waits on between looks: a change (a commit by any connection, in any process)
 * or its fallback interval, whichever comes first.
 *
 * After each write transaction commits, its writer rewrites the one byte of `<db>-changes` (`notify`, a single
 * `pwrite`); every connection watches the database's folder (`fs.watch`: inotify on Linux, kqueue / FSEvents
 * elsewhere), so the kernel's event reaches the waiters of other threads and processes within microseconds of the
 * commit. Watching the WAL itself is not enough: its first write is seen before the commit is, and later events of
 * the same commit may be merged into that one. Readers write nothing, so an idle grid raises no events. Where the
 * folder cannot be watched (some network file systems), `watching` is false and waits last their fallback
 * interval: the poll the grid used before.
 */
const ONE_BYTE = Buffer.from([1]);

export class DatabaseChanges {
  private changes = 0;
  private readonly waiters = new Set<() => void>();
  private readonly watcher: fs.FSWatcher | undefined;
  private fd: number | undefined;

  /** Watches the folder of the database at `dbPath`. */
  constructor(dbPath: string) {
    const file = `${path.basename(dbPath)}-changes`;
    try {
      this.fd = fs.openSync(`${dbPath}-changes`, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
      this.watcher = fs.watch(path.dirname(dbPath), { persistent: false }, (_event, filename) => {
        // Without a name (some platforms), any event in the folder counts.
        if (filename === null || filename.toString() === file) this.changed();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      this.watcher = undefined;
    }
  }

  /** False where the folder cannot be watched: waits then always last their full interval. */
  get watching(): boolean {
    return this.watcher !== undefined;
  }

  /** Changes seen so far: read it before looking at the database, pass it to `waitForChange` after. */
  get version(): number {
    return this.changes;
  }

  /** Tells every watcher, in any thread or process, that a write transaction just committed. */
  notify(): void {
    if (this.fd === undefined) return;
    try {
      fs.writeSync(this.fd, ONE_BYTE, 0, 1, 0);
    } catch {
      // Only a wake-up lost: the waiters' fallback poll finds the change.
    }
  }

  /** Wakes this instance's waiters (a change seen). */
  changed(): void {
    this.changes++;
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * Resolves true once the database changed after `since` (at once if it already did), false after `timeoutMs` or
   * when `signal` aborts.
   */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.changes !== since) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (changed: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(onChange);
        resolve(changed);
      };
      const onChange = (): void => done(true);
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(onChange);
    });
  }

  /** Stops watching and releases every waiter (as changed: they look once more and find the grid closed). */
  close(): void {
    this.watcher?.close();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.changed();
  }
}
