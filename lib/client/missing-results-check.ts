// When a results stream that waits for missing results asks the table how many tasks ended (see SessionHandle.results).

/** How long a results stream waits without a new result before it compares counts, by default. */
export const MISSING_RESULTS_CHECK_MS = 20_000;

/** Throws a `RangeError` naming the value unless `periodMs` is a positive number of milliseconds (or Infinity). */
export function validMissingResultsCheckMs(periodMs: number): number {
  if (!(periodMs > 0)) {
    throw new RangeError(
      `missingResultsCheckMs must be a positive number of milliseconds, or Infinity to never check (got ${periodMs})`,
    );
  }
  return periodMs;
}

/**
 * A results stream's count check: due once `periodMs` passed without a new result, then every `periodMs` while none
 * comes. A stream whose results flow never checks; `Infinity` turns the check off.
 */
export class MissingResultsCheck {
  private dueAt: number;

  constructor(
    private readonly periodMs: number,
    now: number,
  ) {
    validMissingResultsCheckMs(periodMs);
    this.dueAt = now + periodMs;
  }

  /** A new result was delivered at `now`: the next check waits a full period from it. */
  progressed(now: number): void {
    this.dueAt = now + this.periodMs;
  }

  /** The table was counted (and what it held read) at `now`. */
  checked(now: number): void {
    this.dueAt = now + this.periodMs;
  }

  due(now: number): boolean {
    return now >= this.dueAt;
  }

  /** How long from `now` until the check is due (0 when it is): a waiting stream wakes no later. */
  untilDue(now: number): number {
    return Math.max(0, this.dueAt - now);
  }
}
