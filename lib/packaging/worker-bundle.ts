// Bundles a worker folder into a deterministic Lambda zip: plans the steps, runs them locally, writes the zip.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BundlingError, type RuntimeFamily } from '../core';
import { type Logger, silentLogger } from '../logging';
import { type BundleStep, planWorkerBundle, type WorkerBundleOptions, type WorkerBundlePlan } from './bundle-plan';
import { writeDeterministicZip, type ZipEntrySource } from './deterministic-zip';
import { runEsbuild, runEsbuildSync } from './esbuild-step';
import { listTree, PIP_TARGET_EXCLUDES, type ExcludeRules } from './file-tree';
import { checkPipOutcome, runPip, runPipSync } from './pip-install';

export interface BundleWorkerOptions extends WorkerBundleOptions {
  /** @default - silent */
  readonly logger?: Logger;
}

export interface WorkerBundle {
  readonly zipPath: string;
  readonly runtime: RuntimeFamily;
  /** Entry names in the zip, sorted. */
  readonly files: string[];
  readonly bytes: number;
  /** Hex SHA-256 of the zip: the same folder always gives the same zip. */
  readonly sha256: string;
}

/** Bundles `options.sourceDir` into the Lambda zip `options.outFile`. Throws a `BundlingError` that says what failed. */
export async function bundleWorker(options: BundleWorkerOptions): Promise<WorkerBundle> {
  const plan = planWorkerBundle(options);
  const logger = options.logger ?? silentLogger();
  return withScratch(async (scratch) => {
    const entries = new Map<string, ZipEntrySource>();
    for (const step of plan.steps) {
      logger.debug({ step: describeStep(step) }, 'bundling step');
      if (step.kind === 'pip-install') {
        const target = path.join(scratch, 'pip');
        const outcome = await runPip(step, target);
        checkPipOutcome(step, outcome);
        logger.debug({ output: outcome.stdout }, 'pip install done');
        addTree(entries, target, PIP_TARGET_EXCLUDES);
      } else if (step.kind === 'esbuild') {
        for (const entry of await runEsbuild(step)) entries.set(entry.entryName, entry);
      } else {
        applyStep(entries, step);
      }
    }
    return finish(plan, entries, logger);
  });
}

/**
 * The same as {@link bundleWorker}, blocking: for callers that must stay synchronous, such as a CDK
 * `ILocalBundling.tryBundle`.
 */
export function bundleWorkerSync(options: BundleWorkerOptions): WorkerBundle {
  const plan = planWorkerBundle(options);
  const logger = options.logger ?? silentLogger();
  const scratch = newScratch(fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bundle-')));
  try {
    const entries = new Map<string, ZipEntrySource>();
    for (const step of plan.steps) {
      logger.debug({ step: describeStep(step) }, 'bundling step');
      if (step.kind === 'pip-install') {
        const target = path.join(scratch, 'pip');
        const outcome = runPipSync(step, target);
        checkPipOutcome(step, outcome);
        logger.debug({ output: outcome.stdout }, 'pip install done');
        addTree(entries, target, PIP_TARGET_EXCLUDES);
      } else if (step.kind === 'esbuild') {
        for (const entry of runEsbuildSync(step)) entries.set(entry.entryName, entry);
      } else {
        applyStep(entries, step);
      }
    }
    return finish(plan, entries, logger);
  } finally {
    removeScratch(scratch);
  }
}

/** A one-line, human-readable form of a step, for logs and `--dry-run` style output. */
export function describeStep(step: BundleStep): string {
  switch (step.kind) {
    case 'pip-install':
      return `(cd ${step.cwd} && ${step.python} -m pip install --target <zip root> -r ${step.requirementsFile} ${step.args.join(' ')})`;
    case 'esbuild':
      return `esbuild ${Object.values(step.entryPoints).join(' ')} --bundle --platform=node --format=cjs --target=${step.target} ${step.external.map((e) => `--external:${e}`).join(' ')}`;
    case 'copy-tree':
      return `copy ${step.from} to <zip root>`;
    case 'force-executable':
      return `chmod 0755 <zip root>/${step.entryName}`;
  }
}

function applyStep(entries: Map<string, ZipEntrySource>, step: BundleStep): void {
  if (step.kind === 'copy-tree') {
    addTree(entries, step.from, step.exclude, new Set(step.skip));
  } else if (step.kind === 'force-executable') {
    const entry = entries.get(step.entryName);
    if (!entry) throw new BundlingError(`the worker zip has no '${step.entryName}' to make executable`);
    entries.set(step.entryName, { ...entry, executable: true });
  }
}

function addTree(
  entries: Map<string, ZipEntrySource>,
  root: string,
  exclude: ExcludeRules,
  skip?: ReadonlySet<string>,
): void {
  if (!fs.existsSync(root)) return;
  for (const file of listTree(root, exclude, skip)) {
    entries.set(file.entryName, {
      entryName: file.entryName,
      content: { file: file.absolutePath },
      executable: file.executable,
    });
  }
}

function finish(plan: WorkerBundlePlan, entries: Map<string, ZipEntrySource>, logger: Logger): WorkerBundle {
  if (entries.size === 0) {
    throw new BundlingError(`worker folder '${plan.sourceDir}' gives an empty zip: it holds no file to ship`, {
      hint: 'put the handler module at the root of the folder',
    });
  }
  const written = writeDeterministicZip(plan.outFile, [...entries.values()]);
  logger.info(
    {
      zipPath: written.zipPath,
      runtime: plan.runtime,
      files: written.files.length,
      bytes: written.bytes,
      sha256: written.sha256,
    },
    'worker bundled',
  );
  return { ...written, runtime: plan.runtime };
}

async function withScratch<T>(work: (scratch: string) => Promise<T>): Promise<T> {
  // Made and registered in one synchronous step: an awaited mkdtemp left a window in which a signal's exit found the
  // folder made but not yet registered, and it stayed behind (seen in CI: Ctrl-C while `htcgrid run` bundled).
  const scratch = newScratch(fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bundle-')));
  try {
    return await work(scratch);
  } finally {
    removeScratch(scratch);
  }
}

/** Scratch folders in use: a process that exits while bundling (Ctrl-C during `htcgrid run`) still removes them. */
const liveScratch = new Set<string>();

function newScratch(dir: string): string {
  if (liveScratch.size === 0) process.once('exit', removeLiveScratch);
  liveScratch.add(dir);
  return dir;
}

function removeScratch(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveScratch.delete(dir);
  if (liveScratch.size === 0) process.off('exit', removeLiveScratch);
}

function removeLiveScratch(): void {
  for (const dir of liveScratch) fs.rmSync(dir, { recursive: true, force: true });
  liveScratch.clear();
}
