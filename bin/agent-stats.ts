// The agent container's once-a-minute log line of the tasks it finished, which the stack turns into task metrics.
import { AGENT_STATS_EVENT } from '../lib/core';
import type { Logger } from '../lib/logging';
import type { AgentStats, TaskOutcomeMetrics } from '../lib/runtime/agent';

/** How often the tasks finished are logged: CloudWatch metrics are per minute. */
export const STATS_INTERVAL_MS = 60_000;

/**
 * Logs `{ event: 'agent-stats', succeeded, failed, retried }`, the tasks finished since the last line, every
 * `intervalMs` and once more when the returned function is called (no line when nothing finished). The stack's log
 * metric filters sum `succeeded` and `failed` into the grid's TasksSucceeded and TasksFailed metrics.
 */
export function reportAgentStats(
  stats: AgentStats,
  logger: Logger,
  intervalMs = STATS_INTERVAL_MS,
  /** Task metrics flushed at the same times as CloudWatch EMF lines, each written with `write`. */
  emf?: { readonly metrics: TaskOutcomeMetrics; readonly write: (line: string) => void },
): () => void {
  let reported = { succeeded: 0, failed: 0, retried: 0 };
  const report = (): void => {
    const now = { succeeded: stats.succeeded, failed: stats.failed, retried: stats.retried };
    const delta = {
      succeeded: now.succeeded - reported.succeeded,
      failed: now.failed - reported.failed,
      retried: now.retried - reported.retried,
    };
    reported = now;
    if (delta.succeeded + delta.failed + delta.retried > 0) {
      logger.info({ event: AGENT_STATS_EVENT, ...delta }, 'tasks finished');
    }
    if (emf) for (const line of emf.metrics.flush()) emf.write(line);
  };
  const timer = setInterval(report, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    report();
  };
}
