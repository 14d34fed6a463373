// What the agent records for each way an attempt can end.
import { decideAttempt } from '../../../lib/runtime/agent';

const task = { failures: 0, maxAttempts: 3, timeoutMs: 2_000 };
const lastTry = { failures: 2, maxAttempts: 3, timeoutMs: 2_000 };
const options = { nonRetryableErrorTypes: ['BadInput'], taskTimeoutMs: 2_000 };
const handlerError = (type: string) =>
  ({ ok: false, reason: 'error', error: { type, message: 'boom', stack: ['line 1'] } }) as const;

describe('attempt outcome', () => {
  it('records a successful result inline as returned', () => {
    expect(decideAttempt(task, { ok: true, resultJson: '{"x":1}' }, undefined, options)).toEqual({
      write: { kind: 'succeeded', result: { inline: '{"x":1}' } },
    });
  });

  it('never records a handler that raised as succeeded', () => {
    expect(decideAttempt(lastTry, handlerError('ValueError'), undefined, options).write).toMatchObject({
      kind: 'failed',
      reason: 'error',
      error: { type: 'ValueError' },
    });
    expect(decideAttempt(task, handlerError('ValueError'), undefined, options).write).toMatchObject({ kind: 'retry' });
  });

  it('fails a non-retryable error type on its first attempt', () => {
    expect(decideAttempt(task, handlerError('BadInput'), undefined, options).write).toMatchObject({ kind: 'failed' });
  });

  it('records an attempt the agent aborted at its deadline as a timeout', () => {
    const aborted = { ok: false, reason: 'cancelled', error: { type: 'Cancelled', message: '', stack: [] } } as const;
    expect(decideAttempt(lastTry, aborted, 'deadline', options).write).toMatchObject({
      kind: 'failed',
      reason: 'timeout',
      error: { message: 'Task timed out after 2.00 seconds' },
    });
  });

  it('writes nothing for a task that was cancelled or taken over, even if it finished', () => {
    expect(decideAttempt(task, { ok: true, resultJson: '1' }, 'cancelled', options).write).toBeUndefined();
    expect(decideAttempt(task, handlerError('ValueError'), 'lost', options).write).toBeUndefined();
  });

  it('hands back a drained or busy attempt without counting a failure', () => {
    const aborted = { ok: false, reason: 'cancelled', error: { type: 'Cancelled', message: '', stack: [] } } as const;
    expect(decideAttempt(task, aborted, 'drain', options).write).toEqual({ kind: 'released' });
    const busy = { ok: false, reason: 'busy', error: { type: 'Busy', message: '', stack: [] } } as const;
    expect(decideAttempt(task, busy, undefined, options).write).toEqual({ kind: 'released' });
  });

  it('does not retry a result that cannot be serialised', () => {
    expect(decideAttempt(task, handlerError('Runtime.MarshalError'), undefined, options).write).toMatchObject({
      kind: 'failed',
    });
  });

  it('never charges an attempt stopped before it started, even by the agent’s own deadline guard', () => {
    const notStarted = {
      ok: false,
      reason: 'busy',
      error: { type: 'Runtime.NotStarted', message: 'Invocation stopped before it started', stack: [] },
    } as const;

    expect(decideAttempt(lastTry, notStarted, 'deadline', options)).toEqual({ write: { kind: 'released' } });
    expect(decideAttempt(lastTry, notStarted, 'drain', options)).toEqual({ write: { kind: 'released' } });
    expect(decideAttempt(lastTry, notStarted, 'cancelled', options)).toEqual({ write: undefined });
  });
});
