// What the tests of the missing-results check share: a clock they move, their view of its warnings, and ways to end a
// task: as an agent does, or on a local grid (SQLite) so that a results stream's listing misses it.
import Database from 'better-sqlite3';
import type { SessionHandle, TaskResult } from '../../lib/client';
import { DynamoDbTaskTable } from '../../lib/backends/aws';
import type { AwsGridResources } from '../../lib/core/grid-resources';
import type { TaskTable } from '../../lib/ports';
import type { EmulatorSuite } from './emulator-suite';

/** A warning of a results stream's missing-results check, as the tests read it. */
export interface MissedResultsLogLine {
  readonly level: number;
  readonly msg: string;
  readonly sessionId?: string;
  readonly delivered?: number;
  readonly unreachable?: number;
  readonly recovered?: number;
  readonly counted?: number;
  readonly taskIds?: string[];
  readonly sendsAgain?: boolean;
}

/** A time the test moves itself, for the results streams' count checks. */
export class TestClock {
  constructor(public at = 1_000_000) {}
  readonly now = (): number => this.at;
  advance(ms: number): void {
    this.at += ms;
  }
}

/** Follows `handle`'s results until `signal`: `arrived` lists their task ids as they come, `done` has them all. */
export function followResults(
  handle: SessionHandle,
  signal: AbortSignal,
): { arrived: string[]; done: Promise<TaskResult[]> } {
  const arrived: string[] = [];
  const done = (async () => {
    const all: TaskResult[] = [];
    for await (const result of handle.results({ signal })) {
      arrived.push(result.taskId);
      all.push(result);
    }
    return all;
  })();
  return { arrived, done };
}

/** Ends a task as an agent does, through `table`: claim, then a guarded completion (notified if `table` notifies). */
export async function finishTask(table: TaskTable, taskId: string): Promise<void> {
  const now = Date.now();
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

/** Runs `write` on a connection of its own to the local grid's database at `dbPath`. */
function onDatabase(dbPath: string, write: (db: Database.Database) => void): void {
  const db = new Database(dbPath);
  try {
    db.pragma('busy_timeout = 5000');
    write(db);
  } finally {
    db.close();
  }
}

/** Ends `taskId` with a write that gives it no completion number: the table counts it, the listing never brings it. */
export function endUnlisted(dbPath: string, taskId: string): void {
  onDatabase(dbPath, (db) => {
    const now = Date.now();
    db.prepare(
      `UPDATE tasks SET state = 'succeeded', attempt = 1, result_inline = '"unlisted"', started_at = ?,
         finished_at = ?, done_seq = NULL WHERE task_id = ?`,
    ).run(now, now, taskId);
  });
}

/**
 * Ends `taskId` with a write of another connection that gives it the completion number of `behind`, a task already
 * listed: its listing key is behind every reader that listed `behind`, as if two writers had drawn the same number.
 */
export function endBehind(dbPath: string, taskId: string, behind: string): void {
  onDatabase(dbPath, (db) => {
    const row = db.prepare<[string], { done_seq: number }>('SELECT done_seq FROM tasks WHERE task_id = ?').get(behind);
    const now = Date.now();
    db.prepare(
      `UPDATE tasks SET state = 'succeeded', attempt = 1, result_inline = '"late"', started_at = ?, finished_at = ?,
         done_seq = ? WHERE task_id = ?`,
    ).run(now, now, row!.done_seq, taskId);
  });
}

/** Gives the ended task `taskId` the completion number `doneSeq` (its listing key). */
export function numberEnded(dbPath: string, taskId: string, doneSeq: number): void {
  onDatabase(dbPath, (db) => {
    db.prepare('UPDATE tasks SET done_seq = ? WHERE task_id = ?').run(doneSeq, taskId);
  });
}

/**
 * A DynamoDB table whose writer's clock runs a minute behind and that sends no notice: the listing key of a task it
 * ends lies behind the watermark of any reader that read the session since, and no notice names the task. Closed
 * after the test.
 */
export function lostWriter(suite: EmulatorSuite, resources: AwsGridResources): DynamoDbTaskTable {
  const client = suite.emulators.clients().dynamodb;
  const table = new DynamoDbTaskTable({ tableName: resources.tableName, client, now: () => Date.now() - 60_000 });
  suite.closeAfterTest({
    close: async () => {
      await table.close();
      client.destroy();
    },
  });
  return table;
}
