// The chaos benchmarks' fault worker (test/fixtures/faults/worker) and the log of executions it keeps.
import fs from 'node:fs';
import path from 'node:path';

/** The fault-injection worker of the test suite: it logs every execution it starts. */
export const FAULT_WORKER = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'faults', 'worker');

/** task id → attempt → executions started, from the worker's log. */
export function executionCounts(logDir: string): Map<string, Map<number, number>> {
  const counts = new Map<string, Map<number, number>>();
  const file = path.join(logDir, 'executions.log');
  if (!fs.existsSync(file)) return counts;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [taskId, attempt] = line.split(' ');
    if (!taskId || attempt === undefined) continue;
    const perAttempt = counts.get(taskId) ?? new Map<number, number>();
    perAttempt.set(Number(attempt), (perAttempt.get(Number(attempt)) ?? 0) + 1);
    counts.set(taskId, perAttempt);
  }
  return counts;
}
