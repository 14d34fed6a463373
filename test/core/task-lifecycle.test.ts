import { classifyClaim, planCompletion, type ClaimProbe, type Completion } from '../../lib/core';

const probe = (over: Partial<ClaimProbe>): ClaimProbe => ({
  state: 'running',
  attempt: 1,
  leaseExpiresAt: undefined,
  leaseVisibleToReaper: true,
  ...over,
});

describe('classifyClaim', () => {
  it('a claim of a task that does not exist is missing', () => {
    expect(classifyClaim({ attempt: 0 }, undefined, 1000)).toEqual({ status: 'missing' });
  });

  it('a claim of a task that is not running (pending at another attempt, or terminal) is stale', () => {
    expect(classifyClaim({ attempt: 0 }, probe({ state: 'pending', attempt: 2 }), 1000)).toEqual({ status: 'stale' });
    expect(classifyClaim({ attempt: 0 }, probe({ state: 'succeeded' }), 1000)).toEqual({ status: 'stale' });
    expect(classifyClaim({ attempt: 0 }, probe({ state: undefined }), 1000)).toEqual({ status: 'stale' });
  });

  it('a refused claim of a task pending at the very attempt it names keeps its message (busy), never stale', () => {
    expect(classifyClaim({ attempt: 2 }, probe({ state: 'pending', attempt: 2 }), 1000)).toEqual({ status: 'busy' });
  });

  it('a claim of the attempt that still runs is busy: its holder has not written its retry yet', () => {
    expect(classifyClaim({ attempt: 1 }, probe({ attempt: 1 }), 1000)).toEqual({ status: 'busy' });
  });

  it("a reap's message of the attempt that still runs is busy while the reap's write may land, stale once it never can", () => {
    // The reap's write holds only while the lease ends before 5000: a late heartbeat moved it to 5000 or later.
    const reaped = { attempt: 1, leaseExpiredBefore: 5000 };
    expect(classifyClaim(reaped, probe({ attempt: 1, leaseExpiresAt: 4999 }), 6000)).toEqual({ status: 'busy' });
    expect(classifyClaim(reaped, probe({ attempt: 1, leaseExpiresAt: 5000 }), 1000)).toEqual({ status: 'stale' });
    expect(classifyClaim(reaped, probe({ attempt: 1, leaseExpiresAt: 65_000 }), 6000)).toEqual({ status: 'stale' });
    // A lease the probe does not tell is never taken for a lost reap.
    expect(classifyClaim(reaped, probe({ attempt: 1, leaseExpiresAt: undefined }), 6000)).toEqual({ status: 'busy' });
  });

  it('a claim past a running attempt the reaper can see is stale', () => {
    expect(classifyClaim({ attempt: 0 }, probe({ attempt: 1, leaseExpiresAt: 10 }), 1000)).toEqual({ status: 'stale' });
    expect(classifyClaim({ attempt: 0 }, probe({ attempt: 3, leaseVisibleToReaper: false }), 1000)).toEqual({
      status: 'stale',
    });
  });

  it('the attempt claimed from this message, unseen by the reaper, keeps its message while its lease lives', () => {
    const unseen = { attempt: 1, leaseVisibleToReaper: false };
    expect(classifyClaim({ attempt: 0 }, probe({ ...unseen, leaseExpiresAt: 5000 }), 1000)).toEqual({
      status: 'busy',
      retryAfterMs: 5000 - 1000 + 1000,
    });
    expect(classifyClaim({ attempt: 0 }, probe({ ...unseen, leaseExpiresAt: 1000 }), 1000)).toEqual({
      status: 'busy',
      retryAfterMs: 1000,
    });
    expect(classifyClaim({ attempt: 0 }, probe({ ...unseen, leaseExpiresAt: undefined }), 1000)).toEqual({
      status: 'busy',
    });
  });

  it('the attempt claimed from this message, unseen by the reaper, is expired once its lease has', () => {
    const found = probe({ attempt: 1, leaseVisibleToReaper: false, leaseExpiresAt: 999 });
    expect(classifyClaim({ attempt: 0 }, found, 1000)).toEqual({ status: 'expired' });
  });
});

describe('planCompletion', () => {
  const error = { type: 'ValueError', message: 'bad', stack: [] };
  const base = { taskId: 't', guard: { owner: 'a', attempt: 2 }, at: 50 };

  it('a success is terminal, stores the result and clears earlier failures without counting one', () => {
    const plan = planCompletion({ ...base, outcome: { kind: 'succeeded', result: { inline: '1' } } });
    expect(plan).toEqual({
      ...base,
      to: 'succeeded',
      terminal: true,
      countsFailure: false,
      result: { inline: '1' },
      failure: undefined,
      record: { outcome: 'succeeded', error: undefined },
    });
  });

  it('a terminal failure counts a failure and records its reason and error on the task and the attempt', () => {
    const plan = planCompletion({ ...base, outcome: { kind: 'failed', reason: 'timeout', error } });
    expect(plan).toMatchObject({
      to: 'failed',
      terminal: true,
      countsFailure: true,
      result: undefined,
      failure: { reason: 'timeout', error },
      record: { outcome: 'timeout', error },
    });
  });

  it('a retry goes back to pending, not terminal, and counts the failure', () => {
    const completion: Completion = {
      taskId: 't',
      guard: { leaseExpiredBefore: 40, attempt: 2 },
      outcome: { kind: 'retry', reason: 'lease-expired', error },
      at: 50,
    };
    expect(planCompletion(completion)).toMatchObject({
      guard: { leaseExpiredBefore: 40, attempt: 2 },
      to: 'pending',
      terminal: false,
      countsFailure: true,
      failure: { reason: 'lease-expired', error },
      record: { outcome: 'lease-expired', error },
    });
  });

  it('a release goes back to pending without counting a failure or touching the error', () => {
    const plan = planCompletion({ ...base, outcome: { kind: 'released' } });
    expect(plan).toMatchObject({
      to: 'pending',
      terminal: false,
      countsFailure: false,
      result: undefined,
      failure: undefined,
      record: { outcome: 'released', error: undefined },
    });
  });
});
