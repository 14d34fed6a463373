// Acknowledges queue messages in batches: each acknowledgement is a billed request in SQS, ten messages apiece.
import type { Logger } from 'pino';
import type { TaskQueue } from '../../ports';

export interface MessageAckerOptions {
  readonly queue: TaskQueue;
  readonly logger: Logger;
  /** Flush as soon as this many are waiting (SQS deletes at most 10 a request). @default 10 */
  readonly maxBatch?: number;
  /**
   * Flush at the latest this long after the first one arrived. A message kept a little longer only risks being
   * received again, which its claim then drops. @default 1000
   */
  readonly maxDelayMs?: number;
}

export class MessageAcker {
  private buffer: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: MessageAckerOptions) {
    this.maxBatch = options.maxBatch ?? 10;
    this.maxDelayMs = options.maxDelayMs ?? 1_000;
  }

  add(receipt: string): void {
    this.buffer.push(receipt);
    if (this.buffer.length >= this.maxBatch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Resolves once every receipt added so far was acknowledged (or the attempt failed and was logged). */
  async drain(): Promise<void> {
    this.flush();
    await this.flushing;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.maxBatch);
      this.flushing = this.flushing.then(() =>
        this.options.queue.ack(batch).catch((err: unknown) => {
          // Not lost: the messages reappear after their visibility timeout and their claims drop them.
          this.options.logger.warn({ err, messages: batch.length }, 'acknowledging messages failed');
        }),
      );
    }
  }
}
