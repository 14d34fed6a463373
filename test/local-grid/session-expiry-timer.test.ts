// A local grid left running expires finished sessions on its own timer, after task_retention_sec, and never a session
// that still has work; the clock is injected, so nothing waits for the retention period.
import fs from 'node:fs';
import path from 'node:path';
import { PAYLOADS_DIR } from '../../lib/backends/local';
import { compileConfig } from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/local-grid';
import { FIXTURES, tempDir, waitFor } from '../support/local-grid';

const HOUR = 3600_000;

describe("a local grid's expiry timer", () => {
  let grid: EmbeddedGrid | undefined;
  let dataDir: string;
  afterEach(async () => {
    await grid?.close(0);
    grid = undefined;
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('deletes a finished session (rows and payload files) once the retention period passed, never a running one', async () => {
    dataDir = tempDir();
    let offset = 0;
    let reads = 0;
    const now = (): number => {
      reads++;
      return Date.now() + offset;
    };
    /** Waits for `n` more looks of the timer (each reads the clock once per step). */
    const ticks = async (n: number): Promise<void> => {
      const until = reads + n;
      await waitFor(() => reads >= until, 10_000, `${n} expiry ticks`);
    };
    const config = compileConfig({
      slots: 1,
      task_retention_sec: 3600,
      inline_payload_max_bytes: 16,
      empty_task_queue_backoff_timeout_sec: 0.01,
      reaper_interval_sec: 0.5,
    });
    grid = await startEmbeddedGrid({
      dataDir,
      config,
      worker: path.join(FIXTURES, 'e2e', 'slow'),
      expiry: { now, intervalMs: 20 },
    });
    const { client, backends } = grid;
    const sessionFiles = (id: string): string => path.join(dataDir, PAYLOADS_DIR, 'sessions', id);

    // A finished session whose payload went to a file (larger than 16 bytes).
    const finished = await client.submit([{ sleep_sec: 0, pad: 'x'.repeat(64) }], { sessionId: 'finished' });
    await finished.wait({ signal: AbortSignal.timeout(30_000) });
    expect(fs.existsSync(sessionFiles('finished'))).toBe(true);
    // A session whose task runs for the rest of the test.
    const running = await client.submit([{ sleep_sec: 120 }], { sessionId: 'running' });
    await waitFor(async () => (await running.status()).counts.running === 1, 30_000, 'the long task to run');

    // Younger than the retention: kept.
    offset = HOUR - 60_000;
    await ticks(3);
    expect(await backends.table.getSession('finished')).toBeDefined();

    // Past it: the finished session goes on the timer's own, the running one stays.
    offset = 2 * HOUR;
    await waitFor(
      async () => (await backends.table.getSession('finished')) === undefined,
      10_000,
      'the finished session to expire',
    );
    expect(await backends.table.getTask('finished_0')).toBeUndefined();
    expect(fs.existsSync(sessionFiles('finished'))).toBe(false);
    await ticks(3);
    expect(await backends.table.getSession('running')).toBeDefined();
    expect((await running.status()).counts).toMatchObject({ running: 1 });

    // Once it ends (cancelled here), it is finished too and expires in its turn.
    await running.cancel();
    await waitFor(
      async () => (await backends.table.getSession('running')) === undefined,
      10_000,
      'the cancelled session to expire',
    );
  }, 90_000);
});
