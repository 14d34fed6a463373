// When a waiting results stream compares the table's count of ended tasks with what it delivered: on a clock.
import { MISSING_RESULTS_CHECK_MAX_MS, MissingResultsCheck } from '../../lib/client/missing-results-check';

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

  it('after a check that found nothing, the next waits twice as long, up to the cap, and a result brings the period back', () => {
    const check = new MissingResultsCheck(20_000, 0);
    const waits: number[] = [];
    let at = 0;

    for (let i = 0; i < 7; i++) {
      at += check.untilDue(at);
      expect(check.due(at - 1)).toBe(false);
      expect(check.due(at)).toBe(true);
      check.checked(at);
      waits.push(check.untilDue(at));
    }
    check.progressed(at + 1);

    expect(waits).toEqual([40_000, 80_000, 160_000, MISSING_RESULTS_CHECK_MAX_MS, 300_000, 300_000, 300_000]);
    expect(check.untilDue(at + 1)).toBe(20_000);
  });

  it('a period longer than the cap is kept as it is', () => {
    const check = new MissingResultsCheck(600_000, 0);

    check.checked(600_000);

    expect(check.untilDue(600_000)).toBe(600_000);
  });

  it('a resumed check goes on from the state its last request left, its wait brought within the period and the cap', () => {
    const check = new MissingResultsCheck(1_000, 0);
    check.checked(1_000);
    check.checked(3_000);

    const resumed = MissingResultsCheck.resume(1_000, 9_999, check.state);

    expect(check.state).toEqual({ since: 3_000, waitMs: 4_000 });
    expect(resumed.due(6_999)).toBe(false);
    expect(resumed.due(7_000)).toBe(true);
    expect(MissingResultsCheck.resume(1_000, 0, { since: 0, waitMs: 1e12 }).untilDue(0)).toBe(300_000);
    expect(MissingResultsCheck.resume(1_000, 0, { since: 0, waitMs: 1 }).untilDue(0)).toBe(1_000);
    expect(MissingResultsCheck.resume(1_000, 500).untilDue(500)).toBe(1_000);
  });

  it('after a re-read that left results the table counts, reads again only once it counts more missing', () => {
    const check = new MissingResultsCheck(1_000, 0);

    expect(check.missing(10, 8, 0)).toBe(true);
    expect(check.reReadEnded(10, 8, 0)).toBe(2);
    expect(check.state).toMatchObject({ unreachable: 2, unreachableAt: 0 });
    // Results delivered since, the same two still counted: no re-read.
    expect(check.missing(15, 13, 1_000)).toBe(false);
    // One more missing: a re-read.
    expect(check.missing(16, 13, 2_000)).toBe(true);
    expect(check.reReadEnded(16, 16, 2_000)).toBe(0);
    expect(check.state.unreachable).toBeUndefined();
    expect(check.state.unreachableAt).toBeUndefined();
    expect(check.missing(16, 16, 3_000)).toBe(false);
  });

  it('a gap a re-read left is read for again once every five minutes while it lasts (a read not consistent yet)', () => {
    const check = new MissingResultsCheck(1_000, 0);
    expect(check.missing(10, 9, 0)).toBe(true);
    expect(check.reReadEnded(10, 9, 10_000)).toBe(1);

    const looks = [100_000, 309_999, 310_000].map((at) => check.missing(10, 9, at));
    // The second re-read does not bring it either: the next waits five minutes from it.
    check.reReadEnded(10, 9, 310_000);
    const after = [609_999, 610_000].map((at) => check.missing(10, 9, at));

    expect(looks).toEqual([false, false, true]);
    expect(after).toEqual([false, true]);
  });

  it('a count falls due when the gap a re-read left is due for another, even within a longer wait', () => {
    const check = new MissingResultsCheck(1_000, 0);
    check.reReadEnded(10, 9, 0);
    for (let i = 0; i < 10; i++) check.checked(250_000);

    expect(check.state.waitMs).toBe(300_000);
    expect(check.due(299_999)).toBe(false);
    expect(check.untilDue(299_000)).toBe(1_000);
    expect(check.due(300_000)).toBe(true);
  });

  it('a resumed check keeps when its gap was left, and a cursor without it waits five minutes from the resume', () => {
    const check = new MissingResultsCheck(1_000, 0);
    check.reReadEnded(10, 9, 5_000);

    const resumed = MissingResultsCheck.resume(1_000, 200_000, check.state);
    const older = MissingResultsCheck.resume(1_000, 200_000, { since: 0, waitMs: 1_000, unreachable: 1 });

    expect([resumed.missing(10, 9, 304_999), resumed.missing(10, 9, 305_000)]).toEqual([false, true]);
    expect([older.missing(10, 9, 499_999), older.missing(10, 9, 500_000)]).toEqual([false, true]);
  });

  it('a period longer than five minutes is also how long a gap waits for its next re-read', () => {
    const check = new MissingResultsCheck(600_000, 0);
    check.reReadEnded(10, 9, 0);

    expect([check.missing(10, 9, 599_999), check.missing(10, 9, 600_000)]).toEqual([false, true]);
  });

  it('a count showing fewer missing than a re-read left lowers the mark, so a result missed later is read again', () => {
    const check = new MissingResultsCheck(1_000, 0);
    check.reReadEnded(10, 7, 0);

    expect(check.missing(12, 11, 1_000)).toBe(false);
    expect(check.missing(13, 11, 2_000)).toBe(true);
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
