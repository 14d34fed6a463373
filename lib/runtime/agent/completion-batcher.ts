// Collects finished attempts and writes them in batches: re-queue messages first, then the table, in one round trip each.
import type { Logger } from 'pino';
import type { Completion, CompletionResult, QueueMessage, TaskQueue, TaskTable } from '../../ports';
import { backoffDelay, sleep, SERVICE_RETRY_BACKOFF } from '../../timing';

export interface PendingCompletion {
  readonly completion: Completion;
  /** Sent before the completion is written when the task goes back to pending (retry, release). */
  readonly requeue?: QueueMessage;
}

export interface CompletionBatcherOptions {
  readonly table: TaskTable;
  readonly queue: TaskQueue;
  readonly logger: Logger;
  /** Flush as soon as this many are waiting. */
  readonly maxBatch: number;
  /** Flush at the latest this long after the first one arrived. */
  readonly maxDelayMs: number;
  /** `unwritten`: given up after retries; the lease will expire and the task be reaped. */
  readonly onWritten: (item: PendingCompletion, result: CompletionResult['status'] | 'unwritten') => void;
}

/** Write failures are retried with back-off this many times before the batch is given up to the reaper. */
const MAX_WRITE_TRIES = 8;

export class CompletionBatcher {
  private buffer: PendingCompletion[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly options: CompletionBatcherOptions) {}

  add(item: PendingCompletion): void {
    this.buffer.push(item);
    if (this.buffer.length >= this.options.maxBatch) this.schedule(0);
    else this.schedule(this.options.maxDelayMs);
  }

  /** Resolves once everything added so far is written (or given up). */
  async drain(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.flushAll());
    await this.flushing;
  }

  private schedule(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flushing = this.flushing.then(() => this.flushAll());
    }, delayMs);
  }

  private async flushAll(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.maxBatch);
      await this.write(batch);
    }
  }

  private async write(batch: PendingCompletion[]): Promise<void> {
    const { table, queue, logger } = this.options;
    const requeues = batch.flatMap((p) => (p.requeue ? [p.requeue] : []));
    for (let tries = 0; ; tries++) {
      try {
        // The message goes out before the task returns to pending: if we die in between, the lease expires and the
        // reaper re-queues; a message that arrives while the attempt still shows as running is released, not lost.
        if (requeues.length > 0) await queue.send(requeues);
        const results = await table.complete(batch.map((p) => p.completion));
        batch.forEach((item, i) => this.options.onWritten(item, results[i]?.status ?? 'stale'));
        return;
      } catch (err) {
        if (tries + 1 >= MAX_WRITE_TRIES) {
          logger.error(
            { err, tasks: batch.map((p) => p.completion.taskId) },
            'could not record finished attempts; their leases will expire and the reaper will re-queue them',
          );
          batch.forEach((item) => this.options.onWritten(item, 'unwritten'));
          return;
        }
        logger.warn({ err, tries: tries + 1 }, 'recording finished attempts failed; retrying');
        await sleep(backoffDelay(tries, SERVICE_RETRY_BACKOFF));
      }
    }
  }
}
