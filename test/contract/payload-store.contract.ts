// The PayloadStore contract: every adapter (files, S3) must pass it. Keys are unique per test.
import { randomBytes } from 'node:crypto';
import { payloadKeys, type PayloadStore } from '../../lib/ports';
import { setUpEachTest, uniqueId } from './contract-helpers';

export interface PayloadStoreUnderTest {
  readonly store: PayloadStore;
  cleanup(): Promise<void>;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Registers the PayloadStore contract tests. `factory` runs before each test; stores may be shared. */
export interface PayloadStoreContractOptions {
  /**
   * Whether the store under test replaces an object atomically when several writers race. Real S3 and the file store
   * do; the s3rver emulator writes in place and can leave a mix, so its run skips that one test.
   * @default true
   */
  readonly atomicConcurrentPuts?: boolean;
}

export function describePayloadStoreContract(
  name: string,
  factory: () => Promise<PayloadStoreUnderTest>,
  options: PayloadStoreContractOptions = {},
): void {
  describe(`${name} (PayloadStore contract)`, () => {
    let store: PayloadStore;
    setUpEachTest(factory, (underTest) => (store = underTest.store));

    const key = () => payloadKeys.input(uniqueId('s'), 't_0');

    it('a string put is read back as its UTF-8 bytes', async () => {
      const k = key();
      const text = '{"name":"Zoë","values":[1,2,3],"emoji":"🚀"}';

      await store.put(k, text);

      const read = await store.get(k);
      expect(Buffer.isBuffer(read)).toBe(true);
      expect(read.toString('utf8')).toBe(text);
    });

    it('a buffer put is read back byte for byte, including a large binary one', async () => {
      const small = key();
      const large = key();
      const bytes = randomBytes(3 * 1024 * 1024);

      await store.put(small, Buffer.from([0, 255, 1, 254]));
      await store.put(large, bytes);

      expect(await store.get(small)).toEqual(Buffer.from([0, 255, 1, 254]));
      expect((await store.get(large)).equals(bytes)).toBe(true);
    });

    it('an empty payload is stored and read back empty', async () => {
      const k = key();

      await store.put(k, '');

      expect((await store.get(k)).length).toBe(0);
    });

    it('putting a key again replaces its content', async () => {
      const k = key();
      await store.put(k, 'first, and longer than the second');

      await store.put(k, 'second');

      expect((await store.get(k)).toString()).toBe('second');
    });

    it('getting a key that was never written fails with an error naming the key', async () => {
      const k = key();

      await expect(store.get(k)).rejects.toThrow(new RegExp(escapeRegExp(k)));
    });

    it('deleted keys are gone, other keys stay, and deleting a missing key is not an error', async () => {
      const sessionId = uniqueId('s');
      const a = payloadKeys.input(sessionId, 'a');
      const b = payloadKeys.result(sessionId, 'a', 1);
      const kept = payloadKeys.input(sessionId, 'b');
      await Promise.all([store.put(a, 'a'), store.put(b, 'b'), store.put(kept, 'kept')]);

      await store.delete([a, b, payloadKeys.input(sessionId, 'never-written')]);

      await expect(store.get(a)).rejects.toThrow(new RegExp(escapeRegExp(a)));
      await expect(store.get(b)).rejects.toThrow(new RegExp(escapeRegExp(b)));
      expect((await store.get(kept)).toString()).toBe('kept');
    });

    it('deleting more keys than one service batch removes all of them', async () => {
      const sessionId = uniqueId('s');
      const keys = Array.from({ length: 30 }, (_, i) => payloadKeys.input(sessionId, `t_${i}`));
      await Promise.all(keys.map((k) => store.put(k, k)));

      await store.delete(keys);

      const results = await Promise.allSettled(keys.map((k) => store.get(k)));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
    });

    it("deleting a session's prefix removes every key under it and nothing of another session", async () => {
      const sessionId = uniqueId('s');
      const other = uniqueId('s');
      // Keys two levels down (task folder, then file), as the grid writes them.
      const keys = Array.from({ length: 30 }, (_, i) => payloadKeys.result(sessionId, `t_${i}`, 1 + (i % 2)));
      await Promise.all([...keys.map((k) => store.put(k, k)), store.put(payloadKeys.input(other, 't_0'), 'kept')]);

      await store.deletePrefix!(payloadKeys.sessionPrefix(sessionId));
      await store.deletePrefix!(payloadKeys.sessionPrefix(uniqueId('never-written')));

      const results = await Promise.allSettled(keys.map((k) => store.get(k)));
      expect(results.filter((r) => r.status === 'fulfilled')).toEqual([]);
      expect((await store.get(payloadKeys.input(other, 't_0'))).toString()).toBe('kept');
    });

    (options.atomicConcurrentPuts === false ? it.skip : it)(
      'concurrent puts of one key leave one complete value',
      async () => {
        const k = key();
        const values = Array.from({ length: 8 }, (_, i) => String(i).repeat(100_000));

        await Promise.all(values.map((v) => store.put(k, v)));

        expect(values).toContain((await store.get(k)).toString());
      },
    );
  });
}
