// `htcgrid bundle`: turns a worker folder into the Lambda zip that runs both locally and in AWS.
import fs from 'node:fs';
import type { RuntimeFamily } from '../../core';
import { createLogger } from '../../logging';
import { bundleWorker, lambdaPlatformOf, parseLambdaArchitecture, type LambdaPlatform } from '../../packaging';
import * as output from '../output';
import { UsageError } from '../usage-error';

export interface BundleFlags {
  readonly out: string;
  readonly runtime?: string;
  readonly python?: string;
  readonly logLevel?: string;
  /** Install Python requirements for AWS Lambda on this architecture (`x86_64`, `arm64`). */
  readonly lambdaPlatform?: string;
  /** The Lambda Python runtime of `lambdaPlatform`. */
  readonly lambdaRuntime?: string;
}

const FAMILIES: readonly RuntimeFamily[] = ['python', 'node', 'provided'];

export async function bundleCommand(dir: string, flags: BundleFlags): Promise<number> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new UsageError(`worker folder ${dir} does not exist or is not a folder`);
  }
  const runtime = flags.runtime as RuntimeFamily | undefined;
  if (runtime !== undefined && !FAMILIES.includes(runtime)) {
    throw new UsageError(`--runtime ${flags.runtime} is not one of ${FAMILIES.join(', ')}`);
  }
  const logger = createLogger({ level: flags.logLevel ?? 'warn' });
  const bundle = await bundleWorker({
    sourceDir: dir,
    outFile: flags.out,
    runtime,
    pythonExecutable: flags.python,
    lambdaPlatform: lambdaPlatformFlag(flags),
    logger,
  });
  output.info(
    `${bundle.zipPath}: ${bundle.runtime} worker, ${bundle.files.length} file(s), ${(bundle.bytes / 1024).toFixed(1)} KiB, sha256 ${bundle.sha256}`,
  );
  return 0;
}

function lambdaPlatformFlag(flags: BundleFlags): LambdaPlatform | undefined {
  if (flags.lambdaPlatform === undefined) {
    if (flags.lambdaRuntime !== undefined)
      throw new UsageError('--lambda-runtime needs --lambda-platform x86_64|arm64');
    return undefined;
  }
  const runtime = flags.lambdaRuntime ?? 'python3.12';
  const platform = lambdaPlatformOf(runtime, parseLambdaArchitecture(flags.lambdaPlatform));
  if (!platform) throw new UsageError(`--lambda-runtime ${runtime} is not a Lambda Python runtime (e.g. python3.12)`);
  return platform;
}
