// Orders the writers of one process (the main thread and agent threads) on the grid database without sleeping.
import { threadId } from 'node:worker_threads';

/**
 * A mutex in shared memory that the threads of one process take around each write transaction. SQLite's own lock
 * still guarantees exclusion (and orders other processes); this one only replaces its busy handler's sleeps of
 * 1, 2, 5, 10… ms between threads of one process by a wake-up the moment the holder commits. The lock word holds the
 * holder's thread id + 1. A thread that waits longer than `maxWaitMs` for one holder (a thread that died holding it)
 * takes the lock over from that holder, so one dead thread costs one wait, not one per write from then on; should the
 * holder be alive after all, SQLite still keeps the two apart.
 */
export class WriteLock {
  private readonly state: Int32Array;
  private readonly token = threadId + 1;
  private depth = 0;

  /** Memory for a lock to share with other threads (pass it in their `workerData`). */
  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  }

  constructor(
    memory: SharedArrayBuffer,
    private readonly maxWaitMs: number,
  ) {
    this.state = new Int32Array(memory, 0, 1);
  }

  /** Runs `fn` holding the lock (re-entrant within a thread). */
  run<T>(fn: () => T): T {
    if (this.depth > 0) {
      this.depth++;
      try {
        return fn();
      } finally {
        this.depth--;
      }
    }
    this.acquire();
    return this.holding(fn);
  }

  /**
   * Runs `fn` holding the lock if no other thread holds it, and returns true; returns false at once, without running
   * it, if one does. For a thread that should never make the writers wait for it (the checkpoint thread).
   */
  tryRun(fn: () => void): boolean {
    if (this.depth === 0 && Atomics.compareExchange(this.state, 0, 0, this.token) !== 0) return false;
    if (this.depth > 0) this.run(fn);
    else this.holding(fn);
    return true;
  }

  /** Runs `fn` with the lock just taken, then frees it. */
  private holding<T>(fn: () => T): T {
    this.depth = 1;
    try {
      return fn();
    } finally {
      this.depth = 0;
      // Only if still ours: a lock taken over from us (we were too slow) is no longer ours to free.
      if (Atomics.compareExchange(this.state, 0, this.token, 0) === this.token) Atomics.notify(this.state, 0, 1);
    }
  }

  private acquire(): void {
    let holder = Atomics.compareExchange(this.state, 0, 0, this.token);
    let until = Date.now() + this.maxWaitMs;
    while (holder !== 0) {
      const left = until - Date.now();
      if (left <= 0) {
        // The same holder all along: take over from it (unless it let go or someone else took over meanwhile).
        const seen = Atomics.compareExchange(this.state, 0, holder, this.token);
        if (seen === holder) return;
        holder = seen;
        until = Date.now() + this.maxWaitMs;
        continue;
      }
      Atomics.wait(this.state, 0, holder, left);
      const next = Atomics.compareExchange(this.state, 0, 0, this.token);
      // A new holder gets a full wait of its own.
      if (next !== holder) until = Date.now() + this.maxWaitMs;
      holder = next;
    }
  }
}
