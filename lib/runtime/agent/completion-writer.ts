// Writes a batch of finished attempts: re-queue messages first, then the table, in one round trip each.
import type { Logger } from 'pino';
import type { Completion, CompletionResult, QueueMessage, TaskQueue, TaskTable } from '../../ports';
import { isDiskFull } from '../../core';
import { backoffDelay, sleep, SERVICE_RETRY_BACKOFF } from '../../timing';
import type { DiskSpaceGate } from './disk-space-gate';

export interface PendingCompletion {
  readonly completion: Completion;
  /** Sent before the completion is written when the task goes back to pending (retry, release). */
  readonly requeue?: QueueMessage;
}

export interface CompletionWriterOptions {
  readonly table: TaskTable;
  readonly queue: TaskQueue;
  readonly logger: Logger;
  /** `unwritten`: given up after retries; the lease will expire and the task be reaped. */
  readonly onWritten: (item: PendingCompletion, result: CompletionResult['status'] | 'unwritten') => void;
  /**
   * Where a write that hit a full disk waits for space, then goes again: those waits are not tries (a full disk would
   * otherwise cost each attempt waiting to be recorded), and give up only when the agent stops waiting.
   * @default - a full disk is retried like any other failure
   */
  readonly space?: Pick<DiskSpaceGate, 'report' | 'whenWritable' | 'wrote'>;
  /** @default - a real timer */
  readonly sleep?: (ms: number) => Promise<unknown>;
}

/** Write failures are retried with back-off this many times before the batch is given up to the reaper. */
export const MAX_WRITE_TRIES = 8;

/** Writes one batch (the `write` of the agent's completion batcher); never rejects. */
export async function writeCompletions(batch: readonly PendingCompletion[], options: CompletionWriterOptions) {
  const { table, queue, logger } = options;
  const wait = options.sleep ?? sleep;
  const requeues = batch.flatMap((p) => (p.requeue ? [p.requeue] : []));
  let waitedForSpace = false;
  for (let tries = 0; ; tries++) {
    try {
      // The message goes out before the task returns to pending: if we die in between, the lease expires and the
      // reaper re-queues; a message that arrives while the attempt still shows as running is released, not lost.
      if (requeues.length > 0) await queue.send(requeues);
      const results = await table.complete(batch.map((p) => p.completion));
      batch.forEach((item, i) => options.onWritten(item, results[i]?.status ?? 'stale'));
      if (waitedForSpace) options.space?.wrote();
      return;
    } catch (err) {
      let stoppedWaiting = false;
      if (options.space && isDiskFull(err)) {
        options.space.report(err);
        if (await options.space.whenWritable()) {
          waitedForSpace = true;
          tries = -1;
          continue;
        }
        stoppedWaiting = true;
      }
      if (stoppedWaiting || tries + 1 >= MAX_WRITE_TRIES) {
        logger.error(
          { err, tasks: batch.map((p) => p.completion.taskId) },
          'could not record finished attempts; their leases will expire and the reaper will re-queue them',
        );
        batch.forEach((item) => options.onWritten(item, 'unwritten'));
        return;
      }
      logger.warn({ err, tries: tries + 1 }, 'recording finished attempts failed; retrying');
      await wait(backoffDelay(tries, SERVICE_RETRY_BACKOFF));
    }
  }
}
