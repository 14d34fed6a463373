// What a results stream's missed-result check costs on DynamoDB: one count, and the full re-read it calls for, read
// through the listing from the start (every item again) and through the index's keys plus only the items lacking; and
// the request of the HTTP API's results stream that counts and re-reads, with and without the read by key.
// Run: npx tsx bench/missed-results-aws.ts (or node dist/bench/missed-results-aws.js after npm run build) [--tasks 10000]
import { parseArgs } from 'node:util';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { openAwsBackends } from '../lib/backends/aws';
import { GridClient } from '../lib/client';
import { compileConfig } from '../lib/core/config';
import { taskIdOf } from '../lib/core';
import { DynamoDbRequestLedger } from '../lib/backends/aws';
import type { TaskTable } from '../lib/ports';
import { DeliveredTasks } from '../lib/client/delivered-tasks';
import { ApiHandlers } from '../lib/http/api-handlers';
import { decodeResultsCursor, encodeResultsCursor, packSentTasks } from '../lib/http/results-cursor';
import { createGridResources, startEmulators } from '../test/support/emulators';

interface Tally {
  requests: Map<string, number>;
  rru: number;
}

/** Adds up the requests and read units of `client` while `tally.on` says so. */
function measure(client: DynamoDBClient, tally: { current: Tally | undefined }): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const current = tally.current;
      if (current === undefined) return next(args);
      const input = args.input as Record<string, unknown>;
      input.ReturnConsumedCapacity ??= 'TOTAL';
      const name = String(context.commandName).replace(/Command$/, '');
      current.requests.set(name, (current.requests.get(name) ?? 0) + 1);
      const out = await next(args);
      const consumed = (out.output as { ConsumedCapacity?: { CapacityUnits?: number } | { CapacityUnits?: number }[] })
        .ConsumedCapacity;
      for (const c of consumed === undefined ? [] : Array.isArray(consumed) ? consumed : [consumed]) {
        current.rru += c.CapacityUnits ?? 0;
      }
      return out;
    },
    { step: 'initialize', name: 'benchReadUnits' },
  );
}

function line(label: string, tally: Tally, extra = ''): string {
  const requests = [...tally.requests].map(([name, n]) => `${n} ${name}`).join(', ');
  return `${label.padEnd(46)} ${tally.rru.toFixed(1).padStart(9)} read units   ${requests}${extra}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tasks: { type: 'string', default: '10000' } } });
  const tasks = Number(values.tasks);
  if (!Number.isSafeInteger(tasks) || tasks < 2)
    throw new Error(`--tasks must be a whole number from 2 (got ${values.tasks})`);
  const emulators = await startEmulators({ dynamodb: true, sqs: true, s3: true });
  const clients = emulators.clients();
  const tally: { current: Tally | undefined } = { current: undefined };
  measure(clients.dynamodb, tally);
  const resources = await createGridResources(emulators);
  const backends = openAwsBackends(resources, { clients });
  try {
    const client = new GridClient({ config: compileConfig({}, 'bench'), ...backends });
    const session = await client.openSession({ expectedTasks: tasks });
    const { sessionId } = session;
    for (let from = 0; from < tasks; from += 1000) {
      await client.addTasks(
        session,
        from,
        Array.from({ length: Math.min(1000, tasks - from) }, () => '{}'),
      );
    }
    await client.sealSession(sessionId, tasks);
    process.stderr.write(`${tasks} tasks written; ending them`);
    const table = backends.table;
    for (let from = 0; from < tasks; from += 100) {
      const ids = Array.from({ length: Math.min(100, tasks - from) }, (_, i) => taskIdOf(sessionId, from + i));
      const now = Date.now();
      await table.claim(
        ids.map((taskId) => ({ taskId, attempt: 0 })),
        { owner: 'bench', expiresAt: now + 600_000 },
        now,
      );
      await table.complete(
        ids.map((taskId) => ({
          taskId,
          guard: { owner: 'bench', attempt: 1 },
          outcome: { kind: 'succeeded' as const, result: { inline: '1' } },
          at: now,
        })),
      );
      if ((from / 100) % 10 === 9) process.stderr.write('.');
    }
    process.stderr.write(' done\n');

    const count: Tally = { requests: new Map(), rru: 0 };
    tally.current = count;
    const counted = await table.countTerminal(sessionId);
    const listing: Tally = { requests: new Map(), rru: 0 };
    tally.current = listing;
    let read = 0;
    let cursor: string | undefined;
    for (;;) {
      const page = await table.listTerminal(sessionId, cursor, 1000);
      if (page.tasks.length === 0) break;
      read += page.tasks.length;
      cursor = page.cursor ?? cursor;
    }
    const wanted: Tally = { requests: new Map(), rru: 0 };
    tally.current = wanted;
    const lacking = taskIdOf(sessionId, Math.floor(tasks / 2));
    let fetched = 0;
    for await (const page of table.readTerminalWanted(sessionId, (taskId) => taskId === lacking, 1000)) {
      fetched += page.length;
    }
    tally.current = undefined;

    // The HTTP API's stream, resumed at the end of the listing from a cursor whose set lacks that task, a count due.
    const api = (taskTable: TaskTable): ApiHandlers =>
      new ApiHandlers({
        config: compileConfig({}, 'bench'),
        client,
        table: taskTable,
        store: backends.store,
        ledger: new DynamoDbRequestLedger({ tableName: resources.tableName, client: clients.dynamodb }),
        gridKind: 'aws',
        missingResultsCheckMs: 1_000,
      });
    const request = async (handlers: ApiHandlers, cursor: string): Promise<string> => {
      const query = new URLSearchParams({ waitSec: '0', cursor });
      const path = `/v1/sessions/${sessionId}/results`;
      const response = await handlers.handle({ method: 'GET', path, query, headers: {}, body: '', caller: 'bench' });
      let text = '';
      for await (const chunk of response.body as AsyncIterable<string>) text += chunk;
      return text;
    };
    const all = new DeliveredTasks();
    for (let i = 0; i < tasks; i++) all.add(i);
    const bytes = Buffer.from(all.toBytes());
    const half = Math.floor(tasks / 2);
    bytes[half >> 3]! &= ~(1 << (half & 7));
    const sent = DeliveredTasks.fromBytes(bytes);
    const record = (await table.getSession(sessionId))!;
    const resumeAt = encodeResultsCursor(
      {
        createdAt: record.createdAt,
        listing: cursor,
        delivered: sent.size,
        check: { since: Date.now() - 60_000, waitMs: 1_000 },
        reRead: undefined,
      },
      packSentTasks(sent),
    );
    decodeResultsCursor(resumeAt);
    const listingOnly = Object.create(table, { readTerminalWanted: { value: undefined } }) as TaskTable;
    const http: Record<string, Tally> = {};
    for (const [label, taskTable] of [
      ['listing', listingOnly],
      ['keys', table],
    ] as const) {
      const t: Tally = { requests: new Map(), rru: 0 };
      tally.current = t;
      // Requests follow the stream's cursor until it ends complete (a read over rows sent pauses each 1 s).
      const handlers = api(taskTable);
      let text = '';
      let at = resumeAt;
      let requests = 0;
      while (!text.includes('"end":"complete"') && requests++ < 100) {
        const answer = await request(handlers, at);
        text += answer;
        at = (JSON.parse(answer.trim().split('\n').pop()!) as { cursor: string }).cursor;
      }
      tally.current = undefined;
      if (!text.includes(`"index":${half}`) || !text.includes('"end":"complete"'))
        throw new Error(`the HTTP stream's re-read (${label}) did not send the lacking result: ${text.slice(0, 300)}`);
      t.requests.set('HTTP requests', requests);
      http[label] = t;
    }

    console.log(`${tasks} ended tasks on DynamoDB Local (${counted} counted), one result lacking:`);
    console.log(line('count (countTerminal)', count));
    console.log(line('re-read through the listing from the start', listing, `   (${read} items read)`));
    console.log(line('re-read: index keys, then the lacking items', wanted, `   (${fetched} item fetched)`));
    console.log(`ratio listing / keys+lacking: ${(listing.rru / wanted.rru).toFixed(1)}x`);
    console.log(line('HTTP stream (count, re-read by the listing)', http.listing!));
    console.log(line('HTTP stream (count, re-read by key)', http.keys!));
    console.log(`ratio HTTP listing / by key: ${(http.listing!.rru / http.keys!.rru).toFixed(1)}x`);
  } finally {
    await backends.close();
    for (const c of Object.values(clients)) c.destroy();
    await emulators.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
