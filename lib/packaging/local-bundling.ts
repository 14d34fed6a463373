// Bundles a worker on the synthesising machine for a CDK asset: the shape of aws-cdk-lib's ILocalBundling, without importing CDK.
import * as path from 'node:path';
import { bundleWorkerSync, type BundleWorkerOptions, type WorkerBundle } from './worker-bundle';

/** The zip's name in the bundling output folder; CDK uploads a folder holding a single archive as that archive. */
export const WORKER_ZIP_NAME = 'worker.zip';

/**
 * Local bundling for a worker asset. Pass it as `bundling.local` of `Code.fromAsset(sourceDir, ...)` or
 * `new s3_assets.Asset(...)`: `tryBundle` writes `<outputDir>/worker.zip` and returns true, so Docker is never
 * needed. Errors are thrown (as `BundlingError`), not swallowed, so `cdk synth` says what is wrong with the worker.
 */
export class WorkerLocalBundling {
  /** What the last `tryBundle` produced, for logs and tests. */
  lastBundle: WorkerBundle | undefined;

  constructor(private readonly options: Omit<BundleWorkerOptions, 'outFile'>) {}

  tryBundle(outputDir: string): boolean {
    this.lastBundle = bundleWorkerSync({ ...this.options, outFile: path.join(outputDir, WORKER_ZIP_NAME) });
    return true;
  }
}
