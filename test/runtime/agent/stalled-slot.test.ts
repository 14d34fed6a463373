// Tasks sent ahead to a slot's Python runtime (queuedPerSlot) while it runs a task that turns out long: they are
// taken back and run in the idle slot, never twice, with real python3 runtimes.
import fs from 'node:fs';
import path from 'node:path';
import { applyOverrides, compileConfig } from '../../../lib/core';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../../lib/runtime/local';
import type { TaskResult } from '../../../lib/client';
import { FIXTURES as RUNTIME_FIXTURES, waitFor } from '../local/helpers';
import type { Agent, AgentOptions } from '../../../lib/runtime/agent';
import { gridForEachTest, tempDir } from '../../support/local-grid';

const TASK_ROOT = path.join(RUNTIME_FIXTURES, 'python');

describe('an agent sending tasks ahead to busy Python runtimes', () => {
  const each = gridForEachTest();

  async function startAgent(slots = 2, options: Partial<AgentOptions> = {}): Promise<Agent> {
    return each.startAgent({
      ...options,
      config: compileConfig(applyOverrides({ slots, empty_task_queue_backoff_timeout_sec: 0.01 }, {}), 'test'),
      receiveWaitMs: 50,
      queuedPerSlot: 2,
      // No run reaches it however loaded the machine: tasks are always sent ahead while others wait.
      queueBelowMs: 60_000,
      createInvoker: (slot) =>
        createLocalInvoker({
          taskRoot: TASK_ROOT,
          handler: 'worker.wait_for',
          runtime: resolveRuntime('python3.12'),
          pythonExecutable: 'python3',
          slotIndex: slot,
          maxQueued: 2,
        }),
    });
  }

  it('runs the short tasks queued behind a long one in the idle slot, each once, while the long one runs', async () => {
    const dir = tempDir('htcgrid-stalled-');
    const until = path.join(dir, 'release');
    const mark = path.join(dir, 'starts');
    await startAgent();
    const { client } = each.grid();
    // A burst of short tasks: recent runs are short, so tasks are sent ahead to busy runtimes.
    const burst = await client.submit(Array.from({ length: 200 }, (_, i) => ({ i })));
    const burstResults: TaskResult[] = [];
    for await (const r of burst.results({ pollIntervalMs: 5 })) burstResults.push(r);
    expect(burstResults.filter((r) => r.state === 'succeeded')).toHaveLength(200);

    // One long task, then short ones right behind it (some go ahead to its runtime).
    const shorts = 20;
    const session = await client.submit([
      { i: 0, until, mark },
      ...Array.from({ length: shorts }, (_, n) => ({ i: n + 1, mark })),
    ]);
    const ended = new Map<number, TaskResult>();
    const reading = (async () => {
      for await (const r of session.results({ pollIntervalMs: 5 })) ended.set(r.index, r);
    })();

    // Every short task ends while the long one still runs (it ends only once the file below is written).
    await waitFor(() => ended.size >= shorts, 30_000).catch(() => undefined);
    const shortsEnded = [...ended.keys()].filter((i) => i > 0).length;
    const longEnded = ended.has(0);
    fs.writeFileSync(until, '');
    await reading;

    expect({ shortsEnded, longEnded }).toEqual({ shortsEnded: shorts, longEnded: false });
    expect([...ended.values()].map((r) => r.state)).toEqual(Array(shorts + 1).fill('succeeded'));
    // Each ran once: one start line per task.
    const starts = fs.readFileSync(mark, 'utf8').trim().split('\n').map(Number);
    expect(starts.sort((a, b) => a - b)).toEqual(Array.from({ length: shorts + 1 }, (_, i) => i));
  });

  it('hands back on stop the tasks sent ahead into a runtime that has not started them, while the long one runs', async () => {
    const dir = tempDir('htcgrid-stalled-');
    const until = path.join(dir, 'release');
    const mark = path.join(dir, 'starts');
    // One slot, and tasks never taken back for a stall: only the drain takes them back.
    const agent = await startAgent(1, { stalledAfterMs: 600_000, prefetch: 8 });
    const { client, backends } = each.grid();
    const burst = await client.submit(Array.from({ length: 100 }, (_, i) => ({ i })));
    for await (const r of burst.results({ pollIntervalMs: 5 })) expect(r.state).toBe('succeeded');
    const session = await client.submit([{ i: 0, until, mark }, ...[1, 2, 3, 4].map((i) => ({ i, mark }))]);
    // The long one started and at least three more are held: two sent ahead into the runtime (maxQueued), one ready.
    // (With one waiting ready, the agent receives only full batches: the fourth may still be in the queue.)
    await waitFor(() => agent.stats.claimed >= 104 && fs.existsSync(mark), 30_000);
    const held = agent.stats.claimed - 101;

    const stopped = agent.stop(600_000);
    // Every one it held is back in the queue while the long one still runs (it ends once the file below is written).
    await waitFor(() => agent.stats.released >= held, 30_000).catch(() => undefined);
    const counts = await backends.table.countByState(session.sessionId);
    fs.writeFileSync(until, '');
    await stopped;

    expect({ released: agent.stats.released, pending: counts.pending, running: counts.running }).toEqual({
      released: held,
      pending: 4,
      running: 1,
    });
    // None of them started; the long one ended.
    expect(fs.readFileSync(mark, 'utf8')).toBe('0\n');
    expect((await backends.table.countByState(session.sessionId)).succeeded).toBe(1);
  });
});
