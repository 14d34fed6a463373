// Wake-ups of a local grid: a commit by another connection or process wakes a waiting receive or results handle at
// once, not at its next poll (their polls are set to a minute here, beyond the test's timeout).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseChanges, GRID_DB_FILE, openLocalBackends, type LocalBackends } from '../../../lib/backends/local';
import { GridClient } from '../../../lib/client';
import { compileConfig } from '../../../lib/core';
import { bundleFixture } from '../../support/bundle-fixture';
import { waitFor } from '../../support/local-grid';
import { makeTempDir } from './temp-grid-dir';

const repoRoot = path.resolve(__dirname, '../../..');
const MINUTE = 60_000;
/** How these tests take a waiting task as agent-1: no wait, a minute's lease. */
const CLAIM_ONE = { waitMs: 0, visibilityMs: MINUTE, owner: 'agent-1', leaseMs: MINUTE, busyDelayMs: 0 };

/** Runs the grid-writer fixture (bundled by esbuild, as local-backends.test.ts runs its claim worker) once. */
function writeFromAnotherProcess(outDir: string, args: readonly string[]): Promise<void> {
  const outfile = bundleFixture(path.join(__dirname, 'fixtures', 'grid-writer.ts'), outDir);
  const child = spawn(process.execPath, [outfile, ...args], {
    env: { ...process.env, NODE_PATH: path.join(repoRoot, 'node_modules') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`grid writer exited ${code}: ${stderr}`)))),
  );
}

describe('DatabaseChanges', () => {
  let temp: ReturnType<typeof makeTempDir>;
  const opened: Array<{ close(): unknown }> = [];
  beforeEach(() => (temp = makeTempDir('htcgrid-changes-')));
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
    temp.remove();
  });

  /** Two connections to one grid database's change feed, closed after the test. */
  const twoConnections = (): { writer: DatabaseChanges; reader: DatabaseChanges } => {
    const dbPath = path.join(temp.dir, GRID_DB_FILE);
    const writer = new DatabaseChanges(dbPath);
    const reader = new DatabaseChanges(dbPath);
    opened.push(writer, reader);
    return { writer, reader };
  };

  it('a notify through one connection wakes the waiter of another through the kernel, and raises its version', async () => {
    const { writer, reader } = twoConnections();
    expect(reader.watching).toBe(true);
    const since = reader.version;
    const woken = reader.waitForChange(since, MINUTE);
    writer.notify();
    await expect(woken).resolves.toBe(true);
    expect(reader.version).toBeGreaterThan(since);
    // A change already seen answers at once; none after it waits out its time.
    await expect(reader.waitForChange(since, MINUTE)).resolves.toBe(true);
    await expect(reader.waitForChange(reader.version, 1)).resolves.toBe(false);
  });

  it.each(['cannot start', 'fails later'] as const)(
    'does not claim to announce every end once the watch of its tasks topic %s (handles then look first)',
    (how) => {
      const changes = new DatabaseChanges(path.join(temp.dir, GRID_DB_FILE));
      opened.push(changes);
      const watch = jest.spyOn(fs, 'watch');
      if (how === 'cannot start') {
        watch.mockImplementationOnce(() => {
          throw Object.assign(new Error('gone'), { code: 'ENOENT' });
        });
      }
      try {
        void changes.version;
        if (how === 'fails later') (watch.mock.results[0]!.value as fs.FSWatcher).emit('error', new Error('gone'));
      } finally {
        watch.mockRestore();
      }

      expect(changes.watching).toBe(true);
      expect(changes.announcesEveryEnd).toBe(false);
    },
  );

  it('watches the file of each topic its pollers read, from their first look, and never the folder', async () => {
    const dbPath = path.join(temp.dir, GRID_DB_FILE);
    const watch = jest.spyOn(fs, 'watch');
    try {
      const changes = new DatabaseChanges(dbPath);
      opened.push(changes);
      const watched = (): string[] => watch.mock.calls.slice(1).map((call) => String(call[0]));
      // Opening only checks that the file system reports changes.
      expect(watched()).toEqual([]);
      void changes.version;
      void changes.tasks.version;
      expect(watched()).toEqual([`${dbPath}-changes`]);
      void changes.queue.version;
      expect(watched()).toEqual([`${dbPath}-changes`, `${dbPath}-queue-changes`]);
    } finally {
      watch.mockRestore();
    }
  });

  it('a notify wakes the waiters of its own connection at once, and of a connection watching only that topic', async () => {
    const { writer, reader } = twoConnections();
    const ownSince = writer.queue.version;
    const otherSince = reader.queue.version;
    const own = writer.queue.waitForChange(ownSince, MINUTE);
    const other = reader.queue.waitForChange(otherSince, MINUTE);
    writer.notify('queue');
    // Its own waiter without the kernel's round: the version is up before notify returns.
    expect(writer.queue.version).toBe(ownSince + 1);
    await expect(own).resolves.toBe(true);
    await expect(other).resolves.toBe(true);
    // The reader never read its tasks version: it does not watch that topic, and nothing raised it.
    expect(reader.tasks.version).toBe(0);
  });

  it('an aborted wait answers false', async () => {
    const changes = new DatabaseChanges(path.join(temp.dir, GRID_DB_FILE));
    opened.push(changes);
    const controller = new AbortController();
    const waiting = changes.waitForChange(changes.version, MINUTE, controller.signal);
    controller.abort();
    await expect(waiting).resolves.toBe(false);
  });

  it('a send by another process wakes a long-polling receive that polls once a minute', async () => {
    const backends: LocalBackends = openLocalBackends(temp.dir, { pollIntervalMs: MINUTE });
    opened.push(backends);
    const before = backends.changes.queue.version;
    const receiving = backends.queue.receive(1, { waitMs: MINUTE, visibilityMs: MINUTE });
    await writeFromAnotherProcess(temp.dir, [temp.dir, 'send', 't-1', 's-1']);
    const messages = await receiving;
    expect(messages.map((m) => m.message.taskId)).toEqual(['t-1']);
    expect(backends.changes.queue.version).toBeGreaterThan(before);
  }, 30_000);

  it('a receive woken by another process waits on the queue topic itself: nothing aborted, no waiter left', async () => {
    const backends: LocalBackends = openLocalBackends(temp.dir, { pollIntervalMs: MINUTE });
    opened.push(backends);
    // Each wake-up used to abort a controller of its own (an abort error with its stack trace per task).
    const abort = jest.spyOn(AbortController.prototype, 'abort');
    try {
      const receiving = backends.queue.receive(1, { waitMs: MINUTE, visibilityMs: MINUTE });
      await waitFor(() => backends.changes.queue.waiting === 1, 10_000, 'the receive to wait on the queue topic');
      await writeFromAnotherProcess(temp.dir, [temp.dir, 'send', 't-1', 's-1']);
      expect((await receiving).map((m) => m.message.taskId)).toEqual(['t-1']);
      expect(backends.changes.queue.waiting).toBe(0);
      expect(abort).not.toHaveBeenCalled();
    } finally {
      abort.mockRestore();
    }
  }, 30_000);

  it('only writes a waiter waits for notify: sends the queue topic; a late seal, finish and cancel the tasks topic', async () => {
    const backends = openLocalBackends(temp.dir);
    opened.push(backends);
    const notify = jest.spyOn(backends.changes, 'notify');
    const client = new GridClient({ config: compileConfig({}, 'test'), ...backends, pollIntervalMs: MINUTE });
    // Submit of one batch: session, tasks, send and seal in one write; agents wait for it, results handles cannot (no
    // task of the session can have finished before its seal).
    const handle = await client.submit([{ n: 1 }, { n: 2 }]);
    expect(notify.mock.calls).toEqual([['queue']]);
    notify.mockClear();
    // Of two batches: the seal comes after tasks an agent may have finished already, so results handles look again.
    await client.submit([{ n: 3 }, { n: 4 }], { batchSize: 1 });
    expect(notify.mock.calls).toEqual([['queue'], ['tasks'], ['queue']]);
    notify.mockClear();
    // Receive + claim, lease extension: neither agents nor clients wait for them.
    const [task] = await backends.intake.receiveAndClaim(1, CLAIM_ONE);
    await backends.table.extendLeases([{ taskId: task!.taskId, owner: 'agent-1', attempt: 1 }], Date.now() + MINUTE);
    expect(notify).not.toHaveBeenCalled();
    await backends.table.complete([
      {
        taskId: task!.taskId,
        guard: { owner: 'agent-1', attempt: 1 },
        outcome: { kind: 'succeeded', result: { inline: '1' } },
        at: Date.now(),
      },
    ]);
    await handle.cancel();
    expect(notify.mock.calls).toEqual([['tasks'], ['tasks']]);
  });

  it('a task finished by another process wakes a results handle that polls once a minute', async () => {
    const backends = openLocalBackends(temp.dir);
    opened.push(backends);
    const client = new GridClient({ config: compileConfig({}, 'test'), ...backends, pollIntervalMs: MINUTE });
    const handle = await client.submit([{ n: 1 }]);
    let looks = 0;
    const listTerminal = backends.table.listTerminal.bind(backends.table);
    backends.table.listTerminal = (...args) => {
      looks++;
      return listTerminal(...args);
    };
    const results = (async () => {
      const states: string[] = [];
      for await (const r of handle.results()) states.push(r.state);
      return states;
    })();
    // The handle waits (nothing of its session ended since it was written, so it did not even look); the other
    // process ends the task.
    await new Promise((resolve) => setImmediate(resolve));
    expect(looks).toBe(0);
    const before = backends.changes.version;
    await writeFromAnotherProcess(temp.dir, [temp.dir, 'cancel', handle.sessionId]);
    // Woken by the other process's commit: the next poll would have come a minute later, past the test's timeout.
    await expect(results).resolves.toEqual(['cancelled']);
    expect(backends.changes.version).toBeGreaterThan(before);
  }, 30_000);
  describe('a results handle of a session this client just submitted', () => {
    const finish = async (backends: LocalBackends): Promise<void> => {
      const [task] = await backends.intake.receiveAndClaim(1, CLAIM_ONE);
      await backends.table.complete([
        {
          taskId: task!.taskId,
          guard: { owner: 'agent-1', attempt: 1 },
          outcome: { kind: 'succeeded', result: { inline: '1' } },
          at: Date.now(),
        },
      ]);
    };
    const countLooks = (backends: LocalBackends): { looks: number } => {
      const counter = { looks: 0 };
      const listTerminal = backends.table.listTerminal.bind(backends.table);
      backends.table.listTerminal = (...args) => {
        counter.looks++;
        return listTerminal(...args);
      };
      return counter;
    };
    const states = async (handle: { results(): AsyncGenerator<{ state: string }> }): Promise<string[]> => {
      const found: string[] = [];
      for await (const r of handle.results()) found.push(r.state);
      return found;
    };

    it('waits for the first change instead of reading a page that must be empty', async () => {
      const backends = openLocalBackends(temp.dir);
      opened.push(backends);
      const client = new GridClient({ config: compileConfig({}, 'test'), ...backends, pollIntervalMs: MINUTE });
      const handle = await client.submit([{ n: 1 }]);
      const counter = countLooks(backends);

      const results = states(handle);
      await new Promise((resolve) => setImmediate(resolve));
      expect(counter.looks).toBe(0);
      await finish(backends);

      await expect(results).resolves.toEqual(['succeeded']);
      expect(counter.looks).toBe(1);
    });

    it('looks at once when a task ended before the results were asked for', async () => {
      const backends = openLocalBackends(temp.dir);
      opened.push(backends);
      const client = new GridClient({ config: compileConfig({}, 'test'), ...backends, pollIntervalMs: MINUTE });
      const handle = await client.submit([{ n: 1 }]);
      await finish(backends);
      const counter = countLooks(backends);

      // A wait here would last the minute of the fallback poll, past the test's timeout.
      await expect(states(handle)).resolves.toEqual(['succeeded']);
      expect(counter.looks).toBe(1);
    });

    it('ends at once for a session without tasks', async () => {
      const backends = openLocalBackends(temp.dir);
      opened.push(backends);
      const client = new GridClient({ config: compileConfig({}, 'test'), ...backends, pollIntervalMs: MINUTE });
      const handle = await client.submit([]);

      await expect(states(handle)).resolves.toEqual([]);
    });
  });
});
