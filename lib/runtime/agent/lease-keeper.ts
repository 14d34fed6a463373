// Keeps the leases of held tasks alive and notices, within a second or so, when one was cancelled or taken over.
import type { Logger } from 'pino';
import type { LeaseRef, LeaseStatus, TaskTable } from '../../ports';
import type { HeldTask } from './held-task';

export interface LeaseKeeperOptions {
  readonly table: TaskTable;
  readonly held: ReadonlyMap<string, HeldTask>;
  readonly owner: string;
  readonly logger: Logger;
  readonly now: () => number;
  /**
   * How often held tasks are read for cancellation. Tasks held for less than half a tick are skipped (most tasks are
   * short), so a cancellation is seen within about one interval, 1.5 at worst right after a claim.
   */
  readonly checkIntervalMs: number;
  /** How often a lease is pushed forward. */
  readonly refreshIntervalMs: number;
  /** How far ahead a refresh pushes the lease. */
  readonly expiryMs: number;
  readonly onLost: (held: HeldTask, status: Exclude<LeaseStatus, 'held'>) => void;
  /** Called after a lease was extended (the reaper now sees it on every table). */
  readonly onExtended?: (held: HeldTask) => void;
  /**
   * Called when a tick fails (it is tried again at the next one).
   * @default - a warning is logged
   */
  readonly onTickFailed?: (err: unknown) => void;
}

/**
 * Every tick: leases due for refresh are extended (a write), the others are only read, so cancellation is seen
 * within about one check interval without a write per task per second.
 */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  /** Between `start` and `stop`, whether or not the ticks wait for a held task. */
  private started = false;
  private ticking = false;
  private lastCheckAt = 0;
  /** The shorter of the two periods: a check period above the refresh period must never let a lease lapse. */
  private readonly tickMs: number;

  constructor(private readonly options: LeaseKeeperOptions) {
    this.tickMs = Math.max(1, Math.min(options.checkIntervalMs, options.refreshIntervalMs));
  }

  start(): void {
    this.started = true;
    this.timer ??= setInterval(() => void this.tick(), this.tickMs);
  }

  /**
   * Starts the ticks again if they stopped for want of held tasks (see `tick`): the agent calls it as it holds a task.
   * The first tick then comes one period after the agent took hold of that task (at or after its claim), so its first
   * extension comes at most `refreshIntervalMs` after the claim, as with ticks that never stopped.
   */
  wake(): void {
    if (this.started) this.start();
  }

  stop(): void {
    this.started = false;
    this.idle();
  }

  /**
   * Extends the leases due for refresh and reads the others. A tick that finds no held task stops the ticks until the
   * next `wake`: an idle agent's keeper would otherwise wake its thread every period for nothing.
   */
  async tick(): Promise<void> {
    if (this.options.held.size === 0) {
      this.idle();
      return;
    }
    if (this.ticking) return;
    this.ticking = true;
    try {
      const { now, checkIntervalMs, refreshIntervalMs } = this.options;
      const { tickMs } = this;
      const at = now();
      const checkDue = at - this.lastCheckAt >= checkIntervalMs - tickMs / 2;
      if (checkDue) this.lastCheckAt = at;
      const refresh: HeldTask[] = [];
      const check: HeldTask[] = [];
      for (const held of this.options.held.values()) {
        if (held.abortCause || at - held.claimedAt < tickMs / 2) continue;
        if (at - held.lastExtendedAt >= refreshIntervalMs - tickMs) refresh.push(held);
        else if (checkDue) check.push(held);
      }
      await Promise.all([this.refresh(refresh, at), this.check(check)]);
    } catch (err) {
      if (this.options.onTickFailed) this.options.onTickFailed(err);
      else this.options.logger.warn({ err }, 'lease check failed; retrying at the next tick');
    } finally {
      this.ticking = false;
    }
  }

  private idle(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Extends every held lease now, whatever its refresh time (after a full disk, before anything reads them as
   * expired); rejects when the write fails. Resolves whether there was any lease to write.
   */
  async refreshAll(): Promise<boolean> {
    const tasks = [...this.options.held.values()];
    await this.refresh(tasks, this.options.now());
    return tasks.length > 0;
  }

  private async refresh(tasks: HeldTask[], at: number): Promise<void> {
    if (tasks.length === 0) return;
    const statuses = await this.options.table.extendLeases(
      tasks.map((t) => this.ref(t)),
      at + this.options.expiryMs,
    );
    tasks.forEach((held, i) => {
      if (statuses[i] !== 'held') return;
      held.lastExtendedAt = at;
      this.options.onExtended?.(held);
    });
    this.report(tasks, statuses);
  }

  private async check(tasks: HeldTask[]): Promise<void> {
    if (tasks.length === 0) return;
    this.report(tasks, await this.options.table.leaseStatus(tasks.map((t) => this.ref(t))));
  }

  private report(tasks: HeldTask[], statuses: readonly LeaseStatus[]): void {
    tasks.forEach((held, i) => {
      const status = statuses[i];
      if (status && status !== 'held') this.options.onLost(held, status);
    });
  }

  private ref(held: HeldTask): LeaseRef {
    return { taskId: held.task.taskId, owner: this.options.owner, attempt: held.task.attempt };
  }
}
