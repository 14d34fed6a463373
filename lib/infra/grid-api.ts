// GridApi: the HTTP API in AWS, a Node.js Lambda behind a function URL with AWS_IAM auth and response streaming.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { basicExecutionRole } from './nag-suppressions';
import { ConfigError } from '../core/errors';
import { GRID_ENV, resourcesToEnv } from '../core/grid-resources';
import { grantDataPrefix } from './data-plane-bucket';
import { bundledNodeFunction } from './node-bundle';
import { packageRoot, sourceOrCompiled } from './repo-paths';

/** The API's Lambda handler source, relative to the package root. */
export const GRID_API_ENTRY = 'lib/http/lambda-handler.ts';
/** The OpenAPI document the handler serves, relative to the package root. */
const GRID_API_DOCUMENT = 'lib/http/openapi.yaml';

export interface GridApiProps {
  /** The task table (tasks, sessions and the API's request ledger). */
  readonly table: dynamodb.ITable;
  /** The task queues, lowest priority first. */
  readonly queues: readonly sqs.IQueue[];
  /** The data-plane bucket (large payloads and results). */
  readonly dataBucket: s3.IBucket;
  /**
   * Key prefix of the grid's objects in `dataBucket`; IAM is scoped to it.
   * @default 'data/'
   */
  readonly dataPrefix?: string;
  /** The client's share of the grid configuration (`clientConfigurationDocument`), JSON: limits and defaults the API applies. */
  readonly configJson: string;
  /**
   * The handler source file (exporting `handler`).
   * @default - `lib/http/lambda-handler.ts` of this package
   */
  readonly entry?: string;
  /**
   * Memory of the function in MiB (CPU grows with it: submitting batches is CPU-bound JSON work).
   * @default 1024
   */
  readonly memoryMiB?: number;
  /**
   * Longest request: a results stream ends before it with a cursor to resume from.
   * @default Duration.minutes(15)
   */
  readonly timeout?: Duration;
  /**
   * Concurrent executions reserved for (and capping) the API. Each open results stream holds one.
   * @default - none (new accounts cannot reserve concurrency); the handler's per-caller rate limit applies
   */
  readonly reservedConcurrency?: number;
}

/**
 * The grid's HTTP API (`lib/http/openapi.yaml`) served by a Lambda function URL: `AWS_IAM` auth (callers sign with
 * SigV4 for the service `lambda`; grant them with `grantInvoke`) and response streaming, so a results stream runs up
 * to 15 minutes per request (clients resume from its cursor).
 */
export class GridApi extends Construct {
  readonly function: lambda.IFunction;
  readonly functionUrl: lambda.FunctionUrl;
  /** The API's base URL (ends with `/`). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: GridApiProps) {
    super(scope, id);
    const entry = props.entry ?? sourceOrCompiled(GRID_API_ENTRY);
    if (!entry || !fs.existsSync(entry)) {
      throw new ConfigError([
        `GridApi entry: ${entry ?? GRID_API_ENTRY} does not exist: build the package (npm run build) or pass entry`,
      ]);
    }
    const timeout = props.timeout ?? Duration.minutes(15);
    if (timeout.toSeconds() < 30 || timeout.toSeconds() > 900) {
      throw new ConfigError([`GridApi timeout: ${timeout.toSeconds()} s must be from 30 to 900 s (Lambda's limit)`]);
    }
    const prefix = props.dataPrefix ?? 'data/';
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The handler serves its OpenAPI document, read next to it (the source's in a checkout, dist's when installed).
    const document = sourceOrCompiled(GRID_API_DOCUMENT);
    if (!document) {
      throw new ConfigError([`GridApi: ${GRID_API_DOCUMENT} is missing from ${packageRoot()}: reinstall the package`]);
    }
    const fn = bundledNodeFunction(
      this,
      'Function',
      entry,
      {
        memorySize: props.memoryMiB ?? 1024,
        timeout,
        reservedConcurrentExecutions: props.reservedConcurrency,
        logGroup,
        environment: {
          ...resourcesToEnv({
            tableName: props.table.tableName,
            queueUrls: props.queues.map((q) => q.queueUrl),
            dataBucket: props.dataBucket.bucketName,
          }),
          [GRID_ENV.config]: props.configJson,
          HTCGRID_DATA_PREFIX: prefix,
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
      (dir) => fs.copyFileSync(document, path.join(dir, 'openapi.yaml')),
    );
    props.table.grantReadWriteData(fn);
    for (const q of props.queues) q.grantSendMessages(fn);
    grantDataPrefix(props.dataBucket, fn, prefix, true);
    this.function = fn;
    this.functionUrl = fn.addFunctionUrl({
      authType: lambda.FunctionUrlAuthType.AWS_IAM,
      invokeMode: lambda.InvokeMode.RESPONSE_STREAM,
    });
    this.url = this.functionUrl.url;
    NagSuppressions.addResourceSuppressions(
      fn,
      [
        basicExecutionRole('AWSLambdaBasicExecutionRole only grants writing the function its own logs.'),
        {
          id: 'AwsSolutions-IAM5',
          reason:
            "Index queries need the table's index/* resource, and objects are scoped to the grid's data prefix; nothing else is wildcarded.",
        },
      ],
      true,
    );
  }

  /**
   * Lets `grantee` call the API: `lambda:InvokeFunctionUrl` (AWS_IAM) and `lambda:InvokeFunction` through the URL,
   * both of which function URLs require since October 2025.
   */
  grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return this.functionUrl.grantInvokeUrl(grantee);
  }
}
