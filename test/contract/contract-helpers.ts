// Helpers shared by the port contract suites: unique ids (so adapters may share one table) and polling waits.
import { randomBytes } from 'node:crypto';

/** An id no other test (nor an earlier run against a persistent table) uses. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/**
 * Calls `probe` until it returns a value other than `undefined`, or fails after `timeoutMs`. A probe that waits by
 * itself (a long-polling receive) is called back to back; others are spaced by `intervalMs`.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * The set-up every contract suite shares: a fresh adapter from `factory` before each test, handed to `take`, and
 * its `cleanup` after the test.
 */
export function setUpEachTest<T extends { cleanup(): Promise<void> }>(
  factory: () => Promise<T>,
  take: (underTest: T) => void,
): void {
  let current: T | undefined;
  beforeEach(async () => {
    current = await factory();
    take(current);
  });
  afterEach(async () => {
    const done = current;
    current = undefined;
    await done?.cleanup();
  });
}
