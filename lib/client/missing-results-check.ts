// When a results stream that waits for missing results asks the table how many tasks ended (see SessionHandle.results).

/** How long a results stream waits without a new result before it compares counts, by default. */
export const MISSING_RESULTS_CHECK_MS = 20_000;

/**
 * The longest wait between two count checks of a stream that waits without news. After a check that finds nothing
 * missing the next waits twice as long, up to this: a session whose last tasks run for an hour is counted 15
 * times in that hour rather than 180 (each count of a million ended tasks reads about 22,000 units on DynamoDB). A
 * period longer than this is kept as it is.
 */
export const MISSING_RESULTS_CHECK_MAX_MS = 300_000;

/** Throws a `RangeError` naming the value unless `periodMs` is a positive number of milliseconds (or Infinity). */
export function validMissingResultsCheckMs(periodMs: number): number {
  if (!(periodMs > 0)) {
    throw new RangeError(
      `missingResultsCheckMs must be a positive number of milliseconds, or Infinity to never check (got ${periodMs})`,
    );
  }
  return periodMs;
}

/** What a check carries from one request of a resumed stream to the next (see `MissingResultsCheck.resume`). */
export interface MissingResultsCheckState {
  /** Since when (epoch ms) the stream delivered no result and counted nothing. */
  readonly since: number;
  /** How long after `since` the next count is due: the period, doubled after each check that found nothing. */
  readonly waitMs: number;
  /**
   * How many more ended tasks the table counted than a full re-read could deliver (a count/listing disagreement, or
   * an eventually consistent read): the stream reads again only once the table counts more than that, or once
   * `retryMs` passed since `unreachableAt`.
   */
  readonly unreachable?: number;
  /** When (epoch ms) the last re-read ended leaving `unreachable` (absent: when the check was resumed). */
  readonly unreachableAt?: number;
}

/**
 * Whether a reader that follows a session's listing should read it all again from the start: the table counts more
 * ended tasks than the reader has, and more than its last such re-read left missing, or that re-read is `retryMs` old.
 *
 * When the table counts tasks a full re-read does not return, reading again at every look would read the whole
 * session again for nothing: it is read again once more are missing. But what one re-read could not bring, a later
 * one may: on DynamoDB the count sees a task's key while the re-read (an eventually consistent index, a BatchGet)
 * hits a replica that does not show it yet. If that was the session's last task, no count ever shows more missing,
 * and a mark that never expired would keep the reader waiting for ever. So while the gap persists the reader reads
 * again once every `retryMs` (by default `MISSING_RESULTS_CHECK_MAX_MS`, 5 minutes; cheap where the table offers
 * `readTerminalWanted`).
 */
export class ReReadGate {
  private unreachable: number | undefined;
  private markedAt = 0;

  /**
   * @param unreachable what the last re-read left missing (see `left`), if any
   * @param markedAt when that re-read ended (epoch ms, on the clock the caller passes as `now`)
   * @param retryMs how long after a re-read that left results missing the same gap is read for again
   */
  constructor(
    unreachable?: number,
    markedAt = 0,
    private readonly retryMs: number = MISSING_RESULTS_CHECK_MAX_MS,
  ) {
    if (unreachable !== undefined && unreachable > 0) {
      this.unreachable = unreachable;
      this.markedAt = markedAt;
    }
  }

  /** How many ended tasks the table counted that the last re-read could not bring (undefined: none). */
  get left(): number | undefined {
    return this.unreachable;
  }

  /** When the last re-read that left `left` missing ended (undefined: none left). */
  get leftAt(): number | undefined {
    return this.unreachable === undefined ? undefined : this.markedAt;
  }

  /** When a count that still shows the gap the last re-read left calls for another (Infinity: no gap left). */
  get retryAt(): number {
    return this.unreachable === undefined ? Infinity : this.markedAt + this.retryMs;
  }

  /**
   * Whether a re-read is due at `now` after the table counted `counted` ended tasks and the reader has `delivered`:
   * the table counts more than that, and more than the last re-read left missing or that re-read ended `retryMs` ago
   * or more. A count that shows fewer missing than that lowers the mark, so a result missed later is read again.
   */
  missing(counted: number, delivered: number, now: number): boolean {
    const gap = counted - delivered;
    if (this.unreachable === undefined) return gap > 0;
    if (gap > this.unreachable) return true;
    if (gap <= 0) {
      this.unreachable = undefined;
      return false;
    }
    this.unreachable = gap;
    return now >= this.markedAt + this.retryMs;
  }

  /**
   * A re-read started after the table counted `counted` ended tasks ended at `now` with the reader having
   * `delivered`. Returns how many the table counted that it could not bring (0: none), which are not read again for
   * until more are missing or `retryMs` passed.
   */
  reReadEnded(counted: number, delivered: number, now: number): number {
    const gap = counted - delivered;
    this.unreachable = gap > 0 ? gap : undefined;
    this.markedAt = now;
    return Math.max(0, gap);
  }
}

/**
 * A results stream's count check: due once `periodMs` passed without a new result; after a check that found
 * nothing missing, the next waits twice as long (up to `MISSING_RESULTS_CHECK_MAX_MS`), and a new result brings the
 * period back. A stream whose results flow never checks; `Infinity` turns the check off. Whether a count calls for a
 * full re-read is its `ReReadGate`'s to say (`missing`, `reReadEnded`).
 */
export class MissingResultsCheck {
  private since: number;
  private waitMs: number;
  private gate: ReReadGate;
  private readonly maxMs: number;

  constructor(
    private readonly periodMs: number,
    now: number,
  ) {
    validMissingResultsCheckMs(periodMs);
    this.since = now;
    this.waitMs = periodMs;
    this.maxMs = Math.max(periodMs, MISSING_RESULTS_CHECK_MAX_MS);
    this.gate = new ReReadGate(undefined, now, this.maxMs);
  }

  /**
   * The check of a stream resumed by a new request, from the `state` its last request left (none: a fresh stream at
   * `now`). A wait outside the period and its cap (a cursor of another configuration) is brought back within them.
   */
  static resume(periodMs: number, now: number, state: Partial<MissingResultsCheckState> = {}): MissingResultsCheck {
    const check = new MissingResultsCheck(periodMs, state.since ?? now);
    if (state.waitMs !== undefined) check.waitMs = Math.min(Math.max(state.waitMs, periodMs), check.maxMs);
    check.gate = new ReReadGate(state.unreachable, state.unreachableAt ?? now, check.maxMs);
    return check;
  }

  get state(): MissingResultsCheckState {
    const unreachable = this.gate.left;
    return {
      since: this.since,
      waitMs: this.waitMs,
      ...(unreachable !== undefined ? { unreachable, unreachableAt: this.gate.leftAt! } : {}),
    };
  }

  /** A new result was delivered at `now`: the next check waits a full period from it. */
  progressed(now: number): void {
    this.since = now;
    this.waitMs = this.periodMs;
  }

  /** The table was counted (and what it held read) at `now`, and nothing new came of it: the next waits longer. */
  checked(now: number): void {
    this.since = now;
    this.waitMs = Math.min(this.waitMs * 2, this.maxMs);
  }

  /** Whether a count is due at `now`: its wait passed, or the gap a re-read left is due for another (see `missing`). */
  due(now: number): boolean {
    return now >= this.dueAt;
  }

  /** How long from `now` until the check is due (0 when it is): a waiting stream wakes no later. */
  untilDue(now: number): number {
    return Math.max(0, this.dueAt - now);
  }

  private get dueAt(): number {
    return Math.min(this.since + this.waitMs, this.gate.retryAt);
  }

  /** See `ReReadGate.missing`: a re-read that left results missing is repeated for the same gap after the cap. */
  missing(counted: number, delivered: number, now: number): boolean {
    return this.gate.missing(counted, delivered, now);
  }

  /** See `ReReadGate.reReadEnded`. */
  reReadEnded(counted: number, delivered: number, now: number): number {
    return this.gate.reReadEnded(counted, delivered, now);
  }
}
