// A results stream on the local grid (SQLite) delivers a result its listing missed: the table counts more ended tasks
// than the stream delivered while it waits, so it reads them all again and delivers the missing ones, once.
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { GridClient, type SessionHandle, type TaskResult } from '../../lib/client';
import { compileConfig } from '../../lib/core';
import { makeTempDir } from '../backends/local/temp-grid-dir';
import { waitFor } from '../support/local-grid';

const config = compileConfig({}, 'test');

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly recovered?: number;
  readonly counted?: number;
  readonly taskIds?: string[];
}

let temp: ReturnType<typeof makeTempDir>;
let backends: LocalBackends;
let logs: LogLine[];
/** Stops the streams a test follows before its backends close (a failed test leaves one waiting). */
let stop: AbortController;
const following: Promise<unknown>[] = [];
beforeEach(() => {
  temp = makeTempDir();
  backends = openLocalBackends(temp.dir);
  logs = [];
  stop = new AbortController();
});
afterEach(async () => {
  stop.abort();
  await Promise.allSettled(following.splice(0));
  await backends.close();
  temp.remove();
});

function clientWith(missingResultsCheckMs?: number): GridClient {
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(JSON.parse(chunk.toString()) as LogLine);
        done();
      },
    }),
  );
  return new GridClient({ config, ...backends, logger, ...(missingResultsCheckMs ? { missingResultsCheckMs } : {}) });
}

/** Follows `handle`'s results: `arrived` lists their task ids as they come, `done` resolves with them all. */
function follow(handle: SessionHandle): { arrived: string[]; done: Promise<TaskResult[]> } {
  const arrived: string[] = [];
  const done = (async () => {
    const all: TaskResult[] = [];
    for await (const result of handle.results({ signal: stop.signal })) {
      arrived.push(result.taskId);
      all.push(result);
    }
    return all;
  })();
  following.push(done);
  return { arrived, done };
}

/** Ends a task as an agent does: claim, then a guarded completion. */
async function finish(taskId: string): Promise<void> {
  const now = Date.now();
  const [claim] = await backends.table.claim(
    [{ taskId, attempt: 0 }],
    { owner: 'agent-1', expiresAt: now + 60_000 },
    now,
  );
  if (claim?.status !== 'claimed') throw new Error(`could not claim ${taskId}: ${claim?.status}`);
  await backends.table.complete([
    {
      taskId,
      guard: { owner: 'agent-1', attempt: 1 },
      outcome: { kind: 'succeeded', result: { inline: '1' } },
      at: now,
    },
  ]);
}

/**
 * Ends `taskId` with a write of another connection that gives it the completion number of `behind`, a task already
 * listed: its listing key is behind every reader that listed `behind`, as if two writers had drawn the same number.
 */
function endBehind(taskId: string, behind: string): void {
  const db = new Database(backends.dbPath);
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

describe('a results stream on the local grid whose listing missed a result', () => {
  it('delivers it once within the check period, after a count showed more ended tasks than delivered, with a warning', async () => {
    const client = clientWith(300);
    const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const [first, lost, last] = [0, 1, 2].map((i) => `${handle.sessionId}_${i}`);
    const { arrived, done } = follow(handle);
    await finish(first!);
    await waitFor(() => arrived.includes(first!), 10_000, 'the first result');

    endBehind(lost!, first!);
    await finish(last!);
    await waitFor(() => arrived.includes(last!), 10_000, 'the last result');
    await waitFor(() => arrived.includes(lost!), 10_000, 'the result the listing missed');
    const results = await done;

    expect(arrived).toEqual([first, last, lost]);
    expect(results.find((r) => r.taskId === lost)).toMatchObject({ state: 'succeeded', result: 'late' });
    const warnings = logs.filter((l) => l.recovered !== undefined);
    expect(warnings).toEqual([expect.objectContaining({ level: 40, recovered: 1, counted: 3, taskIds: [lost] })]);
    expect(warnings[0]!.msg).toMatch(/results recovered by a full re-read/);
  });

  it('a count that finds every ended task delivered reads nothing again and delivers nothing twice', async () => {
    const client = clientWith(100);
    const handle = await client.submit([{ n: 0 }, { n: 1 }]);
    const [first, second] = [0, 1].map((i) => `${handle.sessionId}_${i}`);
    const table = backends.table;
    let counts = 0;
    const fromStart: (string | undefined)[] = [];
    const countTerminal = table.countTerminal.bind(table);
    const listTerminal = table.listTerminal.bind(table);
    table.countTerminal = async (sessionId) => {
      counts++;
      return countTerminal(sessionId);
    };
    table.listTerminal = async (sessionId, cursor, limit) => {
      if (cursor === undefined) fromStart.push(cursor);
      return listTerminal(sessionId, cursor, limit);
    };
    const { arrived, done } = follow(handle);
    await finish(first!);
    await waitFor(() => arrived.includes(first!), 10_000, 'the first result');

    await waitFor(() => counts >= 3, 10_000, 'three count checks while the second task is pending');
    await finish(second!);
    await done;

    expect(arrived).toEqual([first, second]);
    expect(fromStart).toHaveLength(1);
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
});
