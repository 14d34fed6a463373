// One buffer-plus-timer batcher for the grid's writes (the agent's completions, the AWS intake's message deletes):
// items wait a few milliseconds so that one request carries many of them.

export interface MicroBatcherOptions<T> {
  /** Most items one `write` gets; a buffer this full is cut into a batch at once. */
  readonly maxBatch: number;
  /** An item waits at most this long (from the first item of its batch) for others to join it. */
  readonly maxDelayMs: number;
  /**
   * Writes one batch. Batches are written one at a time, in the order they were cut. It handles its own failures
   * (retry, log, report): a rejection is passed to `onError` and the batch is not written again.
   */
  readonly write: (batch: T[]) => Promise<void>;
  readonly onError: (err: unknown, batch: readonly T[]) => void;
}

/**
 * Batches are cut when `maxBatch` items wait (so SQS's ten-a-request acknowledgements go out exactly full) or when
 * the first waiting item has waited `maxDelayMs`; items added while earlier batches are written start a batch of
 * their own rather than trickling out behind a slow write.
 */
export class MicroBatcher<T> {
  private buffer: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: MicroBatcherOptions<T>) {}

  /** Items waiting for their batch (not those cut and being written). */
  get waiting(): number {
    return this.buffer.length;
  }

  add(item: T): void {
    this.buffer.push(item);
    if (this.buffer.length >= this.options.maxBatch) this.cut();
    else this.timer ??= setTimeout(() => this.cut(), this.options.maxDelayMs);
  }

  /** Cuts what waits into a batch now, without waiting for others to join it (nothing else is coming). */
  flush(): void {
    this.cut();
  }

  /** Resolves once every item added so far was written (or its failure reported). */
  async drain(): Promise<void> {
    this.cut();
    await this.writing;
  }

  /** Cuts everything waiting into batches of `maxBatch` and queues them behind the writes under way. */
  private cut(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.maxBatch);
      this.writing = this.writing.then(() =>
        this.options.write(batch).catch((err: unknown) => this.options.onError(err, batch)),
      );
    }
  }
}
