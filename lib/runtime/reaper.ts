// The reaper: finds tasks whose lease expired (their agent or runtime died) and re-queues them or fails them.
import type { Logger } from 'pino';
import { planLeaseExpiry, type TaskRecord } from '../core';
import { reapMessageOf, type Completion, type QueueMessage, type TaskQueue, type TaskTable } from '../ports';
import { silentLogger } from '../logging';

export interface ReapOptions {
  readonly table: TaskTable;
  readonly queue: TaskQueue;
  readonly now?: number;
  /** Most tasks handled in one sweep. */
  readonly limit?: number;
  readonly logger?: Logger;
}

export interface ReapResult {
  readonly requeued: number;
  readonly failed: number;
  /** Tasks that were heartbeated or finished between the scan and the write. */
  readonly skipped: number;
}

/** One sweep: finds expired leases and reaps them (see `reapTasks`). */
export async function reapExpiredLeases(options: ReapOptions): Promise<ReapResult> {
  const now = options.now ?? Date.now();
  const expired = await options.table.findExpiredLeases(now, options.limit ?? 500);
  return reapTasks(expired, { ...options, now });
}

/**
 * Re-queues or fails running tasks whose lease expired. A re-queued task gets its queue message before it goes back
 * to pending (see the agent's batcher for why); both writes are fenced on the attempt and on the lease still being
 * expired at `now`, so a late heartbeat wins (see `planLeaseExpiry`).
 */
export async function reapTasks(
  expired: readonly TaskRecord[],
  options: Pick<ReapOptions, 'table' | 'queue' | 'logger'> & { readonly now: number },
): Promise<ReapResult> {
  const { table, queue, now } = options;
  const logger = options.logger ?? silentLogger();
  if (expired.length === 0) return { requeued: 0, failed: 0, skipped: 0 };
  const completions: Completion[] = [];
  const requeue: QueueMessage[] = [];
  for (const task of expired) {
    const plan = planLeaseExpiry(task, now);
    completions.push(plan.completion);
    if (plan.requeue) {
      requeue.push(reapMessageOf(task, now));
    }
  }
  if (requeue.length > 0) await queue.send(requeue);
  const results = await table.complete(completions);
  let requeued = 0;
  let failed = 0;
  let skipped = 0;
  results.forEach((result, i) => {
    const completion = completions[i]!;
    if (result.status !== 'recorded') skipped++;
    else if (completion.outcome.kind === 'retry') requeued++;
    else failed++;
  });
  logger.info({ requeued, failed, skipped, tasks: expired.map((t) => t.taskId).slice(0, 20) }, 'reaped expired leases');
  return { requeued, failed, skipped };
}

/** Runs `reapExpiredLeases` on a timer (the local grid's stand-in for the scheduled Lambda). */
export class ReaperTimer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: Omit<ReapOptions, 'now'> & {
      readonly intervalMs: number;
      /**
       * Sweeps are skipped while this says so (the local grid's agent waits for disk space: its leases lapsed only
       * because nothing could be written, and it extends them before it stops waiting).
       * @default - never paused
       */
      readonly paused?: () => boolean;
    },
  ) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.running = this.running.then(() => this.sweep());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** One sweep now; errors are logged, never thrown. */
  async sweep(): Promise<ReapResult | undefined> {
    if (this.options.paused?.()) return undefined;
    try {
      return await reapExpiredLeases(this.options);
    } catch (err) {
      this.options.logger?.warn({ err }, 'reaper sweep failed; retrying at the next tick');
      return undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
