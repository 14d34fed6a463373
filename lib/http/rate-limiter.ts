// A token bucket per caller: `ratePerSec` requests per second on average, `burst` at once.

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly clock: () => number = Date.now,
    /** Callers tracked at most; the least recently seen are forgotten (they start again with a full bucket). */
    private readonly maxCallers = 10_000,
  ) {}

  /** Takes one token for `caller`: 0 when the request may go ahead, else the seconds to wait before retrying. */
  take(caller: string): number {
    const now = this.clock();
    const bucket = this.buckets.get(caller) ?? { tokens: this.burst, at: now };
    this.buckets.delete(caller);
    this.buckets.set(caller, bucket);
    if (this.buckets.size > this.maxCallers) this.buckets.delete(this.buckets.keys().next().value!);
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSec);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.ratePerSec));
  }
}
