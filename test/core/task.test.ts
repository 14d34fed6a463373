// Retry decisions and allowed state transitions.
import { canTransition, decideAfterFailure, isTerminal, taskIdOf, taskIndexOf } from '../../lib/core';

const opts = { nonRetryableErrorTypes: ['ValueError'] };
const error = (type: string) => ({ type, message: 'boom', stack: [] });

describe('task lifecycle rules', () => {
  it('retries a failed attempt while attempts remain', () => {
    expect(decideAfterFailure({ failures: 0, maxAttempts: 3 }, 'error', error('KeyError'), opts)).toEqual({
      next: 'retry',
    });
    expect(decideAfterFailure({ failures: 1, maxAttempts: 3 }, 'timeout', undefined, opts)).toEqual({ next: 'retry' });
  });

  it('fails the task when its last attempt fails', () => {
    expect(decideAfterFailure({ failures: 2, maxAttempts: 3 }, 'runtime-crash', undefined, opts)).toEqual({
      next: 'fail',
    });
    expect(decideAfterFailure({ failures: 0, maxAttempts: 1 }, 'error', error('KeyError'), opts)).toEqual({
      next: 'fail',
    });
  });

  it('never retries a handler error whose type is declared non-retryable', () => {
    expect(decideAfterFailure({ failures: 0, maxAttempts: 3 }, 'error', error('ValueError'), opts)).toEqual({
      next: 'fail',
    });
  });

  it('never retries an error marked non-retryable on itself', () => {
    expect(
      decideAfterFailure({ failures: 0, maxAttempts: 3 }, 'error', error('Runtime.MarshalError'), {
        ...opts,
        retryable: false,
      }),
    ).toEqual({ next: 'fail' });
  });

  it('still retries an expired lease of a non-retryable error type', () => {
    expect(decideAfterFailure({ failures: 0, maxAttempts: 3 }, 'lease-expired', error('ValueError'), opts)).toEqual({
      next: 'retry',
    });
  });

  it('allows only the documented transitions', () => {
    expect(canTransition('pending', 'running')).toBe(true);
    expect(canTransition('running', 'pending')).toBe(true);
    expect(canTransition('succeeded', 'running')).toBe(false);
    expect(canTransition('pending', 'succeeded')).toBe(false);
    expect(isTerminal('cancelled')).toBe(true);
    expect(isTerminal('running')).toBe(false);
  });
});

describe('task ids', () => {
  it("a task's index is read back from its id, and an id of another session or shape has none", () => {
    expect(taskIndexOf('s-1', taskIdOf('s-1', 0))).toBe(0);
    expect(taskIndexOf('s-1', taskIdOf('s-1', 123_456))).toBe(123_456);
    expect(taskIndexOf('s_1', taskIdOf('s_1', 7))).toBe(7);
    expect(taskIndexOf('s-1', 's-2_3')).toBeUndefined();
    expect(taskIndexOf('s-1', 's-1_03')).toBeUndefined();
    expect(taskIndexOf('s-1', 's-1_x')).toBeUndefined();
    expect(taskIndexOf('s-1', 's-1_')).toBeUndefined();
  });
});
