// The live overview's snapshots: completions per second stay steady when events go out many times a second.
import type { StateCounts } from '../../lib/core';
import { NO_AGENTS, OverviewTracker } from '../../lib/http';
import type { TaskTable } from '../../lib/ports';

/** A table with one session whose finished count the test sets. */
function oneSessionTable(counts: StateCounts): TaskTable {
  const session = {
    sessionId: 's',
    createdAt: 0,
    priority: 0,
    maxAttempts: 1,
    timeoutMs: 1000,
    nonRetryableErrorTypes: [],
    taskCount: 1_000_000,
  };
  return {
    listSessions: async () => ({ items: [session] }),
    countByState: async () => ({ ...counts }),
  } as unknown as TaskTable;
}

test('completions per second are counted over a second at least, however close the snapshots', async () => {
  const counts: StateCounts = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  let now = 0;
  const tracker = new OverviewTracker(oneSessionTable(counts), NO_AGENTS, 20, () => now);
  expect((await tracker.snapshot()).totals.completionsPerSec).toBe(0);
  // 1000 tasks a second, in snapshots 100 ms apart.
  const rates: number[] = [];
  for (let i = 1; i <= 30; i++) {
    now = i * 100;
    counts.succeeded = i * 100;
    rates.push((await tracker.snapshot()).totals.completionsPerSec);
  }
  expect(new Set(rates)).toEqual(new Set([1000]));
  // Nothing ends for half a second: the rate falls by half over the window, not to 0 at once.
  now += 500;
  expect((await tracker.snapshot()).totals.completionsPerSec).toBe(500);
});
