// Orders the writers of one process (the main thread and agent threads) on the grid database without sleeping.

/**
 * A mutex in shared memory that the threads of one process take around each write transaction. SQLite's own lock
 * still guarantees exclusion (and orders other processes); this one only replaces its busy handler's sleeps of
 * 1, 2, 5, 10… ms between threads of one process by a wake-up the moment the holder commits. A thread that waits
 * longer than `maxWaitMs` (a holder that died) goes on without it and leaves the rest to SQLite.
 */
export class WriteLock {
  private readonly state: Int32Array;
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
    const owned = this.acquire();
    this.depth = 1;
    try {
      return fn();
    } finally {
      this.depth = 0;
      if (owned) {
        Atomics.store(this.state, 0, 0);
        Atomics.notify(this.state, 0, 1);
      }
    }
  }

  private acquire(): boolean {
    const until = Date.now() + this.maxWaitMs;
    while (Atomics.compareExchange(this.state, 0, 0, 1) !== 0) {
      const left = until - Date.now();
      if (left <= 0) return false;
      Atomics.wait(this.state, 0, 1, left);
    }
    return true;
  }
}
