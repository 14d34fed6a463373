// A results stream of the HTTP API on a local grid delivers a result its listing missed: once the table counts more
// ended tasks than the stream delivered, it reads again from the first result and sends only what it had not sent
// (its cursor carries which tasks it sent), across the requests that resume it.
import type { Logger } from 'pino';
import { compileConfig } from '../../lib/core';
import type { EmbeddedGrid } from '../../lib/local-grid';
import { DeliveredTasks } from '../../lib/client/delivered-tasks';
import { GridApiServer } from '../../lib/http';
import { packSentTasks } from '../../lib/http/results-cursor';
import { startApiGrid, type ApiGrid } from '../support/api-grid';
import { capturedLogger } from '../support/fake-ports';
import {
  endBehind as endBehindIn,
  endUnlisted as endUnlistedIn,
  finishTask,
  numberEnded as numberEndedIn,
  TestClock,
  type MissedResultsLogLine,
} from '../support/missed-results';
import { ApiTestClient } from './api-client';
import { OpenApiContract } from './openapi-contract';

const TOKEN = 'test-token-0123456789';
const config = compileConfig({}, 'test');
let apiGrid: ApiGrid | undefined;
/** The grid of the test (started by `startApi`). */
let grid: EmbeddedGrid;
let server: GridApiServer | undefined;
let logger: Logger;
let warnings: MissedResultsLogLine[];
let counts: number;

beforeEach(() => {
  ({ logger, lines: warnings } = capturedLogger<MissedResultsLogLine>('warn'));
  counts = 0;
});

afterEach(async () => {
  await server?.close();
  await apiGrid?.close();
  server = undefined;
  apiGrid = undefined;
});

/** A grid with no agent (the tests end the tasks themselves) and its API, counting the counts of ended tasks. */
async function startApi(
  missingResultsCheckMs: number,
  clock?: () => number,
  maxSentSetBytes?: number,
): Promise<ApiTestClient> {
  apiGrid = await startApiGrid({
    prefix: 'htcgrid-http-recovery-',
    config,
    gridKind: 'local',
    grid: { worker: undefined },
    api: (started) => ({
      changes: started.backends.changes,
      missingResultsCheckMs,
      logger,
      ...(clock ? { clock } : {}),
      ...(maxSentSetBytes !== undefined ? { maxSentSetBytes } : {}),
    }),
  });
  grid = apiGrid.grid;
  const table = grid.backends.table;
  const countTerminal = table.countTerminal.bind(table);
  table.countTerminal = async (sessionId) => {
    counts++;
    return countTerminal(sessionId);
  };
  server = await GridApiServer.start({ api: apiGrid.api, port: 0, token: TOKEN });
  return new ApiTestClient(server.url, TOKEN, new OpenApiContract());
}

/** Ends a task as an agent does: claim, then a guarded completion. */
function finish(taskId: string): Promise<void> {
  return finishTask(grid.backends.table, taskId);
}

/** See `endUnlisted` of the support module: on this test's grid. */
function endUnlisted(taskId: string): void {
  endUnlistedIn(grid.backends.dbPath, taskId);
}

/** See `endBehind` of the support module: on this test's grid. */
function endBehind(taskId: string, behind: string): void {
  endBehindIn(grid.backends.dbPath, taskId, behind);
}

/** See `numberEnded` of the support module: on this test's grid. */
function numberEnded(taskId: string, doneSeq: number): void {
  numberEndedIn(grid.backends.dbPath, taskId, doneSeq);
}

/**
 * A results stream followed one request at a time (`waitSec=0` unless set: one look each), each resuming at the cursor of the
 * last, on a server whose clock the test moves.
 */
class SteppedStream {
  /** The cursor the next request resumes at. */
  cursor: string | undefined;
  /** The `end` line of the last request. */
  end: { end: string; delivered: number } | undefined;
  /** The `waitSec` of each request. */
  waitSec = 0;
  constructor(
    private readonly client: ApiTestClient,
    private readonly path: string,
  ) {}

  /** One request (`query`: more of it): the indexes of its result lines, and how many counts the server took. */
  async step(query = ''): Promise<{ indexes: number[]; counts: number }> {
    const before = counts;
    const answer = await this.client.call(
      'GET',
      `${this.path}?waitSec=${this.waitSec}${query}${this.cursor ? `&cursor=${this.cursor}` : ''}`,
    );
    const end = answer.lines[answer.lines.length - 1] as { end: string; cursor: string; delivered: number };
    this.cursor = end.cursor;
    this.end = end;
    return {
      indexes: answer.lines.filter((l) => l.index !== undefined).map((l) => l.index as number),
      counts: counts - before,
    };
  }
}

/**
 * A new session of `tasks` tasks on an API whose clock the test moves (checks every second), its results followed
 * one request at a time, once its first task ended.
 */
async function steppedPastFirstEnd(tasks: number) {
  const clock = new TestClock();
  const client = await startApi(1_000, clock.now);
  const handle = await grid.client.submit(Array.from({ length: tasks }, (_, n) => ({ n })));
  const ids = Array.from({ length: tasks }, (_, i) => `${handle.sessionId}_${i}`);
  const path = `/v1/sessions/${handle.sessionId}/results`;
  const stream = new SteppedStream(client, path);
  await finish(ids[0]!);
  return { clock, client, handle, ids, path, stream };
}

/**
 * A session of 200 tasks whose stream sent tasks 0, 1 and 2 (completion numbers 10, 20, 30); then tasks 3 and 199 end
 * with numbers 11 and 12, behind the stream, and a read from the first result sent task 3 (`limit=1`). The cursor's
 * cap fits the set {0, 1, 2, 3}, not once 199 joins it (a set past 4 KB, as a thousand scattered tasks make).
 */
async function setOutgrowsItsCapMidRead() {
  const fits = new DeliveredTasks();
  for (const i of [0, 1, 2, 3]) fits.add(i);
  const cap = packSentTasks(fits, Infinity)!.length;
  const clock = new TestClock();
  const client = await startApi(1_000, clock.now, cap);
  const handle = await grid.client.submit(Array.from({ length: 200 }, (_, n) => ({ n })));
  const id = (i: number): string => `${handle.sessionId}_${i}`;
  const stream = new SteppedStream(client, `/v1/sessions/${handle.sessionId}/results`);
  for (const [i, seq] of [
    [0, 10],
    [1, 20],
    [2, 30],
  ] as const) {
    await finish(id(i));
    numberEnded(id(i), seq);
  }
  const first = await stream.step();
  for (const [i, seq] of [
    [3, 11],
    [199, 12],
  ] as const) {
    endUnlisted(id(i));
    numberEnded(id(i), seq);
  }
  clock.advance(1_000);
  const readStarts = await stream.step('&limit=1');
  expect([first.indexes, readStarts.indexes]).toEqual([[0, 1, 2], [3]]);
  return { stream, id };
}

/**
 * A session of 10 tasks whose stream sent 0-8 (completion numbers 10-90); task 9 then ends behind the stream (85),
 * a count is due, and each read of the table takes 10 s of the server's clock (a large session's pages on DynamoDB).
 */
async function sentNineMissedOneSlowReads() {
  const { clock, ids, stream } = await steppedPastFirstEnd(10);
  for (let i = 1; i < 9; i++) await finish(ids[i]!);
  for (let i = 0; i < 9; i++) numberEnded(ids[i]!, 10 * (i + 1));
  expect((await stream.step()).indexes).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  endUnlisted(ids[9]!);
  numberEnded(ids[9]!, 85);
  clock.advance(1_000);
  const table = grid.backends.table;
  const listTerminal = table.listTerminal.bind(table);
  table.listTerminal = (sessionId, cursor, limit) => {
    clock.advance(10_000);
    return listTerminal(sessionId, cursor, limit);
  };
  return { clock, stream };
}

describe('a results stream of the HTTP API whose listing missed a result', () => {
  it('reads again from the first result once the table counts more ended tasks, and sends the missed one alone', async () => {
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
    // The result the first request sent does not come again with the missed one.
    expect(resumed.lines.map((l) => l.index ?? l.end)).toEqual([2, 1, 'complete']);
    expect(resumed.lines[1]).toMatchObject({ state: 'succeeded', result: 'late' });
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

  it('after a count that finds nothing missing, the next waits twice as long, across resumed requests, and a result brings the period back', async () => {
    const { clock, handle, stream } = await steppedPastFirstEnd(3);
    expect((await stream.step()).indexes).toEqual([0]);

    // Checks due 1, 2, 4, 8 s after the last: none a moment before, one when due.
    const checks: number[] = [];
    for (const wait of [1_000, 2_000, 4_000, 8_000]) {
      clock.advance(wait - 1);
      checks.push((await stream.step()).counts);
      clock.advance(1);
      checks.push((await stream.step()).counts);
    }
    await finish(`${handle.sessionId}_1`);
    const resumed = await stream.step();
    clock.advance(999);
    checks.push((await stream.step()).counts);
    clock.advance(1);
    checks.push((await stream.step()).counts);

    expect(resumed).toEqual({ indexes: [1], counts: 0 });
    expect(checks).toEqual([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    expect(warnings).toEqual([]);
  }, 30_000);

  it('a read from the first result that brings none of what the table counts is not repeated within five minutes unless it counts more, with one warning', async () => {
    const { clock, handle, stream } = await steppedPastFirstEnd(3);
    expect((await stream.step()).indexes).toEqual([0]);
    endUnlisted(`${handle.sessionId}_1`);

    // Six requests within five minutes, each with a count due (40 s is past each wait then): the first reads again.
    const steps: { indexes: number[]; counts: number }[] = [];
    for (let i = 0; i < 6; i++) {
      clock.advance(40_000);
      steps.push(await stream.step());
    }
    const stuck = [...warnings];
    // A result missed later makes the table count more missing than that read left: it reads again.
    endBehind(`${handle.sessionId}_2`, `${handle.sessionId}_0`);
    clock.advance(600_000);
    const later = await stream.step();

    expect(steps).toEqual(Array.from({ length: 6 }, () => ({ indexes: [], counts: 1 })));
    expect(stuck).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/reads again from the first result/), counted: 2 }),
      expect.objectContaining({
        msg: expect.stringMatching(/counts more ended tasks than a results stream read from the first result brought/),
        sessionId: handle.sessionId,
        counted: 2,
        delivered: 1,
        unreachable: 1,
      }),
    ]);
    expect(later.indexes).toEqual([2]);
  }, 30_000);

  it('a gap a first read from the first result cannot bring is read for again five minutes later: the stream completes', async () => {
    const { clock, handle, stream } = await steppedPastFirstEnd(2);
    expect((await stream.step()).indexes).toEqual([0]);
    // Counted as ended but not listed yet (as a replica that lags the count on DynamoDB): the first re-read misses it.
    endUnlisted(`${handle.sessionId}_1`);
    clock.advance(1_000);
    const missed = await stream.step();
    const markedAt = clock.at;
    // Now a read from the first result brings it; the stream's own listing, past it, never will.
    endBehind(`${handle.sessionId}_1`, `${handle.sessionId}_0`);

    const had = [0];
    for (let i = 0; i < 20 && !had.includes(1); i++) {
      clock.advance(30_000);
      had.push(...(await stream.step()).indexes);
    }

    expect(missed).toEqual({ indexes: [], counts: 1 });
    expect(had).toEqual([0, 1]);
    expect(warnings.filter((w) => w.unreachable !== undefined)).toEqual([
      expect.objectContaining({ counted: 2, delivered: 1, unreachable: 1 }),
    ]);
    expect(clock.at - markedAt).toBeGreaterThanOrEqual(300_000);
    expect(clock.at - markedAt).toBeLessThanOrEqual(330_000);
    expect(stream.end).toMatchObject({ end: 'complete', delivered: 2 });
  }, 30_000);

  it('a read from the first result that requests resume sends each missed result once; resumed from an earlier cursor, what followed it', async () => {
    const { clock, client, ids, path, stream } = await steppedPastFirstEnd(5);
    const [t0, t1, t2, t3, t4] = ids;
    await finish(t1!);
    // Completion numbers 10 and 20, so that the missed results come between them, each with a number of its own.
    numberEnded(t0!, 10);
    numberEnded(t1!, 20);
    expect((await stream.step()).indexes).toEqual([0, 1]);
    endUnlisted(t2!);
    numberEnded(t2!, 11);
    endUnlisted(t3!);
    numberEnded(t3!, 12);
    clock.advance(1_000);

    const firstOfRead = await stream.step('&limit=1');
    const midRead = stream.cursor;
    const restOfRead = await stream.step('&limit=1');
    await finish(t4!);
    const last = await stream.step();
    const again = await client.call('GET', `${path}?waitSec=0&cursor=${midRead}`);

    expect(firstOfRead).toEqual({ indexes: [2], counts: 1 });
    expect(restOfRead).toEqual({ indexes: [3], counts: 0 });
    expect(last).toEqual({ indexes: [4], counts: 0 });
    expect(stream.end).toMatchObject({ end: 'complete', delivered: 5 });
    expect(again.lines.map((l) => l.index ?? l.end)).toEqual([3, 4, 'complete']);
    expect(warnings).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/reads again from the first result/), counted: 4 }),
    ]);
  }, 30_000);

  it('resumed from a cursor that does not carry what it sent (an earlier version), a read from the first result sends every line again, and the next only what is missing', async () => {
    const { clock, ids, stream } = await steppedPastFirstEnd(4);
    const [t0, t1, t2] = ids;
    expect((await stream.step()).indexes).toEqual([0]);
    stream.cursor = stream.cursor!.split('.')[0];
    endBehind(t1!, t0!);
    clock.advance(1_000);
    const resent = await stream.step();
    endBehind(t2!, t0!);
    clock.advance(1_000);
    const missed = await stream.step();

    expect(resent).toEqual({ indexes: [0, 1], counts: 1 });
    expect(missed).toEqual({ indexes: [2], counts: 1 });
    expect(warnings.map((w) => w.sendsAgain)).toEqual([true, false]);
  }, 30_000);

  it('a set that outgrows the cursor during a read from the first result: the request still sends each result once, and does not end complete early', async () => {
    const { stream } = await setOutgrowsItsCapMidRead();

    // Pages of one or two rows (`limit`): the set outgrows the cursor at the chunk of task 199, the read goes on.
    const rest = await stream.step('&limit=2');

    // Tasks 1 and 2, which the client has, do not come again, nor count again (4 to 199 are pending).
    expect(rest.indexes).toEqual([199]);
    expect(stream.end).toMatchObject({ end: 'paused', delivered: 5 });
  }, 30_000);

  it('a set that outgrows the cursor during a read from the first result: the cursor restarts that read, sending every line again, counted from 0', async () => {
    const { stream, id } = await setOutgrowsItsCapMidRead();

    const outgrown = await stream.step('&limit=1');
    const restarted = await stream.step();
    await finish(id(4));
    const later = await stream.step();

    expect(outgrown.indexes).toEqual([199]);
    expect(restarted.indexes).toEqual([0, 3, 199, 1, 2]);
    expect(stream.end).toMatchObject({ end: 'paused' });
    expect(later.indexes).toEqual([4]);
    expect(stream.end).toMatchObject({ end: 'paused', delivered: 6 });
  }, 30_000);

  it('a read from the first result over results the client has ends at the deadline, paused, and the next request goes on past them', async () => {
    const { clock, stream } = await sentNineMissedOneSlowReads();

    const spent: number[] = [];
    const had: number[] = [];
    for (let i = 0; i < 10 && stream.end?.end !== 'complete'; i++) {
      const started = clock.at;
      had.push(...(await stream.step('&limit=2')).indexes);
      spent.push((clock.at - started) / 1_000);
    }

    // The first request looks (nothing), counts, looks again, reads a page from the first result: past a second.
    expect(spent[0]).toBe(30);
    // Each request after it reads one page (10 s): the one that sends task 9 among rows sent ends paused after it too.
    expect(spent.slice(1).every((s) => s <= 10)).toBe(true);
    expect(had).toEqual([9]);
    expect(stream.end).toMatchObject({ end: 'complete', delivered: 10 });
  }, 30_000);

  it('a read from the first result over results the client has ends within 20 s however long the request may wait', async () => {
    const { clock, stream } = await sentNineMissedOneSlowReads();
    stream.waitSec = 840;

    const started = clock.at;
    const step = await stream.step('&limit=2');

    // Looks, counts, looks again, reads a page from the first result: 30 s, past the 20 s; nothing sent yet.
    expect(step.indexes).toEqual([]);
    expect((clock.at - started) / 1_000).toBe(30);
    expect(stream.end).toMatchObject({ end: 'paused', delivered: 9 });
  }, 30_000);

  it('a cursor of the earlier version (no check state) resumes the stream; a malformed check state is refused', async () => {
    const client = await startApi(1_000);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }]);
    const path = `/v1/sessions/${handle.sessionId}/results`;
    await finish(`${handle.sessionId}_0`);
    const first = await client.call('GET', `${path}?waitSec=0`);
    const head = (first.lines[0].cursor as string).split('.')[0]!;
    const { c } = JSON.parse(Buffer.from(head, 'base64url').toString()) as { c: string };
    const cursorOf = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    await finish(`${handle.sessionId}_1`);

    const resumed = await client.call('GET', `${path}?waitSec=0&cursor=${cursorOf({ c, n: 1, q: Date.now() })}`);
    const refused = await client.call('GET', `${path}?waitSec=0&cursor=${cursorOf({ c, n: 1, w: -5 })}`);

    expect(resumed.lines.map((l) => l.index ?? l.end)).toEqual([1, 'complete']);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: { code: 'InvalidCursorError' } });
  }, 30_000);
});

describe('a results cursor of a session deleted since', () => {
  it('is refused for a new session of the same id (400 naming both), which streams from its first result', async () => {
    const client = await startApi(1_000);
    const create = (): Promise<{ status: number }> =>
      client.call('POST', '/v1/sessions', { body: { sessionId: 'reused', tasks: [{ n: 0 }, { n: 1 }] } });
    expect((await create()).status).toBe(201);
    await finish('reused_0');
    const path = '/v1/sessions/reused/results';
    const first = await client.call('GET', `${path}?waitSec=0`);
    const cursor = first.lines[first.lines.length - 1].cursor as string;
    const createdAt = (await grid.backends.table.getSession('reused'))!.createdAt;
    await grid.client.deleteSession('reused', { force: true });
    // A new session a millisecond later at least (a session's creation time is in milliseconds).
    while (Date.now() <= createdAt) await new Promise((resolve) => setImmediate(resolve));
    expect((await create()).status).toBe(201);
    await finish('reused_0');

    const refused = await client.call('GET', `${path}?waitSec=0&cursor=${cursor}`);
    const fresh = await client.call('GET', `${path}?waitSec=0`);

    expect(first.lines.map((l) => l.index ?? l.end)).toEqual([0, 'paused']);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({
      error: {
        code: 'InvalidCursorError',
        message: expect.stringMatching(/another session 'reused' \(created .*\) than the session of this id now/),
        fix: expect.stringMatching(/first result \(no cursor\)/),
      },
    });
    expect(fresh.lines.map((l) => l.index ?? l.end)).toEqual([0, 'paused']);
  }, 30_000);
});

describe('the summary of a session whose listing missed a task', () => {
  it('catches the task up once the table counts more ended tasks than it summarised', async () => {
    const client = await startApi(1_000);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const path = `/v1/sessions/${handle.sessionId}/summary`;
    await finish(`${handle.sessionId}_0`);
    const first = await client.call('GET', path);

    endBehind(`${handle.sessionId}_1`, `${handle.sessionId}_0`);
    await finish(`${handle.sessionId}_2`);
    const later = await client.call('GET', path);

    expect(first.json).toMatchObject({ tasks: 1, running: { count: 1 } });
    expect(later.json).toMatchObject({ tasks: 3, running: { count: 3 }, status: { counts: { succeeded: 3 } } });
  }, 30_000);

  it('reads the session again once for tasks the table counts and the listing never brings, then again when more are missing', async () => {
    const client = await startApi(1_000);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
    const path = `/v1/sessions/${handle.sessionId}/summary`;
    const table = grid.backends.table;
    let fromStart = 0;
    const listTerminal = table.listTerminal.bind(table);
    table.listTerminal = async (sessionId, cursor, limit) => {
      if (cursor === undefined) fromStart++;
      return listTerminal(sessionId, cursor, limit);
    };
    await finish(`${handle.sessionId}_0`);
    await client.call('GET', path);
    endUnlisted(`${handle.sessionId}_1`);

    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await client.call('GET', path)).json as { tasks: number });
    const stuck = fromStart;
    endBehind(`${handle.sessionId}_2`, `${handle.sessionId}_0`);
    const later = (await client.call('GET', path)).json as { tasks: number };

    // The summary's first read, then one read again for the five answers.
    expect(stuck).toBe(2);
    expect(answers.map((a) => a.tasks)).toEqual([1, 1, 1, 1, 1]);
    expect(later.tasks).toBe(2);
    expect(fromStart).toBe(3);
  }, 30_000);

  it('reads the session again five minutes later for a task a first read could not bring, and then has it', async () => {
    const clock = new TestClock();
    const client = await startApi(1_000, clock.now);
    const handle = await grid.client.submit([{ n: 0 }, { n: 1 }]);
    const path = `/v1/sessions/${handle.sessionId}/summary`;
    await finish(`${handle.sessionId}_0`);
    await client.call('GET', path);
    // Counted as ended but not listed yet: the read from the start misses it.
    endUnlisted(`${handle.sessionId}_1`);
    const missed = (await client.call('GET', path)).json as { tasks: number };
    endBehind(`${handle.sessionId}_1`, `${handle.sessionId}_0`);

    clock.advance(299_999);
    const early = (await client.call('GET', path)).json as { tasks: number };
    clock.advance(1);
    const later = (await client.call('GET', path)).json as { tasks: number };

    expect([missed.tasks, early.tasks, later.tasks]).toEqual([1, 1, 2]);
  }, 30_000);
});
