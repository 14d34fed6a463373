// The metric math the agents scale on, as pure functions of the priority level count: what each policy and alarm
// reads, and why it stays within CloudWatch's limits.
//
// Backlog = visible + in-flight messages over every priority queue. A message is in flight from its receive until
// the task's first heartbeat (the lease guards it from then on), so the backlog is "work not yet safely running".
// Missing SQS datapoints (a queue nobody touched for hours reports nothing) count as 0, as does a missing agent count.

/** CloudWatch's limit on metrics in one alarm's metric math, and in one target tracking customized metric. */
export const CLOUDWATCH_MAX_METRICS = 10;
/** Metrics per priority level in the backlog: visible and in-flight messages of its queue. */
const METRICS_PER_LEVEL = 2;
/**
 * Most priority levels a deployed grid scales on: 2 metrics per level plus the running agents must fit in 10.
 * (One summed backlog metric would lift this, but needs a function publishing it every minute: one more part that
 * can stop scaling when it fails, and a minute staler. Four levels cover the common uses: normal, urgent, and two
 * in between.)
 */
export const MAX_SCALED_PRIORITY_LEVELS = Math.floor((CLOUDWATCH_MAX_METRICS - 1) / METRICS_PER_LEVEL);

/** Ids of the metrics the expressions read; `running` is the service's running task count. */
export const RUNNING_ID = 'running';
export const visibleId = (level: number): string => `visible${level}`;
export const inflightId = (level: number): string => `inflight${level}`;

/** The issue with a priority level count the scaling cannot serve, if any. */
export function priorityLevelIssue(levels: number): string | undefined {
  if (levels <= MAX_SCALED_PRIORITY_LEVELS) return undefined;
  return (
    `priority_levels: ${levels} levels is more than a deployed grid scales on: use at most ${MAX_SCALED_PRIORITY_LEVELS} ` +
    `(the backlog metric math reads ${METRICS_PER_LEVEL} metrics per level plus the running agents, and CloudWatch ` +
    `allows ${CLOUDWATCH_MAX_METRICS} metrics in an alarm or a target tracking policy)`
  );
}

const levelsOf = (levels: number): number[] => Array.from({ length: levels }, (_, i) => i);
const filled = (id: string): string => `FILL(${id}, 0)`;
const AGENTS = filled(RUNNING_ID);

/** Queued plus in-flight messages over all levels. */
export function backlogExpression(levels: number): string {
  return levelsOf(levels)
    .flatMap((l) => [filled(visibleId(l)), filled(inflightId(l))])
    .join(' + ');
}

/**
 * What target tracking keeps at the target: backlog per running agent, counting at least one agent, so the value is
 * the whole backlog (high) while work waits and no agent runs yet, and 0 when idle.
 */
export function backlogPerAgentExpression(levels: number): string {
  return `(${backlogExpression(levels)}) / IF(${AGENTS} < 1, 1, ${AGENTS})`;
}

/** 1 while tasks are queued and no agent runs: the step policy that starts the first agent. */
export function wakeUpExpression(levels: number): string {
  const visible = levelsOf(levels)
    .map((l) => filled(visibleId(l)))
    .join(' + ');
  return `IF(${AGENTS} < 1 AND (${visible}) > 0, 1, 0)`;
}

/** 1 while agents run and nothing is queued or in flight: the step policy that scales to zero once it lasts. */
export function idleExpression(levels: number): string {
  return `IF(${AGENTS} > 0 AND (${backlogExpression(levels)}) == 0, 1, 0)`;
}

/**
 * Minutes the grid must look idle before it scales to zero. A task's message leaves the queue at its first
 * heartbeat, so a long task runs on with an empty backlog: waiting out the task timeout (plus the heartbeat and a
 * minute of metric lag) means no task that was running can still be running when the agents stop.
 */
export function idleMinutes(taskTimeoutSec: number, minimumMinutes = 15): number {
  return Math.max(minimumMinutes, Math.ceil(taskTimeoutSec / 60) + 2);
}

/** Metrics (not expressions) each query list reads: for checking against `CLOUDWATCH_MAX_METRICS`. */
export function scalingMetricCounts(levels: number): { tracking: number; wakeUp: number; idle: number } {
  return {
    tracking: METRICS_PER_LEVEL * levels + 1,
    wakeUp: levels + 1,
    idle: METRICS_PER_LEVEL * levels + 1,
  };
}
