// The agent's micro-batcher on a fake clock: when batches go out, how big they are, and that drain writes the rest.
import { MicroBatcher } from '../lib/micro-batcher';

interface Harness {
  readonly batcher: MicroBatcher<number>;
  readonly written: number[][];
  readonly errors: unknown[];
  /** Holds the next write open until released. */
  hold: () => () => void;
}

function harness(options: { maxBatch: number; maxDelayMs: number; failOn?: number }): Harness {
  const written: number[][] = [];
  const errors: unknown[] = [];
  let gate: Promise<void> | undefined;
  const batcher = new MicroBatcher<number>({
    ...options,
    write: async (batch) => {
      if (gate) await gate;
      if (batch.includes(options.failOn ?? -1)) throw new Error(`cannot write ${options.failOn}`);
      written.push(batch);
    },
    onError: (err) => errors.push(err),
  });
  return {
    batcher,
    written,
    errors,
    hold: () => {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

describe('MicroBatcher', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('an item below a full batch waits maxDelayMs for others, then goes out with them in one write', async () => {
    const { batcher, written } = harness({ maxBatch: 10, maxDelayMs: 50 });
    batcher.add(1);
    await jest.advanceTimersByTimeAsync(30);
    batcher.add(2);
    await jest.advanceTimersByTimeAsync(19);
    expect(written).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    // The delay counts from the first item of the batch, not the last.
    expect(written).toEqual([[1, 2]]);
  });

  it('flush cuts what waits into a batch at once, without waiting for the delay', async () => {
    const { batcher, written } = harness({ maxBatch: 10, maxDelayMs: 10_000 });
    batcher.add(1);
    batcher.flush();
    await jest.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1]]);
    expect(batcher.waiting).toBe(0);
    // Its timer went with it: a later item waits its own full delay.
    batcher.add(2);
    await jest.advanceTimersByTimeAsync(9_999);
    expect(written).toEqual([[1]]);
    await jest.advanceTimersByTimeAsync(1);
    expect(written).toEqual([[1], [2]]);
  });

  it('a full batch is cut at once and written without waiting for the delay', async () => {
    const { batcher, written } = harness({ maxBatch: 3, maxDelayMs: 10_000 });
    [1, 2, 3].forEach((n) => batcher.add(n));
    expect(written).toEqual([]);
    await jest.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1, 2, 3]]);
    expect(batcher.waiting).toBe(0);
  });

  it('writes never hold more than maxBatch items and keep the order items were added in', async () => {
    const { batcher, written } = harness({ maxBatch: 2, maxDelayMs: 5 });
    [1, 2, 3, 4, 5].forEach((n) => batcher.add(n));
    await jest.advanceTimersByTimeAsync(5);
    expect(written).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('items added while a write is under way wait for it, then for their own batch to fill or their delay', async () => {
    const { batcher, written, hold } = harness({ maxBatch: 3, maxDelayMs: 50 });
    const release = hold();
    [1, 2, 3].forEach((n) => batcher.add(n));
    await jest.advanceTimersByTimeAsync(0);
    batcher.add(4);
    await jest.advanceTimersByTimeAsync(10);
    release();
    await jest.advanceTimersByTimeAsync(0);
    // Not written as a batch of one right after the slow write: it waits its 50 ms for others.
    expect(written).toEqual([[1, 2, 3]]);
    batcher.add(5);
    await jest.advanceTimersByTimeAsync(39);
    expect(written).toEqual([[1, 2, 3]]);
    await jest.advanceTimersByTimeAsync(1);
    expect(written).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('drain writes what is buffered at once and resolves only after it was written', async () => {
    const { batcher, written } = harness({ maxBatch: 10, maxDelayMs: 60_000 });
    batcher.add(1);
    batcher.add(2);
    await batcher.drain();
    expect(written).toEqual([[1, 2]]);
    // No timer left behind to write an empty batch later.
    await jest.advanceTimersByTimeAsync(60_000);
    expect(written).toEqual([[1, 2]]);
  });

  it('a failed write is reported with its batch and the batches after it are still written', async () => {
    const { batcher, written, errors } = harness({ maxBatch: 2, maxDelayMs: 5, failOn: 2 });
    [1, 2, 3].forEach((n) => batcher.add(n));
    await batcher.drain();
    expect(errors).toEqual([new Error('cannot write 2')]);
    expect(written).toEqual([[3]]);
  });
});
