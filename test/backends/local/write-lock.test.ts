// The in-process write lock of the grid database: exclusive, re-entrant, released on errors, never waits forever.
import { threadId, Worker } from 'node:worker_threads';
import { WriteLock } from '../../../lib/backends/local';

describe('WriteLock', () => {
  it('runs the function holding the lock, re-entrantly, and frees it afterwards even when the function throws', () => {
    const memory = WriteLock.memory();
    const lock = new WriteLock(memory, 1_000);
    const state = new Int32Array(memory);

    const inner = lock.run(() => lock.run(() => Atomics.load(state, 0)));
    expect(inner).toBe(1);
    expect(Atomics.load(state, 0)).toBe(0);
    expect(() =>
      lock.run(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(Atomics.load(state, 0)).toBe(0);
  });

  it('tryRun runs the function only while nobody else holds the lock, without waiting, and frees it afterwards', () => {
    const memory = WriteLock.memory();
    const holder = new WriteLock(memory, 1_000);
    const other = new WriteLock(memory, 60_000);
    const state = new Int32Array(memory);
    const ran: string[] = [];

    // Held by another instance (as by another thread): false at once, not after its 60 s wait.
    expect(holder.run(() => other.tryRun(() => ran.push('while held')))).toBe(false);
    expect(other.tryRun(() => ran.push(`free, holding ${Atomics.load(state, 0)}`))).toBe(true);
    expect(other.run(() => other.tryRun(() => ran.push('re-entered')))).toBe(true);
    expect(ran).toEqual([`free, holding ${threadId + 1}`, 're-entered']);
    expect(Atomics.load(state, 0)).toBe(0);
    expect(() =>
      other.tryRun(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(Atomics.load(state, 0)).toBe(0);
  });

  it('makes another holder of the same memory wait, and takes the lock over once maxWaitMs passed', () => {
    const memory = WriteLock.memory();
    const holder = new WriteLock(memory, 1_000);
    const waiter = new WriteLock(memory, 50);

    // A holder that never lets go (as a thread that died mid-transaction would).
    const ran = holder.run(() => waiter.run(() => 'ran anyway'));

    expect(ran).toBe('ran anyway');
    expect(Atomics.load(new Int32Array(memory), 0)).toBe(0);
  });

  it('takes the lock over from a thread that died holding it, so later writes no longer wait', async () => {
    const memory = WriteLock.memory();
    // A worker thread that takes the lock word (its thread id + 1, as `run` does) and exits without freeing it.
    const dead = new Worker(
      "const { threadId, workerData } = require('node:worker_threads'); Atomics.store(new Int32Array(workerData), 0, threadId + 1);",
      { eval: true, workerData: memory },
    );
    const deadToken = dead.threadId + 1;
    await new Promise((resolve) => dead.once('exit', resolve));
    const word = new Int32Array(memory);
    const heldByDead = Atomics.load(word, 0);
    const lock = new WriteLock(memory, 50);
    // Counts the waits instead of timing them: a write that finds the lock free never calls Atomics.wait.
    const waits = jest.spyOn(Atomics, 'wait');

    try {
      const first = lock.run(() => Atomics.load(word, 0));
      const waitsForFirst = waits.mock.calls.length;
      const afterFirst = Atomics.load(word, 0);
      const later = [1, 2, 3].map(() => lock.run(() => Atomics.load(word, 0)));
      const waitsForLater = waits.mock.calls.length - waitsForFirst;

      expect(heldByDead).toBe(deadToken);
      expect(first).toBe(threadId + 1);
      expect(waitsForFirst).toBeGreaterThanOrEqual(1);
      expect(afterFirst).toBe(0);
      expect(later).toEqual([threadId + 1, threadId + 1, threadId + 1]);
      expect(waitsForLater).toBe(0);
    } finally {
      waits.mockRestore();
    }
  });
});
