// Wakes waiters of any thread or process when the grid database commits: one-byte files the writers touch, watched.
import fs from 'node:fs';
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

  /** @param onFirstLook called once, at the first `version` read (see `DatabaseChanges`: watches start there). */
  constructor(private onFirstLook?: () => void) {}

  /** Changes seen so far: read it before looking at the database, pass it to `waitForChange` after. */
  get version(): number {
    if (this.onFirstLook !== undefined) {
      const start = this.onFirstLook;
      this.onFirstLook = undefined;
      start();
    }
    return this.changes;
  }

  /** Wakes this instance's waiters (a change seen). */
  changed(): void {
    this.changes++;
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * Calls `wake` at this topic's next change, unless it already changed after `since`: then it registers nothing and
   * returns false. For waits that also end on other events (a timer, a send in this thread): unlike `waitForChange`,
   * no promise, timer or abort signal of its own per wait (the agent waits once per task, bench/README.md sixth
   * pass). The caller removes `wake` with `stopWaking` once its wait ends, woken or not.
   */
  wakeOnChange(since: number, wake: () => void): boolean {
    if (this.changes !== since) return false;
    this.waiters.add(wake);
    return true;
  }

  /** Removes a `wake` registered by `wakeOnChange` (nothing if it is not registered). */
  stopWaking(wake: () => void): void {
    this.waiters.delete(wake);
  }

  /** How many waits are registered (for tests: a wait that ended leaves none behind). */
  get waiting(): number {
    return this.waiters.size;
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
 * (`<db>-changes` for `tasks`, `<db>-queue-changes` for `queue`: `notify`, a single `pwrite`) and wakes the waiters of
 * its own connection directly. A connection watches a topic's file (`fs.watch`: inotify on Linux, kqueue / FSEvents
 * elsewhere) from the first time one of its pollers reads that topic's `version`, i.e. before its first look, so the
 * kernel's event reaches the waiters of other threads and processes within microseconds of the commit. Each topic
 * file is watched on its own, and only by the connections that wait on it (an agent's on `queue`, a client's on
 * `tasks`): a watch on the folder also woke every watching thread at each page SQLite writes to the WAL (8–9 events
 * per commit, bench/README.md), and every client at each send. Watching the WAL itself is not enough: its first
 * write is seen before the commit is, and later events of the same commit may be merged into that one. Readers write
 * nothing, so an idle grid raises no events. Where the files cannot be watched (some network file systems),
 * `watching` is false and waits last their fallback interval: the poll the grid used before.
 *
 * As a `ChangeFeed` (`version`, `waitForChange`) it is the `tasks` topic, what results handles wait on.
 */
export class DatabaseChanges {
  /** Tasks or sessions reached an end (what results handles and streams wait on). */
  readonly tasks: TopicChanges;
  /** Messages became visible (what long-polling receives wait on). */
  readonly queue: TopicChanges;
  private readonly watchers: fs.FSWatcher[] = [];
  private readonly fds: Partial<Record<ChangeTopic, number>> = {};
  private readonly canWatch: boolean;
  /** Topics whose watch could not start or failed since: their waits last their fallback interval. */
  private readonly unwatched = new Set<ChangeTopic>();
  private closed = false;

  /** Opens the topic files beside the database at `dbPath` (created if needed); watches start when first needed. */
  constructor(private readonly dbPath: string) {
    this.tasks = new TopicChanges(() => this.watch('tasks'));
    this.queue = new TopicChanges(() => this.watch('queue'));
    let canWatch = true;
    try {
      for (const topic of ['tasks', 'queue'] as const) {
        this.fds[topic] = fs.openSync(
          `${dbPath}${TOPIC_FILES[topic]}`,
          fs.constants.O_WRONLY | fs.constants.O_CREAT,
          0o644,
        );
      }
      // Whether this file system reports changes at all (pollers choose their fallback interval by it).
      fs.watch(`${dbPath}${TOPIC_FILES.tasks}`, { persistent: false }).close();
    } catch {
      canWatch = false;
    }
    this.canWatch = canWatch;
  }

  /** False where the topic files cannot be watched: waits then always last their full interval. */
  get watching(): boolean {
    return this.canWatch && !this.closed;
  }

  /**
   * True while `tasks` is watched: every write that ends a task or session (finish, cancel, seal after earlier tasks,
   * delete) notifies it, and the notice reaches this connection (see `ChangeFeed.announcesEveryEnd`). False once its
   * watch could not start or failed: a change made elsewhere then shows only at the next look.
   */
  get announcesEveryEnd(): boolean {
    return this.watching && !this.unwatched.has('tasks');
  }

  /** Changes of `tasks` seen so far (see `TopicChanges.version`). */
  get version(): number {
    return this.tasks.version;
  }

  /**
   * Tells every waiter of `topic`, in any thread or process, that a write transaction just committed: this
   * connection's at once, the others' through the topic file.
   */
  notify(topic: ChangeTopic = 'tasks'): void {
    const fd = this.fds[topic];
    if (fd !== undefined) {
      try {
        fs.writeSync(fd, ONE_BYTE, 0, 1, 0);
      } catch {
        // Only a wake-up lost: the waiters' fallback poll finds the change.
      }
    }
    this[topic].changed();
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
    this.closed = true;
    for (const watcher of this.watchers.splice(0)) watcher.close();
    for (const topic of ['tasks', 'queue'] as const) {
      const fd = this.fds[topic];
      if (fd !== undefined) fs.closeSync(fd);
      delete this.fds[topic];
    }
    this.changed();
  }

  /** Starts watching `topic`'s file: its events raise the topic's version and wake its waiters. */
  private watch(topic: ChangeTopic): void {
    if (!this.canWatch || this.closed) return;
    const changes = this[topic];
    try {
      const watcher = fs.watch(`${this.dbPath}${TOPIC_FILES[topic]}`, { persistent: false }, () => changes.changed());
      watcher.on('error', () => {
        this.unwatched.add(topic);
        watcher.close();
      });
      this.watchers.push(watcher);
    } catch {
      // Unwatchable after all (the file went away): this topic's waits last their fallback interval.
      this.unwatched.add(topic);
    }
  }
}

/**
 * Calls `onChange` at each notified commit of either topic, by any connection in any thread or process (an event of
 * a topic file, see `DatabaseChanges`), until the returned function stops watching. Undefined where the files cannot
 * be watched (missing: no grid connection opened the database yet; a file system without events). For a thread that
 * only wants to know that the grid is busy again, such as the checkpoint thread at an idle grid.
 */
export function watchChangeFiles(dbPath: string, onChange: () => void): (() => void) | undefined {
  const watchers: fs.FSWatcher[] = [];
  const stop = (): void => {
    for (const watcher of watchers.splice(0)) watcher.close();
  };
  try {
    for (const topic of ['tasks', 'queue'] as const) {
      const watcher = fs.watch(`${dbPath}${TOPIC_FILES[topic]}`, { persistent: false }, () => onChange());
      // A watch that fails later: one more wake-up, and the caller's next look finds out for itself.
      watcher.on('error', () => {
        watcher.close();
        onChange();
      });
      watchers.push(watcher);
    }
    return stop;
  } catch {
    stop();
    return undefined;
  }
}
