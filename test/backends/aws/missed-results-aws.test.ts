// A results stream on the AWS backends (DynamoDB Local, SQS emulator) delivers a result that no completion notice
// named and whose listing key lies behind the reader's watermark: while it waits, the table counts more ended tasks
// than it delivered, so it reads them all again and delivers the missing one, once. And what a count costs.
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { openAwsBackends, type AwsBackends } from '../../../lib/backends/aws';
import { sessionShardsFor, terminalSessionSk } from '../../../lib/backends/aws/table-schema';
import { GridClient, SessionSummary, type SessionHandle } from '../../../lib/client';
import { compileConfig } from '../../../lib/core/config';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import { createGridResources } from '../../support/emulators';
import { capturedLogger } from '../../support/fake-ports';
import { useEmulators } from '../../support/emulator-suite';
import { waitFor } from '../../support/local-grid';
import {
  finishTask as finish,
  followResults,
  lostWriter,
  TestClock,
  type MissedResultsLogLine,
} from '../../support/missed-results';
import { recordFetchedItems, watchReads } from '../../support/watch-reads';

const MINUTE = 60_000;
const config = compileConfig({}, 'test');
const suite = useEmulators();

/** Backends on their own SDK clients, closed (clients destroyed) after the test. */
function open(
  resources: AwsGridResources,
  options: Parameters<typeof openAwsBackends>[1] = {},
  clients = suite.emulators.clients(),
): AwsBackends {
  const backends = openAwsBackends(resources, { clients, ...options });
  suite.closeAfterTest({
    close: async () => {
      await backends.close();
      for (const client of Object.values(clients)) client.destroy();
    },
  });
  return backends;
}

/**
 * A client that receives completion notices, checks for missing results every `checkMs` of `clock` (the test moves
 * it: no check falls due while the test writes), and keeps its warnings.
 */
function waitingClient(resources: AwsGridResources, checkMs: number, clock: TestClock) {
  const { logger, lines: logs } = capturedLogger<MissedResultsLogLine>('warn');
  const backends = open(resources, { receiveNotices: true, logger });
  const client = new GridClient({
    config,
    ...backends,
    pollIntervalMs: MINUTE,
    missingResultsCheckMs: checkMs,
    clock: clock.now,
    logger,
  });
  return { backends, client, logs };
}

/**
 * A client that receives no notices (its streams look every 20 ms), checks for missing results every second of
 * `clock` (the test moves it), and keeps its warnings.
 */
function pollingClient(resources: AwsGridResources, clock: TestClock) {
  const { logger, lines: logs } = capturedLogger<MissedResultsLogLine>('warn');
  const backends = open(resources, { logger });
  const client = new GridClient({
    config,
    ...backends,
    pollIntervalMs: 20,
    missingResultsCheckMs: 1_000,
    clock: clock.now,
    logger,
  });
  return { backends, client, logs };
}

/** Follows `handle`'s results (stopped after the test): `arrived` lists their ids as they come. */
function follow(handle: SessionHandle): ReturnType<typeof followResults> {
  const stop = new AbortController();
  const { arrived, done } = followResults(handle, stop.signal);
  suite.closeAfterTest({
    close: async () => {
      stop.abort();
      await done.catch(() => undefined);
    },
  });
  return { arrived, done };
}

/**
 * Submits three tasks through `client` and follows their results: the first ends, then the second ends by a
 * `lostWriter` (behind the watermark, no notice) and the third as usual, by an agent of its own. Returns once the
 * third was delivered (the clock not moved: no count yet).
 */
async function lostBehindTheLast(resources: AwsGridResources, client: GridClient) {
  const agent = open(resources);
  const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
  const ids = [0, 1, 2].map((i) => `${handle.sessionId}_${i}`);
  const [first, lost, last] = ids;
  const { arrived, done } = follow(handle);
  await finish(agent.table, first!);
  await waitFor(() => arrived.includes(first!), 30_000, 'the first result');
  await finish(lostWriter(suite, resources), lost!);
  await finish(agent.table, last!);
  await waitFor(() => arrived.includes(last!), 30_000, 'the last result, told by its notice');
  return { ids, arrived, done };
}

describe('a results stream on the AWS backends whose notices and listing missed a result', () => {
  it('delivers it once at the next check, after a count showed more ended tasks than delivered, with a warning', async () => {
    const resources = await createGridResources(suite.emulators);
    const clock = new TestClock(Date.now());
    const { client, logs } = waitingClient(resources, 200, clock);
    const { ids, arrived, done } = await lostBehindTheLast(resources, client);
    const [first, lost, last] = ids;
    const before = [...arrived];
    clock.advance(200);
    await waitFor(() => arrived.includes(lost!), 30_000, 'the result no notice named, behind the watermark');
    const results = await done;

    expect(before).toEqual([first, last]);
    expect(arrived).toEqual([first, last, lost]);
    expect(results.map((r) => r.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const warnings = logs.filter((l) => l.recovered !== undefined);
    expect(warnings).toEqual([expect.objectContaining({ level: 40, recovered: 1, counted: 3, taskIds: [lost] })]);
    expect(warnings[0]!.msg).toMatch(/results recovered by a full re-read: .*index lag.*a lost notice, or a defect/);
  });

  it('its re-read reads the session index keys and fetches only the items of the tasks it lacks', async () => {
    const resources = await createGridResources(suite.emulators);
    const clients = suite.emulators.clients();
    const fetched = recordFetchedItems(clients.dynamodb);
    const backends = open(resources, { receiveNotices: true }, clients);
    const clock = new TestClock(Date.now());
    const client = new GridClient({
      config,
      ...backends,
      pollIntervalMs: MINUTE,
      missingResultsCheckMs: 200,
      clock: clock.now,
    });
    const { ids, arrived } = await lostBehindTheLast(resources, client);
    const [, lost] = ids;
    // The clock stood still so far: the count and its re-read come after this.
    fetched.splice(0);
    clock.advance(200);

    await waitFor(() => arrived.includes(lost!), 30_000, 'the result no notice named, behind the watermark');

    expect(fetched).toEqual([lost]);
  });

  it('a count that finds every ended task delivered reads nothing again and delivers nothing twice', async () => {
    const resources = await createGridResources(suite.emulators);
    const clock = new TestClock(Date.now());
    const { backends, client, logs } = waitingClient(resources, 200, clock);
    const agent = open(resources);
    const handle = await client.submit([{ n: 0 }, { n: 1 }]);
    const [first, second] = [0, 1].map((i) => `${handle.sessionId}_${i}`);
    const reads = watchReads(backends.table);
    const { arrived, done } = follow(handle);
    await finish(agent.table, first!);
    await waitFor(() => arrived.includes(first!), 30_000, 'the first result');
    // Past the first result, a read from the start is a re-read (however the stream read before it).
    const fromStart = reads.fromStart;

    for (let counts = 1; counts <= 3; counts++) {
      clock.advance(10_000);
      await waitFor(() => reads.counts >= counts, 30_000, `count check ${counts} while the second task is pending`);
      // The look that follows the count, and the next: the stream is done with this count before the clock moves.
      const looks = reads.reads + 2;
      await waitFor(() => reads.reads >= looks, 30_000, 'two more looks at the listing');
    }
    await finish(agent.table, second!);
    await done;

    expect(arrived).toEqual([first, second]);
    expect(reads.fromStart).toBe(fromStart);
    expect(logs.filter((l) => l.recovered !== undefined)).toEqual([]);
  });

  it('a key the count has and the re-read cannot bring costs one re-read and one warning, however often it counts within five minutes', async () => {
    const resources = await createGridResources(suite.emulators);
    // No notices: the stream looks every 20 ms, its count checks timed by a clock the test moves.
    const clock = new TestClock(Date.now());
    const { backends, client, logs } = pollingClient(resources, clock);
    const agent = open(resources);
    const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const [first, stuck] = [0, 1].map((i) => `${handle.sessionId}_${i}`);
    const seen = watchReads(backends.table);
    const { arrived } = follow(handle);
    await finish(agent.table, first!);
    await waitFor(() => arrived.includes(first!), 30_000, 'the first result');
    // The index lists a task as ended whose item is still pending: counted, never brought.
    await suite.emulators.clients().dynamodb.send(
      new UpdateItemCommand({
        TableName: resources.tableName,
        Key: { task_id: { S: stuck! } },
        UpdateExpression: 'SET session_sk = :sk',
        ExpressionAttributeValues: { ':sk': { S: terminalSessionSk(Date.now(), stuck!, 'succeeded') } },
      }),
    );

    // Six counts within five minutes, each when due (40 s is past each wait then), each followed by a few looks.
    const start = clock.at;
    while (seen.counts < 6) {
      clock.advance(40_000);
      const reads = seen.reads + 3;
      await waitFor(() => seen.reads >= reads, 30_000, 'three more looks at the listing');
    }

    expect(clock.at - start).toBeLessThan(300_000);
    expect(seen.reReads).toBe(1);
    expect(logs.filter((l) => l.level >= 40)).toEqual([
      expect.objectContaining({ sessionId: handle.sessionId, counted: 2, delivered: 1, unreachable: 1 }),
    ]);
    expect(arrived).toEqual([first]);
  });

  it('a task a first re-read cannot see yet (a replica behind the count) is read for again five minutes later: the stream ends', async () => {
    const resources = await createGridResources(suite.emulators);
    // No notices: the stream looks every 20 ms, its count checks timed by a clock the test moves.
    const clock = new TestClock(Date.now());
    const { backends, client, logs } = pollingClient(resources, clock);
    const agent = open(resources);
    const handle = await client.submit([{ n: 0 }, { n: 1 }]);
    const [first, late] = [0, 1].map((i) => `${handle.sessionId}_${i}`);
    // The first re-read reads an index replica that does not show the late task yet (DynamoDB Local never lags).
    const seen = watchReads(backends.table, { unseen: (taskId, reRead) => reRead === 1 && taskId === late });
    const { arrived, done } = follow(handle);
    await finish(agent.table, first!);
    await waitFor(() => arrived.includes(first!), 30_000, 'the first result');
    // The session's last task ends behind the stream's watermark, with no notice: only a re-read brings it.
    await finish(lostWriter(suite, resources), late!);
    clock.advance(1_000);
    await waitFor(() => logs.some((l) => l.unreachable === 1), 30_000, 'the warning of the re-read that missed it');
    const markedAt = clock.at;

    for (let steps = 0; steps < 20 && !arrived.includes(late!); steps++) {
      clock.advance(30_000);
      const reads = seen.reads + 3;
      await waitFor(() => seen.reads >= reads || arrived.includes(late!), 30_000, 'three more looks at the listing');
    }
    expect(arrived).toEqual([first, late]);
    await done;

    expect(seen.reReads).toBe(2);
    expect(clock.at - markedAt).toBeGreaterThanOrEqual(300_000);
    expect(clock.at - markedAt).toBeLessThanOrEqual(330_000);
    expect(logs.filter((l) => l.recovered !== undefined)).toEqual([
      expect.objectContaining({ recovered: 1, counted: 2, taskIds: [late] }),
    ]);
  });

  it("a session's summary catches up a task its listing passed, fetching only that task's item", async () => {
    const resources = await createGridResources(suite.emulators);
    const clients = suite.emulators.clients();
    const fetched = recordFetchedItems(clients.dynamodb);
    const backends = open(resources, {}, clients);
    const client = new GridClient({ config, ...backends });
    const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const [first, lost, last] = [0, 1, 2].map((i) => `${handle.sessionId}_${i}`);
    const summary = new SessionSummary(handle.sessionId);
    await finish(backends.table, first!);
    await summary.update(backends.table);
    await finish(lostWriter(suite, resources), lost!);
    await finish(backends.table, last!);
    const counted = await backends.table.countTerminal(handle.sessionId);
    fetched.splice(0);

    await summary.update(backends.table, undefined, counted);

    expect(summary.view()).toMatchObject({ tasks: 3, running: { count: 3 } });
    // The listing's read of the last task, then the re-read's of the lost one.
    expect(fetched).toEqual([last, lost]);
  });

  it('a count is one Query per index partition of the session, counting keys (Select COUNT) without reading items', async () => {
    const resources = await createGridResources(suite.emulators);
    const clients = suite.emulators.clients();
    const sent: { name: string; select?: string }[] = [];
    let recording = false;
    clients.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args as { input: { Select?: string } }).input;
        if (recording)
          sent.push({ name: String(context.commandName), ...(input.Select ? { select: input.Select } : {}) });
        return next(args);
      },
      { step: 'initialize', name: 'recordCountRequests' },
    );
    const backends = open(resources, {}, clients);
    const client = new GridClient({ config, ...backends });
    const tasks = 12_000;
    const session = await client.openSession({ expectedTasks: tasks });
    await client.addTasks(session, 0, ['{}', '{}', '{}', '{}']);
    for (let i = 0; i < 3; i++) await finish(backends.table, `${session.sessionId}_${i}`);
    recording = true;

    const ended = await backends.table.countTerminal(session.sessionId);

    expect(ended).toBe(3);
    expect(sessionShardsFor(tasks)).toBe(3);
    expect(sent).toEqual(Array.from({ length: 3 }, () => ({ name: 'QueryCommand', select: 'COUNT' })));
  });
});
