// `htcgrid ui`'s proxy: the dashboard on loopback behind a token, API calls signed with SigV4 (checked by botocore).
import fs from 'node:fs';
import path from 'node:path';
import { requestSigner } from '../../lib/backends/aws/sigv4-signer';
import { deployedApi } from '../../lib/cli/commands/ui';
import { applyOverrides, compileConfig } from '../../lib/core';
import { DashboardProxy } from '../../lib/http';
import { startApiGrid, type ApiGrid } from '../support/api-grid';
import { SignatureChecker, startFunctionUrl, type FunctionUrl } from '../support/function-url';

const TOKEN = 'proxy-token-0123456789';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

let grid: ApiGrid;
/** Stands in for the function URL: records each request as it arrived, then answers it with the API handlers. */
let upstream: FunctionUrl;
let proxy: DashboardProxy;

beforeAll(async () => {
  const config = compileConfig(applyOverrides({ slots: 1 }, {}), 'test');
  grid = await startApiGrid({ prefix: 'htcgrid-proxy-', config, gridKind: 'aws' });
  upstream = await startFunctionUrl(grid.api);
  proxy = await DashboardProxy.start({
    apiUrl: upstream.url,
    sign: requestSigner({ region: 'eu-west-3', credentials: CREDENTIALS }),
    token: TOKEN,
    port: 0,
  });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await grid?.close();
});

function call(route: string, init: RequestInit = {}, token: string | null = TOKEN): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${proxy.url}${route}`, { ...init, headers });
}

test('without the token nothing reaches the grid', async () => {
  const before = upstream.seen.length;
  const answer = await call('/v1/sessions', {}, null);
  expect(answer.status).toBe(401);
  expect(((await answer.json()) as any).error.code).toBe('UnauthorizedError');
  expect((await call('/v1/sessions', {}, 'wrong')).status).toBe(401);
  expect(upstream.seen.length).toBe(before);
});

test('serves the dashboard itself', async () => {
  const page = await fetch(`${proxy.url}/ui/`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('app.js');
});

test('forwards calls signed with SigV4 for lambda in the region, never with the local token', async () => {
  const created = await call('/v1/sessions', { method: 'POST', body: JSON.stringify({ tasks: [{ do: 'noop' }] }) });
  expect(created.status).toBe(201);
  const sid = ((await created.json()) as any).sessionId as string;
  const listed = await call(`/v1/sessions?limit=5`);
  expect(((await listed.json()) as any).sessions[0].sessionId).toBe(sid);
  const requests = upstream.seen.slice(-2);
  for (const r of requests) {
    expect(r.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-3\/lambda\//);
    expect(JSON.stringify(r.headers)).not.toContain(TOKEN);
  }
  // botocore computes each signature again, independently of the signer that made it.
  const checker = new SignatureChecker(CREDENTIALS, 'eu-west-3');
  try {
    expect(await Promise.all(requests.map((r) => checker.check(r)))).toEqual([true, true]);
  } finally {
    checker.close();
  }
});

test('streams server-sent events through as they come', async () => {
  const answer = await call('/v1/events?intervalMs=250&waitSec=0.6');
  expect(answer.headers.get('content-type')).toBe('text/event-stream');
  const text = await answer.text();
  expect(text.match(/^event: overview$/gm)?.length).toBeGreaterThanOrEqual(2);
  expect(text).toContain('event: end');
});

test('htcgrid ui reads the API URL and region from the stack outputs, and says what is missing', async () => {
  const file = path.join(grid.dataDir, 'outputs.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ Grid: { ApiUrl: 'https://abc.lambda-url.eu-west-3.on.aws/', TableName: 't' } }),
  );
  await expect(deployedApi({ outputs: file })).resolves.toEqual({
    apiUrl: 'https://abc.lambda-url.eu-west-3.on.aws/',
    region: 'eu-west-3',
  });
  fs.writeFileSync(file, JSON.stringify({ Grid: { TableName: 't' } }));
  await expect(deployedApi({ outputs: file })).rejects.toThrow(/no ApiUrl: deploy the grid with its HTTP API/);
  await expect(deployedApi({})).rejects.toThrow(/--stack <name>.*--outputs/);
});
