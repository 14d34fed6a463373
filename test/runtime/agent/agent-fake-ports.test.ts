// The agent against fake ports and a fake invoker (no runtime, no database): drain and grace, lease loss, what it tells
// its intake, and the ResultTooLarge / PayloadMissing paths. Every wait is on a condition, never on a duration.
// (Busy and expired claims are the intake's business: test/contract/task-intake.contract.ts and the AWS intake's test.)
import { MicroBatcher } from '../../../lib/micro-batcher';
import { capturedLogger, fakeAgent, FakeStore, pendingTask } from '../../support/fake-ports';
import { waitFor } from '../../support/local-grid';

describe('the agent on fake ports', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it('drain: hands back a task not started yet at once, and records the running one when it finishes in the grace', async () => {
    const { agent, table, queue, invoker } = fakeAgent({ tasks: [pendingTask(0), pendingTask(1)] });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined && agent.stats.claimed === 2, 10_000, 'both claimed');

    const stopped = agent.stop(60_000);
    await waitFor(() => table.outcomeOf('s_1') === 'released', 10_000, 'the waiting task handed back');
    expect(table.outcomeOf('s_0')).toBeUndefined();
    expect(invoker.running('s_0')?.signal?.aborted).toBe(false);
    invoker.running('s_0')!.finish({ ok: true, resultJson: '42' });
    await stopped;

    expect(table.completions.find((c) => c.taskId === 's_0')?.outcome).toEqual({
      kind: 'succeeded',
      result: { inline: '42' },
    });
    // A handed-back task gets its message again before it turns pending.
    expect(queue.sent).toEqual([{ taskId: 's_1', sessionId: 's', attempt: 1, priority: 0 }]);
    expect(agent.stats).toMatchObject({ claimed: 2, succeeded: 1, released: 1 });
    expect(invoker.invocations.map((i) => i.invocation.taskId)).toEqual(['s_0']);
  });

  it('a completion waits for its batch only while another task is held; the last one held is written at once', async () => {
    const flush = jest.spyOn(MicroBatcher.prototype, 'flush');
    try {
      const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0), pendingTask(1)] });
      await agent.start();
      stop = () => agent.stop(0);
      await waitFor(() => invoker.running('s_0') !== undefined && agent.stats.claimed === 2, 10_000, 'both claimed');
      invoker.running('s_0')!.finish({ ok: true, resultJson: '0' });
      await waitFor(() => invoker.running('s_1') !== undefined, 10_000, 'the second task running');
      // s_1 was held when s_0 finished: s_0 waited for a batch.
      expect(flush).not.toHaveBeenCalled();
      await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 's_0 written by the batch timer');
      invoker.running('s_1')!.finish({ ok: true, resultJson: '1' });
      await waitFor(() => table.outcomeOf('s_1') === 'succeeded', 10_000, 's_1 written');
      expect(flush).toHaveBeenCalledTimes(1);
    } finally {
      flush.mockRestore();
    }
  });

  it('grace: a second stop ends the grace, aborts the running task and hands it back unfinished', async () => {
    const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0)] });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    const first = agent.stop(60 * 60_000);
    const second = agent.stop();
    await Promise.all([first, second]);

    expect(invoker.running('s_0')?.signal?.aborted).toBe(true);
    expect(table.completions.map((c) => [c.taskId, c.outcome.kind, c.guard])).toEqual([
      ['s_0', 'released', { owner: 'me', attempt: 1 }],
    ]);
    expect(agent.stats).toMatchObject({ released: 1, failed: 0, retried: 0 });
  });

  it('lease loss: a task whose lease another agent took is aborted and nothing of it is written', async () => {
    const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0)] });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    table.leaseAs = () => 'lost';
    await waitFor(() => invoker.running('s_0')?.signal?.aborted === true, 10_000, 'the invocation aborted');
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the attempt dropped');
    await agent.stop(0);

    expect(table.completions).toEqual([]);
  });

  it('cancellation: a cancelled task is aborted and left as the cancel wrote it', async () => {
    const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0)] });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');

    table.leaseAs = () => 'cancelled';
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the attempt dropped');
    await agent.stop(0);

    expect(invoker.running('s_0')?.signal?.aborted).toBe(true);
    expect(table.completions).toEqual([]);
  });

  it('tells its intake when a lease was extended and when each attempt ended, and drains it on stop', async () => {
    let clock = 1_000;
    const { agent, table, intake, invoker } = fakeAgent({ tasks: [pendingTask(0), pendingTask(1)], now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the first task running');
    // Past the lease refresh interval (10 s): the lease keeper extends the running task's lease.
    clock += 11_000;
    await waitFor(() => intake.notices.includes('s_0#1 extended'), 10_000, 'the extension told');
    invoker.running('s_0')!.finish({ ok: true, resultJson: '0' });
    await waitFor(() => invoker.running('s_1') !== undefined, 10_000, 'the second task running');
    table.leaseAs = () => 'cancelled';
    clock += 1_000; // the next lease check is due
    await waitFor(() => agent.stats.dropped === 1, 10_000, 'the cancelled attempt dropped');
    await agent.stop(0);

    expect(table.outcomeOf('s_0')).toBe('succeeded');
    expect(intake.notices).toEqual(expect.arrayContaining(['s_0#1 extended', 's_0#1 done', 's_1#1 done']));
    expect(intake.notices.filter((n) => n.startsWith('s_0#1 done'))).toHaveLength(1);
    expect(intake.drained).toBe(1);
  });

  it('runs a task its intake hands over while the intake still waits on other messages of the batch', async () => {
    const { agent, table, intake, invoker } = fakeAgent();
    let endPauses!: () => void;
    const pausing = new Promise<void>((resolve) => (endPauses = resolve));
    const receive = intake.receiveAndClaim.bind(intake);
    let calls = 0;
    // The first receive claims s_0, hands it over, then waits as the AWS intake does on an early message's pauses.
    intake.receiveAndClaim = async (max, options) => {
      if (++calls > 1) return receive(max, options);
      intake.waiting.push(pendingTask(0));
      options.onClaimed?.(await receive(max, options));
      await pausing;
      return [];
    };
    await agent.start();
    stop = async () => {
      endPauses();
      await agent.stop(0);
    };

    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 's_0 running while its intake waits');
    invoker.running('s_0')!.finish({ ok: true, resultJson: '0' });
    await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 's_0 written');
    endPauses();

    expect(calls).toBe(1);
    expect(agent.stats).toMatchObject({ claimed: 1, succeeded: 1 });
  });

  it('a result over max_payload_bytes fails the task as Runtime.ResultTooLarge, not retried, nothing stored', async () => {
    const store = new FakeStore();
    const put = jest.spyOn(store, 'put');
    const { agent, table, invoker } = fakeAgent({
      tasks: [pendingTask(0)],
      overrides: { max_payload_bytes: 100, inline_payload_max_bytes: 10 },
      store,
    });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    invoker.running('s_0')!.finish({ ok: true, resultJson: JSON.stringify('x'.repeat(200)) });
    await waitFor(() => table.completions.length === 1, 10_000, 'the outcome written');
    await agent.stop(0);

    const { outcome } = table.completions[0]!;
    expect(outcome).toMatchObject({ kind: 'failed', reason: 'error', error: { type: 'Runtime.ResultTooLarge' } });
    expect(outcome.kind === 'failed' && outcome.error.message).toMatch(
      /result of 202 bytes exceeds max_payload_bytes \(100\)/,
    );
    expect(put).not.toHaveBeenCalled();
  });

  it('a payload missing from the store fails the task as Runtime.PayloadMissing without invoking the worker', async () => {
    const task = { ...pendingTask(0), payload: { key: 'sessions/s/s_0/input.json', bytes: 10 } };
    const { agent, table, invoker } = fakeAgent({ tasks: [task] });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => table.completions.length === 1, 10_000, 'the outcome written');
    await agent.stop(0);

    expect(table.completions[0]!.outcome).toMatchObject({
      kind: 'failed',
      reason: 'error',
      error: { type: 'Runtime.PayloadMissing', message: 'payload of task s_0 is missing from the payload store' },
    });
    expect(invoker.invocations).toEqual([]);
  });

  it('logs the start and finish of each task at debug level, with its ids, attempt, outcome and run time', async () => {
    const { logger, lines } = capturedLogger('debug');
    let clock = 1_000;
    const { agent, invoker } = fakeAgent({ tasks: [pendingTask(0)], logger, now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    clock += 250;
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => lines.some((l) => l.msg === 'task finished'), 10_000, 'the finish line');
    await agent.stop(0);

    const ids = { taskId: 's_0', sessionId: 's', attempt: 1 };
    expect(lines.find((l) => l.msg === 'task started')).toMatchObject({ level: 20, ...ids });
    expect(lines.find((l) => l.msg === 'task finished')).toMatchObject({
      level: 20,
      ...ids,
      outcome: 'succeeded',
      runMs: 250,
    });
  });

  it('records when the handler run started and how long it ran with the attempt', async () => {
    let clock = 1_000;
    const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0)], now: () => clock });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    clock += 300;
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 'the result written');
    await agent.stop(0);

    expect(table.completions[0]).toMatchObject({ at: 1_300, run: { startedAt: 1_000, ms: 300 } });
  });

  it('writes no per-task lines at info level', async () => {
    const { logger, lines } = capturedLogger('info');
    const { agent, table, invoker } = fakeAgent({ tasks: [pendingTask(0)], logger });
    await agent.start();
    stop = () => agent.stop(0);
    await waitFor(() => invoker.running('s_0') !== undefined, 10_000, 'the task running');
    invoker.running('s_0')!.finish({ ok: true, resultJson: '1' });
    await waitFor(() => table.outcomeOf('s_0') === 'succeeded', 10_000, 'the result written');
    await agent.stop(0);

    expect(lines.map((l) => l.msg)).not.toContain('task started');
    expect(lines.map((l) => l.msg)).toContain('agent started');
  });
});
