// The wake policy of a client's completion notices, on an injected clock: new sessions at once, a busy one per gap.
import { NoticeWakeGaps } from '../../../lib/backends/aws/notice-wake-gaps';

/** Notices of `sessions` at `now`; when the policy says wake at once, the handles wake then. */
function notice(gaps: NoticeWakeGaps, sessions: string[], now: number): number {
  const wait = gaps.noticed(sessions, now);
  if (wait === 0) gaps.woke(now);
  return wait;
}

describe('NoticeWakeGaps', () => {
  it('wakes at once for each new session of a client running one task after another, however close together', () => {
    const gaps = new NoticeWakeGaps();
    // One interactive round trip every 30 ms, each task its own session.
    const waits = Array.from({ length: 10 }, (_, i) => notice(gaps, [`session-${i}`], 1000 + 30 * i));
    expect(waits).toEqual(Array.from({ length: 10 }, () => 0));
  });

  it('wakes once per gap for one busy session, the gap doubling from 50 ms to 5 s, then at once after a quiet 5 s', () => {
    const gaps = new NoticeWakeGaps();
    const wakes: number[] = [];
    let pendingUntil: number | undefined;
    // Notices of one session every 10 ms for 20 s; the handles wake when the policy's wait ends.
    for (let now = 0; now <= 20_000; now += 10) {
      if (pendingUntil !== undefined && now >= pendingUntil) {
        gaps.woke(now);
        wakes.push(now);
        pendingUntil = undefined;
      }
      const wait = gaps.noticed(['busy'], now);
      if (wait === 0) {
        gaps.woke(now);
        wakes.push(now);
      } else pendingUntil ??= now + wait;
    }
    const intervals = wakes.slice(1).map((at, i) => at - wakes[i]!);
    expect(intervals.slice(0, 8)).toEqual([50, 100, 200, 400, 800, 1600, 3200, 5000]);
    expect(intervals.every((ms) => ms <= 5000)).toBe(true);
    expect(wakes.length).toBeLessThan(20);

    // Quiet for over 5 s: the next notice wakes at once and the gap starts again at 50 ms.
    expect(notice(gaps, ['busy'], 30_000)).toBe(0);
    expect(gaps.noticed(['busy'], 30_010)).toBe(40);
  });

  it('a new session wakes at once even while a busy one waits out its gap, which that wake then counts', () => {
    const gaps = new NoticeWakeGaps();
    expect(notice(gaps, ['busy'], 0)).toBe(0);
    expect(gaps.noticed(['busy'], 10)).toBe(40);
    expect(gaps.noticed(['new'], 20)).toBe(0);
    gaps.woke(20);
    // The busy session was woken at 20 too, for its one notice: its gap halves (not below 50 ms) from that wake.
    expect(gaps.noticed(['busy'], 30)).toBe(40);
    expect(gaps.noticed(['busy'], 40)).toBe(30);
    gaps.woke(70);
    // That wake gathered two notices: the gap doubles.
    expect(gaps.noticed(['busy'], 80)).toBe(90);
  });

  it('wakes at once for each round trip of one session reused for one task after another', () => {
    const gaps = new NoticeWakeGaps();
    // A notebook's session: each result's notice 100 ms after the last wake (the next task's run).
    const waits: number[] = [];
    for (let i = 0, now = 0; i < 12; i++) {
      now += 100;
      waits.push(notice(gaps, ['notebook'], now));
    }
    expect(waits).toEqual(Array.from({ length: 12 }, () => 0));
  });

  it('comes back to waking at once when a session busy for a while turns to one task at a time', () => {
    const gaps = new NoticeWakeGaps();
    let now = 0;
    let wakeAt: number | undefined;
    // Busy: notices every 10 ms for 20 s, waking when the policy's wait ends; the gap reaches 5 s.
    for (; now <= 20_000; now += 10) {
      if (wakeAt !== undefined && now >= wakeAt) {
        gaps.woke(now);
        wakeAt = undefined;
      }
      const wait = gaps.noticed(['s'], now);
      if (wait === 0) gaps.woke(now);
      else wakeAt ??= now + wait;
    }
    if (wakeAt !== undefined) gaps.woke((now = wakeAt));
    // Then one task a second: each single notice's wait halves the gap until it wakes at once.
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      now += 1000;
      const wait = gaps.noticed(['s'], now);
      waits.push(wait);
      gaps.woke((now += wait));
    }
    expect(waits).toEqual([4000, 1500, 250, 0, 0, 0]);
  });

  it('forgets the least recently woken sessions beyond its bound (they count as new again)', () => {
    const gaps = new NoticeWakeGaps({ maxSessions: 2 });
    notice(gaps, ['a'], 0);
    notice(gaps, ['b'], 1);
    notice(gaps, ['c'], 2);
    expect(gaps.noticed(['a'], 3)).toBe(0);
    gaps.woke(3);
    expect(gaps.noticed(['c'], 4)).toBeGreaterThan(0);
  });
});
