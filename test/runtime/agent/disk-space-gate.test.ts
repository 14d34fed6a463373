// The disk-space gate alone, with a fake clock, a fake sleep and a scripted probe: when it warns, when it reopens,
// what waiters are told; and what the agent tells clients of its wait (the hold after space is back).
import { Writable } from 'node:stream';
import pino from 'pino';
import { DiskFullError } from '../../../lib/core';
import {
  DISK_FULL_WARN_EVERY_MS,
  DISK_PROBE_BACKOFF,
  DISK_WAIT_HOLD_MS,
  DiskSpaceGate,
  DiskWaitReport,
} from '../../../lib/runtime/agent/disk-space-gate';
import { waitFor } from '../../support/local-grid';

function setup(probe: () => Promise<boolean>) {
  let now = 0;
  const sleeps: number[] = [];
  const wakers: Array<() => void> = [];
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    }),
  );
  const changes: boolean[] = [];
  const gate = new DiskSpaceGate({
    logger,
    probe,
    onChange: (full) => changes.push(full),
    now: () => now,
    // The probe waits until the test lets it go: one waker per back-off.
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        sleeps.push(ms);
        wakers.push(resolve);
      }),
    backoff: { baseMs: 100, maxMs: 400, jitter: 'none' },
  });
  const tick = async (): Promise<void> => {
    await waitFor(() => wakers.length > 0, 5_000, 'the probe to wait');
    wakers.shift()!();
  };
  return { gate, lines, changes, sleeps, tick, advance: (ms: number) => (now += ms) };
}

const full = new DiskFullError('writing payload x');
const warnings = (lines: { level: number }[]) => lines.filter((l) => l.level === 40).length;

describe('the disk-space gate', () => {
  it('closes on a full disk only, probes with back-off, and opens waiters once the probe writes', async () => {
    const outcomes = [full, full, true];
    const { gate, lines, changes, sleeps, tick } = setup(async () => {
      const next = outcomes.shift();
      if (next instanceof Error) throw next;
      return next!;
    });
    gate.report(new Error('some other failure'));
    expect(gate.full).toBe(false);

    gate.report(full);
    gate.report(full);
    expect(gate.full).toBe(true);
    const waiting = gate.whenWritable();
    await tick();
    await tick();
    await tick();
    await expect(waiting).resolves.toBe(true);
    expect(gate.full).toBe(false);
    expect(sleeps).toEqual([100, 200, 400]);
    expect(changes).toEqual([true, false]);
    expect(warnings(lines)).toBe(1);
    // Space is said to be back once a kept write went through, not when the probe fit.
    expect(lines.filter((l) => l.msg.startsWith('disk space is back'))).toHaveLength(0);
    gate.wrote();
    gate.wrote();
    expect(lines.filter((l) => l.msg.startsWith('disk space is back'))).toHaveLength(1);
  });

  it('warns at most once a minute however often the disk fills again', async () => {
    const { gate, lines, tick, advance } = setup(async () => true);
    gate.report(full);
    await tick();
    await waitFor(() => !gate.full, 5_000, 'the gate to open');
    advance(DISK_FULL_WARN_EVERY_MS - 1);
    gate.report(full);
    expect(warnings(lines)).toBe(1);
    await tick();
    await waitFor(() => !gate.full, 5_000, 'the gate to open again');
    advance(1);
    gate.report(full);
    expect(warnings(lines)).toBe(2);
  });

  it('tells waiters to give up once abandoned, and an aborted waiter at once', async () => {
    const { gate } = setup(async () => {
      throw full;
    });
    gate.report(full);
    const aborter = new AbortController();
    const aborted = gate.whenWritable(aborter.signal);
    const abandoned = gate.whenWritable();
    aborter.abort();
    await expect(aborted).resolves.toBe(false);
    gate.abandon();
    await expect(abandoned).resolves.toBe(false);
    await expect(gate.whenWritable()).resolves.toBe(false);
  });
});

describe('what an agent tells clients of its wait for disk space', () => {
  it('tells the wait from the moment the disk is found full until space has been back for the hold time', () => {
    let now = 0;
    let full = false;
    const report = new DiskWaitReport(() => full, { holdMs: 10_000, now: () => now });
    expect(report.waiting).toBe(false);

    full = true;
    report.changed();
    expect(report.waiting).toBe(true);
    now = 4_000;
    full = false; // the gate reopened (a probe's small write fitted)...
    report.changed();
    now = 4_100;
    full = true; // ...and closed again at the next result: still one wait
    report.changed();
    now = 6_000;
    full = false;
    report.changed();
    now = 15_999;
    expect(report.waiting).toBe(true);
    now = 16_000;
    expect(report.waiting).toBe(false);
  });

  it('says the wait is over (the heartbeat writes the entry) as soon as the hold after the last opening has passed', () => {
    let now = 0;
    let full = false;
    const timers: Array<{ at: number; fire: () => void; cancelled: boolean }> = [];
    const ended: Array<{ at: number; waiting: boolean }> = [];
    const report: DiskWaitReport = new DiskWaitReport(() => full, {
      now: () => now,
      onHoldEnd: () => ended.push({ at: now, waiting: report.waiting }),
      timer: (ms, fire) => {
        const timer = { at: now + ms, fire, cancelled: false };
        timers.push(timer);
        return { cancel: () => (timer.cancelled = true) };
      },
    });
    /** Moves the clock to each due timer up to `to` and fires it (the first `early` ms before it is due, as may be). */
    const advance = (to: number, early = 0): void => {
      for (let due = nextDue(); due !== undefined && due <= to; due = nextDue()) {
        const timer = timers.find((t) => !t.cancelled && t.at === due)!;
        timer.cancelled = true;
        now = due - early;
        early = 0;
        timer.fire();
      }
      now = to;
    };
    const nextDue = (): number | undefined =>
      timers.filter((t) => !t.cancelled).reduce<number | undefined>((m, t) => Math.min(m ?? t.at, t.at), undefined);

    full = true;
    report.changed();
    expect(timers).toEqual([]); // nothing timed while the disk is full (nor on a grid whose disk never filled)
    now = 3_000;
    full = false; // a probe's small write fitted...
    report.changed();
    now = 3_050;
    full = true; // ...and the kept results found the disk full again: still one wait, the opening's timer cancelled
    report.changed();
    advance(5_000);
    expect(ended).toEqual([]);
    full = false; // space is back
    report.changed();
    advance(5_000 + DISK_WAIT_HOLD_MS - 1);
    expect(ended).toEqual([]);
    advance(10_000, 1); // fired 1 ms early by the wall clock: it waits out that millisecond
    expect(ended).toEqual([{ at: 5_000 + DISK_WAIT_HOLD_MS, waiting: false }]);
    expect(DISK_WAIT_HOLD_MS).toBeLessThanOrEqual(1_000);
    expect(DISK_PROBE_BACKOFF.maxMs).toBeLessThanOrEqual(1_000);
  });
});
