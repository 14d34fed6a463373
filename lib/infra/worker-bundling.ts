// How a worker folder becomes the zip CDK uploads: locally with lib/packaging, or in the AWS SAM build image with Docker.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DockerImage, type BundlingOptions, type ILocalBundling } from 'aws-cdk-lib';
import { BundlingError } from '../core/errors';
import type { WorkerRuntime } from '../core/runtime-kind';
import { bundleWorkerSync, type LambdaPlatform, type WorkerBundle } from '../packaging';
import { dockerPlatformName, type CpuArchitecture } from './cpu-architecture';
import { readZip, zipHandlerIssues } from './handler-check';

/** What the packaging function reports about the zip it wrote. */
export type LocalBundleResult = Pick<WorkerBundle, 'zipPath' | 'files' | 'bytes' | 'sha256'>;

export interface LocalWorkerBundlingOptions {
  readonly sourceDir: string;
  readonly runtime: WorkerRuntime;
  /** Python interpreter pip runs under. */
  readonly pythonExecutable?: string;
  /**
   * Install Python requirements for this Lambda platform rather than the bundling machine's.
   * @default - the bundling machine's platform
   */
  readonly lambdaPlatform?: LambdaPlatform;
  /** Extra `pip install` arguments (e.g. `--no-index --find-links wheels/`). */
  readonly pipArgs?: readonly string[];
  /**
   * The handler the zip must hold; bundling fails, naming the file and the function, when it does not.
   * @default - not checked
   */
  readonly handler?: string;
  /** Name of the zip inside the bundling output folder. */
  readonly zipName?: string;
}

/**
 * Builds the worker zip into `outputDir` with lib/packaging's `bundleWorkerSync` (CDK bundling is synchronous): the
 * very zip `htcgrid bundle` builds. Throws a `BundlingError` when the zip does not hold `options.handler`.
 */
export function bundleWorkerLocally(options: LocalWorkerBundlingOptions, outputDir: string): LocalBundleResult {
  const result = bundleWorkerSync({
    sourceDir: path.resolve(options.sourceDir),
    outFile: path.join(outputDir, options.zipName ?? 'worker.zip'),
    runtime: options.runtime.family,
    pythonExecutable: options.pythonExecutable,
    lambdaPlatform: options.lambdaPlatform,
    pipArgs: options.pipArgs,
  });
  if (options.handler !== undefined) {
    const issues = zipHandlerIssues(readZip(result.zipPath), options.handler, options.runtime);
    if (issues.length > 0) throw new BundlingError(issues.join('\n'));
  }
  return { zipPath: result.zipPath, files: result.files, bytes: result.bytes, sha256: result.sha256 };
}

/**
 * Whether this machine has what bundling the worker needs: for a Python worker with a `requirements.txt`, a Python
 * whose pip runs. Node workers need only esbuild (a dependency of this package); others need nothing.
 */
export function localToolsAvailable(options: LocalWorkerBundlingOptions): boolean {
  if (options.runtime.family !== 'python') return true;
  if (!fs.existsSync(path.join(options.sourceDir, 'requirements.txt'))) return true;
  const probe = spawnSync(options.pythonExecutable ?? 'python3', ['-m', 'pip', '--version'], { stdio: 'ignore' });
  return probe.status === 0;
}

/**
 * Local bundling for CDK: when the tools are present, the zip is built here and a worker that cannot be built (a
 * requirement pip cannot install, a syntax error) fails synth with the packaging error. Without them, CDK falls back
 * to Docker and the AWS SAM build image.
 */
export class LocalWorkerBundling implements ILocalBundling {
  /** What the last `tryBundle` produced, for logs and tests. */
  lastBundle: LocalBundleResult | undefined;

  constructor(private readonly options: LocalWorkerBundlingOptions) {}

  tryBundle(outputDir: string): boolean {
    if (!localToolsAvailable(this.options)) return false;
    this.lastBundle = bundleWorkerLocally(this.options, outputDir);
    return true;
  }
}

/** The AWS SAM build image matching a runtime, used when the worker has to be bundled in Docker. */
export function buildImageFor(runtime: WorkerRuntime): string {
  switch (runtime.family) {
    case 'python':
      return `public.ecr.aws/sam/build-${runtime.name}:latest`;
    case 'node':
      return `public.ecr.aws/sam/build-${runtime.name}:latest`;
    case 'provided':
      return 'public.ecr.aws/sam/build-provided.al2023:latest';
  }
}

/** The shell script that builds the worker inside the build image (`/asset-input` → `/asset-output`). */
export function dockerBundlingScript(runtime: WorkerRuntime): string {
  switch (runtime.family) {
    case 'python':
      return [
        'set -eu',
        'cp -R /asset-input/. /asset-output/',
        'if [ -f requirements.txt ]; then pip install --no-cache-dir -r requirements.txt -t /asset-output; fi',
        'rm -rf /asset-output/requirements.txt /asset-output/.venv /asset-output/venv',
        'find /asset-output -name __pycache__ -type d -prune -exec rm -rf {} +',
      ].join(' && ');
    case 'node':
      return [
        'set -eu',
        'export npm_config_cache=/tmp/.npm',
        'if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; fi',
        'for f in *.ts *.js; do [ -e "$f" ] || continue; case "$f" in *.d.ts) continue;; esac;' +
          ' npx --yes esbuild@0.25 "$f" --bundle --platform=node --target=node22 --format=cjs' +
          ' --external:@aws-sdk/* --outfile="/asset-output/${f%.*}.js"; done',
      ].join(' && ');
    case 'provided':
      return ['set -eu', 'cp -R /asset-input/. /asset-output/', 'chmod 755 /asset-output/bootstrap'].join(' && ');
  }
}

/**
 * CDK bundling options for a worker folder: local packaging first, the SAM build image of the runtime and
 * architecture otherwise (whose pip installs for that very platform).
 */
export function workerBundlingOptions(
  options: LocalWorkerBundlingOptions & { readonly forceDocker?: boolean; readonly architecture?: CpuArchitecture },
): BundlingOptions {
  return {
    image: DockerImage.fromRegistry(buildImageFor(options.runtime)),
    command: ['bash', '-c', dockerBundlingScript(options.runtime)],
    user: 'root',
    platform: dockerPlatformName(options.architecture ?? 'x86_64'),
    local: options.forceDocker ? undefined : new LocalWorkerBundling(options),
  };
}
