// The dashboard against a local grid running a 10,000-task session with failures: the page's weight, the time from a
// task's completion to the page showing it, the API requests the page makes per minute, and a screenshot.
// Run: npm run build && node dist/bench/dashboard.js [--tasks 10000] [--probes 20] [--screenshot docs/dashboard.png]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startLocalHttpApi } from '../lib/cli/commands/serve';
import { startEmbeddedGrid } from '../lib/cli';
import { applyOverrides, compileConfig } from '../lib/core';
import { OutputTails } from '../lib/http';
import { silentLogger } from '../lib/logging';

/** In-page code: `document` exists there (this file is compiled without DOM types). */
declare const document: { querySelector(s: string): { textContent: string | null } | null };

const ROOT = path.resolve(__dirname, '..', '..');

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '10000' },
      probes: { type: 'string', default: '20' },
      screenshot: { type: 'string' },
      chromium: { type: 'string', default: process.env.HTCGRID_CHROMIUM ?? 'chromium' },
    },
  });
  const taskCount = Number(values.tasks);
  const ui = path.join(ROOT, 'dist', 'ui');
  const weight = ['index.html', 'app.js', 'app.css'].map((f) => {
    const body = fs.readFileSync(path.join(ui, f));
    return { file: f, kib: +(body.length / 1024).toFixed(1), gzipKib: +(gzipSync(body).length / 1024).toFixed(1) };
  });
  console.log('page weight:', JSON.stringify(weight));

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bench-ui-'));
  const config = compileConfig(applyOverrides({ slots: 2 }, { max_attempts: 2 }), 'bench');
  const outputs = new OutputTails();
  const worker = path.join(ROOT, 'bench', 'dashboard-worker');
  const grid = await startEmbeddedGrid({ dataDir, config, worker, onWorkerOutput: outputs.listener });
  const http = await startLocalHttpApi({
    dir: dataDir,
    config,
    grid,
    address: { host: '127.0.0.1', port: 0 },
    logger: silentLogger(),
    outputs,
  });
  const executablePath = values.chromium.includes('/') ? values.chromium : which(values.chromium);
  const browser = await chromium.launch({
    executablePath,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const call = async (method: string, route: string, body?: unknown): Promise<any> => {
    const r = await fetch(`${http.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${http.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return r.json();
  };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    const requests: number[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) requests.push(Date.now());
    });
    await page.goto(`${http.url}/ui/#token=${http.token}`);
    await page.locator('.connection.live').waitFor();

    // A 10,000-task session with failures, watched until it ends.
    const started = Date.now();
    const tasks = Array.from({ length: taskCount }, (_, i) => ({ i }));
    const sid = (await call('POST', '/v1/sessions', { tasks, nonRetryableErrorTypes: ['PricingError'] }))
      .sessionId as string;
    let shot = false;
    for (;;) {
      const status = await call('GET', `/v1/sessions/${sid}`);
      const finished = status.counts.succeeded + status.counts.failed + status.counts.cancelled;
      if (!shot && values.screenshot && finished >= taskCount * 0.985) {
        // Let the summary and the task table catch up with the progress shown.
        await page.locator(`[data-session-panel="${sid}"] tr[data-error-type="PricingError"]`).waitFor();
        await page.locator(`[data-session-panel="${sid}"] .filters select`).first().selectOption('failed');
        await page.locator('.task-table td.state.failed').first().waitFor();
        await page.screenshot({ path: values.screenshot, fullPage: false });
        shot = true;
        console.log(`screenshot at ${finished}/${taskCount} tasks: ${values.screenshot}`);
      }
      if (status.done) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const runMin = (Date.now() - started) / 60_000;
    const during = requests.filter((t) => t >= started).length;
    console.log(
      `session of ${taskCount} tasks ran ${(runMin * 60).toFixed(1)} s; page requests meanwhile: ${during} ` +
        `(${(during / runMin).toFixed(0)} per minute, the event stream counting once)`,
    );

    // Completion to page: one task at a time, the page's clock against the task's finish time (same host).
    const latencies: number[] = [];
    for (let n = 0; n < Number(values.probes); n++) {
      // At a random moment: a probe right after the page updated would always wait a whole poll period.
      await new Promise((r) => setTimeout(r, Math.random() * 1000));
      const probe = (await call('POST', '/v1/sessions', { tasks: [{ i: 0, ms: 0 }] })).sessionId as string;
      const handle = await page.waitForFunction(
        (id) => (document.querySelector(`tr[data-session="${id}"] td.num`)?.textContent === '1/1' ? Date.now() : 0),
        probe,
        { polling: 'raf', timeout: 30_000 },
      );
      const shownAt = await handle.jsonValue();
      const task = await call('GET', `/v1/tasks/${probe}_0`);
      latencies.push(shownAt - (task.finishedAt as number));
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `completion → page (${latencies.length} probes): p50 ${percentile(latencies, 50)} ms, ` +
        `p95 ${percentile(latencies, 95)} ms, max ${latencies[latencies.length - 1]} ms`,
    );

    // Idle: nothing runs; only the event stream stays open.
    const idleStart = Date.now();
    await new Promise((r) => setTimeout(r, 20_000));
    const idle = requests.filter((t) => t >= idleStart).length;
    console.log(`idle page, 20 s: ${idle} requests (${(idle * 3).toFixed(0)} per minute)`);
  } finally {
    await browser.close();
    await http.close();
    await grid.close(5_000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function which(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  throw new Error(`no ${name} on PATH: install chromium (apt-get install chromium) or pass --chromium PATH`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
