// The agent on a full disk, against fake ports whose every write fails with DiskFullError while a switch says the
// disk is full: a finished result waits in memory (the handler does not run again, no attempt is counted), intake
// pauses, one warning is logged, and once space is back the leases are extended before the results are written.
import { DiskFullError, type TaskRecord } from '../../../lib/core';
import { capturedLogger, fakeAgent, fakeSession, FakeInvoker, pendingTask } from '../../support/fake-ports';
import { waitFor } from '../../support/local-grid';

/** The disk every fake writes to; `writes` lists what was written, in order, once there was space. */
class FakeDisk {
  full = false;
  readonly writes: string[] = [];
  refused = 0;

  write(what: string): void {
    if (this.full) {
      this.refused++;
      throw new DiskFullError(what);
    }
    this.writes.push(what);
  }
}

function setup() {
  const disk = new FakeDisk();
  const { logger, lines } = capturedLogger('info');
  const fullChanges: boolean[] = [];
  const fakes = fakeAgent({
    session: fakeSession({ maxAttempts: 1 }),
    beforeWrite: (what) => disk.write(what),
    // Results over 32 bytes go to the payload store, the other write a full disk refuses.
    overrides: { inline_payload_max_bytes: 32, lease_check_interval_sec: 0.02 },
    // Room to receive while a task runs: intake would claim the tasks queued meanwhile if it did not pause.
    prefetch: 2,
    receiveWaitMs: 10,
    logger,
    onDiskFull: (full) => fullChanges.push(full),
  });
  return { ...fakes, disk, lines, fullChanges };
}

const task = (i: number): TaskRecord => pendingTask(i, '{}', fakeSession({ maxAttempts: 1 }));

/** Ends the `n`th invocation with `result-<taskId>`, a result too long to travel inline. */
function finish(invoker: FakeInvoker, n: number): void {
  const { invocation, finish: end } = invoker.invocations[n]!;
  end({ ok: true, resultJson: JSON.stringify(`result-${invocation.taskId}`.padEnd(64, '.')) });
}

describe('the agent on a full disk (fake ports)', () => {
  it('keeps a result it cannot write, pauses intake, warns once, and records it once space is back, in its only attempt', async () => {
    const { agent, disk, table, intake, invoker, lines, fullChanges } = setup();
    intake.waiting.push(task(0));
    await agent.start();
    try {
      await waitFor(() => invoker.invocations.length === 1, 10_000, 'the first task running');
      disk.full = true;
      intake.waiting.push(task(1), task(2));
      finish(invoker, 0);
      // Its payload write is refused, then the probe's lease extends, with back-off.
      await waitFor(() => disk.refused >= 2, 10_000, 'writes refused while the disk is full');
      const receivesWhileFull = intake.receives;
      await waitFor(() => disk.refused >= 4, 20_000, 'more writes refused');
      // Intake paused: no receive tried, no task claimed (the held task's lease extend is the probe).
      expect(intake.receives).toBe(receivesWhileFull);
      expect(intake.waiting).toHaveLength(2);
      expect(table.completions).toEqual([]);
      expect(fullChanges).toEqual([true]);

      disk.full = false;
      await waitFor(() => table.completions.length === 1, 10_000, 'the kept result recorded');
      await waitFor(() => invoker.invocations.length === 2, 10_000, 'intake resumed');
      finish(invoker, 1);
      await waitFor(() => invoker.invocations.length === 3, 10_000, 'the third task running');
      finish(invoker, 2);
      await waitFor(() => table.completions.length === 3, 10_000, 'all recorded');
    } finally {
      await agent.stop(0);
    }

    // The handler ran once per task, each in its first attempt, and succeeded with its result stored.
    expect(invoker.invocations.map((i) => [i.invocation.taskId, i.invocation.attempt])).toEqual([
      ['s_0', 1],
      ['s_1', 1],
      ['s_2', 1],
    ]);
    expect(table.completions.map((c) => [c.taskId, c.guard.attempt, c.outcome.kind])).toEqual([
      ['s_0', 1, 'succeeded'],
      ['s_1', 1, 'succeeded'],
      ['s_2', 1, 'succeeded'],
    ]);
    expect(fullChanges).toEqual([true, false]);
    // The lease was extended before anything else was written once space was back (the reaper waits for that).
    expect(disk.writes.filter((w) => !w.startsWith('claim')).slice(0, 3)).toEqual([
      'extend s_0',
      expect.stringMatching(/^put .*s_0/),
      'complete s_0',
    ]);
    // One warning naming the problem and the fix; nothing logged per task or per refused write.
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      'the disk holding the grid folder is full: intake paused, finished results kept in memory until they can be recorded',
    ]);
    expect(warnings[0]!.err?.message).toMatch(/free space on that file system or delete finished sessions/);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.filter((l) => l.msg.startsWith('disk space is back'))).toHaveLength(1);
  });

  it('gives up waiting once its drain grace ends: the result is left to the lease expiry, and stop returns', async () => {
    const { agent, disk, table, intake, invoker, lines } = setup();
    intake.waiting.push(task(0));
    await agent.start();
    await waitFor(() => invoker.invocations.length === 1, 10_000, 'the task running');
    disk.full = true;
    finish(invoker, 0);
    await waitFor(() => disk.refused >= 2, 10_000, 'writes refused');
    await agent.stop(50);
    expect(table.completions).toEqual([]);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });
});
