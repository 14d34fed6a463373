// The reaper as a Lambda function on a schedule: sweeps expired leases on the grid's DynamoDB table and SQS queues.
import { openAwsBackends, type AwsBackends } from '../backends/aws';
import { compileConfig } from '../core/config';
import { GRID_ENV, resourcesFromEnv } from '../core/grid-resources';
import { createLogger, type Logger } from '../logging';
import { reapExpiredLeases } from './reaper';

/** What one scheduled run did. */
export interface ReaperRunSummary {
  readonly requeued: number;
  readonly failed: number;
  readonly skipped: number;
  readonly sweeps: number;
  /** Finished sessions given their TTL in this run. */
  readonly sessionsExpiring: number;
  readonly durationMs: number;
}

/** The part of the Lambda context the handler uses. */
export interface ReaperContext {
  getRemainingTimeInMillis?(): number;
}

/** Tasks handled per sweep; a run keeps sweeping while sweeps come back full. */
const SWEEP_LIMIT = 500;
/** Stop starting sweeps when less than this is left of the function's timeout. */
const SAFETY_MARGIN_MS = 10_000;
/** Upper bound of sweeps per run, whatever the timeout, so one run never loops for long. */
const MAX_SWEEPS = 50;

let backends: AwsBackends | undefined;
let logger: Logger | undefined;

/**
 * Backends are opened once per Lambda container and reused by later runs. `HTCGRID_CONFIG` (the client's share of the
 * configuration) gives `task_retention_sec`: the TTL of the tasks the reaper fails after their last attempt.
 */
function open(): { backends: AwsBackends; logger: Logger } {
  logger ??= createLogger({ name: 'htcgrid-reaper', destination: 1 });
  const config = compileConfig(JSON.parse(process.env[GRID_ENV.config] ?? '{}') as unknown, GRID_ENV.config);
  // The reaper tells no client: a task it fails is found by its client's next poll (2 s), and the function needs no
  // grant on the clients' notice queues.
  backends ??= openAwsBackends(resourcesFromEnv(process.env), { logger, config, sendNotices: false });
  return { backends, logger };
}

/**
 * Scheduled-rule handler. Sweeps until a sweep finds fewer expired leases than its limit, the function nears its
 * timeout, or `MAX_SWEEPS` is reached; logs one structured summary line and returns the counts.
 */
export const handler = async (_event?: unknown, context?: ReaperContext): Promise<ReaperRunSummary> => {
  const { backends: aws, logger: log } = open();
  const started = Date.now();
  let requeued = 0;
  let failed = 0;
  let skipped = 0;
  let sweeps = 0;
  const timeLeft = () => context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
  while (sweeps < MAX_SWEEPS && timeLeft() > SAFETY_MARGIN_MS) {
    const result = await reapExpiredLeases({
      table: aws.table,
      queue: aws.queue,
      now: Date.now(),
      limit: SWEEP_LIMIT,
      logger: log,
    });
    sweeps++;
    requeued += result.requeued;
    failed += result.failed;
    skipped += result.skipped;
    if (result.requeued + result.failed + result.skipped < SWEEP_LIMIT) break;
  }
  // Finished sessions get the same TTL as their tasks (a running one never does).
  let sessionsExpiring = 0;
  if (timeLeft() > SAFETY_MARGIN_MS)
    sessionsExpiring = (await aws.table.expireFinishedSessions(() => timeLeft() <= SAFETY_MARGIN_MS)).expiring.length;
  const summary: ReaperRunSummary = {
    requeued,
    failed,
    skipped,
    sweeps,
    sessionsExpiring,
    durationMs: Date.now() - started,
  };
  log.info({ event: 'reaper-run', ...summary }, 'reaper run finished');
  log.flush();
  return summary;
};

/** Closes the cached backends (tests; a Lambda container never needs it). */
export async function closeReaperBackends(): Promise<void> {
  const open = backends;
  backends = undefined;
  logger = undefined;
  await open?.close();
}
