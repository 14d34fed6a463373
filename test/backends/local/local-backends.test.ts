// The local grid directory: several processes sharing one database file, and the schema version check.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  DatabaseBusyError,
  GRID_DB_FILE,
  openLocalBackends,
  SCHEMA_VERSION,
  SchemaVersionError,
} from '../../../lib/backends/local';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { makeTempDir } from './temp-grid-dir';
import { bundleFixture } from '../../support/bundle-fixture';

const repoRoot = path.resolve(__dirname, '../../..');

interface WorkerReport {
  owner: string;
  claimed: string[];
  outcomes: Record<string, number>;
}

/** Bundles the claim worker fixture into `outDir` so plain `node` runs it. */
function bundleWorker(outDir: string): string {
  return bundleFixture(path.join(__dirname, 'fixtures', 'claim-worker.ts'), outDir);
}

function startWorker(script: string, dir: string, owner: string): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [script, dir, owner], {
    env: { ...process.env, NODE_PATH: path.join(repoRoot, 'node_modules') },
  });
}

function linesOf(child: ChildProcessWithoutNullStreams): { next(): Promise<string>; exited: Promise<number | null> } {
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buffer = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0) process.stderr.write(stderr);
      resolve(code);
    }),
  );
  return {
    next: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiters.push(resolve));
    },
    exited,
  };
}

describe('local backends in one grid directory', () => {
  const session: SessionRecord = {
    sessionId: 'mp',
    createdAt: 1,
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };

  it('two processes draining one queue claim disjoint tasks, and every task runs exactly once', async () => {
    const temp = makeTempDir();
    const backends = openLocalBackends(temp.dir);
    let children: ChildProcessWithoutNullStreams[] = [];
    try {
      const count = 5000;
      const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: String(i) }, 1));
      await backends.table.createSession(session);
      await backends.table.createTasks(tasks);
      // Every task is announced twice, so both processes see messages for the same tasks.
      const messages = tasks.map((t) => ({ taskId: t.taskId, sessionId: t.sessionId, attempt: 0, priority: 0 }));
      await backends.queue.send([...messages, ...messages]);
      const script = bundleWorker(temp.dir);
      children = ['agent-a', 'agent-b'].map((owner) => startWorker(script, temp.dir, owner));
      const outputs = children.map(linesOf);
      expect(await Promise.all(outputs.map((o) => o.next()))).toEqual(['ready', 'ready']);

      for (const child of children) child.stdin.end('go\n');
      const reports = (await Promise.all(outputs.map((o) => o.next()))).map((line) => JSON.parse(line) as WorkerReport);
      const codes = await Promise.all(outputs.map((o) => o.exited));

      expect(codes).toEqual([0, 0]);
      const [a, b] = reports as [WorkerReport, WorkerReport];
      const claimedByA = new Set(a.claimed);
      expect(b.claimed.filter((id) => claimedByA.has(id))).toEqual([]);
      expect(new Set([...a.claimed, ...b.claimed]).size).toBe(count);
      expect(a.claimed.length + b.claimed.length).toBe(count);
      expect(a.claimed.length).toBeGreaterThan(0);
      expect(b.claimed.length).toBeGreaterThan(0);
      expect(await backends.table.countByState(session.sessionId)).toMatchObject({
        succeeded: count,
        pending: 0,
        running: 0,
      });
      const sample = await backends.table.getTask(tasks[count - 1]!.taskId);
      expect(sample?.history).toHaveLength(1);
      expect(await backends.queue.countMessages()).toEqual({ visible: 0, invisible: 0 });
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      await backends.close();
      temp.remove();
    }
  });

  it('creates the database and the payload folder in a new directory', async () => {
    const temp = makeTempDir();
    const dir = path.join(temp.dir, 'nested', 'grid');
    try {
      const backends = openLocalBackends(dir);
      await backends.close();

      expect(backends.dbPath).toBe(path.join(dir, GRID_DB_FILE));
      expect(fs.existsSync(backends.dbPath)).toBe(true);
      expect(fs.statSync(path.join(dir, 'payloads')).isDirectory()).toBe(true);
    } finally {
      temp.remove();
    }
  });

  it('reopening a grid directory keeps its sessions and tasks', async () => {
    const temp = makeTempDir();
    try {
      const first = openLocalBackends(temp.dir);
      await first.table.createSession(session);
      await first.table.createTasks([newTask(session, 0, { inline: '1' }, 1)]);
      await first.close();

      const second = openLocalBackends(temp.dir);
      try {
        expect(await second.table.getSession('mp')).toEqual(session);
        expect((await second.table.getTask('mp_0'))?.state).toBe('pending');
      } finally {
        await second.close();
      }
    } finally {
      temp.remove();
    }
  });

  it('refuses a database written by another schema version, naming both versions', async () => {
    const temp = makeTempDir();
    try {
      const backends = openLocalBackends(temp.dir);
      await backends.close();
      const raw = new Database(backends.dbPath);
      raw.prepare("UPDATE grid_meta SET value = '999' WHERE key = 'schema_version'").run();
      raw.close();

      expect(() => openLocalBackends(temp.dir)).toThrow(SchemaVersionError);
      expect(() => openLocalBackends(temp.dir)).toThrow(
        new RegExp(`schema version 999, this grid needs version ${SCHEMA_VERSION}`),
      );
      expect(() => openLocalBackends(temp.dir)).toThrow(
        expect.objectContaining({ hint: expect.stringMatching(/newer htc-grid-cdk: upgrade this one/) }),
      );
    } finally {
      temp.remove();
    }
  });

  it('tells an older database from a newer one: an older one is never migrated', async () => {
    const temp = makeTempDir();
    try {
      const backends = openLocalBackends(temp.dir);
      await backends.close();
      const raw = new Database(backends.dbPath);
      raw.prepare("UPDATE grid_meta SET value = '1' WHERE key = 'schema_version'").run();
      raw.close();

      expect(() => openLocalBackends(temp.dir)).toThrow(
        expect.objectContaining({
          message: expect.stringMatching(`schema version 1, this grid needs version ${SCHEMA_VERSION}`),
          hint: expect.stringMatching(/older htc-grid-cdk and is never migrated: use a new grid directory/),
        }),
      );
    } finally {
      temp.remove();
    }
  });

  it('a write blocked by another connection for longer than the busy timeout fails with a retryable error', async () => {
    const temp = makeTempDir();
    const backends = openLocalBackends(temp.dir, { busyTimeoutMs: 50 });
    const other = new Database(backends.dbPath);
    try {
      await backends.table.createSession(session);
      other.prepare('BEGIN IMMEDIATE').run();

      const blocked = backends.table.createTasks([newTask(session, 0, { inline: '1' }, 1)]);

      await expect(blocked).rejects.toThrow(DatabaseBusyError);
      await expect(blocked).rejects.toMatchObject({ retryable: true });
      other.prepare('ROLLBACK').run();
      await backends.table.createTasks([newTask(session, 0, { inline: '1' }, 1)]);
      expect(await backends.table.getTask('mp_0')).toBeDefined();
    } finally {
      other.close();
      await backends.close();
      temp.remove();
    }
  });

  it('closing twice is harmless', async () => {
    const temp = makeTempDir();
    try {
      const backends = openLocalBackends(temp.dir);

      await backends.close();

      await expect(backends.close()).resolves.toBeUndefined();
    } finally {
      temp.remove();
    }
  });
});
