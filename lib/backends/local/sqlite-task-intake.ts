// The local grid's task intake: receive + claim + acknowledge in one SQLite transaction (its queue and table share a
// connection).
import type { TaskRecord } from '../../core/task';
import type { IntakeOptions, TaskIntake } from '../../ports';
import type { SqliteTaskQueue } from './sqlite-task-queue';
import type { SqliteTaskTable } from './sqlite-task-table';

/**
 * `TaskIntake` over a `SqliteTaskQueue` and a `SqliteTaskTable` opened on the same database connection: one write
 * transaction receives the messages, claims their tasks and deletes the settled messages, so a claimed task's
 * message is never marked received and then deleted in two more transactions. The reaper's scan sees a claimed
 * task from its claim on, so no message outlives its claim and the agent's notices have nothing left to do.
 */
export class SqliteTaskIntake implements TaskIntake {
  constructor(
    private readonly queue: SqliteTaskQueue,
    private readonly table: SqliteTaskTable,
  ) {}

  receiveAndClaim(max: number, options: IntakeOptions): Promise<TaskRecord[]> {
    const { owner, leaseMs } = options;
    return this.queue.receiveClaimed(max, options, (requests, now) =>
      this.table.claimWithinTransaction(requests, { owner, expiresAt: now + leaseMs }, now),
    );
  }

  leaseExtended(): void {}

  settle(): void {}

  async drain(): Promise<void> {}
}
