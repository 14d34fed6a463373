// Prepares the folder a local Lambda runtime runs a worker from: always from the worker's zip, as in AWS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RuntimeFamily } from '../core';
import { BundlingError } from '../core';
import { detectWorkerRuntime } from './runtime-detection';
import { unpackWorker } from './unpack-worker';
import { bundleWorker, type BundleWorkerOptions } from './worker-bundle';

export type PrepareTaskRootOptions = Omit<BundleWorkerOptions, 'sourceDir' | 'outFile'>;

export interface TaskRoot {
  /** The unpacked zip: `<workDir>/task`. */
  readonly taskRoot: string;
  /** The zip the task root was unpacked from (bundled into `<workDir>/worker.zip` when given a folder). */
  readonly zipPath: string;
  readonly runtime: RuntimeFamily;
}

/**
 * Makes `<workDir>/task` hold exactly the worker's zip. A folder is first bundled to `<workDir>/worker.zip`, so the
 * local grid runs the very zip that AWS would, with one difference: Python requirements the local interpreter
 * already has are not copied in (it imports them from its own site-packages; e.g. Debian's QuantLib for
 * `/usr/bin/python3`), unless `omitInstalledRequirements: false`. Anything left in `<workDir>/task` from an earlier
 * run is removed.
 */
export async function prepareTaskRoot(
  worker: string,
  workDir: string,
  options: PrepareTaskRootOptions = {},
): Promise<TaskRoot> {
  const source = path.resolve(worker);
  const work = path.resolve(workDir);
  const taskRoot = path.join(work, 'task');
  if (!fs.existsSync(source)) {
    throw new BundlingError(`worker '${worker}' does not exist`, { hint: 'pass a worker folder or a Lambda zip' });
  }
  await fs.promises.mkdir(work, { recursive: true });
  await fs.promises.rm(taskRoot, { recursive: true, force: true });

  if (fs.statSync(source).isDirectory()) {
    const bundle = await bundleWorker({
      omitInstalledRequirements: true,
      ...options,
      sourceDir: source,
      outFile: path.join(work, 'worker.zip'),
    });
    await unpackWorker(bundle.zipPath, taskRoot);
    return { taskRoot, zipPath: bundle.zipPath, runtime: bundle.runtime };
  }
  await unpackWorker(source, taskRoot);
  return { taskRoot, zipPath: source, runtime: options.runtime ?? detectWorkerRuntime(taskRoot) };
}
