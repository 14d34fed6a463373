// Retention of a local grid: finished sessions expire in small batches and the file shrinks (incremental vacuum); a
// full disk is logged once per period.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  ExpiryTimer,
  PAYLOADS_DIR,
  SessionExpiry,
  type ExpiryStep,
  type LocalBackends,
} from '../../../lib/backends/local';
import type { GridClient } from '../../../lib/client';
import { DISK_FULL_WARN_EVERY_MS, DiskFullError } from '../../../lib/core';
import { capturedLogger } from '../../support/fake-ports';
import { waitFor } from '../../support/local-grid';
import { localClientOfEachTest } from './temp-grid-dir';

const HOUR = 3600_000;

describe('expiry of finished sessions on a local grid', () => {
  let dir: string;
  let backends: LocalBackends;
  let client: GridClient;
  localClientOfEachTest({ inline_payload_max_bytes: 1024 }, (grid) => ({ dir, backends, client } = grid));

  const fileBytes = (): number => {
    const db = new Database(backends.dbPath);
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    return fs.statSync(backends.dbPath).size;
  };
  const sessionIds = (): string[] => {
    const db = new Database(backends.dbPath, { readonly: true });
    try {
      return (db.prepare('SELECT session_id FROM sessions ORDER BY session_id').all() as { session_id: string }[]).map(
        (r) => r.session_id,
      );
    } finally {
      db.close();
    }
  };

  it('new databases vacuum incrementally', () => {
    const db = new Database(backends.dbPath, { readonly: true });
    try {
      expect(db.pragma('auto_vacuum', { simple: true })).toBe(2);
    } finally {
      db.close();
    }
  });

  it('examines only sessions created before the retention period: a session is older than its tasks', async () => {
    await client.submit([{ i: 1 }], { sessionId: 'recent' }).then((h) => h.cancel());
    // Its task's end moved back beyond the retention period, its creation left at now: only the creation is looked at
    // (which keeps a step from running its subqueries for every session kept).
    const db = new Database(backends.dbPath);
    try {
      db.prepare("UPDATE tasks SET finished_at = 0 WHERE session_id = 'recent'").run();
    } finally {
      db.close();
    }
    const expiry = new SessionExpiry(backends.database, backends.store, HOUR);

    expect(await expiry.step(Date.now())).toMatchObject({ tasks: 0, sessions: 0, more: false });
    // Once the session itself is older than that, it expires.
    expect(await expiry.step(Date.now() + 2 * HOUR)).toMatchObject({ tasks: 1, more: true });
  });

  it('deletes finished sessions past the retention period in batches, keeps the rest, and the file shrinks', async () => {
    const big = Array.from({ length: 3000 }, (_, i) => ({ i, pad: 'x'.repeat(300) }));
    const finished = await client.submit(big, { sessionId: 'old' });
    await finished.cancel();
    // A large payload goes to a file, which expires with its session.
    await client.submit([{ pad: 'y'.repeat(4000) }], { sessionId: 'old-file' }).then((h) => h.cancel());
    await client.submit([{ i: 1 }], { sessionId: 'live' });
    expect(fs.existsSync(path.join(dir, PAYLOADS_DIR, 'sessions', 'old-file'))).toBe(true);
    const before = fileBytes();

    const expiry = new SessionExpiry(backends.database, backends.store, 24 * HOUR, { batchTasks: 500 });
    // Not yet: finished just now.
    expect(await expiry.step(Date.now())).toMatchObject({ tasks: 0, sessions: 0, more: false });

    const later = Date.now() + 25 * HOUR;
    const steps = [];
    for (let i = 0; i < 100; i++) {
      const step = await expiry.step(later);
      steps.push(step);
      if (!step.more) break;
    }
    expect(Math.max(...steps.map((s) => s.tasks))).toBeLessThanOrEqual(500);
    expect(steps.reduce((n, s) => n + s.tasks, 0)).toBe(3001);
    expect(steps.reduce((n, s) => n + s.sessions, 0)).toBe(2);
    expect(sessionIds()).toEqual(['live']);
    expect(fs.existsSync(path.join(dir, PAYLOADS_DIR, 'sessions', 'old-file'))).toBe(false);
    while (expiry.vacuum() > 0);
    const after = fileBytes();
    expect(after).toBeLessThan(before / 3);
  });
});

describe('the expiry timer on a full disk', () => {
  it('logs the full disk once per period while it stays full, and a line once a step writes again', async () => {
    let now = 0;
    let full = true;
    let steps = 0;
    // The fault alone, scripted: a real full disk under a running grid is test/faults/disk-full-process.test.ts.
    const expiry = {
      step: async (): Promise<ExpiryStep> => {
        steps++;
        if (full) throw new DiskFullError('expiring finished sessions');
        return { tasks: 0, sessions: 0, pagesFreed: 3, more: false };
      },
    } as unknown as SessionExpiry;
    const { logger, lines } = capturedLogger('info');
    const timer = new ExpiryTimer(expiry, { intervalMs: 1, logger, now: () => now });
    const ticks = async (n: number): Promise<void> => {
      const until = steps + n;
      await waitFor(() => steps >= until, 10_000, `${n} expiry ticks`);
    };
    timer.start();
    try {
      await ticks(5);
      now = DISK_FULL_WARN_EVERY_MS - 1;
      await ticks(5);
      expect(lines.map((l) => l.msg)).toEqual(['expiring finished sessions failed; trying again every few seconds']);
      expect(lines[0]!.err?.message).toMatch(/^expiring finished sessions: the disk holding the grid folder is full/);

      now = DISK_FULL_WARN_EVERY_MS;
      await ticks(5);
      expect(lines).toHaveLength(2);

      full = false;
      await ticks(5);
      expect(lines.map((l) => l.msg).slice(2)).toEqual(['disk space is back: expiring finished sessions again']);
    } finally {
      await timer.stop();
    }
  });
});
