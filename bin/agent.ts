// Entry of the agent container in AWS: AWS backends from the environment, the Lambda container over lambda-rie.
import os from 'node:os';
import { openAwsBackends } from '../lib/backends/aws';
import {
  AGENT_HEARTBEAT_MS,
  compileConfig,
  ConfigError,
  GRID_ENV,
  resourcesFromEnv,
  taskMetricNamespace,
} from '../lib/core';
import { createLogger } from '../lib/logging';
import {
  Agent,
  countSlotUsage,
  newSlotCounters,
  openEmfSink,
  PresenceHeartbeat,
  TaskOutcomeMetrics,
  type EmfSink,
} from '../lib/runtime/agent';
import { reportAgentStats } from './agent-stats';
import { RieInvoker } from '../lib/runtime/rie';

/** The ECS stop timeout minus a margin: tasks still running then are released for another agent. */
const DEFAULT_GRACE_MS = 100_000;
async function main(): Promise<number> {
  const logger = createLogger({ name: 'htcgrid-agent' });
  let config;
  try {
    config = compileConfig(JSON.parse(process.env[GRID_ENV.config] ?? '{}') as unknown, GRID_ENV.config);
  } catch (err) {
    logger.fatal({ err }, err instanceof ConfigError ? err.message : `${GRID_ENV.config} is not valid JSON`);
    return 2;
  }
  // EMF lines to stdout (ECS: awslogs ships them as they are), or to a CloudWatch agent's EMF socket (EKS: the
  // cluster's log shipper nests JSON lines, so CloudWatch would not extract metrics from them).
  let emfSink: EmfSink;
  try {
    emfSink = openEmfSink(process.env[GRID_ENV.emfAgentEndpoint], {
      onError: (err) => logger.warn({ err }, 'task metrics not delivered to the EMF endpoint'),
    });
  } catch (err) {
    logger.fatal({ err }, err instanceof ConfigError ? err.message : 'bad EMF endpoint');
    return 2;
  }
  const resources = resourcesFromEnv(process.env);
  // task_retention_sec is the TTL of the tasks this agent finishes.
  const backends = openAwsBackends(resources, { logger, config });
  const endpoints = (
    process.env[GRID_ENV.lambdaEndpoints] ??
    process.env[GRID_ENV.lambdaEndpoint] ??
    'http://127.0.0.1:8080'
  )
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  // On unless HTCGRID_KILL_RUNTIME_ON_ABORT=false (e.g. a task definition without pidMode: task).
  const killRuntimeOnAbort = process.env.HTCGRID_KILL_RUNTIME_ON_ABORT !== 'false';
  // Per-task outcomes and times, aggregated and logged once a minute as EMF: CloudWatch extracts the metrics.
  const metrics = new TaskOutcomeMetrics({ namespace: taskMetricNamespace(config.gridName) });
  // Busy slots and runtime restarts, counted around each slot's invoker and told with every heartbeat.
  const slotCounters = newSlotCounters();
  const agent = new Agent({
    config,
    onAttemptMeasured: (measure) => metrics.add(measure),
    ...backends,
    logger,
    // lambda-rie serves one invocation at a time: one slot per Lambda container.
    slots: endpoints.length,
    // About a second of work claimed ahead: full receive batches for short tasks, no hoarding of long ones.
    prefetch: 'auto',
    receiveWaitMs: 20_000,
    // Only felt where tasks are sent ahead to a busy slot (queuedPerSlot, not with lambda-rie): from the config as
    // locally, so the value one sets is the one every agent uses.
    stalledAfterMs: config.stalledAfterMs,
    // A cancelled, lost or timed-out task's handler is SIGKILLed in its Lambda container (the ECS task shares its
    // PID namespace and uid for this); lambda-rie alone would let it run on until AWS_LAMBDA_FUNCTION_TIMEOUT.
    createInvoker: (slot) =>
      countSlotUsage(new RieInvoker({ endpoint: endpoints[slot]!, logger, killRuntimeOnAbort }), slotCounters),
  });
  const heartbeat = new PresenceHeartbeat({
    registry: backends.agents,
    presence: {
      agentId: agent.owner,
      host: os.hostname(),
      pid: process.pid,
      slots: endpoints.length,
      handler: config.handler,
      runtime: config.runtime.name,
      startedAt: Date.now(),
    },
    activity: () => ({ busySlots: slotCounters.busy, runtimeRestarts: slotCounters.restarts, tasks: agent.stats }),
    // Heartbeats cost one write each: every 20 s is under 0.2 million writes per agent-month.
    intervalMs: AGENT_HEARTBEAT_MS.aws,
    logger,
  });
  const graceMs = Number(process.env.HTCGRID_DRAIN_GRACE_MS ?? DEFAULT_GRACE_MS);
  let signals = 0;
  const onSignal = (signal: string): void => {
    signals++;
    logger.info({ signal, graceMs: signals > 1 ? 0 : graceMs }, signals > 1 ? 'stopping now' : 'draining');
    void heartbeat.drain();
    void agent.stop(graceMs);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const stopReporting = reportAgentStats(agent.stats, logger, undefined, {
    metrics,
    write: (line) => emfSink.write(line),
  });
  await agent.start();
  // Registered once its runtimes are up, so clients can tell "no agent alive" from "tasks waiting their turn".
  await heartbeat.start().catch((err: unknown) => logger.warn({ err }, 'agent not registered; it runs tasks anyway'));
  await agent.done;
  await heartbeat.stop();
  stopReporting();
  await emfSink.close();
  await backends.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${JSON.stringify({ level: 60, msg: 'agent failed', err: String(err) })}\n`);
    process.exitCode = 1;
  },
);
