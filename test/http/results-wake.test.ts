// A results stream of the HTTP API on a local grid is woken by a completion, not by its poll (set to a minute here,
// beyond the stream's wait and the test's timeout).
import fs from 'node:fs';
import { SqliteRequestLedger } from '../../lib/backends/local';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { compileConfig } from '../../lib/core';
import { ApiHandlers, GridApiServer } from '../../lib/http';
import { tempDir } from '../support/local-grid';
import { ApiTestClient } from './api-client';
import { OpenApiContract } from './openapi-contract';

const TOKEN = 'test-token-0123456789';
let grid: EmbeddedGrid;
let ledger: SqliteRequestLedger;
let server: GridApiServer;
let dataDir: string;

afterEach(async () => {
  await server?.close();
  await ledger?.close();
  await grid?.close(0);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('a waiting results stream answers a task finished meanwhile at once', async () => {
  dataDir = tempDir('htcgrid-http-wake-');
  const config = compileConfig({}, 'test');
  grid = await startEmbeddedGrid({ dataDir, config }); // no agent: the task stays pending until cancelled
  ledger = SqliteRequestLedger.open(dataDir);
  let looks = 0;
  const table = grid.backends.table;
  const listTerminal = table.listTerminal.bind(table);
  table.listTerminal = (...args) => {
    looks++;
    return listTerminal(...args);
  };
  const api = new ApiHandlers({
    config,
    client: grid.client,
    table,
    store: grid.backends.store,
    ledger,
    gridKind: 'local',
    changes: grid.backends.changes,
    pollIntervalMs: 60_000,
  });
  server = await GridApiServer.start({ api, port: 0, token: TOKEN });
  const client = new ApiTestClient(server.url, TOKEN, new OpenApiContract());
  const handle = await grid.client.submit([{ n: 1 }]);

  const answer = client.call('GET', `/v1/sessions/${handle.sessionId}/results?waitSec=20`);
  while (looks === 0) await new Promise((resolve) => setImmediate(resolve));
  await handle.cancel();

  const { status, lines } = await answer;
  expect(status).toBe(200);
  expect(lines.map((l) => l.state ?? l.end)).toEqual(['cancelled', 'complete']);
}, 15_000);
