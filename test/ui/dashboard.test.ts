// The dashboard in a real browser (Debian's chromium through playwright-core) against a local grid running Python.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { startLocalHttpApi, type LocalHttpApi } from '../../lib/cli/commands/serve';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { applyOverrides, compileConfig } from '../../lib/core';
import { OutputTails } from '../../lib/http';
import { silentLogger } from '../../lib/logging';
import { FIXTURES, tempDir, waitFor } from '../support/local-grid';
import { findChromium, launchChromium } from './browser';

/** Functions passed to `page.waitForFunction` run in the page; the test's TypeScript has no DOM types. */
declare const document: { querySelector(s: string): any; querySelectorAll(s: string): Iterable<any> };

const ROOT = path.resolve(__dirname, '..', '..');
const WORKER = path.join(FIXTURES, 'http', 'worker');
const CHROMIUM = findChromium();

if (!CHROMIUM) {
  // Visible in the test output: the suite below is skipped, not passed.
  console.warn(
    'dashboard browser tests SKIPPED: no chromium on PATH (apt-get install chromium, or set HTCGRID_CHROMIUM)',
  );
}
const describeInBrowser = CHROMIUM ? describe : describe.skip;

describeInBrowser('the dashboard in chromium', () => {
  let dataDir: string;
  let grid: EmbeddedGrid;
  let http: LocalHttpApi;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  async function api(method: string, route: string, body?: unknown): Promise<any> {
    const response = await fetch(`${http.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${http.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response.json();
  }

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'ui', 'app.js'))) {
      execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-ui.js')], { cwd: ROOT });
    }
    dataDir = tempDir('htcgrid-ui-');
    const config = compileConfig(
      applyOverrides(
        {
          slots: 2,
          task_ttl_expiration_offset_sec: 3,
          task_ttl_refresh_interval_sec: 1,
          lease_check_interval_sec: 0.2,
        },
        { max_attempts: 2 },
      ),
      'test',
    );
    const outputs = new OutputTails();
    grid = await startEmbeddedGrid({ dataDir, config, worker: WORKER, onWorkerOutput: outputs.listener });
    http = await startLocalHttpApi({
      dir: dataDir,
      config,
      grid,
      address: { host: '127.0.0.1', port: 0 },
      logger: silentLogger(),
      outputs,
    });
    browser = await launchChromium(CHROMIUM!);
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${http.url}/ui/#token=${http.token}`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await http?.close();
    await grid?.close(5_000);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('loads from the grid’s own server, connects to the event stream and hides the token', async () => {
    await page.locator('.connection.live').waitFor();
    expect(page.url()).toBe(`${http.url}/ui/`);
    await page.locator(`[data-agent="${grid.agent!.owner}"]`).waitFor();
    expect(await page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(2);
  });

  test('shows an agent that waits for disk space as such, with the fix', async () => {
    // An agent of another host, in the same registry, whose heartbeat tells it waits for disk space.
    const now = Date.now();
    await grid.backends.agents.heartbeat({
      agentId: 'far:7:disk',
      host: 'far',
      pid: 7,
      slots: 2,
      handler: 'app.handler',
      runtime: 'python3.12',
      startedAt: now,
      heartbeatAt: now,
      expiresAt: now + 60_000,
      state: 'alive',
      waitingForDisk: true,
    });
    try {
      const cell = page.locator('[data-agent="far:7:disk"] td[data-state]');
      await cell.waitFor();
      expect(await cell.textContent()).toBe('waiting for disk space');
      expect(await cell.getAttribute('title')).toMatch(
        /^the disk holding the grid folder is full: free space on that file system or delete finished sessions/,
      );
      expect(await page.locator(`[data-agent="${grid.agent!.owner}"] td[data-state]`).textContent()).toBe('alive');
    } finally {
      await grid.backends.agents.remove('far:7:disk');
    }
  });

  test('counts and charts update while a session runs', async () => {
    const chart = page.locator('[data-chart="completions per second"] canvas');
    const before = await chart.evaluate((c) => (c as unknown as { toDataURL(): string }).toDataURL());
    const tasks = Array.from({ length: 30 }, () => ({ do: 'sleep', seconds: 0.1 }));
    const sid = (await api('POST', '/v1/sessions', { tasks })).sessionId as string;
    const row = page.locator(`tr[data-session="${sid}"]`);
    await row.waitFor();
    // Some finished but not all: the page saw the session while it ran.
    await page.waitForFunction(
      (id) => {
        const text = document.querySelector(`tr[data-session="${id}"] td.num`)?.textContent ?? '';
        const done = Number(text.split('/')[0]);
        return done > 0 && done < 30;
      },
      sid,
      { timeout: 30_000 },
    );
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-session="${id}"] td.num`)?.textContent === '30/30',
      sid,
      { timeout: 30_000 },
    );
    const after = await chart.evaluate((c) => (c as unknown as { toDataURL(): string }).toDataURL());
    expect(after).not.toBe(before);
    // The latency table of the (newest, so shown) session counts every task that ran.
    await page.waitForFunction(
      () => document.querySelector('tr[data-latency="running"] td.num')?.textContent === '30',
      undefined,
      { timeout: 30_000 },
    );
  });

  test('a failing task appears under its error type, and its detail shows the stack and what it printed', async () => {
    const tasks = [{ do: 'fail', instrument: 'XYZ' }, { do: 'noop' }];
    const sid = (await api('POST', '/v1/sessions', { tasks, nonRetryableErrorTypes: ['PricingError'] }))
      .sessionId as string;
    await page.locator(`tr[data-session="${sid}"]`).click();
    const group = page.locator(`[data-session-panel="${sid}"] tr[data-error-type="PricingError"]`);
    await group.waitFor({ timeout: 30_000 });
    expect(await group.locator('td.num').first().textContent()).toBe('1');
    await group.getByText('cannot price XYZ').click();
    const detail = page.locator(`[data-task-panel="${sid}_0"]`);
    await detail.locator('pre.stack').waitFor();
    expect(await detail.locator('pre.stack').textContent()).toMatch(/lambda_function\.py/);
    expect(await detail.locator('h3').first().textContent()).toBe('PricingError: cannot price XYZ');
    await detail.locator('pre.stdout').waitFor({ timeout: 10_000 });
    expect(await detail.locator('pre.stdout').textContent()).toContain('pricing XYZ');
    // The task table filtered by the error type lists that task only.
    await group.locator('a').first().click();
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('.task-table tbody tr')];
      return rows.length === 1 && rows[0]!.getAttribute('data-task') === `${id}_0`;
    }, sid);
    await detail.getByRole('button', { name: 'Close' }).click();
  });

  test('cancelling a session from the page, after confirming, stops its tasks', async () => {
    const tasks = Array.from({ length: 6 }, () => ({ do: 'sleep', seconds: 30 }));
    const sid = (await api('POST', '/v1/sessions', { tasks })).sessionId as string;
    await page.locator(`tr[data-session="${sid}"]`).click();
    const panel = page.locator(`[data-session-panel="${sid}"]`);
    await waitFor(async () => (await api('GET', `/v1/sessions/${sid}`)).counts.running > 0, 20_000, 'a running task');
    // The agents panel shows both slots busy (from the agent's heartbeat in the grid's registry).
    const agentCell = (what: string): string => `[data-agent="${grid.agent!.owner}"] td[data-${what}]`;
    await page.waitForFunction((cell) => document.querySelector(cell)?.textContent === '2', agentCell('busy'), {
      timeout: 20_000,
    });
    expect(await page.locator(agentCell('idle')).textContent()).toBe('0');
    await panel.getByRole('button', { name: 'Cancel session' }).click();
    // Nothing happens before the confirmation.
    expect((await api('GET', `/v1/sessions/${sid}`)).counts.cancelled).toBe(0);
    await panel.getByRole('button', { name: 'Yes, cancel' }).click();
    await page.getByRole('status').getByText(`cancelled 6 tasks of ${sid}`).waitFor();
    await waitFor(async () => (await api('GET', `/v1/sessions/${sid}`)).done, 20_000, 'the session to end');
    expect((await api('GET', `/v1/sessions/${sid}`)).counts).toMatchObject({ cancelled: 6, running: 0, pending: 0 });
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-session="${id}"]`)?.textContent?.includes('cancelled') ?? false,
      sid,
    );
    // Both running tasks were killed, their runtimes restarted, and the slots are idle again.
    await page.waitForFunction(
      ([busy, restarts]) =>
        document.querySelector(busy)?.textContent === '0' && Number(document.querySelector(restarts)?.textContent) >= 2,
      [agentCell('busy'), agentCell('restarts')] as const,
      { timeout: 20_000 },
    );
  });

  test('logged no console error nor page error', () => {
    expect(problems).toEqual([]);
  });
});
