// A worker folder built into a Lambda zip and deployed into the worker bucket; exposes bucket, key and handler.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Fn } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { ConfigError } from '../core/errors';
import { handlerString } from '../core/handler';
import { resolveRuntime, type WorkerRuntime } from '../core/runtime-kind';
import { grantGetObject } from './worker-bucket';
import { workerBundlingOptions } from './worker-bundling';

export interface WorkerBundleProps {
  /** Bucket the zip is deployed into (its name reaches the compute plane as `S3_LAMBDA_HTCGRID_BUCKET_NAME`). */
  readonly bucket: s3.IBucket;
  /**
   * The worker folder (handler module and, for Python, an optional `requirements.txt`).
   * Exactly one of `sourceDir` and `zipFile` must be given.
   * @default - none
   */
  readonly sourceDir?: string;
  /**
   * A prebuilt worker zip, deployed as is.
   * @default - none; the zip is built from `sourceDir`
   */
  readonly zipFile?: string;
  /**
   * Worker runtime (`python3.12`, `python3.13`, `nodejs22.x`, `nodejs24.x`, `provided.al2023`, or an alias).
   * @default 'python3.12'
   */
  readonly runtime?: string;
  /**
   * Module of the handler (HTC-Grid's `lambda_handler_file_name`).
   * @default 'lambda_function'
   */
  readonly handlerFileName?: string;
  /**
   * Function of the handler (HTC-Grid's `lambda_handler_function_name`).
   * @default 'lambda_handler'
   */
  readonly handlerFunctionName?: string;
  /**
   * Key prefix of the zip in the bucket. Older zips under this prefix are removed on update.
   * @default 'workers/'
   */
  readonly keyPrefix?: string;
  /**
   * Python interpreter used to install requirements when bundling locally.
   * @default 'python3'
   */
  readonly pythonExecutable?: string;
  /**
   * Bundle in the AWS SAM build image with Docker even when local packaging works.
   * @default false
   */
  readonly forceDockerBundling?: boolean;
}

/** Builds a worker zip (locally via lib/packaging, or in Docker) and deploys it into the worker bucket. */
export class WorkerBundle extends Construct {
  /** The bucket holding the zip. */
  readonly bucket: s3.IBucket;
  /** Object key of the deployed zip (a deploy-time value). */
  readonly key: string;
  /** `s3://bucket/key` of the deployed zip (HTC-Grid's `lambda.s3_source`). */
  readonly s3Source: string;
  /** The handler string, `<file>.<function>`, built by lib/core's `handlerString`. */
  readonly handler: string;
  /** Handler module as configured. */
  readonly handlerFileName: string;
  /** Handler function as configured. */
  readonly handlerFunctionName: string;
  /** The worker's runtime. */
  readonly runtime: WorkerRuntime;
  /** The deployment; depend on it to make sure the zip is in place before tasks start. */
  readonly deployment: s3deploy.BucketDeployment;

  constructor(scope: Construct, id: string, props: WorkerBundleProps) {
    super(scope, id);
    const issues: string[] = [];
    if ((props.sourceDir === undefined) === (props.zipFile === undefined)) {
      issues.push(
        `WorkerBundle: give exactly one of sourceDir and zipFile (got sourceDir=${JSON.stringify(props.sourceDir)}, zipFile=${JSON.stringify(props.zipFile)})`,
      );
    }
    if (props.sourceDir !== undefined && !isDirectory(props.sourceDir)) {
      issues.push(
        `worker: "${props.sourceDir}" is not a folder: pass the worker's folder, e.g. -c worker=workers/python/mock-compute`,
      );
    }
    if (props.zipFile !== undefined && !fs.existsSync(props.zipFile)) {
      issues.push(`WorkerBundle zipFile: "${props.zipFile}" does not exist: build it first with \`htcgrid bundle\``);
    }
    const keyPrefix = props.keyPrefix ?? 'workers/';
    if (!keyPrefix.endsWith('/') || keyPrefix.startsWith('/')) {
      issues.push(`WorkerBundle keyPrefix: "${keyPrefix}" must end with "/" and not start with one (e.g. "workers/")`);
    }
    this.handlerFileName = props.handlerFileName ?? 'lambda_function';
    this.handlerFunctionName = props.handlerFunctionName ?? 'lambda_handler';
    const handler = collect(issues, () => handlerString(this.handlerFileName, this.handlerFunctionName));
    const runtime = collect(issues, () => resolveRuntime(props.runtime ?? 'python3.12'));
    if (issues.length > 0 || handler === undefined || runtime === undefined) throw new ConfigError(issues);
    this.handler = handler;
    this.runtime = runtime;
    this.bucket = props.bucket;

    const source =
      props.zipFile !== undefined
        ? s3deploy.Source.asset(path.resolve(props.zipFile))
        : s3deploy.Source.asset(path.resolve(props.sourceDir ?? '.'), {
            bundling: workerBundlingOptions({
              sourceDir: props.sourceDir ?? '.',
              runtime,
              pythonExecutable: props.pythonExecutable,
              forceDocker: props.forceDockerBundling,
            }),
          });
    this.deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      sources: [source],
      destinationBucket: props.bucket,
      destinationKeyPrefix: keyPrefix,
      extract: false,
      prune: true,
      memoryLimit: 512,
    });
    // With extract=false the zip keeps its asset name: the key is the prefix plus that name.
    this.key = `${keyPrefix}${Fn.select(0, this.deployment.objectKeys)}`;
    this.s3Source = `s3://${props.bucket.bucketName}/${this.key}`;
    NagSuppressions.addResourceSuppressions(
      this.deployment,
      [
        {
          id: 'AwsSolutions-IAM4',
          reason: 'CDK BucketDeployment handler: AWSLambdaBasicExecutionRole only grants writing its own logs.',
          appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CDK BucketDeployment handler: reads the CDK asset object and syncs the worker prefix; s3:*Object* and /* are how CDK scopes a sync.',
        },
        { id: 'AwsSolutions-L1', reason: 'CDK BucketDeployment handler: the runtime is chosen by aws-cdk-lib.' },
      ],
      true,
    );
  }

  /** Read access to the deployed zip only. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return grantGetObject(this.bucket, grantee, this.key);
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function collect<T>(issues: string[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) issues.push(...err.issues);
    else throw err;
    return undefined;
  }
}
