// The figures every system in the peers benchmark reports, their percentiles and the printed comparison table.
import os from 'node:os';

export interface SystemFigures {
  readonly system: string;
  readonly tasks: number;
  readonly succeeded: number;
  readonly elapsedMs: number;
  readonly tasksPerSec: number | null;
  /** Per task, from its submission to the moment the client holds its result, while all N tasks are in flight. */
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  /** One task at a time on an otherwise idle system: submit it, wait for its result. */
  readonly roundTrips: number;
  readonly roundTripP50Ms: number | null;
  readonly roundTripP99Ms: number | null;
  readonly python?: string;
  readonly pythonVersion?: string;
  readonly workers?: number;
  /** 1-minute load average when the system's run started and ended. */
  readonly loadBefore?: number;
  readonly loadAfter?: number;
  readonly error?: string;
}

/** The p-th percentile (nearest rank, 0 < p ≤ 100) of values sorted ascending; null when there are none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null;
}

export function loadAverage1m(): number {
  return Number((os.loadavg()[0] ?? 0).toFixed(2));
}

function num(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined) return '-';
  // Sub-millisecond figures (the floor) keep three decimals rather than printing as 0.0.
  return value.toFixed(Math.abs(value) < 1 && value !== 0 ? Math.max(digits, 3) : digits);
}

/** A fixed-width text table: one row per system, with ours ÷ that system's throughput. */
export function formatTable(rows: readonly SystemFigures[], oursName: string): string {
  const ours = rows.find((r) => r.system === oursName)?.tasksPerSec ?? null;
  const header = [
    'system',
    'tasks',
    'ok',
    'seconds',
    'tasks/s',
    'ours ÷ it',
    'p50 ms',
    'p99 ms',
    'rt p50 ms',
    'rt p99 ms',
    'load',
  ];
  const body = rows.map((r) => [
    r.system,
    String(r.tasks),
    r.error ? 'ERROR' : String(r.succeeded),
    (r.elapsedMs / 1000).toFixed(2),
    num(r.tasksPerSec, 0),
    ours !== null && r.tasksPerSec ? `${(ours / r.tasksPerSec).toFixed(2)}×` : '-',
    num(r.latencyP50Ms),
    num(r.latencyP99Ms),
    num(r.roundTripP50Ms, 2),
    num(r.roundTripP99Ms, 2),
    `${r.loadBefore?.toFixed(1) ?? '-'}→${r.loadAfter?.toFixed(1) ?? '-'}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
