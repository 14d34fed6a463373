// Names of a deployed grid's AWS resources, and how they reach the agent, the reaper and clients (environment).
import { ConfigError } from './errors';

/** Everything a process needs to reach a grid in AWS. The CDK stack outputs it; the containers get it as env. */
export interface AwsGridResources {
  readonly region?: string;
  /** DynamoDB task table. */
  readonly tableName: string;
  /** SQS queue URLs indexed by priority level (index 0 = lowest priority). */
  readonly queueUrls: readonly string[];
  /** S3 bucket for payloads and results too big to inline. */
  readonly dataBucket: string;
  /** S3 bucket holding worker zips (HTC-Grid's `S3_LAMBDA_HTCGRID_BUCKET_NAME`). */
  readonly workerBucket?: string;
  /** Key of the worker zip in the worker bucket. */
  readonly workerKey?: string;
  /**
   * Name prefix of the clients' completion notice queues: clients may create, read and delete queues named with it,
   * agents send to them. @default - none: clients poll for results
   */
  readonly noticeQueuePrefix?: string;
}

/** Environment variable names; one source of truth for infra and runtime. */
export const GRID_ENV = {
  config: 'HTCGRID_CONFIG',
  tableName: 'HTCGRID_TABLE_NAME',
  queueUrls: 'HTCGRID_QUEUE_URLS',
  dataBucket: 'HTCGRID_DATA_BUCKET',
  workerBucket: 'S3_LAMBDA_HTCGRID_BUCKET_NAME',
  workerKey: 'HTCGRID_WORKER_KEY',
  lambdaEndpoint: 'HTCGRID_LAMBDA_ENDPOINT',
  /** Every Lambda container's invoke endpoint, comma-separated, one per agent slot. */
  lambdaEndpoints: 'HTCGRID_LAMBDA_ENDPOINTS',
  region: 'AWS_REGION',
  /**
   * Where the agent sends its EMF lines: `tcp://host:port` or `udp://host:port` of a CloudWatch agent listening for
   * EMF (its `emf` input, port 25888 by default), or unset for stdout. The name the AWS EMF client libraries read.
   */
  emfAgentEndpoint: 'AWS_EMF_AGENT_ENDPOINT',
} as const;

/**
 * The `event` of the agent's once-a-minute log line counting the tasks it finished (`succeeded`, `failed`); the
 * stack turns those lines into the grid's task metrics.
 */
export const AGENT_STATS_EVENT = 'agent-stats';

/** The CloudWatch namespace of a grid's task metrics (the stack's dashboard and the agents' EMF lines share it). */
export function taskMetricNamespace(gridName: string): string {
  return `HtcGrid/${gridName}`;
}

/**
 * Task metrics the agents emit as CloudWatch Embedded Metric Format lines, aggregated per flush (no PutMetricData).
 * Times are in milliseconds; failed attempts carry the `ErrorType` dimension.
 */
export const TASK_METRICS = {
  retried: 'TasksRetried',
  queuedTime: 'TaskQueuedTime',
  runTime: 'TaskRunTime',
  failedAttempts: 'TaskAttemptsFailed',
  errorTypeDimension: 'ErrorType',
} as const;

export function resourcesToEnv(resources: AwsGridResources): Record<string, string> {
  const env: Record<string, string> = {
    [GRID_ENV.tableName]: resources.tableName,
    [GRID_ENV.queueUrls]: JSON.stringify(resources.queueUrls),
    [GRID_ENV.dataBucket]: resources.dataBucket,
  };
  if (resources.workerBucket) env[GRID_ENV.workerBucket] = resources.workerBucket;
  if (resources.workerKey) env[GRID_ENV.workerKey] = resources.workerKey;
  return env;
}

export function resourcesFromEnv(env: Readonly<Record<string, string | undefined>>): AwsGridResources {
  const missing = [GRID_ENV.tableName, GRID_ENV.queueUrls, GRID_ENV.dataBucket].filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new ConfigError(
      missing.map((k) => `environment variable ${k} is not set: the CDK stack sets it on the agent`),
    );
  }
  let queueUrls: unknown;
  try {
    queueUrls = JSON.parse(env[GRID_ENV.queueUrls] ?? '');
  } catch {
    queueUrls = undefined;
  }
  if (!Array.isArray(queueUrls) || queueUrls.length === 0 || !queueUrls.every((u) => typeof u === 'string')) {
    throw new ConfigError([`${GRID_ENV.queueUrls} must be a JSON array of queue URLs, lowest priority first`]);
  }
  return {
    region: env[GRID_ENV.region],
    tableName: env[GRID_ENV.tableName] ?? '',
    queueUrls: queueUrls,
    dataBucket: env[GRID_ENV.dataBucket] ?? '',
    workerBucket: env[GRID_ENV.workerBucket],
    workerKey: env[GRID_ENV.workerKey],
  };
}
