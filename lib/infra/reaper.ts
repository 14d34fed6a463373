// The reaper: a scheduled Lambda that finds expired leases and re-queues (or fails) their tasks.
import * as fs from 'node:fs';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { basicExecutionRole } from './nag-suppressions';
import { ConfigError } from '../core/errors';
import { GRID_ENV, resourcesToEnv } from '../core/grid-resources';
import { bundledNodeFunction } from './node-bundle';
import { sourceOrCompiled } from './repo-paths';

/** The reaper's handler source, relative to the package root. */
export const REAPER_ENTRY = 'lib/runtime/reaper-handler.ts';

export interface ReaperProps {
  /** The task table. */
  readonly table: dynamodb.ITable;
  /** The task queues (lowest priority first); expired tasks are re-queued here. */
  readonly queues: readonly sqs.IQueue[];
  /** The data-plane bucket name (passed through the environment, the reaper does not read it). */
  readonly dataBucketName: string;
  /**
   * How often the reaper runs. EventBridge schedules are minute-granular.
   * @default Duration.minutes(1)
   */
  readonly schedule?: Duration;
  /**
   * The handler source file (a TypeScript or JavaScript file exporting `handler`).
   * @default - `lib/runtime/reaper-handler.ts` of this package
   */
  readonly entry?: string;
  /**
   * The client's share of the grid configuration (`clientConfigurationDocument`), JSON: the reaper reads its
   * `task_retention_sec`, the TTL of the tasks it fails after their last attempt.
   * @default - the default configuration (7 days)
   */
  readonly configJson?: string;
  /**
   * Timeout of one reaper run.
   * @default Duration.seconds(60)
   */
  readonly timeout?: Duration;
}

/**
 * Node.js 24 Lambda (bundled with esbuild at synth, like the agent) on an EventBridge schedule. No reserved concurrency (new accounts
 * cannot reserve any): runs that overlap are harmless, every completion the reaper writes is conditional.
 *
 * It bundles its own AWS SDK, the version this package is tested with: the clients rely on `throwOnRequestTimeout`
 * (a request whose answer never comes fails after 30 s instead of hanging the run), which the SDK in the Lambda
 * runtime may predate. Minified, it costs about a megabyte of code and some milliseconds of cold start, once a minute at most.
 * It reads the resource names and, of the configuration, the client's share (`configJson`: how long tasks are kept).
 */
export class Reaper extends Construct {
  readonly function: lambda.IFunction;
  readonly rule: events.Rule;
  /** The function's log group (one structured `reaper-run` line per run). */
  readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: ReaperProps) {
    super(scope, id);
    const schedule = props.schedule ?? Duration.minutes(1);
    const entry = props.entry ?? sourceOrCompiled(REAPER_ENTRY);
    if (!entry || !fs.existsSync(entry)) {
      throw new ConfigError([
        `reaper entry: ${entry ?? REAPER_ENTRY} does not exist: build the package (npm run build) or pass entry`,
      ]);
    }
    if (schedule.toSeconds() < 60 || schedule.toSeconds() % 60 !== 0) {
      throw new ConfigError([
        `reaper schedule: ${schedule.toSeconds()}s must be a whole number of minutes (EventBridge)`,
      ]);
    }
    const logGroup = (this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    }));
    const fn = bundledNodeFunction(this, 'Function', entry, {
      timeout: props.timeout ?? Duration.seconds(60),
      memorySize: 256,
      logGroup,
      environment: {
        ...resourcesToEnv({
          tableName: props.table.tableName,
          queueUrls: props.queues.map((q) => q.queueUrl),
          dataBucket: props.dataBucketName,
        }),
        ...(props.configJson !== undefined ? { [GRID_ENV.config]: props.configJson } : {}),
        NODE_OPTIONS: '--enable-source-maps',
      },
    });
    props.table.grant(
      fn,
      'dynamodb:Query',
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:UpdateItem',
      'dynamodb:ConditionCheckItem',
    );
    for (const q of props.queues) q.grantSendMessages(fn);
    this.function = fn;
    this.rule = new events.Rule(this, 'Schedule', {
      schedule: events.Schedule.rate(schedule),
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
      description: `Reaps expired task leases of ${Stack.of(this).stackName}`,
    });
    NagSuppressions.addResourceSuppressions(
      fn,
      [
        basicExecutionRole('AWSLambdaBasicExecutionRole only grants writing the function its own logs.'),
        {
          id: 'AwsSolutions-IAM5',
          reason: "Index queries need the table's index/* resource; nothing else is wildcarded.",
        },
      ],
      true,
    );
  }

  /** Errors of the reaper function. */
  metricErrors(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.function.metricErrors({ statistic: 'Sum', ...props });
  }
}
