// Wakes waiters of any thread or process when the grid database commits: one-byte files the writers touch, watched.
import fs from 'node:fs';
import path from 'node:path';
import { waitForWake } from '../../timing';

/**
 * What a write can mean to a waiter: `tasks`, a task or session reached an end a results handle waits for (finished,
 * cancelled, sealed, deleted); `queue`, messages became visible for agents to receive. Claims, lease extensions,
 * acknowledgements and the like raise neither: nobody waits for them, and waking every client at each claim (and
 * every agent at each completion) cost the single-task round trip a wake-up of each thread (bench/latency).
 */
export type ChangeTopic = 'tasks' | 'queue';

/** The file beside the database that each topic's writers touch. */
const TOPIC_FILES: Record<ChangeTopic, string> = { tasks: '-changes', queue: '-queue-changes' };
const ONE_BYTE = Buffer.from([1]);

/** Changes of one topic seen by this connection, and the waiters for the next one. */
export class TopicChanges {
  private changes = 0;
  private readonly waiters = new Set<() => void>();

  /** Changes seen so far: read it before looking at the database, pass it to `waitForChange` after. */
  get version(): number {
    return this.changes;
  }

  /** Wakes this instance's waiters (a change seen). */
  changed(): void {
    this.changes++;
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * Resolves true once the topic changed after `since` (at once if it already did), false after `timeoutMs` or when
   * `signal` aborts.
   */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.changes !== since) return Promise.resolve(true);
    return waitForWake(this.waiters, timeoutMs, signal);
  }
}

/**
 * What a poller of the grid database waits on between looks: a change of its topic (a commit by any connection, in
 * any process) or its fallback interval, whichever comes first.
 *
 * After a write transaction that matters to waiters commits, its writer rewrites the one byte of its topic's file
 * (`<db>-changes` for `tasks`, `<db>-queue-changes` for `queue`: `notify`, a single `pwrite`); every connection
 * watches the database's folder (`fs.watch`: inotify on Linux, kqueue / FSEvents elsewhere), so the kernel's event
 * reaches the waiters of other threads and processes within microseconds of the commit. Watching the WAL itself is
 * not enough: its first write is seen before the commit is, and later events of the same commit may be merged into
 * that one. Readers write nothing, so an idle grid raises no events. Where the folder cannot be watched (some network
 * file systems), `watching` is false and waits last their fallback interval: the poll the grid used before.
 *
 * As a `ChangeFeed` (`version`, `waitForChange`) it is the `tasks` topic, what results handles wait on.
 */
export class DatabaseChanges {
  /** Tasks or sessions reached an end (what results handles and streams wait on). */
  readonly tasks = new TopicChanges();
  /** Messages became visible (what long-polling receives wait on). */
  readonly queue = new TopicChanges();
  private readonly watcher: fs.FSWatcher | undefined;
  private readonly fds: Partial<Record<ChangeTopic, number>> = {};

  /** Watches the folder of the database at `dbPath`. */
  constructor(dbPath: string) {
    const base = path.basename(dbPath);
    try {
      for (const topic of ['tasks', 'queue'] as const) {
        this.fds[topic] = fs.openSync(
          `${dbPath}${TOPIC_FILES[topic]}`,
          fs.constants.O_WRONLY | fs.constants.O_CREAT,
          0o644,
        );
      }
      this.watcher = fs.watch(path.dirname(dbPath), { persistent: false }, (_event, filename) => {
        // Without a name (some platforms), any event in the folder counts for both.
        const name = filename === null ? null : filename.toString();
        if (name === null || name === base + TOPIC_FILES.tasks) this.tasks.changed();
        if (name === null || name === base + TOPIC_FILES.queue) this.queue.changed();
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

  /** Changes of `tasks` seen so far (see `TopicChanges.version`). */
  get version(): number {
    return this.tasks.version;
  }

  /** Tells every watcher of `topic`, in any thread or process, that a write transaction just committed. */
  notify(topic: ChangeTopic = 'tasks'): void {
    const fd = this.fds[topic];
    if (fd === undefined) return;
    try {
      fs.writeSync(fd, ONE_BYTE, 0, 1, 0);
    } catch {
      // Only a wake-up lost: the waiters' fallback poll finds the change.
    }
  }

  /** Wakes this instance's waiters of every topic (a change seen). */
  changed(): void {
    this.tasks.changed();
    this.queue.changed();
  }

  /** `waitForChange` of the `tasks` topic (see `TopicChanges.waitForChange`). */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.tasks.waitForChange(since, timeoutMs, signal);
  }

  /** Stops watching and releases every waiter (as changed: they look once more and find the grid closed). */
  close(): void {
    this.watcher?.close();
    for (const topic of ['tasks', 'queue'] as const) {
      const fd = this.fds[topic];
      if (fd !== undefined) fs.closeSync(fd);
      delete this.fds[topic];
    }
    this.changed();
  }
}
