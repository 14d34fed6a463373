// Waits out a full disk: writes that hit it wait here (nothing is counted as a failed attempt), intake pauses, and a
// probe write tells when space is back.
import type { Logger } from 'pino';
import { DISK_FULL_PROBLEM, DISK_FULL_WARN_EVERY_MS, isDiskFull } from '../../core';
import { backoffDelay, sleep, type BackoffOptions } from '../../timing';

export interface DiskSpaceGateOptions {
  readonly logger: Logger;
  /**
   * A write that succeeds only once there is space again (the agent extends the leases it holds, so they are its own
   * again before anything else reads them as expired). Resolves whether it wrote anything: with nothing to write, the
   * gate opens quietly and the next real write finds out.
   */
  readonly probe: () => Promise<boolean>;
  /** Called when the disk is found full (`true`) and when space is back (`false`). */
  readonly onChange?: (full: boolean) => void;
  /** @default DISK_PROBE_BACKOFF */
  readonly backoff?: BackoffOptions;
  /** @default - a real timer */
  readonly sleep?: (ms: number) => Promise<unknown>;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * How often the probe tries while the disk is full: 250 ms doubling to 1 s, so space that comes back is found within
 * a second (a probe is one small write, and only an agent on a full disk makes it).
 */
export const DISK_PROBE_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 1_000, jitter: 'equal' };

export { DISK_FULL_WARN_EVERY_MS };

/**
 * How long after the gate opened an agent still tells clients it waits for disk space. On a nearly full disk the gate
 * reopens whenever a probe's small write fits and closes again at the next result that does not, which the kept
 * results (written as soon as it opens) find within milliseconds: while it is closed the report says waiting anyway,
 * so the hold only has to outlast those short openings for the client not to see the wait end and start again. (It
 * was twice the probe's longest wait, 10 s: with the heartbeat and the client's look, "space is back" came 10-14 s
 * late.)
 */
export const DISK_WAIT_HOLD_MS = 1_000;

/**
 * States: open (writes go ahead), full (writes and intake wait; the probe runs with back-off until a write
 * succeeds), abandoned (the agent stopped waiting, e.g. its drain grace ended: waiters are told to give up).
 */
export class DiskSpaceGate {
  private isFull = false;
  private abandoned = false;
  private waiters: Array<(writable: boolean) => void> = [];
  private warnedAt: number | undefined;
  /** Back-off step of the probe; kept across quiet re-openings so an idle agent on a full disk slows down. */
  private step = 0;
  /** The gate reopened and no kept write has gone through since: `wrote` says when one has. */
  private reopened = false;

  constructor(private readonly options: DiskSpaceGateOptions) {}

  get full(): boolean {
    return this.isFull;
  }

  /** A write failed with `error`: a full disk closes the gate (the first one logs the warning, with its fix). */
  report(error: unknown): void {
    if (!isDiskFull(error) || this.isFull) return;
    this.isFull = true;
    const now = (this.options.now ?? Date.now)();
    if (this.warnedAt === undefined || now - this.warnedAt >= DISK_FULL_WARN_EVERY_MS) {
      this.warnedAt = now;
      this.options.logger.warn(
        { err: error },
        `${DISK_FULL_PROBLEM}: intake paused, finished results kept in memory until they can be recorded`,
      );
    }
    this.options.onChange?.(true);
    void this.recover();
  }

  /** Resolves `true` at once while open, else once space is back; `false` if the agent stops waiting first. */
  whenWritable(signal?: AbortSignal): Promise<boolean> {
    if (!this.isFull) return Promise.resolve(true);
    if (this.abandoned || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== settle);
        resolve(false);
      };
      const settle = (writable: boolean): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(writable);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(settle);
    });
  }

  /** A write that had waited for space went through: the first one after the gate reopened says space is back. */
  wrote(): void {
    if (!this.reopened || this.isFull) return;
    this.reopened = false;
    this.options.logger.info('disk space is back: the kept results are recorded and intake resumed');
  }

  /** Stops waiting for space (the agent's drain ran out of grace): waiters and later calls get `false`. */
  abandon(): void {
    this.abandoned = true;
    for (const waiter of this.waiters.splice(0)) waiter(false);
  }

  private async recover(): Promise<void> {
    const wait = this.options.sleep ?? sleep;
    while (this.isFull && !this.abandoned) {
      await wait(backoffDelay(this.step++, this.options.backoff ?? DISK_PROBE_BACKOFF));
      if (this.abandoned) return;
      let wrote: boolean;
      try {
        wrote = await this.options.probe();
      } catch (err) {
        if (!isDiskFull(err)) this.options.logger.warn({ err }, 'probing for disk space failed; trying again');
        continue;
      }
      // A lease extend fits in less room than a result: space is back for sure once a kept write went (see `wrote`).
      this.isFull = false;
      this.reopened = true;
      if (wrote) this.step = 0;
      this.options.onChange?.(false);
      for (const waiter of this.waiters.splice(0)) waiter(true);
    }
  }
}

/** A one-shot timer (`setTimeout`, unref'd, by default): tests pass their own. */
export type HoldTimer = (ms: number, callback: () => void) => { cancel(): void };

const realTimer: HoldTimer = (ms, callback) => {
  const timer = setTimeout(callback, ms);
  timer.unref();
  return { cancel: () => clearTimeout(timer) };
};

/**
 * What an agent tells of its wait for disk space (`AgentPresence.waitingForDisk`): waiting while `full()` (any of its
 * gates closed), and until `holdMs` after it was last seen so, so a disk that fills again at once reads as one wait.
 * When the hold ends, `onHoldEnd` is called (the heartbeat writes the registry entry then, not at its next tick): one
 * timer per reopening, none on a grid whose disk never filled (unref'd; after the agent stopped, a heartbeat is a no-op).
 */
export class DiskWaitReport {
  private lastFullAt: number | undefined;
  private readonly holdMs: number;
  private readonly now: () => number;
  private readonly timer: HoldTimer;
  private pending: { cancel(): void } | undefined;

  constructor(
    private readonly full: () => boolean,
    private readonly options: {
      /** @default DISK_WAIT_HOLD_MS */
      readonly holdMs?: number;
      /** @default Date.now */
      readonly now?: () => number;
      /** Called once the wait is over (the hold after the last gate opened has passed). @default - nothing */
      readonly onHoldEnd?: () => void;
      /** @default - `setTimeout`, unref'd */
      readonly timer?: HoldTimer;
    } = {},
  ) {
    this.holdMs = options.holdMs ?? DISK_WAIT_HOLD_MS;
    this.now = options.now ?? Date.now;
    this.timer = options.timer ?? realTimer;
  }

  /** A gate closed or opened: the disk was full until now. Once all are open, the end of the hold is timed. */
  changed(): void {
    this.lastFullAt = this.now();
    this.pending?.cancel();
    this.pending = undefined;
    if (!this.full()) this.timeHoldEnd(this.holdMs);
  }

  private timeHoldEnd(ms: number): void {
    if (!this.options.onHoldEnd) return;
    this.pending = this.timer(ms, () => {
      this.pending = undefined;
      if (this.full() || this.lastFullAt === undefined) return;
      // A timer may fire a millisecond early by the wall clock: wait out the rest rather than report a wait still on.
      const left = this.lastFullAt + this.holdMs - this.now();
      if (left > 0) this.timeHoldEnd(left);
      else this.options.onHoldEnd?.();
    });
  }

  get waiting(): boolean {
    const now = this.now();
    if (this.full()) {
      this.lastFullAt = now;
      return true;
    }
    return this.lastFullAt !== undefined && now - this.lastFullAt < this.holdMs;
  }
}
