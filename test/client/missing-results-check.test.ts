// When a waiting results stream compares the table's count of ended tasks with what it delivered: on a clock.
import { MissingResultsCheck } from '../../lib/client/missing-results-check';

describe('MissingResultsCheck', () => {
  it('is due a full period after the start, not before', () => {
    const check = new MissingResultsCheck(20_000, 1_000);

    expect(check.due(20_999)).toBe(false);
    expect(check.untilDue(20_999)).toBe(1);
    expect(check.due(21_000)).toBe(true);
    expect(check.untilDue(25_000)).toBe(0);
  });

  it('each new result puts the check a full period after it: results that flow are never checked', () => {
    const check = new MissingResultsCheck(20_000, 0);

    for (let at = 5_000; at <= 100_000; at += 5_000) {
      check.progressed(at);
      expect(check.due(at + 19_999)).toBe(false);
    }
    expect(check.due(120_000)).toBe(true);
  });

  it('after a check, the next is a full period later while nothing comes', () => {
    const check = new MissingResultsCheck(10_000, 0);

    check.checked(10_500);

    expect(check.due(20_499)).toBe(false);
    expect(check.due(20_500)).toBe(true);
  });

  it('Infinity never checks; a period that is not positive is refused with the value', () => {
    const never = new MissingResultsCheck(Infinity, 0);

    expect(never.due(Number.MAX_SAFE_INTEGER)).toBe(false);
    expect(never.untilDue(0)).toBe(Infinity);
    expect(() => new MissingResultsCheck(0, 0)).toThrow(
      /missingResultsCheckMs must be a positive number.*Infinity to never check \(got 0\)/,
    );
    expect(() => new MissingResultsCheck(Number.NaN, 0)).toThrow(/got NaN/);
  });
});
