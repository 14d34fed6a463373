// The deployed-grid path in a real browser: `htcgrid ui --outputs <file>` (its own process, as a user starts it) serves
// the dashboard and signs its API calls with SigV4; the API it points at stands in for the grid's function URL (AWS_IAM
// auth): it answers only requests whose signature botocore finds valid, for lambda in the outputs' region.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { applyOverrides, compileConfig } from '../../lib/core';
import { registryAgents } from '../../lib/http';
import { startApiGrid, type ApiGrid } from '../support/api-grid';
import { htcgridBin } from '../support/fresh-dist';
import { SignatureChecker, startFunctionUrl, type FunctionUrl } from '../support/function-url';
import { waitFor } from '../support/local-grid';
import { findChromium, launchChromium } from './browser';

/** Functions passed to `page.waitForFunction` run in the page; the test's TypeScript has no DOM types. */
declare const document: { querySelector(s: string): any };

const CHROMIUM = findChromium();
const REGION = 'eu-west-3';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

if (!CHROMIUM) {
  console.warn('dashboard proxy browser test SKIPPED: no chromium on PATH (apt-get install chromium)');
}
const describeInBrowser = CHROMIUM ? describe : describe.skip;

describeInBrowser('the dashboard of a deployed grid, through htcgrid ui', () => {
  let grid: ApiGrid;
  let upstream: FunctionUrl;
  let checker: SignatureChecker;
  let ui: ChildProcessWithoutNullStreams;
  let browser: Browser;
  let page: Page;
  let pageUrl: string;
  const problems: string[] = [];

  beforeAll(async () => {
    const config = compileConfig(
      applyOverrides({ slots: 2, lease_check_interval_sec: 0.2 }, { max_attempts: 1 }),
      'test',
    );
    // The API as the GridApi Lambda serves it (gridKind aws, agents from the registry), behind IAM auth.
    grid = await startApiGrid({
      prefix: 'htcgrid-ui-proxy-',
      config,
      gridKind: 'aws',
      api: (embedded) => ({ agents: registryAgents(embedded.backends.agents, { heartbeatEveryMs: 2_000 }) }),
    });
    checker = new SignatureChecker(CREDENTIALS, REGION);
    // Only requests whose signature botocore finds valid are answered.
    upstream = await startFunctionUrl(grid.api, (request) => checker.check(request));
    const apiUrl = upstream.url;
    const outputs = path.join(grid.dataDir, 'outputs.json');
    fs.writeFileSync(outputs, JSON.stringify({ HtcGrid: { ApiUrl: apiUrl, Region: REGION, TableName: 't' } }));

    ui = spawn(process.execPath, [htcgridBin(), 'ui', '--outputs', outputs, '--listen', '127.0.0.1:0'], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
        AWS_SESSION_TOKEN: '',
        AWS_PROFILE: '',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    let printed = '';
    ui.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    ui.stderr.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    await waitFor(() => /dashboard of .*: (\S+)/.test(printed), 30_000, `htcgrid ui's address (printed: ${printed})`);
    pageUrl = /dashboard of .*: (\S+)/.exec(printed)![1]!;

    browser = await launchChromium(CHROMIUM!);
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(pageUrl);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (ui && ui.exitCode === null) {
      const exited = new Promise((resolve) => ui.once('exit', resolve));
      ui.kill('SIGTERM');
      await exited;
    }
    checker?.close();
    await upstream?.close();
    await grid?.close();
  });

  test('the page loads, connects through the proxy, and lists the grid’s agent with its slots', async () => {
    await page.locator('.connection.live').waitFor({ timeout: 30_000 });
    await page.locator(`[data-agent="${grid.grid.agent!.owner}"]`).waitFor({ timeout: 30_000 });
    expect(await page.locator(`[data-agent="${grid.grid.agent!.owner}"] td[data-idle]`).textContent()).toMatch(
      /^[0-2]$/,
    );
  });

  test('counts update while a session runs, from calls the API accepted as signed', async () => {
    // Submitted through the proxy, as the page's own calls go (the local token, then SigV4 to the API).
    const token = new URL(pageUrl).hash.replace('#token=', '');
    const origin = new URL(pageUrl).origin;
    const tasks = [
      ...Array.from({ length: 12 }, () => ({ do: 'sleep', seconds: 0.2 })),
      { do: 'fail', instrument: 'Q' },
    ];
    const created = await fetch(`${origin}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tasks }),
    });
    expect(created.status).toBe(201);
    const sid = ((await created.json()) as { sessionId: string }).sessionId;
    await page.locator(`tr[data-session="${sid}"]`).waitFor({ timeout: 30_000 });
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-session="${id}"] td.num`)?.textContent === '13/13',
      sid,
      { timeout: 60_000 },
    );
    await page.locator(`tr[data-session="${sid}"]`).click();
    await page.locator(`[data-session-panel="${sid}"] tr[data-error-type="PricingError"]`).waitFor({ timeout: 30_000 });
    // Every call reached the API signed: none was refused.
    expect(upstream.answered.length).toBeGreaterThan(3);
    expect(upstream.answered.filter((a) => a.status === 403)).toEqual([]);
    expect(upstream.answered.map((a) => a.path)).toEqual(expect.arrayContaining(['/v1', '/v1/events', '/v1/sessions']));
  });

  test('an unsigned call to the API is refused, so the calls above were accepted for their signature', async () => {
    const refused = await fetch(`${upstream.url}v1/sessions`);
    expect(refused.status).toBe(403);
  });

  test('logged no console error nor page error', () => {
    expect(problems).toEqual([]);
  });
});
