// The bit set a results stream keeps of the tasks it delivered, so a task found twice is delivered once.
import { DeliveredTasks } from '../../lib/client/delivered-tasks';

describe('DeliveredTasks', () => {
  it('a task is added once: a second add of its index is refused and the size counts it once', () => {
    const delivered = new DeliveredTasks();

    const first = delivered.add(3);
    const again = delivered.add(3);

    expect([first, again]).toEqual([true, false]);
    expect(delivered.size).toBe(1);
    expect(delivered.has(3)).toBe(true);
    expect(delivered.has(2)).toBe(false);
  });

  it('indexes far apart and across byte boundaries are kept apart as the set grows', () => {
    const delivered = new DeliveredTasks();
    const indexes = [0, 7, 8, 9, 63, 64, 1_000_003, 512];

    for (const index of indexes) delivered.add(index);

    expect(delivered.size).toBe(indexes.length);
    for (const index of indexes) expect(delivered.has(index)).toBe(true);
    for (const index of [1, 6, 10, 62, 65, 511, 513, 1_000_002, 1_000_004, 5_000_000]) {
      expect(delivered.has(index)).toBe(false);
    }
  });

  it('an index that is not a whole number from 0 is refused with the value', () => {
    const delivered = new DeliveredTasks();

    expect(() => delivered.add(-1)).toThrow(/whole number from 0 \(got -1\)/);
    expect(() => delivered.add(1.5)).toThrow(/got 1.5/);
    expect(delivered.size).toBe(0);
  });

  it('a set rebuilt from its bytes holds the same indexes and size; the bytes end at the last byte that holds one', () => {
    const delivered = new DeliveredTasks();
    for (const index of [0, 9, 23, 1_000]) delivered.add(index);

    const bytes = delivered.toBytes();
    const rebuilt = DeliveredTasks.fromBytes(bytes);

    expect(bytes.length).toBe(126);
    expect(rebuilt.size).toBe(4);
    for (let index = 0; index <= 1_001; index++) expect(rebuilt.has(index)).toBe(delivered.has(index));
    expect(DeliveredTasks.fromBytes(new DeliveredTasks().toBytes()).size).toBe(0);
  });

  it('the bytes of a set rebuilt from bytes that end in zeros, then grown, end at the last byte that holds one', () => {
    const rebuilt = DeliveredTasks.fromBytes(Uint8Array.from([1, 0, 0]));
    const before = rebuilt.toBytes().length;
    rebuilt.add(20);
    const after = rebuilt.toBytes().length;
    rebuilt.add(1_000);
    rebuilt.add(900);

    expect([before, after, rebuilt.toBytes().length]).toEqual([1, 3, 126]);
  });
});
