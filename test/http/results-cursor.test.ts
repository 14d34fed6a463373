// The cursor of an HTTP API results stream carries which tasks the stream sent, compressed, within a URL's room.
import zlib from 'node:zlib';
import { DeliveredTasks } from '../../lib/client/delivered-tasks';
import {
  MAX_SENT_SET_BYTES,
  decodeResultsCursor,
  encodeResultsCursor,
  packSentTasks,
} from '../../lib/http/results-cursor';

/** Every index below `count` but those of `missing`. */
function allBut(count: number, missing: readonly number[]): DeliveredTasks {
  const set = new DeliveredTasks();
  const skip = new Set(missing);
  for (let i = 0; i < count; i++) if (!skip.has(i)) set.add(i);
  return set;
}

/** A cursor whose JSON says `n` tasks were sent, followed by `packed` as its set. */
function cursorWith(n: number, packed: Buffer): string {
  return `${Buffer.from(JSON.stringify({ c: '7', n })).toString('base64url')}.${packed.toString('base64url')}`;
}

describe('the cursor of a results stream', () => {
  it('gives back when the session was created, the listing, the count, the check state, the read from the first result and the set it was given', () => {
    const sent = allBut(1_000, [3, 500]);
    const check = { since: 1_000, waitMs: 4_000, unreachable: 2, unreachableAt: 900 };

    const text = encodeResultsCursor(
      { createdAt: 1_765_000_000_123, listing: '42', delivered: 998, check, reRead: { counted: 1_000, before: 990 } },
      packSentTasks(sent),
    );
    const back = decodeResultsCursor(text);

    expect(back).toMatchObject({
      createdAt: 1_765_000_000_123,
      listing: '42',
      delivered: 998,
      check,
      reRead: { counted: 1_000, before: 990 },
    });
    expect(back.sent?.size).toBe(998);
    expect([3, 500, 1_000].map((i) => back.sent?.has(i))).toEqual([false, false, false]);
    expect([0, 4, 999].map((i) => back.sent?.has(i))).toEqual([true, true, true]);
  });

  it('a cursor without a set (an earlier version, or one too large) resumes with the set unknown', () => {
    const text = encodeResultsCursor(
      { createdAt: undefined, listing: undefined, delivered: 5, check: {}, reRead: undefined },
      undefined,
    );

    expect(decodeResultsCursor(text)).toEqual({
      createdAt: undefined,
      listing: undefined,
      delivered: 5,
      check: {},
      reRead: undefined,
      sent: undefined,
    });
  });

  it('one task missing among a million takes a few hundred bytes; half a million scattered at random are left out', () => {
    const one = packSentTasks(allBut(1_000_000, [123_456]));
    let seed = 7;
    const random = new DeliveredTasks();
    for (let i = 0; i < 500_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      random.add(seed % 1_000_000);
    }

    expect(one!.length).toBeLessThan(300);
    expect(packSentTasks(random)).toBeUndefined();
    expect(MAX_SENT_SET_BYTES).toBe(4096);
  });

  it.each([
    ['a set that disagrees with the count', cursorWith(3, packSentTasks(allBut(2, []))!)],
    ['a set that is not deflated data', cursorWith(0, Buffer.from('not deflated'))],
    ['a set that unpacks to more than 16 MiB', cursorWith(0, zlib.deflateRawSync(Buffer.alloc(17 * 1024 * 1024)))],
    ['more than one set', `${cursorWith(0, packSentTasks(new DeliveredTasks())!)}.AA`],
  ])('%s is refused as an invalid cursor', (_what, text) => {
    expect(() => decodeResultsCursor(text)).toThrow(
      expect.objectContaining({ status: 400, code: 'InvalidCursorError' }) as Error,
    );
  });
});
