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

  it('a read by key of what the set lacks rides in the cursor with the set; without the set it is a read from the first result', () => {
    const sent = allBut(10, [4]);
    const at = { createdAt: 1, listing: '42', delivered: 9, check: {} };
    const reRead = { counted: 10, before: 9, byKeys: true };

    const withSet = decodeResultsCursor(encodeResultsCursor({ ...at, reRead }, packSentTasks(sent)));
    const withoutSet = decodeResultsCursor(encodeResultsCursor({ ...at, reRead }, undefined));
    const json = { c: '42', n: 9, k: 10, b: 9, r: 1 };
    const forged = Buffer.from(JSON.stringify(json)).toString('base64url');

    expect(withSet.reRead).toEqual(reRead);
    expect(withoutSet.reRead).toEqual({ counted: 10, before: 9 });
    expect(() => decodeResultsCursor(forged)).toThrow(/invalid results cursor/);
    expect(encodeResultsCursor({ ...at, reRead: { counted: 10, before: 9 } }, packSentTasks(sent))).not.toBe(
      encodeResultsCursor({ ...at, reRead }, packSentTasks(sent)),
    );
  });

  it('the mark of tasks sent past the listing by a read by key rides only with the set', () => {
    const sent = allBut(10, [4]);
    const at = { createdAt: 1, listing: '42', delivered: 9, check: {}, reRead: undefined };
    const forged = Buffer.from(JSON.stringify({ c: '42', n: 9, o: 1 })).toString('base64url');

    expect(decodeResultsCursor(encodeResultsCursor({ ...at, outOfOrder: true }, packSentTasks(sent))).outOfOrder).toBe(
      true,
    );
    expect(decodeResultsCursor(encodeResultsCursor(at, packSentTasks(sent))).outOfOrder).toBeUndefined();
    expect(decodeResultsCursor(encodeResultsCursor({ ...at, outOfOrder: true }, undefined)).outOfOrder).toBeUndefined();
    expect(() => decodeResultsCursor(forged)).toThrow(/invalid results cursor/);
  });

  it('its marks (a read by key, tasks sent past the listing) ride in a third segment, which every server version since the set refuses, not in the JSON an earlier server would read without them', () => {
    const sent = allBut(10, [4]);
    const at = { createdAt: 1, listing: '42', delivered: 9, check: {} };
    const reRead = { counted: 10, before: 9, byKeys: true };
    const marked = encodeResultsCursor({ ...at, reRead, outOfOrder: true }, packSentTasks(sent));
    const plain = encodeResultsCursor({ ...at, reRead: undefined }, packSentTasks(sent));
    // The check of the cursor's shape on every server version since 2fec8d0: a head, a set, nothing after.
    const earlierServerRefuses = (text: string): boolean => text.split('.').length > 2;
    const json = (text: string): Record<string, unknown> =>
      JSON.parse(Buffer.from(text.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;

    expect(earlierServerRefuses(marked)).toBe(true);
    expect(earlierServerRefuses(plain)).toBe(false);
    expect(json(marked)).not.toHaveProperty('o');
    expect(json(marked)).not.toHaveProperty('r');
    expect(decodeResultsCursor(marked)).toMatchObject({ reRead, outOfOrder: true });
    expect(() => decodeResultsCursor(`${marked}x`)).toThrow(/invalid results cursor/);
    expect(() => decodeResultsCursor(`${plain}.`)).toThrow(/invalid results cursor/);
  });

  it('a cursor of the versions that wrote the marks in its JSON resumes with them', () => {
    const sent = allBut(10, [4]);
    const head = Buffer.from(JSON.stringify({ c: '42', n: 9, k: 10, b: 9, r: 1, t: 1, o: 1 })).toString('base64url');

    const back = decodeResultsCursor(`${head}.${packSentTasks(sent)!.toString('base64url')}`);

    expect(back).toMatchObject({ reRead: { counted: 10, before: 9, byKeys: true }, outOfOrder: true });
  });

  it('a cursor refused says which of its checks failed', () => {
    const json = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const set = packSentTasks(allBut(3, []))!.toString('base64url');

    expect(() => decodeResultsCursor('%%%')).toThrow(/is not base64url JSON/);
    expect(() => decodeResultsCursor(json({ c: 5, n: 0 }))).toThrow(/c \(the listing part\) is neither text nor null/);
    expect(() => decodeResultsCursor(json({ c: null, n: -1 }))).toThrow(/n \(results delivered\)/);
    expect(() => decodeResultsCursor(json({ c: null, n: 0, w: 0 }))).toThrow(/w \(the wait\)/);
    expect(() => decodeResultsCursor(`${json({ c: null, n: 2 })}.${set}`)).toThrow(
      /holds 3 tasks where its count n says 2/,
    );
    expect(() => decodeResultsCursor(`${json({ c: null, n: 3 })}.AAAA`)).toThrow(/is not a deflated set/);
    expect(() => decodeResultsCursor(`${json({ c: null, n: 3 })}.${set}.x`)).toThrow(/third part 'x' is not its marks/);
    expect(() => decodeResultsCursor('a.b.c.d')).toThrow(/4 '.'-separated parts, at most 3/);
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

  it('a set packed again deflates only the blocks (64 KB) that changed since, and unpacks to the same set', () => {
    const sent = allBut(1_200_000, [7]); // 150,000 bytes: three blocks
    const first = packSentTasks(sent)!;
    const deflate = jest.spyOn(zlib, 'deflateRawSync');
    try {
      sent.add(7);
      sent.add(1_200_000);
      const again = packSentTasks(sent)!;
      const unchanged = packSentTasks(sent)!;

      // Blocks 0 and 2 changed, block 1 did not; packed again unchanged, nothing is deflated.
      expect(deflate.mock.calls.map(([bytes]) => (bytes as Uint8Array).length)).toEqual([65_536, 150_001 - 131_072]);
      const back = decodeResultsCursor(cursorWith(1_200_001, again)).sent!;
      expect(back.size).toBe(1_200_001);
      expect(Buffer.compare(back.toBytes(), sent.toBytes())).toBe(0);
      expect(Buffer.compare(unchanged, again)).toBe(0);
      expect(decodeResultsCursor(cursorWith(1_199_999, first)).sent!.has(7)).toBe(false);
    } finally {
      deflate.mockRestore();
    }
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
