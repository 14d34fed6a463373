// A results stream on the local grid (SQLite) delivers a result its listing missed: the table counts more ended tasks
// than the stream delivered while it waits, so it reads them all again and delivers the missing ones, once.
import type { Logger } from 'pino';
import { openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { GridClient, type SessionHandle } from '../../lib/client';
import { compileConfig } from '../../lib/core';
import { makeTempDir } from '../backends/local/temp-grid-dir';
import { capturedLogger } from '../support/fake-ports';
import { waitFor } from '../support/local-grid';
import {
  endBehind as endBehindIn,
  endUnlisted as endUnlistedIn,
  finishTask,
  followResults,
  TestClock,
  type MissedResultsLogLine,
} from '../support/missed-results';
import { watchReads } from '../support/watch-reads';

const config = compileConfig({}, 'test');

let temp: ReturnType<typeof makeTempDir>;
let backends: LocalBackends;
/** The warnings of the test's clients. */
let logger: Logger;
let logs: MissedResultsLogLine[];
/** Stops the streams a test follows before its backends close (a failed test leaves one waiting). */
let stop: AbortController;
const following: Promise<unknown>[] = [];
beforeEach(() => {
  temp = makeTempDir();
  backends = openLocalBackends(temp.dir);
  ({ logger, lines: logs } = capturedLogger<MissedResultsLogLine>('warn'));
  stop = new AbortController();
});
afterEach(async () => {
  stop.abort();
  await Promise.allSettled(following.splice(0));
  await backends.close();
  temp.remove();
});

function clientWith(missingResultsCheckMs?: number): GridClient {
  return new GridClient({ config, ...backends, logger, ...(missingResultsCheckMs ? { missingResultsCheckMs } : {}) });
}

/** A client whose streams look every 10 ms and time their count checks (every `checkMs`, backing off) by `clock`. */
function clockedClient(clock: TestClock, checkMs: number): GridClient {
  return new GridClient({
    config,
    ...backends,
    logger,
    pollIntervalMs: 10,
    missingResultsCheckMs: checkMs,
    clock: clock.now,
  });
}

/** Waits until the stream read the listing `n` more times: whatever it was doing when called has been done. */
async function turns(seen: { reads: number }, n = 3): Promise<void> {
  const target = seen.reads + n;
  await waitFor(() => seen.reads >= target, 10_000, `${n} more reads of the listing`);
}

/** Follows `handle`'s results: `arrived` lists their task ids as they come, `done` resolves with them all. */
function follow(handle: SessionHandle): ReturnType<typeof followResults> {
  const followed = followResults(handle, stop.signal);
  following.push(followed.done);
  return followed;
}

/** Ends a task as an agent does: claim, then a guarded completion. */
function finish(taskId: string): Promise<void> {
  return finishTask(backends.table, taskId);
}

/** See `endUnlisted` of the support module: on this test's grid. */
function endUnlisted(taskId: string): void {
  endUnlistedIn(backends.dbPath, taskId);
}

/** See `endBehind` of the support module: on this test's grid. */
function endBehind(taskId: string, behind: string): void {
  endBehindIn(backends.dbPath, taskId, behind);
}

/**
 * A stream of a new session of `tasks` tasks on a `clockedClient` (checks every `checkMs`), once its first task
 * ended and its result arrived: the reads it makes are counted from before it started.
 */
async function pastFirstResult(tasks: number, checkMs: number) {
  const clock = new TestClock();
  const client = clockedClient(clock, checkMs);
  const handle = await client.submit(Array.from({ length: tasks }, (_, n) => ({ n })));
  const ids = Array.from({ length: tasks }, (_, i) => `${handle.sessionId}_${i}`);
  const seen = watchReads(backends.table);
  const { arrived, done } = follow(handle);
  await finish(ids[0]!);
  await waitFor(() => arrived.includes(ids[0]!), 10_000, 'the first result');
  return { clock, handle, ids, seen, arrived, done };
}

describe('a results stream on the local grid whose listing missed a result', () => {
  it('delivers it once at the next check, after a count showed more ended tasks than delivered, with a warning', async () => {
    const { clock, ids, seen, arrived, done } = await pastFirstResult(3, 1_000);
    const [first, lost, last] = ids;

    // The clock stands still while the writes run: no count can fall due before both are done.
    endBehind(lost!, first!);
    await finish(last!);
    await waitFor(() => arrived.includes(last!), 10_000, 'the last result');
    await turns(seen);
    const before = [...arrived];
    clock.advance(1_000);
    const results = await done;

    expect(before).toEqual([first, last]);
    expect(arrived).toEqual([first, last, lost]);
    expect(results.find((r) => r.taskId === lost)).toMatchObject({ state: 'succeeded', result: 'late' });
    const warnings = logs.filter((l) => l.recovered !== undefined);
    expect(warnings).toEqual([expect.objectContaining({ level: 40, recovered: 1, counted: 3, taskIds: [lost] })]);
    expect(warnings[0]!.msg).toMatch(/results recovered by a full re-read: .*index lag.*a lost notice, or a defect/);
  });

  it('a count that finds every ended task delivered reads nothing again and delivers nothing twice', async () => {
    const { clock, ids, seen, arrived, done } = await pastFirstResult(2, 1_000);
    const [first, second] = ids;
    await turns(seen);
    // From here on the stream's cursor is past the first result: a read from the start is a re-read.
    const fromStart = seen.fromStart;

    for (const counts = seen.counts + 3; seen.counts < counts;) {
      clock.advance(10_000);
      await turns(seen);
    }
    await finish(second!);
    await done;

    expect(arrived).toEqual([first, second]);
    expect(seen.fromStart).toBe(fromStart);
    expect(logs.filter((l) => l.recovered !== undefined)).toEqual([]);
  });

  it('a check period that is not a positive number is refused when the client is built, naming the value', () => {
    expect(() => new GridClient({ config, ...backends, missingResultsCheckMs: -5 })).toThrow(
      /missingResultsCheckMs must be a positive number of milliseconds, or Infinity to never check \(got -5\)/,
    );
  });

  it('results that flow are never counted', async () => {
    const client = clientWith();
    const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    let counts = 0;
    const countTerminal = backends.table.countTerminal.bind(backends.table);
    backends.table.countTerminal = async (sessionId) => {
      counts++;
      return countTerminal(sessionId);
    };
    const { arrived, done } = follow(handle);

    for (let i = 0; i < 3; i++) await finish(`${handle.sessionId}_${i}`);
    await done;

    expect(arrived).toHaveLength(3);
    expect(counts).toBe(0);
  });

  it('after a count that finds nothing missing, the next waits twice as long, and a result brings the period back', async () => {
    const { clock, handle, seen, arrived } = await pastFirstResult(3, 1_000);
    await turns(seen);
    /** Moves the clock by `ms`, lets the stream turn, and says how many counts it took since the last call. */
    let before = seen.counts;
    const countsAfter = async (ms: number): Promise<number> => {
      clock.advance(ms);
      await turns(seen);
      const taken = seen.counts - before;
      before = seen.counts;
      return taken;
    };

    // Checks due 1 s, then 2 s, 4 s, 8 s after the last: none a moment before, one when due.
    const checks: number[] = [];
    for (const wait of [1_000, 2_000, 4_000, 8_000]) {
      checks.push(await countsAfter(wait - 1), await countsAfter(1));
    }
    await finish(`${handle.sessionId}_1`);
    await waitFor(() => arrived.length === 2, 10_000, 'the second result');
    await turns(seen);
    before = seen.counts;
    checks.push(await countsAfter(999), await countsAfter(1));

    expect(checks).toEqual([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  });

  it('the wait between counts stops doubling at five minutes', async () => {
    const { clock, seen } = await pastFirstResult(2, 60_000);
    await turns(seen);

    // 1, 2, 4 minutes, then 5, 5: each check when due.
    const dueAfter: number[] = [];
    for (let i = 0; i < 5; i++) {
      const counts = seen.counts;
      let waited = 0;
      while (seen.counts === counts) {
        clock.advance(30_000);
        waited += 30_000;
        await turns(seen);
      }
      dueAfter.push(waited / 60_000);
    }

    expect(dueAfter).toEqual([1, 2, 4, 5, 5]);
  });

  it('a re-read that finds none of what the table counts is not repeated within five minutes unless it counts more, with one warning', async () => {
    const { clock, handle, ids, seen, arrived } = await pastFirstResult(4, 1_000);
    const [first, unlisted, lost, last] = ids;
    endUnlisted(unlisted!);

    // Six checks within five minutes, each one when due (40 s is past each wait then): one re-read, after the first.
    const start = clock.at;
    for (let checks = seen.counts + 6; seen.counts < checks;) {
      clock.advance(40_000);
      await turns(seen);
    }
    expect(clock.at - start).toBeLessThan(300_000);
    const stuck = { fromStart: seen.fromStart, logs: [...logs] };
    // A result missed later makes the table count more missing than the re-read left: it is read again.
    endBehind(lost!, first!);
    const counts = seen.counts;
    clock.advance(600_000);
    await waitFor(() => arrived.includes(lost!), 10_000, 'the result missed later');
    await finish(last!);
    await waitFor(() => arrived.includes(last!), 10_000, 'the last result');

    // The stream's first read, then one re-read for the six counts.
    expect(stuck.fromStart).toBe(2);
    expect(stuck.logs).toEqual([
      expect.objectContaining({ level: 40, sessionId: handle.sessionId, counted: 2, delivered: 1, unreachable: 1 }),
    ]);
    expect(stuck.logs[0]!.msg).toMatch(/counts more ended tasks than a full re-read of the session returns/);
    expect(seen.counts).toBe(counts + 1);
    expect(seen.fromStart).toBe(3);
    expect(arrived).toEqual([first, lost, last]);
    expect(logs.slice(1).filter((l) => l.recovered !== undefined)).toEqual([
      expect.objectContaining({ recovered: 1, counted: 3, taskIds: [lost] }),
    ]);
  });

  it('a gap a first re-read cannot bring is read for again five minutes later: the stream ends with every result once', async () => {
    const { clock, ids, seen, arrived, done } = await pastFirstResult(2, 1_000);
    const [first, late] = ids;
    // Counted as ended but not listed yet (as a replica that lags the count on DynamoDB): the first re-read misses it.
    endUnlisted(late!);
    const fromStart = seen.fromStart;
    while (seen.fromStart === fromStart) {
      clock.advance(1_000);
      await turns(seen);
    }
    await waitFor(() => logs.some((l) => l.unreachable === 1), 10_000, 'the warning of the re-read that missed it');
    const markedAt = clock.at;
    // Now a read from the start brings it; the stream's own listing, past it, never will.
    endBehind(late!, first!);

    let steps = 0;
    while (!arrived.includes(late!) && steps++ < 20) {
      clock.advance(30_000);
      await turns(seen);
    }
    expect(arrived).toEqual([first, late]);
    const results = await done;

    expect(clock.at - markedAt).toBeGreaterThanOrEqual(300_000);
    expect(clock.at - markedAt).toBeLessThanOrEqual(330_000);
    expect(arrived).toEqual([first, late]);
    expect(results.find((r) => r.taskId === late)).toMatchObject({ state: 'succeeded', result: 'late' });
    expect(logs.filter((l) => l.recovered !== undefined)).toEqual([
      expect.objectContaining({ recovered: 1, counted: 2, taskIds: [late] }),
    ]);
  });
});
