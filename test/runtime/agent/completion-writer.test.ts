// Writing a batch of finished attempts against fake ports: order of the writes, retries, and giving up to the reaper.
import {
  MAX_WRITE_TRIES,
  writeCompletions,
  type PendingCompletion,
} from '../../../lib/runtime/agent/completion-writer';
import { silentLogger } from '../../../lib/logging';
import type { Completion, CompletionResult, QueueMessage, TaskQueue, TaskTable } from '../../../lib/ports';

function fakePorts(failures: number) {
  const calls: string[] = [];
  let left = failures;
  const queue = {
    send: async (messages: readonly QueueMessage[]) => {
      calls.push(`send ${messages.map((m) => m.taskId).join(',')}`);
    },
  } as unknown as TaskQueue;
  const table = {
    complete: async (completions: readonly Completion[]): Promise<CompletionResult[]> => {
      calls.push(`complete ${completions.map((c) => c.taskId).join(',')}`);
      if (left-- > 0) throw new Error('table unavailable');
      return completions.map((c) => ({ taskId: c.taskId, status: c.taskId === 'b' ? 'stale' : 'recorded' }));
    },
  } as unknown as TaskTable;
  return { queue, table, calls };
}

const batch: PendingCompletion[] = [
  {
    completion: { taskId: 'a', guard: { owner: 'me', attempt: 1 }, outcome: { kind: 'released' }, at: 1 },
    requeue: { taskId: 'a', sessionId: 's', attempt: 1, priority: 0 },
  },
  {
    completion: {
      taskId: 'b',
      guard: { owner: 'me', attempt: 1 },
      outcome: { kind: 'succeeded', result: { inline: '1' } },
      at: 1,
    },
  },
];

/** Writes `batch` against ports whose first `failures` table writes fail; what was called, waited and reported. */
async function write(failures: number) {
  const { queue, table, calls } = fakePorts(failures);
  const waits: number[] = [];
  const results: string[] = [];
  await writeCompletions(batch, {
    queue,
    table,
    logger: silentLogger(),
    sleep: async (ms) => void waits.push(ms),
    onWritten: (item, status) => results.push(`${item.completion.taskId}:${status}`),
  });
  return { calls, waits, results };
}

describe('writeCompletions', () => {
  it('sends the re-queue messages before the table write and reports each result', async () => {
    const { calls, waits, results } = await write(0);
    expect(calls).toEqual(['send a', 'complete a,b']);
    expect(waits).toEqual([]);
    expect(results).toEqual(['a:recorded', 'b:stale']);
  });

  it('retries a failed write with back-off, sending the messages again (a duplicate message is dropped by its claim)', async () => {
    const { calls, waits, results } = await write(2);
    expect(calls).toEqual(['send a', 'complete a,b', 'send a', 'complete a,b', 'send a', 'complete a,b']);
    expect(waits).toHaveLength(2);
    expect(results).toEqual(['a:recorded', 'b:stale']);
  });

  it(`gives the batch up to the reaper as unwritten after ${MAX_WRITE_TRIES} failed tries, never rejecting`, async () => {
    const { calls, waits, results } = await write(Number.POSITIVE_INFINITY);
    expect(calls.filter((c) => c.startsWith('complete'))).toHaveLength(MAX_WRITE_TRIES);
    expect(waits).toHaveLength(MAX_WRITE_TRIES - 1);
    // Equal jitter: each wait is at least half its ceiling (100 ms doubling).
    waits.forEach((ms, i) => expect(ms).toBeGreaterThanOrEqual(Math.min(10_000, 100 * 2 ** i) / 2));
    expect(results).toEqual(['a:unwritten', 'b:unwritten']);
  });
});
