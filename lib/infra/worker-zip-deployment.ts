// The worker zip deployed into the worker bucket: built from a folder (or given prebuilt), checked for its handler,
// and kept under its own key so a rolled-back task definition still finds its zip.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssetHashType, Fn } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { basicExecutionRole } from './nag-suppressions';
import { BundlingError, ConfigError } from '../core/errors';
import { handlerString } from '../core/handler';
import { resolveRuntime, type RuntimeFamily, type WorkerRuntime } from '../core/runtime-kind';
import { detectWorkerRuntime, lambdaPlatformOf, runtimeEvidence } from '../packaging';
import type { CpuArchitecture } from './cpu-architecture';
import { defaultHandlerNames, readZip, zipHandlerIssues, zipRuntimeFamilies } from './handler-check';
import { grantGetObject } from './worker-bucket';
import { workerBundlingOptions } from './worker-bundling';

/** Whose platform a Python worker's requirements are installed for. */
export type PipPlatform = 'lambda' | 'host';

export interface WorkerZipDeploymentProps {
  /** Bucket the zip is deployed into (its name reaches the compute plane as `S3_LAMBDA_HTCGRID_BUCKET_NAME`). */
  readonly bucket: s3.IBucket;
  /**
   * The worker folder (handler module and, for Python, an optional `requirements.txt`).
   * Exactly one of `sourceDir` and `zipFile` must be given.
   * @default - none
   */
  readonly sourceDir?: string;
  /**
   * A prebuilt worker zip, deployed as is (it must hold the handler).
   * @default - none; the zip is built from `sourceDir`
   */
  readonly zipFile?: string;
  /**
   * Worker runtime (`python3.12`, `python3.13`, `nodejs22.x`, `nodejs24.x`, `provided.al2023`, or an alias).
   * @default - from the worker's files, as `htcgrid run` and `htcgrid bundle` tell (python3.12, nodejs22.x or
   * provided.al2023)
   */
  readonly runtime?: string;
  /**
   * Module of the handler (HTC-Grid's `lambda_handler_file_name`).
   * @default - 'index' for Node, 'lambda_function' otherwise (AWS Lambda's defaults)
   */
  readonly handlerFileName?: string;
  /**
   * Function of the handler (HTC-Grid's `lambda_handler_function_name`).
   * @default - 'handler' for Node, 'lambda_handler' otherwise
   */
  readonly handlerFunctionName?: string;
  /**
   * Key prefix of the zip in the bucket. Each zip keeps its own key (its content hash): older ones stay for
   * rollbacks.
   * @default 'workers/'
   */
  readonly keyPrefix?: string;
  /**
   * Python interpreter used to install requirements when bundling locally.
   * @default 'python3'
   */
  readonly pythonExecutable?: string;
  /**
   * CPU architecture of the Lambda containers: the Python wheels are installed for it.
   * @default 'x86_64'
   */
  readonly architecture?: CpuArchitecture;
  /**
   * Install Python requirements for the Lambda platform (manylinux wheels of the runtime's Python version and the
   * architecture), or for the machine that synthesizes (only right when it is a Linux of the same architecture and
   * Python version, or the requirements are pure Python).
   * @default 'lambda'
   */
  readonly pipPlatform?: PipPlatform;
  /**
   * Extra `pip install` arguments, e.g. `['--no-index', '--find-links', 'wheels']` for a local wheelhouse.
   * @default []
   */
  readonly pipArgs?: readonly string[];
  /**
   * Bundle in the AWS SAM build image with Docker even when local packaging works.
   * @default false
   */
  readonly forceDockerBundling?: boolean;
}

/** Builds a worker zip (locally via lib/packaging, or in Docker) and deploys it into the worker bucket. */
export class WorkerZipDeployment extends Construct {
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

  constructor(scope: Construct, id: string, props: WorkerZipDeploymentProps) {
    super(scope, id);
    const resolved = resolveWorker(props);
    this.handler = resolved.handler;
    this.handlerFileName = resolved.handlerFileName;
    this.handlerFunctionName = resolved.handlerFunctionName;
    this.runtime = resolved.runtime;
    this.bucket = props.bucket;
    const keyPrefix = props.keyPrefix ?? 'workers/';
    this.deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      sources: [this.source(props)],
      destinationBucket: props.bucket,
      destinationKeyPrefix: keyPrefix,
      extract: false,
      // Older zips stay: a circuit-breaker rollback runs the previous task definition, which fetches its own zip.
      // (The bucket's lifecycle rule expires superseded versions.)
      prune: false,
      memoryLimit: 512,
    });
    // With extract=false the zip keeps its asset name: the key is the prefix plus that name.
    this.key = `${keyPrefix}${Fn.select(0, this.deployment.objectKeys)}`;
    this.s3Source = `s3://${props.bucket.bucketName}/${this.key}`;
    NagSuppressions.addResourceSuppressions(
      this.deployment,
      [
        basicExecutionRole(
          'CDK BucketDeployment handler: AWSLambdaBasicExecutionRole only grants writing its own logs.',
        ),
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CDK BucketDeployment handler: reads the CDK asset object and writes the worker prefix; s3:*Object* and /* are how CDK scopes it.',
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

  /** The asset: the prebuilt zip, or the folder bundled (and its handler checked) at synth. */
  private source(props: WorkerZipDeploymentProps): s3deploy.ISource {
    if (props.zipFile !== undefined) return s3deploy.Source.asset(path.resolve(props.zipFile));
    const sourceDir = path.resolve(props.sourceDir!);
    const architecture = props.architecture ?? 'x86_64';
    return s3deploy.Source.asset(sourceDir, {
      // Named by the zip it builds (deterministic), not by the folder and the bundling options: those hold the
      // checkout's absolute paths and whatever else lies in the folder (a test run's __pycache__), so every checkout
      // and every test run gave the same zip another asset, and `cdk deploy` uploaded and deployed it again.
      assetHashType: AssetHashType.OUTPUT,
      bundling: workerBundlingOptions({
        sourceDir,
        runtime: this.runtime,
        handler: this.handler,
        pythonExecutable: props.pythonExecutable,
        lambdaPlatform:
          (props.pipPlatform ?? 'lambda') === 'lambda' ? lambdaPlatformOf(this.runtime.name, architecture) : undefined,
        pipArgs: props.pipArgs,
        architecture,
        forceDocker: props.forceDockerBundling,
      }),
    });
  }
}

interface ResolvedWorker {
  readonly runtime: WorkerRuntime;
  readonly handler: string;
  readonly handlerFileName: string;
  readonly handlerFunctionName: string;
}

/**
 * The runtime and handler of the worker, every problem reported at once: the runtime as given or as the worker's
 * files tell, the handler as given or the runtime's default, and for a prebuilt zip, the handler inside it.
 */
export function resolveWorker(props: WorkerZipDeploymentProps): ResolvedWorker {
  const issues: string[] = [];
  if ((props.sourceDir === undefined) === (props.zipFile === undefined)) {
    issues.push(
      `worker: give exactly one of sourceDir and zipFile (got sourceDir=${JSON.stringify(props.sourceDir)}, zipFile=${JSON.stringify(props.zipFile)})`,
    );
  }
  if (props.sourceDir !== undefined && !isDirectory(props.sourceDir)) {
    issues.push(
      `worker: "${props.sourceDir}" is not a folder: pass the folder holding the handler module (e.g. workers/python/mock-compute)`,
    );
  }
  if (props.zipFile !== undefined && !fs.existsSync(props.zipFile)) {
    issues.push(`worker_zip: "${props.zipFile}" does not exist: build it first with \`htcgrid bundle\``);
  }
  const keyPrefix = props.keyPrefix ?? 'workers/';
  if (!keyPrefix.endsWith('/') || keyPrefix.startsWith('/')) {
    issues.push(`worker keyPrefix: "${keyPrefix}" must end with "/" and not start with one (e.g. "workers/")`);
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const zip = props.zipFile !== undefined ? readZip(props.zipFile) : undefined;
  const families = zip ? zipRuntimeFamilies(zip.names) : folderRuntimeFamilies(props.sourceDir!, props.runtime, issues);
  const runtime = collect(issues, () => resolveRuntime(props.runtime ?? defaultRuntime(families)));
  const where = props.sourceDir ?? props.zipFile;
  if (runtime && families && families.length > 0 && !families.includes(runtime.family)) {
    issues.push(
      `runtime ${runtime.name}: the worker ${where} is a ${families.join('/')} worker: set -c runtime ` +
        `(agent_configuration.lambda.runtime) to a ${families[0]} runtime, e.g. ${defaultRuntime(families)}, or leave it out`,
    );
  }
  const defaults = defaultHandlerNames(runtime?.family ?? 'python');
  const handlerFileName = props.handlerFileName ?? defaults.fileName;
  const handlerFunctionName = props.handlerFunctionName ?? defaults.functionName;
  const handler = collect(issues, () => handlerString(handlerFileName, handlerFunctionName));
  if (zip && handler && runtime) issues.push(...zipHandlerIssues(zip, handler, runtime));
  if (issues.length > 0 || !runtime || !handler) throw new ConfigError(issues);
  return { runtime, handler, handlerFileName, handlerFunctionName };
}

/**
 * The runtime families a folder's files point at: when no runtime is given, exactly one (as `htcgrid run` and
 * `htcgrid bundle` detect it, an ambiguous folder is an issue); when one is given, every family with evidence.
 */
function folderRuntimeFamilies(
  dir: string,
  runtime: string | undefined,
  issues: string[],
): RuntimeFamily[] | undefined {
  if (runtime === undefined) return collect(issues, () => [detectWorkerRuntime(dir)]);
  const evidence = runtimeEvidence(dir);
  return (Object.keys(evidence) as RuntimeFamily[]).filter((family) => evidence[family].length > 0);
}

const DEFAULT_RUNTIMES: Readonly<Record<RuntimeFamily, string>> = {
  python: 'python3.12',
  node: 'nodejs22.x',
  provided: 'provided.al2023',
};

function defaultRuntime(families: readonly RuntimeFamily[] | undefined): string {
  return families?.length === 1 ? DEFAULT_RUNTIMES[families[0]!] : DEFAULT_RUNTIMES.python;
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
    else if (err instanceof BundlingError) issues.push(err.message.replace(/\n\s*fix: /, ': '));
    else throw err;
    return undefined;
  }
}
