// Checkpoints of the grid database's write-ahead log: off the commits' path, bounded, and losing nothing in a crash.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CheckpointTimer,
  DatabaseChanges,
  GRID_DB_FILE,
  nextLookDelay,
  openSqliteDatabase,
  WAL_AUTOCHECKPOINT_PAGES,
  WAL_CHECKPOINT_IDLE_INTERVAL_MS,
  WAL_SIZE_LIMIT_BYTES,
  WalCheckpointer,
  WriteLock,
  databaseSyncDescriptor,
  watchChangeFiles,
  type CheckpointStep,
  type SqliteDatabase,
} from '../../../lib/backends/local';
import type * as LocalBackendsModule from '../../../lib/backends/local';
import { bundleFixture } from '../../support/bundle-fixture';
import { freshDistFile } from '../../support/fresh-dist';
import { waitFor } from '../../support/local-grid';
import { makeTempDir } from './temp-grid-dir';

const repoRoot = path.resolve(__dirname, '../../..');
/** Commits of `commitRows` that stay below WAL_AUTOCHECKPOINT_PAGES (3–4 log pages each). */
const BELOW_BOUND_COMMITS = 200;
const WAL_HEADER_BYTES = 32;
const FRAME_BYTES = 4096 + 24;

describe('checkpoints of the grid database', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let dbPath: string;
  const opened: SqliteDatabase[] = [];
  beforeEach(() => {
    temp = makeTempDir('htcgrid-wal-');
    dbPath = path.join(temp.dir, GRID_DB_FILE);
  });
  afterEach(() => {
    for (const db of opened.splice(0)) if (db.open) db.close();
    temp.remove();
  });

  /** A grid connection, closed after the test. */
  const open = (): SqliteDatabase => {
    const db = openSqliteDatabase(dbPath);
    opened.push(db);
    return db;
  };
  /** `count` commits of one row of a page each (3–4 log pages a commit), into a table of the test's own. */
  const commitRows = (db: SqliteDatabase, count: number): void => {
    db.exec('CREATE TABLE IF NOT EXISTS filler (n INTEGER PRIMARY KEY, bytes BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO filler (bytes) VALUES (randomblob(3000))');
    for (let i = 0; i < count; i++) db.transaction(() => insert.run()).immediate();
  };
  const dbBytes = (): number => fs.statSync(dbPath).size;
  const walBytes = (): number => fs.statSync(`${dbPath}-wal`).size;
  /** Frames the log's file has room for: what it grew to, as it is never truncated. */
  const walFrames = (): number => Math.floor((walBytes() - WAL_HEADER_BYTES) / FRAME_BYTES);

  it('leaves a grid connection’s commits unchecked below WAL_AUTOCHECKPOINT_PAGES: the database file keeps its size', () => {
    const writer = open();
    commitRows(writer, 1);
    const before = dbBytes();

    commitRows(writer, BELOW_BOUND_COMMITS);

    expect(writer.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_PAGES);
    expect(walFrames()).toBeGreaterThan(WAL_AUTOCHECKPOINT_PAGES / 2);
    expect(dbBytes()).toBe(before);
  });

  it('bounds the log where no checkpointer runs: a commit past WAL_AUTOCHECKPOINT_PAGES starts it again', () => {
    const writer = open();
    const before = dbBytes();

    commitRows(writer, 3 * WAL_AUTOCHECKPOINT_PAGES);

    expect(dbBytes()).toBeGreaterThan(before);
    // One commit of a few pages may go past the bound before its checkpoint.
    expect(walFrames()).toBeLessThanOrEqual(WAL_AUTOCHECKPOINT_PAGES + 8);
  });

  it('cuts back a log that grew past its bound behind a reader once it starts again (WAL_SIZE_LIMIT_BYTES)', () => {
    const writer = open();
    const reader = open();
    commitRows(writer, 1);
    // A reader holding a snapshot: no commit can start the log again, so it grows past its bound.
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM filler').get();
    commitRows(writer, 3 * WAL_AUTOCHECKPOINT_PAGES);
    const grownTo = walBytes();
    reader.exec('COMMIT');

    // The next commit past the bound checkpoints the whole log; the one after starts it again and cuts the file.
    commitRows(writer, 2);

    expect(grownTo).toBeGreaterThan(2 * WAL_SIZE_LIMIT_BYTES);
    expect(walBytes()).toBeLessThanOrEqual(WAL_SIZE_LIMIT_BYTES);
    expect(writer.pragma('journal_size_limit', { simple: true })).toBe(WAL_SIZE_LIMIT_BYTES);
  });

  it('at an idle grid, looks again at the next notified commit of any connection, and not before', async () => {
    const writer = open();
    // Creates the change files beside the database, as every grid connection does.
    const notifier = new DatabaseChanges(dbPath);
    const checkpointer = new WalCheckpointer(open());
    const steps: CheckpointStep[] = [];
    const counted = {
      step: () => {
        const look = checkpointer.step();
        steps.push(look);
        return look;
      },
    } as unknown as WalCheckpointer;
    const timer = new CheckpointTimer(counted, {
      intervalMs: 5,
      idleWatchedMs: 60_000,
      idleWake: (wake) => watchChangeFiles(dbPath, wake),
    });
    try {
      commitRows(writer, 10);
      timer.start();
      await waitFor(() => steps.some((look) => !look.ran), 10_000, 'a look at the idle grid');
      const idleLooks = steps.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Without the watch it would have looked every WAL_CHECKPOINT_IDLE_INTERVAL_MS.
      expect(steps.length).toBe(idleLooks);

      const before = dbBytes();
      commitRows(writer, 20);
      notifier.notify('queue');
      await waitFor(() => dbBytes() > before, 10_000, 'the look the notified commit woke');
      expect(steps.length).toBeGreaterThan(idleLooks);
    } finally {
      timer.stop();
      notifier.close();
    }
  });

  it('watches no change files where there are none', () => {
    expect(watchChangeFiles(path.join(temp.dir, 'no-grid.db'), () => undefined)).toBeUndefined();
  });

  it('copies every committed page in one look, and the next commit starts the log again', () => {
    const writer = open();
    const checkpointer = new WalCheckpointer(open());
    commitRows(writer, BELOW_BOUND_COMMITS);
    const before = dbBytes();

    const look = checkpointer.step();

    expect(look.ran).toBe(true);
    expect(look.logPages).toBeGreaterThan(WAL_AUTOCHECKPOINT_PAGES / 2);
    expect(look.checkpointedPages).toBe(look.logPages);
    expect(dbBytes()).toBeGreaterThan(before);
    const grownTo = walBytes();
    commitRows(writer, 1);
    expect(walBytes()).toBe(grownTo);
    // The log holds that one commit's pages only.
    expect(checkpointer.step().logPages).toBeLessThan(10);
  });

  it('keeps the log short under steady commits with a look between them', () => {
    const writer = open();
    const checkpointer = new WalCheckpointer(open());
    commitRows(writer, 200);
    const oneRound = walFrames();
    for (let i = 0; i < 20; i++) {
      checkpointer.step();
      commitRows(writer, 200);
    }
    // 21 rounds committed; the log's file never grew to two rounds' pages.
    expect(oneRound).toBeGreaterThan(500);
    expect(walFrames()).toBeLessThan(2 * oneRound);
  });

  it('takes a failed look again at the next one, though nothing was committed since', () => {
    const writer = open();
    const db = open();
    const checkpointer = new WalCheckpointer(db);
    commitRows(writer, 10);
    expect(checkpointer.step().ran).toBe(true); // caught up
    commitRows(writer, 10);
    const pragma = db.pragma.bind(db);
    db.pragma = () => {
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    };
    expect(() => checkpointer.step()).toThrow();
    db.pragma = pragma;
    const before = dbBytes();

    expect(checkpointer.step().ran).toBe(true);
    expect(dbBytes()).toBeGreaterThan(before);
  });

  it('does nothing more in a look when nothing was committed since the last one copied the whole log', () => {
    const writer = open();
    const checkpointer = new WalCheckpointer(open());
    commitRows(writer, 10);
    expect(checkpointer.step().ran).toBe(true);
    const before = dbBytes();

    expect(checkpointer.step()).toEqual({
      ran: false,
      committed: false,
      copied: false,
      logPages: 0,
      checkpointedPages: 0,
    });

    commitRows(writer, 10);
    expect(checkpointer.step().ran).toBe(true);
    expect(dbBytes()).toBeGreaterThan(before);
  });

  /** The log header's salts (bytes 16–23): SQLite draws new ones each time the log starts again from its first page. */
  const walSalts = (): string => fs.readFileSync(`${dbPath}-wal`).subarray(16, 24).toString('hex');

  it('starts the log again itself after a look that copied all of it, so the next commit appends without doing so', () => {
    const writer = open();
    const checkpointer = new WalCheckpointer(open());
    commitRows(writer, 10);
    const before = walSalts();

    expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
    // The checkpointer's own commit started the log again.
    const restarted = walSalts();
    expect(restarted).not.toBe(before);
    // At an idle grid it commits no more (its restart was a commit other connections see, once).
    const version = writer.pragma('data_version', { simple: true });
    for (let i = 0; i < 5; i++) expect(checkpointer.step().ran).toBe(false);
    expect(writer.pragma('data_version', { simple: true })).toBe(version);
    expect(walSalts()).toBe(restarted);

    // The next commit appends after the checkpointer's page: its commit neither starts the log nor syncs its header.
    commitRows(writer, 1);
    expect(walSalts()).toBe(restarted);
    // The next look copies both and starts the log again.
    expect(checkpointer.step()).toMatchObject({ ran: true, copied: true, logPages: 1 + 4 });
    expect(walSalts()).not.toBe(restarted);
  });

  it('two checkpointers on one database start the log again once after a commit, not each after the other', () => {
    const writer = open();
    const first = new WalCheckpointer(open());
    const second = new WalCheckpointer(open());
    commitRows(writer, 10);
    const salts = new Set<string>([walSalts()]);
    // At rest after one commit: each look of either sees the other's commits, if any.
    for (let i = 0; i < 10; i++) {
      first.step();
      second.step();
      salts.add(walSalts());
    }
    // The log was started again once (by the first), and the second found nothing to start again.
    expect(salts.size).toBe(2);
    const version = writer.pragma('data_version', { simple: true });
    expect(first.step().ran).toBe(false);
    expect(second.step().ran).toBe(false);
    expect(writer.pragma('data_version', { simple: true })).toBe(version);
  });

  it('leaves the log to the next writer while another thread holds the write lock, and while a writer is at work', () => {
    const writer = open();
    const memory = WriteLock.memory();
    const checkpointer = new WalCheckpointer(open(), undefined, { writeLock: new WriteLock(memory, 1_000) });
    commitRows(writer, 10);
    const before = walSalts();
    // Another thread's token in the lock word (this thread's WriteLock would re-enter).
    const lockWord = new Int32Array(memory);
    Atomics.store(lockWord, 0, 999_999);
    expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
    expect(walSalts()).toBe(before);
    Atomics.store(lockWord, 0, 0);

    commitRows(writer, 10);
    const salts = walSalts();
    writer.exec('BEGIN IMMEDIATE');
    try {
      const started = Date.now();
      expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
      expect(walSalts()).toBe(salts);
      // No busy wait for the writer (the connection's busy_timeout is 10 s).
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      writer.exec('ROLLBACK');
    }
  });

  it('skips starting the log again when its commit fails, without a retry, and looks as before', () => {
    const writer = open();
    const db = open();
    const skipped: unknown[] = [];
    const checkpointer = new WalCheckpointer(db, undefined, { onSkipped: (err) => skipped.push(err) });
    commitRows(writer, 10);
    const before = walSalts();
    const exec = db.exec.bind(db);
    db.exec = (sql: string) => {
      if (sql === 'COMMIT') throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      return exec(sql);
    };

    expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
    expect(checkpointer.step().ran).toBe(false);
    db.exec = exec;

    expect(skipped).toEqual([expect.objectContaining({ code: 'SQLITE_FULL' })]);
    expect(db.inTransaction).toBe(false);
    expect(walSalts()).toBe(before);
    // The next writer starts the log itself, as without the checkpointer's commit.
    commitRows(writer, 1);
    expect(walSalts()).not.toBe(before);
  });

  /** This process's POSIX locks on the database file, from /proc/locks (Linux). */
  const locksOnDb = (): string[] => {
    const { ino } = fs.statSync(dbPath);
    return fs
      .readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .filter((line) => line.includes(`:${ino} `) && line.includes(` ${process.pid} `))
      .map((line) => line.replace(/^\d+:\s*/, ''));
  };

  // A descriptor of grid.db opened and closed beside SQLite's drops every POSIX lock this process holds on the file,
  // and another process's SQLite may then take itself for the last connection and delete the log under this one.
  (process.platform === 'linux' ? it : it.skip)(
    'keeps this process’s locks on the database file through looks that sync it, and opens its descriptor once',
    () => {
      const writer = open();
      const syncFd = databaseSyncDescriptor(dbPath);
      expect(syncFd).toBeDefined();
      expect(databaseSyncDescriptor(dbPath)).toBe(syncFd);
      const checkpointer = new WalCheckpointer(open(), syncFd);
      const reader = open();
      commitRows(writer, 10);
      const held = locksOnDb();
      expect(held.length).toBeGreaterThan(0);

      const rows = reader.prepare('SELECT n FROM filler').iterate();
      rows.next();
      commitRows(writer, 10);
      expect(checkpointer.step().checkpointedPages).toBeGreaterThan(0);
      rows.return?.();
      commitRows(writer, 10);
      expect(checkpointer.step().checkpointedPages).toBeGreaterThan(0);
      expect(locksOnDb()).toEqual(held);
    },
  );

  (process.platform === 'linux' ? it : it.skip)(
    'syncs the database file after a look that copied pages SQLite left unsynced, and only then',
    () => {
      const writer = open();
      const reader = open();
      const syncFd = databaseSyncDescriptor(dbPath)!;
      const checkpointer = new WalCheckpointer(open(), syncFd);
      const sync = jest.spyOn(fs, 'fdatasyncSync');
      commitRows(writer, 10);
      // A reader holds the log back at this point.
      const rows = reader.prepare('SELECT n FROM filler').iterate();
      rows.next();
      try {
        commitRows(writer, 10);
        // The look copies what it may, SQLite does not sync the file (the log goes on past it), the look does.
        expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
        expect(sync.mock.calls).toEqual([[syncFd]]);

        // Copied nothing more: nothing to sync.
        commitRows(writer, 10);
        expect(checkpointer.step()).toMatchObject({ ran: true, copied: false });
        expect(sync).toHaveBeenCalledTimes(1);

        // The reader gone, the look copies the whole log with nothing committed meanwhile: SQLite synced the file.
        rows.return?.();
        expect(checkpointer.step()).toMatchObject({ ran: true, copied: true });
        expect(sync).toHaveBeenCalledTimes(1);
      } finally {
        rows.return?.();
        sync.mockRestore();
      }
    },
  );

  it('fails a look whose sync failed, and syncs what it copied at the next look', () => {
    const writer = open();
    const reader = open();
    const checkpointer = new WalCheckpointer(open(), databaseSyncDescriptor(dbPath) ?? -1);
    commitRows(writer, 1);
    const rows = reader.prepare('SELECT n FROM filler').iterate();
    rows.next();
    commitRows(writer, 10);
    const sync = jest.spyOn(fs, 'fdatasyncSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    });
    try {
      expect(() => checkpointer.step()).toThrow('EIO');
      // Nothing committed or copied since (the reader still holds the log): the pages copied before are synced now.
      expect(checkpointer.step()).toMatchObject({ ran: true, committed: false, copied: true });
      expect(sync).toHaveBeenCalledTimes(2);
    } finally {
      sync.mockRestore();
      rows.return?.();
    }
  });

  it('tells a look that copied pages after commits from one that only tries again behind a reader', () => {
    const writer = open();
    const reader = open();
    const checkpointer = new WalCheckpointer(open());
    commitRows(writer, 10);
    // An unfinished iteration holds a read transaction: its snapshot's pages must stay in the log.
    const rows = reader.prepare('SELECT n FROM filler').iterate();
    rows.next();
    commitRows(writer, 10);

    const first = checkpointer.step();
    expect(first).toMatchObject({ ran: true, committed: true, copied: true });
    expect(first.checkpointedPages).toBeLessThan(first.logPages);
    // Commits go on behind the reader: the look copies nothing more, and the next waits its interval.
    commitRows(writer, 10);
    const behind = checkpointer.step();
    expect(behind).toMatchObject({ ran: true, committed: true, copied: false });
    expect(behind.checkpointedPages).toBe(first.checkpointedPages);
    expect(nextLookDelay(behind, 25, 1)).toBe(25);
    // Nothing committed since: the next waits as at rest.
    const again = checkpointer.step();
    expect(again).toMatchObject({ ran: true, committed: false, copied: false });
    expect(nextLookDelay(again, 25, 1)).toBe(WAL_CHECKPOINT_IDLE_INTERVAL_MS);

    rows.return?.();
    expect(checkpointer.step()).toMatchObject({ ran: true, committed: false, copied: true });
    expect(checkpointer.step()).toMatchObject({ ran: false, committed: false, copied: false });
    // The next commit starts the log again; a look copies that log's pages.
    commitRows(writer, 1);
    expect(checkpointer.step()).toMatchObject({ ran: true, committed: true, copied: true });
  });

  it('loses no commit of a process killed while its commits are in the log only', async () => {
    open().close();
    const before = dbBytes();
    const script = bundleFixture(path.join(__dirname, 'fixtures', 'wal-writer.ts'), temp.dir);
    const child = spawn(process.execPath, [script, dbPath, String(BELOW_BOUND_COMMITS)], {
      env: { ...process.env, NODE_PATH: path.join(repoRoot, 'node_modules') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          if (chunk.includes('written')) resolve();
        });
        void exited.then(() => reject(new Error('the writer exited before it wrote')));
      });
      // Hundreds of commits, all still in the log.
      expect(walFrames()).toBeGreaterThan(WAL_AUTOCHECKPOINT_PAGES / 2);
      expect(dbBytes()).toBe(before);
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');

    const reopened = open();
    expect(reopened.prepare('SELECT count(*) FROM filler').pluck().get()).toBe(BELOW_BOUND_COMMITS);
  });

  describe('compiled, in a thread of its own', () => {
    let dist: typeof LocalBackendsModule;
    beforeAll(async () => {
      dist = (await import(freshDistFile('lib', 'backends', 'local', 'index.js'))) as typeof LocalBackendsModule;
    });

    it('copies other threads’ commits into the database file while none of them checkpoints', async () => {
      const writer = open();
      commitRows(writer, 1);
      const before = dbBytes();
      const held = process.platform === 'linux' ? locksOnDb() : [];
      const checkpoints = await dist.startWalCheckpoints(dbPath, { intervalMs: 20 });
      try {
        expect(checkpoints.inThread).toBe(true);

        commitRows(writer, 300);

        await waitFor(() => dbBytes() > before, 10_000, 'the checkpoint thread to copy the commits');
      } finally {
        await checkpoints.stop();
      }
      // The thread's looks synced the file with a descriptor of this process; stopping them must not close it.
      if (process.platform === 'linux') expect(locksOnDb()).toEqual(held);
    });

    it('rejects with the thread’s error when it fails to load, and the process lives on (no unhandled rejection)', () => {
      const entry = path.join(temp.dir, 'broken-thread.js');
      fs.writeFileSync(entry, "throw new Error('broken at load');\n");
      const module = freshDistFile('lib', 'backends', 'local', 'wal-checkpointer.js');
      const script = [
        `const { startCheckpointThread } = require(${JSON.stringify(module)});`,
        `startCheckpointThread(${JSON.stringify(entry)}, { dbPath: ${JSON.stringify(dbPath)}, intervalMs: 20 }, () => {})`,
        '  .then(() => console.log("started"), (err) => console.log("rejected: " + err.message));',
        'setTimeout(() => console.log("alive"), 200);',
      ].join('\n');
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
      expect(run.stderr).toBe('');
      expect(run.stdout).toMatch(/^rejected: the checkpoint thread could not start: Error: broken at load\nalive\n$/);
      expect(run.status).toBe(0);
    });

    (process.platform === 'linux' ? it : it.skip)('runs its looks at the lowest CPU priority (nice 19)', async () => {
      open().close();
      const ours = os.getPriority();
      const checkpoints = await dist.startWalCheckpoints(dbPath);
      try {
        const tid = checkpoints.lowPriorityTid;
        expect(tid).toBeDefined();
        // Field 19 of a task's stat is its nice value; the fields after the command name start at field 3.
        const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        expect(Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19 - 3])).toBe(19);
        // Only that thread: this one keeps its priority.
        expect(os.getPriority()).toBe(ours);
      } finally {
        await checkpoints.stop();
      }
    });
  });
});

describe('when the checkpoint thread looks', () => {
  const step = (logPages: number, committed = true, copied = true): CheckpointStep => ({
    ran: true,
    committed,
    copied,
    logPages,
    checkpointedPages: logPages,
  });
  const nothing: CheckpointStep = { ran: false, committed: false, copied: false, logPages: 0, checkpointedPages: 0 };

  it('looks again within 1 ms once the log holds half the commits’ bound, else at its interval', () => {
    expect(nextLookDelay(step(2_047), 100, 4_096)).toBe(100);
    expect(nextLookDelay(step(2_048), 100, 4_096)).toBe(1);
    expect(nextLookDelay(step(499), 25, 1_000)).toBe(25);
    expect(nextLookDelay(step(500), 25, 1_000)).toBe(1);
    expect(nextLookDelay(nothing, 100, 4_096)).toBe(100);
    // While the grid commits every 25 ms; once a look found nothing committed (the log copied whole, however long it
    // is), every 100 ms: near the bound too, so the quick looks stop with the commits.
    expect(nextLookDelay(step(100), 25, 1_000)).toBe(25);
    expect(nextLookDelay(nothing, 25, 1_000)).toBe(100);
    expect(nextLookDelay(step(4_000), 5, 4_096)).toBe(1);
    // A look that ran again with nothing committed since (a reader kept the last one from copying the whole log).
    expect(nextLookDelay(step(900, false), 25, 1_000)).toBe(100);
    // Commits go on but the look copied nothing (a reader holds the log back): at its interval, not every millisecond.
    expect(nextLookDelay(step(900, true, false), 25, 1_000)).toBe(25);
  });

  it('a timer takes its looks at the interval, and the next one soon after a look that found the log near the bound', () => {
    jest.useFakeTimers();
    const logs = [100, 3_500, 200];
    let looks = 0;
    const checkpointer = {
      step: () => {
        looks++;
        return step(logs.shift() ?? 0);
      },
    } as unknown as WalCheckpointer;
    const timer = new CheckpointTimer(checkpointer, { intervalMs: 100, boundPages: 4_096 });
    try {
      timer.start();
      jest.advanceTimersByTime(100);
      expect(looks).toBe(1);
      jest.advanceTimersByTime(100);
      expect(looks).toBe(2); // found 3,500 pages
      jest.advanceTimersByTime(1);
      expect(looks).toBe(3);
      jest.advanceTimersByTime(99);
      expect(looks).toBe(3);
      jest.advanceTimersByTime(1);
      expect(looks).toBe(4);

      timer.stop();
      expect(looks).toBe(5); // the last look on stop
      jest.advanceTimersByTime(1_000);
      expect(looks).toBe(5);
    } finally {
      timer.stop();
      jest.useRealTimers();
    }
  });
  it('a timer with idleWake waits at an idle grid for a notified commit (or idleWatchedMs), and stops the watch at commits', () => {
    jest.useFakeTimers();
    const steps = [nothing, nothing, step(10), nothing];
    let looks = 0;
    const checkpointer = {
      step: () => {
        looks++;
        return steps.shift() ?? step(10);
      },
    } as unknown as WalCheckpointer;
    let wake: (() => void) | undefined;
    let watches = 0;
    let stops = 0;
    const timer = new CheckpointTimer(checkpointer, {
      intervalMs: 25,
      idleWatchedMs: 1_000,
      idleWake: (w) => {
        watches++;
        wake = w;
        return () => stops++;
      },
    });
    try {
      timer.start();
      jest.advanceTimersByTime(25);
      expect([looks, watches]).toEqual([1, 1]); // idle: the watch starts, the next look in 1 s
      jest.advanceTimersByTime(999);
      expect(looks).toBe(1);
      jest.advanceTimersByTime(1);
      expect([looks, watches, stops]).toEqual([2, 1, 0]); // still idle: the same watch stays on
      jest.advanceTimersByTime(500);
      wake!(); // a notified commit: the next look at the interval, not beside the commit's own round trip
      expect(stops).toBe(1);
      jest.advanceTimersByTime(24);
      expect(looks).toBe(2);
      jest.advanceTimersByTime(1);
      expect(looks).toBe(3); // that look found commits: no new watch
      wake!(); // an event of the stopped watch, already queued: nothing more
      jest.advanceTimersByTime(24);
      expect(looks).toBe(3);
      jest.advanceTimersByTime(1);
      expect([looks, watches]).toEqual([4, 2]); // idle again: a new watch
      timer.stop();
      expect(stops).toBe(2);
    } finally {
      timer.stop();
      jest.useRealTimers();
    }
  });

  it('a timer with idleWake waits twice as long after each idle look, up to idleWatchedMaxMs, and 1 s again after commits', () => {
    jest.useFakeTimers();
    const steps = [nothing, nothing, nothing, nothing, step(10), nothing];
    const lookedAt: number[] = [];
    const checkpointer = {
      step: () => {
        lookedAt.push(Date.now());
        return steps.shift() ?? nothing;
      },
    } as unknown as WalCheckpointer;
    const timer = new CheckpointTimer(checkpointer, {
      intervalMs: 25,
      idleWatchedMs: 1_000,
      idleWatchedMaxMs: 4_000,
      idleWake: () => () => undefined,
    });
    const started = Date.now();
    try {
      timer.start();
      jest.advanceTimersByTime(25 + 1_000 + 2_000 + 4_000 + 4_000 + 25 + 1_000);
      const gaps = lookedAt.map((at, i) => at - (i === 0 ? started : lookedAt[i - 1]!));
      // Idle looks 1, 2, 4 and 4 s apart; the one after them finds commits: the next at the interval, then 1 s again.
      expect(gaps).toEqual([25, 1_000, 2_000, 4_000, 4_000, 25, 1_000]);
    } finally {
      timer.stop();
      jest.useRealTimers();
    }
  });

  it('a timer whose idleWake cannot watch looks at an idle grid every WAL_CHECKPOINT_IDLE_INTERVAL_MS', () => {
    jest.useFakeTimers();
    let looks = 0;
    const checkpointer = {
      step: () => {
        looks++;
        return nothing;
      },
    } as unknown as WalCheckpointer;
    let tries = 0;
    const timer = new CheckpointTimer(checkpointer, {
      intervalMs: 25,
      idleWake: () => {
        tries++;
        return undefined;
      },
    });
    try {
      timer.start();
      jest.advanceTimersByTime(25 + 3 * WAL_CHECKPOINT_IDLE_INTERVAL_MS);
      expect(looks).toBe(4);
      expect(tries).toBe(1); // not tried again at each look
    } finally {
      timer.stop();
      jest.useRealTimers();
    }
  });

  it('a timer reports the first failed look of a streak only, and looks again at twice the last wait up to 5 s', () => {
    jest.useFakeTimers();
    const at: number[] = [];
    let failing = true;
    const checkpointer = {
      step: () => {
        at.push(Date.now());
        if (failing) throw new Error('database or disk is full');
        return step(10);
      },
    } as unknown as WalCheckpointer;
    const errors: unknown[] = [];
    const timer = new CheckpointTimer(checkpointer, { intervalMs: 25, onError: (err) => errors.push(err) });
    const start = Date.now();
    try {
      timer.start();
      jest.advanceTimersByTime(25 + 25 + 50 + 100 + 200 + 400 + 800 + 1_600 + 3_200 + 5_000 + 5_000);
      expect(at.map((t) => t - start)).toEqual([25, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 11_400, 16_400]);
      expect(errors).toHaveLength(1);
      // Space back: the next look succeeds, the looks come at the interval again, and a new streak is reported again.
      failing = false;
      jest.advanceTimersByTime(5_000 + 25);
      expect(at.length).toBe(13);
      failing = true;
      jest.advanceTimersByTime(25);
      expect(errors).toHaveLength(2);
    } finally {
      timer.stop();
      jest.useRealTimers();
    }
  });
});
