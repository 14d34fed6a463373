// The CLI's only door to the terminal: human-readable lines, errors and progress bars.
/* eslint-disable no-console */
import cliProgress from 'cli-progress';
import type { StateCounts } from '../core';

export function info(line: string): void {
  console.error(line);
}

export function result(line: string): void {
  console.log(line);
}

export function error(message: string): void {
  console.error(`error: ${message}`);
}

export interface Progress {
  setTotal(total: number): void;
  update(done: number, counts: Partial<StateCounts>): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; otherwise a line every few seconds so logs show progress too. */
export function progress(label: string, enabled = true): Progress {
  if (!enabled) return { setTotal() {}, update() {}, stop() {} };
  if (!process.stderr.isTTY) return lineProgress(label);
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} {bar} {percentage}% | {value}/{total} | {rate} tasks/s | ok {ok} failed {failed} | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 200,
      fps: 10,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(0, 0, { ok: 0, failed: 0, rate: 0 });
  return {
    setTotal: (total) => bar.setTotal(total),
    update(done, counts) {
      const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
      bar.update(done, { ok: counts.succeeded ?? 0, failed: (counts.failed ?? 0) + (counts.cancelled ?? 0), rate });
    },
    stop: () => bar.stop(),
  };
}

function lineProgress(label: string): Progress {
  let total = 0;
  let last = 0;
  let lastDone = -1;
  const started = Date.now();
  return {
    setTotal(t) {
      total = t;
    },
    update(done, counts) {
      const now = Date.now();
      if ((now - last < 5000 && done !== total) || done === lastDone) return;
      last = now;
      lastDone = done;
      const rate = Math.round(done / Math.max(0.001, (now - started) / 1000));
      info(
        `${label} ${done}/${total || '?'} (${rate} tasks/s, ok ${counts.succeeded ?? 0}, failed ${counts.failed ?? 0})`,
      );
    },
    stop() {},
  };
}

export function summary(counts: StateCounts, elapsedMs: number, extra: Record<string, string | number> = {}): void {
  const total = counts.succeeded + counts.failed + counts.cancelled + counts.pending + counts.running;
  const rate = total / Math.max(0.001, elapsedMs / 1000);
  info('');
  info(`tasks      ${total}`);
  info(`succeeded  ${counts.succeeded}`);
  info(`failed     ${counts.failed}`);
  info(`cancelled  ${counts.cancelled}`);
  if (counts.pending + counts.running > 0) info(`unfinished ${counts.pending + counts.running}`);
  info(`elapsed    ${(elapsedMs / 1000).toFixed(2)} s (${Math.round(rate)} tasks/s)`);
  for (const [key, value] of Object.entries(extra)) info(`${key.padEnd(10)} ${value}`);
}
