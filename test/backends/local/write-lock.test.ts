// The in-process write lock of the grid database: exclusive, re-entrant, released on errors, never waits forever.
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

  it('makes another holder of the same memory wait, and goes on without the lock once maxWaitMs passed', () => {
    const memory = WriteLock.memory();
    const holder = new WriteLock(memory, 1_000);
    const waiter = new WriteLock(memory, 50);

    // A holder that never lets go (as a thread that died mid-transaction would).
    const ran = holder.run(() => waiter.run(() => 'ran anyway'));

    expect(ran).toBe('ran anyway');
    expect(Atomics.load(new Int32Array(memory), 0)).toBe(0);
  });
});
