// Retention on a local grid: database size after N finished tasks, after expiry + incremental vacuum, and the time
// of one expiry batch (500 rows). Usage: node dist/bench/retention.js [tasks=100000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openLocalBackends, SessionExpiry } from '../lib/backends/local';
import { GridClient } from '../lib/client';
import { compileConfig } from '../lib/core';

async function main(): Promise<void> {
  const tasks = Number(process.argv[2] ?? 100_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-retention-'));
  const backends = openLocalBackends(dir);
  try {
    const client = new GridClient({ config: compileConfig({}), ...backends });
    const size = (): number => {
      backends.database.pragma('wal_checkpoint(TRUNCATE)');
      return fs.statSync(backends.dbPath).size;
    };
    const events = (function* () {
      for (let i = 0; i < tasks; i++) yield { i, spot: 100 + (i % 50), strike: 95 + (i % 11), vol: 0.2 };
    })();
    const handle = await client.submit(events, {
      sessionId: 'bench',
      onProgress: (n) => n % 20_000 === 0 && process.stderr.write(`submitted ${n}/${tasks}\r`),
    });
    await handle.cancel(); // every task finished (cancelled): the session can expire
    const before = size();
    const expiry = new SessionExpiry(backends.database, backends.store, 1000, { batchTasks: 500 });
    const later = Date.now() + 3600_000;
    const batchMs: number[] = [];
    for (;;) {
      const t0 = performance.now();
      const step = await expiry.step(later);
      batchMs.push(performance.now() - t0);
      if (batchMs.length % 50 === 0) process.stderr.write(`expiry batches ${batchMs.length}\r`);
      if (!step.more) break;
    }
    while (expiry.vacuum() > 0);
    const after = size();
    batchMs.sort((a, b) => a - b);
    const q = (p: number) => batchMs[Math.min(batchMs.length - 1, Math.floor(p * batchMs.length))]!.toFixed(2);
    console.log(
      JSON.stringify({
        tasks,
        dbBytesBefore: before,
        bytesPerTask: Math.round(before / tasks),
        dbBytesAfter: after,
        batches: batchMs.length,
        batchMsP50: q(0.5),
        batchMsP99: q(0.99),
        batchMsMax: batchMs[batchMs.length - 1]!.toFixed(2),
      }),
    );
  } finally {
    await backends.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
