// The local grid's submissions: session, tasks, queue messages and seal in one SQLite transaction.
import type { SubmissionPart, SubmissionWriter } from '../../ports';
import type { SqliteTaskQueue } from './sqlite-task-queue';
import type { SqliteTaskTable } from './sqlite-task-table';

/**
 * `SubmissionWriter` over a `SqliteTaskTable` and a `SqliteTaskQueue` opened on the same database connection: one
 * write transaction creates the session, inserts the tasks and their queue messages and seals the session, so a
 * single-task submission costs one commit instead of four (and one wake-up of the agents) and an error leaves none of
 * it written.
 */
export class SqliteSubmissionWriter implements SubmissionWriter {
  constructor(
    private readonly table: SqliteTaskTable,
    private readonly queue: SqliteTaskQueue,
  ) {}

  async writeSubmission(part: SubmissionPart): Promise<void> {
    this.table.writeSubmission(part, (tasks, now) => this.queue.sendWithin(tasks, now));
    if (part.tasks.length > 0) this.queue.sent();
  }
}
