// One buffer-plus-timer batcher for the agent's writes (completions, acknowledgements): items wait a few
// milliseconds so that one request carries many of them.

export interface MicroBatcherOptions<T> {
  /** Most items one `write` gets; a buffer this full is written on the next turn of the event loop. */
  readonly maxBatch: number;
  /** An item waits at most this long for others to join its batch. */
  readonly maxDelayMs: number;
  /**
   * Writes one batch. Batches are written one at a time, in order. It handles its own failures (retry, log, report):
   * a rejection is passed to `onError` and the batch is not written again.
   */
  readonly write: (batch: T[]) => Promise<void>;
  readonly onError: (err: unknown, batch: readonly T[]) => void;
}

export class MicroBatcher<T> {
  private buffer: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The delay the pending timer was set with: a full buffer brings it forward, nothing puts it back. */
  private timerDelayMs = 0;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly options: MicroBatcherOptions<T>) {}

  /** Items waiting for their batch (not those being written). */
  get waiting(): number {
    return this.buffer.length;
  }

  add(item: T): void {
    this.buffer.push(item);
    this.schedule(this.buffer.length >= this.options.maxBatch ? 0 : this.options.maxDelayMs);
  }

  /** Resolves once every item added so far was written (or its failure reported). */
  async drain(): Promise<void> {
    this.cancelTimer();
    this.flush();
    await this.flushing;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) {
      if (delayMs >= this.timerDelayMs) return;
      this.cancelTimer();
    }
    this.timerDelayMs = delayMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, delayMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Queues the writing of everything buffered by then, in batches of `maxBatch`, behind the writes under way. */
  private flush(): void {
    this.flushing = this.flushing.then(async () => {
      while (this.buffer.length > 0) {
        const batch = this.buffer.splice(0, this.options.maxBatch);
        try {
          await this.options.write(batch);
        } catch (err) {
          this.options.onError(err, batch);
        }
      }
    });
  }
}
