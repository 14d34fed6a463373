// The compiled embedded grid with its agent in a worker thread: results, start errors, output and drain as in-process.
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import pino from 'pino';
import type * as EmbeddedGridModule from '../../lib/local-grid/embedded-grid';
import type * as CoreModule from '../../lib/core';
import type * as LocalBackendsModule from '../../lib/backends/local';
import type * as AgentModule from '../../lib/runtime/agent';
import type { TaskResult } from '../../lib/client';
import { FIXTURES, TEST_GRID_CONFIG, collect, tempDir, waitFor } from '../support/local-grid';
import { freshDistFile } from '../support/fresh-dist';

/** The compiled library; checked fresh against lib/ and bin/ when the file's tests start. */
const DIST = path.resolve(__dirname, '..', '..', 'dist', 'lib');

let dist: {
  grid: typeof EmbeddedGridModule;
  core: typeof CoreModule;
  backends: typeof LocalBackendsModule;
  agent: typeof AgentModule;
};

function config(overrides: Record<string, unknown> = {}): CoreModule.GridConfig {
  const { applyOverrides, compileConfig } = dist.core;
  return compileConfig(applyOverrides({ ...TEST_GRID_CONFIG }, overrides), 'test');
}

function worker(name: string): string {
  return path.join(FIXTURES, 'e2e', name);
}

async function startError(options: EmbeddedGridModule.EmbeddedGridOptions): Promise<unknown> {
  try {
    const grid = await dist.grid.startEmbeddedGrid(options);
    await grid.close(0);
  } catch (err) {
    return err;
  }
  throw new Error('the grid started');
}

describe('the compiled embedded grid with its agent in a worker thread', () => {
  let grid: EmbeddedGridModule.EmbeddedGrid | undefined;
  beforeAll(async () => {
    freshDistFile('lib', 'index.js');
    dist = {
      grid: (await import(path.join(DIST, 'local-grid', 'embedded-grid.js'))) as typeof EmbeddedGridModule,
      core: (await import(path.join(DIST, 'core', 'index.js'))) as typeof CoreModule,
      backends: (await import(path.join(DIST, 'backends', 'local', 'index.js'))) as typeof LocalBackendsModule,
      agent: (await import(path.join(DIST, 'runtime', 'agent', 'index.js'))) as typeof AgentModule,
    };
  }, 180_000);
  afterEach(async () => {
    await grid?.close(1_000);
    grid = undefined;
  });

  it('runs tasks on the thread, records them under its owner and mirrors its stats, output and logs', async () => {
    const output: string[] = [];
    const logLines: string[] = [];
    grid = await dist.grid.startEmbeddedGrid({
      logger: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }),
      dataDir: tempDir(),
      config: config(),
      worker: worker('chatty'),
      agentThreads: 1,
      onWorkerOutput: (_taskId, _stream, chunk) => void output.push(chunk),
    });
    expect(grid.agent).not.toBeInstanceOf(dist.agent.Agent);
    const handle = await grid.client.submit([1, 2, 3, 4, 5].map((n) => ({ n, lines: 2 })));
    const results: TaskResult[] = await collect(handle.results());

    expect(results.map((r) => [r.state, r.result])).toEqual(
      [1, 2, 3, 4, 5].map((n) => ['succeeded', { n, square: n * n }]),
    );
    expect(new Set(results.map((r) => r.history[0]!.owner))).toEqual(new Set([grid.agent!.owner]));
    await waitFor(() => grid!.agent!.stats.succeeded === 5, 10_000, 'the thread to count the successes');
    expect(grid.agent!.stats).toMatchObject({ claimed: 5, succeeded: 5, failed: 0 });
    await waitFor(() => output.join('').includes('garbage-on-stderr'), 10_000, 'the workers output');
    expect(grid.taskRoot).toBeDefined();
    const started = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((l) => l.msg === 'agent started');
    expect(started).toMatchObject({ agent: grid.agent!.owner, pid: process.pid, slots: 2 });
  });

  it('names its agent and checkpoint threads, so `top -H` and bench/latency --idle-threads tell them apart', async () => {
    grid = await dist.grid.startEmbeddedGrid({
      dataDir: tempDir(),
      config: config(),
      worker: worker('chatty'),
      agentThreads: 1,
    });

    const names = fs
      .readdirSync('/proc/self/task')
      .map((tid) => fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim());
    expect(names).toEqual(expect.arrayContaining([...Object.values(dist.backends.THREAD_NAMES)]));
    // The main thread, whose name is the process's, keeps it.
    expect(fs.readFileSync(`/proc/self/task/${process.pid}/comm`, 'utf8').trim()).not.toMatch(/^htcgrid/);
  });

  it('rejects with the same WorkerInitError (class, type, message, hint) as the in-process agent', async () => {
    const options = { config: config({ lambda_handler_function_name: 'nope' }), worker: worker('probe') };

    const [threadedDir, inProcessDir] = [tempDir(), tempDir()];
    const threaded = await startError({ ...options, dataDir: threadedDir, agentThreads: 1 });
    const inProcess = await startError({ ...options, dataDir: inProcessDir, agentThreads: 0 });

    expect(threaded).toBeInstanceOf(dist.core.WorkerInitError);
    expect(inProcess).toBeInstanceOf(dist.core.WorkerInitError);
    const [t, p] = [threaded, inProcess] as CoreModule.WorkerInitError[];
    expect([t!.name, t!.errorType, t!.hint]).toEqual([p!.name, p!.errorType, p!.hint]);
    // The messages name each grid's own unpacked worker folder.
    const folder = /workers[/\\][^/\\]+[/\\]/g;
    expect(t!.message.split(threadedDir).join('<dir>').replace(folder, '<worker>')).toBe(
      p!.message.split(inProcessDir).join('<dir>').replace(folder, '<worker>'),
    );
    expect(p!.message).toMatch(/nope/);
  });

  it('drains on close: a running task finishes within the grace and is recorded', async () => {
    const dataDir = tempDir();
    const markers = tempDir();
    grid = await dist.grid.startEmbeddedGrid({
      dataDir,
      config: config({ slots: 1 }),
      worker: worker('slow'),
      agentThreads: 1,
    });
    const handle = await grid.client.submit([{ sleep_sec: 1, marker_dir: markers }]);
    await waitFor(() => fs.readdirSync(markers).length > 0, 10_000, 'the task to start');

    await grid.close(20_000);
    grid = undefined;

    const backends = dist.backends.openLocalBackends(dataDir);
    try {
      expect(await backends.table.countByState(handle.sessionId)).toMatchObject({ succeeded: 1, running: 0 });
    } finally {
      await backends.close();
    }
  });

  it('a second close ends the grace: the running task is handed back unfinished', async () => {
    const dataDir = tempDir();
    const markers = tempDir();
    const started = await dist.grid.startEmbeddedGrid({
      dataDir,
      config: config({ slots: 1 }),
      worker: worker('slow'),
      agentThreads: 1,
    });
    const handle = await started.client.submit([{ sleep_sec: 60, marker_dir: markers }]);
    await waitFor(() => fs.readdirSync(markers).length > 0, 10_000, 'the task to start');
    // The thread's busy slot is read on the main thread, and its heartbeat tells the grid's registry.
    expect(started.agent!.slotCounters).toEqual({ busy: 1, restarts: 0 });
    await waitFor(
      async () => (await started.backends.agents.listAlive(Date.now()))[0]?.busySlots === 1,
      10_000,
      'a heartbeat with the busy slot',
    );

    const first = started.close(120_000);
    const second = started.close();
    await Promise.all([first, second]);

    const backends = dist.backends.openLocalBackends(dataDir);
    try {
      expect(await backends.table.countByState(handle.sessionId)).toMatchObject({ pending: 1, running: 0 });
    } finally {
      await backends.close();
    }
  });

  it('copies its commits into the database file from a checkpoint thread, none of its commits checkpointing', async () => {
    const dataDir = tempDir();
    grid = await dist.grid.startEmbeddedGrid({ dataDir, config: config(), worker: worker('chatty'), agentThreads: 1 });
    const handle = await grid.client.submit([1, 2, 3].map((n) => ({ n, lines: 0 })));
    await collect(handle.results());
    const dbPath = path.join(dataDir, dist.backends.GRID_DB_FILE);
    // A copy of the database file without its log holds what checkpoints copied into the file. The grid's commits
    // checkpoint only past WAL_AUTOCHECKPOINT_PAGES, beyond these few tasks: only the checkpoint thread copies.
    const copy = path.join(tempDir(), 'copy.db');
    const succeededInFile = (): number => {
      fs.copyFileSync(dbPath, copy);
      const db = new Database(copy, { readonly: true });
      try {
        return db.prepare("SELECT count(*) FROM tasks WHERE state = 'succeeded'").pluck().get() as number;
      } catch {
        return 0; // copied while a checkpoint wrote it, or before the table's pages were
      } finally {
        db.close();
      }
    };

    await waitFor(() => succeededInFile() === 3, 10_000, 'the checkpoint thread to copy the finished tasks');
  });

  it('a message sent on another thread wakes a long-polling receive instead of leaving it to its next poll', async () => {
    const dir = tempDir();
    // Polls only every 10 minutes: the message can only arrive through the wake.
    const receiver = dist.backends.openLocalBackends(dir, { pollIntervalMs: 600_000 });
    try {
      const received = receiver.queue.receive(1, { waitMs: 600_000, visibilityMs: 10_000 });
      const sender = new Worker(
        `const { openLocalBackends } = require(${JSON.stringify(path.join(DIST, 'backends', 'local', 'index.js'))});
         const backends = openLocalBackends(${JSON.stringify(dir)});
         backends.queue.send([{ taskId: 't-1', sessionId: 's', attempt: 0, priority: 0 }]).then(() => backends.close());`,
        { eval: true },
      );
      const [message] = await received;
      await once(sender, 'exit');

      expect(message?.message).toEqual({ taskId: 't-1', sessionId: 's', attempt: 0, priority: 0 });
    } finally {
      await receiver.close();
    }
  }, 30_000);
});
