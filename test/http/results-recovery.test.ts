// A results stream of the HTTP API on a local grid delivers a result its listing missed: once the table counts more
// ended tasks than the stream delivered, it reads again from the first result; a client that skips what it has by
// index (as the OpenAPI document asks, and the Python client does) gets every result once.
import fs from 'node:fs';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { SqliteRequestLedger } from '../../lib/backends/local';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { compileConfig } from '../../lib/core';
import { ApiHandlers, GridApiServer } from '../../lib/http';
import { tempDir } from '../support/local-grid';
import { ApiTestClient } from './api-client';
import { OpenApiContract } from './openapi-contract';

const TOKEN = 'test-token-0123456789';
const config = compileConfig({}, 'test');
let grid: EmbeddedGrid;
let ledger: SqliteRequestLedger;
let server: GridApiServer;
let dataDir: string;
let warnings: { msg: string; counted?: number; delivered?: number }[];
let counts: number;

beforeEach(async () => {
  dataDir = tempDir('htcgrid-http-recovery-');
  grid = await startEmbeddedGrid({ dataDir, config }); // no agent: the tests end the tasks themselves
  ledger = SqliteRequestLedger.open(dataDir);
  warnings = [];
  counts = 0;
  const table = grid.backends.table;
  const countTerminal = table.countTerminal.bind(table);
  table.countTerminal = async (sessionId) => {
    counts++;
    return countTerminal(sessionId);
  };
});

afterEach(async () => {
  await server?.close();
  await ledger?.close();
  await grid?.close(0);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function startApi(missingResultsCheckMs: number): Promise<ApiTestClient> {
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        warnings.push(JSON.parse(chunk.toString()) as { msg: string });
        done();
      },
    }),
  );
  const api = new ApiHandlers({
    config,
    client: grid.client,
    table: grid.backends.table,
    store: grid.backends.store,
    ledger,
    gridKind: 'local',
    changes: grid.backends.changes,
    missingResultsCheckMs,
    logger,
  });
  server = await GridApiServer.start({ api, port: 0, token: TOKEN });
  return new ApiTestClient(server.url, TOKEN, new OpenApiContract());
}

/** Ends a task as an agent does: claim, then a guarded completion. */
async function finish(taskId: string): Promise<void> {
  const now = Date.now();
  const table = grid.backends.table;
  const [claim] = await table.claim([{ taskId, attempt: 0 }], { owner: 'agent-1', expiresAt: now + 60_000 }, now);
  if (claim?.status !== 'claimed') throw new Error(`could not claim ${taskId}: ${claim?.status}`);
  await table.complete([
    {
      taskId,
      guard: { owner: 'agent-1', attempt: 1 },
      outcome: { kind: 'succeeded', result: { inline: '1' } },
      at: now,
    },
  ]);
}

/** Ends `taskId` with the completion number of `behind`, a task already listed: its listing key is behind. */
function endBehind(taskId: string, behind: string): void {
  const db = new Database(grid.backends.dbPath);
  try {
    db.pragma('busy_timeout = 5000');
    const row = db.prepare<[string], { done_seq: number }>('SELECT done_seq FROM tasks WHERE task_id = ?').get(behind);
    const now = Date.now();
    db.prepare(
      `UPDATE tasks SET state = 'succeeded', attempt = 1, result_inline = '"late"', started_at = ?, finished_at = ?,
         done_seq = ? WHERE task_id = ?`,
    ).run(now, now, row!.done_seq, taskId);
  } finally {
    db.close();
  }
}

describe('a results stream of the HTTP API whose listing missed a result', () => {
  it('reads again from the first result once the table counts more ended tasks, so the missed one comes', async () => {
    const client = await startApi(300);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const path = `/v1/sessions/${handle.sessionId}/results`;
    await finish(`${handle.sessionId}_0`);
    const first = await client.call('GET', `${path}?waitSec=0`);
    const cursor = first.lines[first.lines.length - 1].cursor as string;

    endBehind(`${handle.sessionId}_1`, `${handle.sessionId}_0`);
    await finish(`${handle.sessionId}_2`);
    const resumed = await client.call('GET', `${path}?waitSec=10&cursor=${cursor}`);

    expect(first.lines.map((l) => l.index ?? l.end)).toEqual([0, 'paused']);
    // The result of the first read comes again after the restart; skipped by index, each result is had once.
    const had = new Set<number>([0]);
    const fresh = resumed.lines.filter((l) => l.index !== undefined && !had.has(l.index) && had.add(l.index));
    expect(fresh.map((l) => l.index)).toEqual([2, 1]);
    expect(fresh[1]).toMatchObject({ state: 'succeeded', result: 'late' });
    expect(resumed.lines[resumed.lines.length - 1]).toMatchObject({ end: 'complete', delivered: 3 });
    expect(warnings).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/reads again from the first result/), counted: 3 }),
    ]);
  }, 30_000);

  it('a count that finds every ended task delivered sends nothing again', async () => {
    const client = await startApi(100);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }]);
    await finish(`${handle.sessionId}_0`);

    const answer = await client.call('GET', `/v1/sessions/${handle.sessionId}/results?waitSec=2`);

    expect(answer.lines.map((l) => l.index ?? l.end)).toEqual([0, 'paused']);
    expect(counts).toBeGreaterThanOrEqual(1);
    expect(warnings).toEqual([]);
  }, 30_000);
});
