// A results stream of the HTTP API on the AWS backends (DynamoDB Local) whose listing missed results: once the table
// counts more ended tasks than the stream delivered, it reads by key only the tasks its set of sent tasks lacks (the
// table's keys, then those items), not the listing from the first result, and sends each missed result once, across
// the requests that resume it. And a stream whose session is deleted and created again during a request.
import { DynamoDbRequestLedger, openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import { GridClient } from '../../lib/client';
import { DeliveredTasks } from '../../lib/client/delivered-tasks';
import { compileConfig } from '../../lib/core/config';
import type { AwsGridResources } from '../../lib/core/grid-resources';
import { ApiHandlers } from '../../lib/http/api-handlers';
import * as resultsCursor from '../../lib/http/results-cursor';
import { createGridResources } from '../support/emulators';
import { useEmulators } from '../support/emulator-suite';
import { capturedLogger } from '../support/fake-ports';
import { finishTask, lostWriter, TestClock, type MissedResultsLogLine } from '../support/missed-results';
import { recordFetchedItems, watchReads } from '../support/watch-reads';

const config = compileConfig({}, 'test');
const suite = useEmulators();

/** Backends on their own SDK clients (`clients`: those given), closed after the test. */
function open(resources: AwsGridResources, clients = suite.emulators.clients()): AwsBackends {
  const backends = openAwsBackends(resources, { clients });
  suite.closeAfterTest({
    close: async () => {
      await backends.close();
      for (const client of Object.values(clients)) client.destroy();
    },
  });
  return backends;
}

/**
 * The API on its own backends (their DynamoDB client's item fetches recorded, their table's reads counted), its clock
 * moved by the test (a count check each second of it), no notices; and an agent's backends to end tasks with.
 */
async function startApi() {
  const resources = await createGridResources(suite.emulators);
  const clients = suite.emulators.clients();
  const fetched = recordFetchedItems(clients.dynamodb);
  const backends = open(resources, clients);
  const clock = new TestClock(Date.now());
  const { logger, lines: logs } = capturedLogger<MissedResultsLogLine>('warn');
  const client = new GridClient({ config, ...backends });
  const api = new ApiHandlers({
    config,
    client,
    table: backends.table,
    store: backends.store,
    ledger: new DynamoDbRequestLedger({ tableName: resources.tableName, client: clients.dynamodb }),
    gridKind: 'aws',
    missingResultsCheckMs: 1_000,
    clock: clock.now,
    logger,
  });
  const reads = watchReads(backends.table);
  return { resources, client, api, clock, fetched, reads, logs, table: backends.table, agent: open(resources).table };
}

/** One request of a results stream (`waitSec=0` unless `query` says: it ends once it has nothing to send). */
async function resultsResponse(
  api: ApiHandlers,
  sessionId: string,
  query: string,
  deadline?: number,
): Promise<{ status: number; lines: any[] }> {
  const response = await api.handle({
    method: 'GET',
    path: `/v1/sessions/${sessionId}/results`,
    query: new URLSearchParams(`waitSec=0${query}`),
    headers: {},
    body: '',
    caller: 'test',
    ...(deadline !== undefined ? { deadline } : {}),
  });
  let text = '';
  if (typeof response.body === 'string') text = response.body;
  else for await (const chunk of response.body) text += chunk;
  const lines = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  return { status: response.status, lines };
}

/** One request of a results stream that must be answered (200): its lines. */
async function resultsRequest(api: ApiHandlers, sessionId: string, query: string, deadline?: number): Promise<any[]> {
  const { status, lines } = await resultsResponse(api, sessionId, query, deadline);
  expect(status).toBe(200);
  return lines;
}

/** The task ids of a request's result lines, and the cursor and `end` of its last line. */
function read(lines: any[]): { taskIds: string[]; cursor: string; end: string } {
  const last = lines[lines.length - 1];
  return {
    taskIds: lines.filter((l) => l.taskId !== undefined).map((l) => l.taskId),
    cursor: last.cursor,
    end: last.end,
  };
}

/**
 * A stream whose listing missed results: a session of `count` tasks; the first ends and a first request sends it;
 * the others end, those at `lostIndexes` written by a writer whose clock runs a minute behind (the listing passed
 * their place), and a second request sends the rest. The clock stood still so far: it moves a second on, so the next
 * request counts the ended tasks (and reads what the stream lacks). Returns both requests and the number of reads from
 * the first result before the next.
 */
async function streamThatMissed(
  { resources, client, api, clock, fetched, reads, agent }: Awaited<ReturnType<typeof startApi>>,
  count: number,
  lostIndexes: readonly number[],
): Promise<{
  sid: string;
  ids: string[];
  one: ReturnType<typeof read>;
  two: ReturnType<typeof read>;
  fromStart: number;
}> {
  const handle = await client.submit(Array.from({ length: count }, (_, n) => ({ n })));
  const sid = handle.sessionId;
  const ids = Array.from({ length: count }, (_, i) => `${sid}_${i}`);
  await finishTask(agent, ids[0]!);
  const one = read(await resultsRequest(api, sid, ''));
  for (let i = 1; i < count; i++) {
    await finishTask(lostIndexes.includes(i) ? lostWriter(suite, resources) : agent, ids[i]!);
  }
  const two = read(await resultsRequest(api, sid, `&cursor=${one.cursor}`));
  fetched.splice(0);
  const fromStart = reads.fromStart;
  clock.advance(1_000);
  return { sid, ids, one, two, fromStart };
}

describe('a results stream of the HTTP API on DynamoDB whose listing missed results', () => {
  it('reads by key only the tasks it had not sent, and sends the missed one once', async () => {
    const started = await startApi();
    const { api, fetched, reads, logs } = started;
    const { sid, ids, one, two, fromStart } = await streamThatMissed(started, 3, [1]);
    const [first, lost, last] = ids;

    const three = read(await resultsRequest(api, sid, `&cursor=${two.cursor}`));

    expect([one.taskIds, two.taskIds]).toEqual([[first], [last]]);
    expect(three).toMatchObject({ taskIds: [lost], end: 'complete' });
    // Only the lacking task's item: a listing from the first result would fetch all three again.
    expect(fetched).toEqual([lost]);
    expect(reads).toMatchObject({ counts: 1, reReads: 1, fromStart });
    expect(logs.filter((l) => l.counted !== undefined)).toEqual([
      expect.objectContaining({ level: 40, msg: expect.stringMatching(/reads again, by key/), counted: 3 }),
    ]);
    // Resumed from the cursor before it, the stream sends the missed result and nothing it sent before.
    const again = read(await resultsRequest(api, sid, `&cursor=${two.cursor}`));
    expect(again).toMatchObject({ taskIds: [lost], end: 'complete' });
  });

  it('a read by key that `limit` cuts goes on in the next request, from its cursor, each result sent once', async () => {
    const started = await startApi();
    const { api, reads } = started;
    const { sid, ids, one, two, fromStart } = await streamThatMissed(started, 4, [1, 2]);

    const three = read(await resultsRequest(api, sid, `&limit=1&cursor=${two.cursor}`));
    const four = read(await resultsRequest(api, sid, `&limit=1&cursor=${three.cursor}`));
    const five = read(await resultsRequest(api, sid, `&cursor=${four.cursor}`));

    expect([one.taskIds, two.taskIds]).toEqual([[ids[0]], [ids[3]]]);
    expect(three).toMatchObject({ end: 'paused' });
    expect([...three.taskIds, ...four.taskIds].sort()).toEqual([ids[1], ids[2]]);
    expect(three.taskIds).toHaveLength(1);
    expect(five).toMatchObject({ taskIds: [], end: 'complete' });
    expect(reads.fromStart).toBe(fromStart);
    expect(reads.counts).toBe(1);
  });

  it('a read by key is bounded by the request: one given no time goes on in the next, and one that does not end within a whole request reads through the listing instead', async () => {
    const started = await startApi();
    const { api, clock, fetched, reads, logs } = started;
    const { sid, ids, two, fromStart } = await streamThatMissed(started, 3, [1]);
    const lost = ids[1];
    // A Lambda's deadline 5 s away: the request must end now (its last line goes out 5 s before the deadline).
    const expiring = (): number => clock.at + 5_000;

    const three = read(await resultsRequest(api, sid, `&cursor=${two.cursor}`, expiring()));
    const fetchedByThree = fetched.splice(0);
    const four = read(await resultsRequest(api, sid, `&cursor=${three.cursor}`, expiring()));
    const five = read(await resultsRequest(api, sid, `&cursor=${four.cursor}`));

    // Started when the request had no time left: nothing read, the next request reads it with its whole time.
    expect(three).toMatchObject({ taskIds: [], end: 'paused' });
    expect(fetchedByThree).toEqual([]);
    // That one has no time either: the listing from the first result reads instead, from request to request.
    expect(four.taskIds).toEqual([lost]);
    expect(reads.fromStart).toBe(fromStart + 1);
    expect(five).toMatchObject({ taskIds: [], end: 'complete' });
    expect(logs.filter((l) => l.msg.includes('did not end within a request'))).toHaveLength(1);
  });

  it('a set that outgrows its cursor after a read by key restarts the stream from the first result: no task counted twice, no early end', async () => {
    const { client, api, clock, table, agent } = await startApi();
    // A set of more than three tasks does not fit in a cursor.
    const pack = resultsCursor.packSentTasks;
    const packing = jest
      .spyOn(resultsCursor, 'packSentTasks')
      .mockImplementation((sent, maxBytes) => (sent.size > 3 ? undefined : pack(sent, maxBytes)));
    try {
      const handle = await client.submit([0, 1, 2, 3, 4, 5].map((n) => ({ n })));
      const sid = handle.sessionId;
      const ids = [0, 1, 2, 3, 4, 5].map((i) => `${sid}_${i}`);
      // Task 2 ends but the session index does not list it yet (a lagging replica): the listing keeps its place.
      let lagging = true;
      const list = table.listTerminal.bind(table);
      table.listTerminal = async (sessionId, cursor, limit) => {
        const page = await list(sessionId, cursor, limit);
        if (!lagging || !page.tasks.some((t) => t.taskId === ids[2])) return page;
        const tasks = page.tasks.filter((t) => t.taskId !== ids[2]);
        return tasks.length === 0 ? { tasks, cursor } : page;
      };
      await finishTask(agent, ids[0]!);
      await finishTask(agent, ids[1]!);
      const one = read(await resultsRequest(api, sid, ''));
      await finishTask(agent, ids[3]!);
      const two = read(await resultsRequest(api, sid, `&cursor=${one.cursor}`));
      await finishTask(agent, ids[2]!);
      clock.advance(1_000);
      // The count finds task 2 missing: read by key and sent, past the listing's place; the set (4 tasks) no longer fits.
      const three = read(await resultsRequest(api, sid, `&cursor=${two.cursor}`));
      lagging = false;
      await finishTask(agent, ids[4]!);

      const fourLines = await resultsRequest(api, sid, `&cursor=${three.cursor}`);
      const four = read(fourLines);

      expect([one.taskIds, two.taskIds, three.taskIds]).toEqual([[ids[0], ids[1]], [ids[3]], [ids[2]]]);
      // Task 5 still runs: the stream must not end complete (without the mark, the listing brought task 2 again and
      // counted it twice: 6 of 6).
      expect(four.end).toBe('paused');
      expect(fourLines[fourLines.length - 1].delivered).toBe(5);
      expect(new Set(four.taskIds)).toEqual(new Set([ids[0], ids[1], ids[2], ids[3], ids[4]]));
      await finishTask(agent, ids[5]!);
      const five = read(await resultsRequest(api, sid, `&cursor=${four.cursor}`));
      expect(five).toMatchObject({ taskIds: [ids[5]], end: 'complete' });
    } finally {
      packing.mockRestore();
    }
  });
});

/**
 * Arms `table`'s listing so that, at the first page a request of the stream finds empty, the session is deleted and
 * created again under the same id (`recreate`, after which `table`'s clock moves on a second at each page, so a
 * waiting request ends).
 */
function recreateWhileWaiting(
  { table, clock }: Awaited<ReturnType<typeof startApi>>,
  recreate: () => Promise<void>,
): { readonly done: boolean } {
  const state = { done: false };
  const list = table.listTerminal.bind(table);
  table.listTerminal = async (sessionId, cursor, limit) => {
    if (state.done) clock.advance(1_000);
    const page = await list(sessionId, cursor, limit);
    if (!state.done && page.tasks.length === 0) {
      state.done = true;
      await recreate();
    }
    return page;
  };
  return state;
}

/** Waits until the clock is past `at`: a session created again gets a later `createdAt`. */
async function clockPast(at: number): Promise<void> {
  while (Date.now() <= at) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe('a results stream of the HTTP API on DynamoDB whose session is deleted and created again during a request', () => {
  it('a sealed session: the request sends nothing of the new session and pauses, and its cursor is refused naming the new one', async () => {
    const started = await startApi();
    const { client, api, agent } = started;
    const sid = 'reused';
    await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }], { sessionId: sid });
    await finishTask(agent, `${sid}_0`);
    await finishTask(agent, `${sid}_1`);
    const one = read(await resultsRequest(api, sid, ''));
    const oldCreated = (await agent.getSession(sid))!.createdAt;
    const recreated = recreateWhileWaiting(started, async () => {
      await client.deleteSession(sid, { force: true });
      await clockPast(oldCreated);
      await client.submit([{ n: 10 }, { n: 11 }, { n: 12 }], { sessionId: sid });
      // Only the new session's task 2 ends; its tasks 0 and 1 are pending.
      await finishTask(agent, `${sid}_2`);
    });

    const twoLines = await resultsRequest(api, sid, `&waitSec=8&cursor=${one.cursor}`);
    const two = read(twoLines);
    const three = await resultsResponse(api, sid, `&cursor=${two.cursor}`);

    expect(recreated.done).toBe(true);
    expect(one.taskIds).toEqual([`${sid}_0`, `${sid}_1`]);
    // Without the check: the new session's task 2 sent, and `complete` with 3 delivered.
    expect(two).toMatchObject({ taskIds: [], end: 'paused' });
    expect(twoLines[twoLines.length - 1].delivered).toBe(2);
    expect(three.status).toBe(400);
    expect(three.lines[0].error).toMatchObject({
      code: 'InvalidCursorError',
      message: expect.stringContaining(`session '${sid}'`),
      cursorCreatedAt: oldCreated,
    });
  });

  it('a read by key of the tasks the stream lacks sends none of the new session', async () => {
    const started = await startApi();
    const { client, api, agent, table } = started;
    const { sid, ids, two } = await streamThatMissed(started, 3, [1]);
    const oldCreated = (await agent.getSession(sid))!.createdAt;
    // As the read by key starts, the session is deleted and created again, and the new session's task 1 (the index
    // the stream lacks) ends.
    const byKey = table.readTerminalWanted.bind(table);
    table.readTerminalWanted = async function* (sessionId, wanted, limit, stop) {
      await client.deleteSession(sid, { force: true });
      await clockPast(oldCreated);
      await client.submit([{ n: 10 }, { n: 11 }, { n: 12 }], { sessionId: sid });
      await finishTask(agent, ids[1]!);
      yield* byKey(sessionId, wanted, limit, stop);
    };

    const threeLines = await resultsRequest(api, sid, `&cursor=${two.cursor}`);
    const three = read(threeLines);
    const four = await resultsResponse(api, sid, `&cursor=${three.cursor}`);

    // Without the check: the new session's task 1 sent as the missed one, and `complete` with 3 delivered.
    expect(three).toMatchObject({ taskIds: [], end: 'paused' });
    expect(four.status).toBe(400);
    expect(four.lines[0].error).toMatchObject({ code: 'InvalidCursorError', cursorCreatedAt: oldCreated });
  });

  it('an unsealed session: the cursor keeps the old session, not the new one with the old set', async () => {
    const started = await startApi();
    const { client, api, agent } = started;
    const sid = 'reused-open';
    const old = await client.openSession({ sessionId: sid });
    await client.addTasks(old, 0, ['{}', '{}']);
    await finishTask(agent, `${sid}_0`);
    await finishTask(agent, `${sid}_1`);
    const one = read(await resultsRequest(api, sid, ''));
    recreateWhileWaiting(started, async () => {
      await client.deleteSession(sid, { force: true });
      await clockPast(old.createdAt);
      await client.submit([{}, {}, {}, {}], { sessionId: sid });
      await finishTask(agent, `${sid}_2`);
    });

    const two = read(await resultsRequest(api, sid, `&waitSec=8&cursor=${one.cursor}`));
    await finishTask(agent, `${sid}_0`);
    await finishTask(agent, `${sid}_1`);
    await finishTask(agent, `${sid}_3`);
    const three = await resultsResponse(api, sid, `&cursor=${two.cursor}`);

    // Without the check: the new session's task 2 sent under the old set, the cursor given the new session's time,
    // and the next request ends complete having sent only task 3 (tasks 0 and 1 of the new session never sent).
    expect(two).toMatchObject({ taskIds: [], end: 'paused' });
    expect(three.status).toBe(400);
    expect(three.lines[0].error).toMatchObject({ code: 'InvalidCursorError' });
  });

  it('a sealed session whose every result was sent, deleted before the stream says so: the request ends complete', async () => {
    const started = await startApi();
    const { client, api, agent } = started;
    const sid = 'deleted-at-end';
    await client.submit([{ n: 0 }, { n: 1 }], { sessionId: sid });
    await finishTask(agent, `${sid}_0`);
    await finishTask(agent, `${sid}_1`);
    // Deleted as the listing comes back empty, after lines 0 and 1 were sent and before the stream ends.
    const deleted = recreateWhileWaiting(started, async () => {
      await client.deleteSession(sid, { force: true });
    });

    const lines = await resultsRequest(api, sid, '');

    expect(deleted.done).toBe(true);
    // Without the fix: `paused` with 2 delivered (the record read again before `complete` was gone), and the next
    // request a 404 for a stream that had sent every result.
    expect(read(lines)).toMatchObject({ taskIds: [`${sid}_0`, `${sid}_1`], end: 'complete' });
    expect(lines[lines.length - 1].delivered).toBe(2);
  });
});

/** Makes each page of `table`'s listing hold at most `size` tasks and take a second of `clock`. */
function slowListing({ table, clock }: Awaited<ReturnType<typeof startApi>>, size: number): void {
  const list = table.listTerminal.bind(table);
  table.listTerminal = async (sessionId, cursor, limit) => {
    clock.advance(1_000);
    return list(sessionId, cursor, Math.min(size, limit));
  };
}

/** Follows a stream from `cursor` until it ends complete: the indexes of its lines, each request's last. */
async function followToTheEnd(api: ApiHandlers, sessionId: string, cursor: string): Promise<number[]> {
  const indexes: number[] = [];
  for (let at = cursor, requests = 0; requests < 50; requests++) {
    const lines = await resultsRequest(api, sessionId, `&cursor=${at}`);
    indexes.push(...lines.filter((l) => l.index !== undefined).map((l) => l.index as number));
    const last = lines[lines.length - 1];
    if (last.end === 'complete') return indexes;
    at = last.cursor;
  }
  throw new Error('the stream did not end complete within 50 requests');
}

describe('a results cursor of the HTTP API on DynamoDB whose listing part is not a listing cursor', () => {
  it('is refused with a 400 naming the listing part, before any line is sent', async () => {
    const { client, api, agent } = await startApi();
    const handle = await client.submit([{ n: 0 }]);
    await finishTask(agent, `${handle.sessionId}_0`);
    const forged = Buffer.from(JSON.stringify({ c: 'not-a-cursor', n: 0 })).toString('base64url');

    const answer = await resultsResponse(api, handle.sessionId, `&cursor=${forged}`);

    // Without the check: 200, then the body throws (the server drops the connection, a client resumes for ever).
    expect(answer.status).toBe(400);
    expect(answer.lines).toEqual([
      {
        error: expect.objectContaining({
          code: 'InvalidCursorError',
          message: expect.stringMatching(/its listing part \(c\) is not a listing cursor of this grid/),
        }),
      },
    ]);
  });
});

describe('a results stream of the HTTP API on DynamoDB that keeps sending', () => {
  it("ends after the chunk that reaches a Lambda's deadline, and the next requests send the rest, each once", async () => {
    const started = await startApi();
    const { client, api, clock, agent } = started;
    const handle = await client.submit(Array.from({ length: 12 }, (_, n) => ({ n })));
    const sid = handle.sessionId;
    for (let i = 0; i < 12; i++) await finishTask(agent, `${sid}_${i}`);
    // Each page of the listing brings one result and takes a second.
    slowListing(started, 1);
    const start = clock.at;

    // A Lambda with 8 s left: the stream must end by 3 s (its last line goes out 5 s before the deadline).
    const lines = await resultsRequest(api, sid, '', start + 8_000);
    const first = read(lines);
    const elapsed = clock.at - start;
    const rest = await followToTheEnd(api, sid, first.cursor);

    // Without the check while sending: 13 s, complete with all 12.
    expect(first.end).toBe('paused');
    expect(elapsed).toBeLessThanOrEqual(3_000);
    expect(first.taskIds).toHaveLength(3);
    expect([...lines.filter((l) => l.index !== undefined).map((l) => l.index), ...rest].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 12 }, (_, i) => i),
    );
  });

  it('a read from the first result that finds one new row per page among rows sent ends at its time for skipped rows', async () => {
    const started = await startApi();
    const { client, api, clock, agent, table } = started;
    const handle = await client.submit(Array.from({ length: 12 }, (_, n) => ({ n })));
    const sid = handle.sessionId;
    for (let i = 0; i < 12; i++) await finishTask(agent, `${sid}_${i}`);
    const created = (await agent.getSession(sid))!.createdAt;
    // The stream sent the even tasks and reads again from the first result (the listing: this table reads no key).
    const sent = new DeliveredTasks();
    for (let i = 0; i < 12; i += 2) sent.add(i);
    const cursor = resultsCursor.encodeResultsCursor(
      { createdAt: created, listing: undefined, delivered: 6, check: {}, reRead: { counted: 12, before: 6 } },
      resultsCursor.packSentTasks(sent),
    );
    (table as { readTerminalWanted?: unknown }).readTerminalWanted = undefined;
    // Pages of two rows, one sent and one not, a second each.
    slowListing(started, 2);
    const start = clock.at;

    // waitSec=0: rows sent are read on for a second at most.
    const lines = await resultsRequest(api, sid, `&cursor=${cursor}`);
    const first = read(lines);
    const elapsed = clock.at - start;
    const rest = await followToTheEnd(api, sid, first.cursor);

    // Without the bound on pages that sent something too: 7 s, all six sent.
    expect(first.end).toBe('paused');
    expect(elapsed).toBeLessThanOrEqual(1_000);
    expect([...lines.filter((l) => l.index !== undefined).map((l) => l.index), ...rest].sort((a, b) => a - b)).toEqual([
      1, 3, 5, 7, 9, 11,
    ]);
  });
});
