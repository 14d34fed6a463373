// `htcgrid ui`'s proxy: the dashboard on loopback behind a token, API calls signed with SigV4 (checked by botocore).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SqliteRequestLedger } from '../../lib/backends/local';
import { requestSigner } from '../../lib/backends/aws/sigv4-signer';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { deployedApi } from '../../lib/cli/commands/ui';
import { applyOverrides, compileConfig } from '../../lib/core';
import { ApiHandlers, DashboardProxy } from '../../lib/http';
import { FIXTURES, tempDir } from '../support/local-grid';
import { SYSTEM_PYTHON, systemPythonHas } from './local-up';

const TOKEN = 'proxy-token-0123456789';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

let dataDir: string;
let grid: EmbeddedGrid;
let ledger: SqliteRequestLedger;
let upstream: http.Server;
let proxy: DashboardProxy;
const seen: Seen[] = [];

/** Stands in for the function URL: records each request as it arrived, then answers it with the API handlers. */
async function startUpstream(api: ApiHandlers): Promise<string> {
  upstream = http.createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      seen.push({ method: req.method!, url: `http://${req.headers.host}${req.url}`, headers, body });
      const url = new URL(req.url!, 'http://x');
      const answer = await api.handle({
        method: req.method!,
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
        caller: 'iam',
      });
      res.writeHead(answer.status, answer.headers);
      if (typeof answer.body === 'string') res.end(answer.body);
      else {
        for await (const chunk of answer.body) res.write(chunk);
        res.end();
      }
    })();
  });
  upstream.listen(0, '127.0.0.1');
  await new Promise((resolve) => upstream.once('listening', resolve));
  return `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
}

beforeAll(async () => {
  dataDir = tempDir('htcgrid-proxy-');
  const config = compileConfig(applyOverrides({ slots: 1 }, {}), 'test');
  grid = await startEmbeddedGrid({ dataDir, config, worker: path.join(FIXTURES, 'http', 'worker') });
  ledger = SqliteRequestLedger.open(dataDir);
  const api = new ApiHandlers({
    config,
    client: grid.client,
    table: grid.backends.table,
    store: grid.backends.store,
    ledger,
    gridKind: 'aws',
  });
  const apiUrl = await startUpstream(api);
  proxy = await DashboardProxy.start({
    apiUrl,
    sign: requestSigner({ region: 'eu-west-3', credentials: CREDENTIALS }),
    token: TOKEN,
    port: 0,
  });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await new Promise((resolve) => upstream?.close(resolve));
  await ledger?.close();
  await grid?.close(5_000);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function call(route: string, init: RequestInit = {}, token: string | null = TOKEN): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${proxy.url}${route}`, { ...init, headers });
}

test('without the token nothing reaches the grid', async () => {
  const before = seen.length;
  const answer = await call('/v1/sessions', {}, null);
  expect(answer.status).toBe(401);
  expect(((await answer.json()) as any).error.code).toBe('UnauthorizedError');
  expect((await call('/v1/sessions', {}, 'wrong')).status).toBe(401);
  expect(seen.length).toBe(before);
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
  const requests = seen.slice(-2);
  for (const r of requests) {
    expect(r.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-3\/lambda\//);
    expect(JSON.stringify(r.headers)).not.toContain(TOKEN);
  }
  if (!systemPythonHas('botocore'))
    throw new Error(`${SYSTEM_PYTHON} has no botocore: apt-get install python3-botocore`);
  // botocore computes each signature again, independently of the signer that made it.
  const script = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
out = []
for r in json.load(sys.stdin):
    auth_header = r["headers"]["authorization"]
    signed = auth_header.split("SignedHeaders=")[1].split(",")[0].split(";")
    req = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode() or None,
                     headers={k: v for k, v in r["headers"].items() if k in signed})
    req.context["timestamp"] = r["headers"]["x-amz-date"]
    auth = SigV4Auth(Credentials(sys.argv[1], sys.argv[2]), "lambda", "eu-west-3")
    string_to_sign = auth.string_to_sign(req, auth.canonical_request(req))
    out.append(auth.signature(string_to_sign, req) == auth_header.split("Signature=")[1])
print(json.dumps(out))
`;
  const run = spawnSync(SYSTEM_PYTHON, ['-c', script, CREDENTIALS.accessKeyId, CREDENTIALS.secretAccessKey], {
    input: JSON.stringify(requests),
    encoding: 'utf8',
  });
  expect(run.stderr).toBe('');
  expect(JSON.parse(run.stdout)).toEqual([true, true]);
});

test('streams server-sent events through as they come', async () => {
  const answer = await call('/v1/events?intervalMs=250&waitSec=0.6');
  expect(answer.headers.get('content-type')).toBe('text/event-stream');
  const text = await answer.text();
  expect(text.match(/^event: overview$/gm)?.length).toBeGreaterThanOrEqual(2);
  expect(text).toContain('event: end');
});

test('htcgrid ui reads the API URL and region from the stack outputs, and says what is missing', async () => {
  const file = path.join(dataDir, 'outputs.json');
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
