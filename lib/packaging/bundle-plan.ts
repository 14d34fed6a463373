// Plans how a worker folder becomes a Lambda zip: the steps as data, so they can be shown, tested and run anywhere.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BundlingError, type RuntimeFamily } from '../core';
import { assertWorkerFolder, detectWorkerRuntime } from './runtime-detection';
import { type ExcludeRules, PROVIDED_EXCLUDES, PYTHON_EXCLUDES } from './file-tree';
import { lambdaPipArgs, type LambdaPlatform } from './lambda-platform';

export interface WorkerBundleOptions {
  /** The worker folder: handler module(s) at its root. */
  readonly sourceDir: string;
  /** Where the zip is written (its folder is created). */
  readonly outFile: string;
  /**
   * The worker's runtime family.
   * @default - detected from the folder's root files (see `detectWorkerRuntime`)
   */
  readonly runtime?: RuntimeFamily;
  /**
   * Python interpreter that runs `pip install -r requirements.txt`. Its version should match the Lambda runtime's
   * when requirements carry compiled extensions.
   * @default 'python3'
   */
  readonly pythonExecutable?: string;
  /**
   * Install Python requirements for this Lambda platform (its Python version and CPU architecture) rather than for
   * the bundling machine: what a zip deployed to AWS needs. See `lambdaPipArgs`.
   * @default - the bundling machine's platform (right for local runs only)
   */
  readonly lambdaPlatform?: LambdaPlatform;
  /**
   * Leave out of the zip the requirements the bundling Python already has installed, at a version the requirement
   * accepts. For local runs only, where that very Python runs the worker and imports them from its own
   * site-packages (e.g. Debian's `quantlib-python` with `/usr/bin/python3`). Never with `lambdaPlatform`.
   * @default false
   */
  readonly omitInstalledRequirements?: boolean;
  /**
   * Extra arguments for `pip install`, appended last: e.g. `['--no-index', '--find-links', 'wheels']` for offline
   * wheels.
   * @default []
   */
  readonly pipArgs?: readonly string[];
  /**
   * Let pip build source requirements (local path packages, sdists) in an isolated environment, which downloads
   * their build back-end (setuptools, hatchling, ...) from the package index.
   * @default false - build back-ends come from the bundling Python, so local path requirements build offline
   */
  readonly pipBuildIsolation?: boolean;
  /**
   * Node handler files, relative to `sourceDir`; each becomes `<name>.js` at the zip root.
   * @default - `main` of the folder's package.json, else every `*.ts`/`*.js` file at the folder's root
   */
  readonly entryPoints?: readonly string[];
  /**
   * Append an inline source map to each bundled Node handler.
   * @default false
   */
  readonly sourcemap?: boolean;
}

/**
 * Runs `<python> -m pip install --target <scratch> -r <requirements> <args>` in `cwd`; the scratch folder becomes the
 * zip root's bottom layer.
 */
export interface PipInstallStep {
  readonly kind: 'pip-install';
  readonly python: string;
  /** Arguments after `-m pip install --target <scratch> -r <requirements>`. */
  readonly args: readonly string[];
  /** The worker folder, so relative paths in requirements.txt resolve as the user wrote them. */
  readonly cwd: string;
  readonly requirementsFile: string;
  /** The Lambda platform the wheels are for (its flags are in `args`), if not the bundling machine's. */
  readonly lambdaPlatform?: LambdaPlatform;
  /** Requirements `python` already satisfies are left out (see `WorkerBundleOptions.omitInstalledRequirements`). */
  readonly omitInstalled: boolean;
}

/** Bundles each entry point with esbuild into `<name>.js` (CommonJS) at the zip root. */
export interface EsbuildStep {
  readonly kind: 'esbuild';
  readonly absWorkingDir: string;
  /** Output name (without `.js`) → handler source file. */
  readonly entryPoints: Readonly<Record<string, string>>;
  readonly target: string;
  /** Modules left to the runtime, as Lambda's Node.js runtime provides them. */
  readonly external: readonly string[];
  readonly sourcemap: boolean;
}

/** Copies a folder's files to the zip root, over whatever earlier steps put there. */
export interface CopyTreeStep {
  readonly kind: 'copy-tree';
  readonly from: string;
  readonly exclude: ExcludeRules;
  /** Absolute paths never copied (the zip being written, when it lies inside the folder). */
  readonly skip: readonly string[];
}

/** Stores an entry with mode 0755 whatever its mode on disk (Lambda runs `bootstrap` directly). */
export interface ForceExecutableStep {
  readonly kind: 'force-executable';
  readonly entryName: string;
}

export type BundleStep = PipInstallStep | EsbuildStep | CopyTreeStep | ForceExecutableStep;

export interface WorkerBundlePlan {
  readonly runtime: RuntimeFamily;
  readonly sourceDir: string;
  readonly outFile: string;
  readonly steps: readonly BundleStep[];
}

/** The Node.js version Lambda workers target (the oldest Node runtime AWS supports). */
export const NODE_TARGET = 'node22';
/** Lambda's Node.js runtimes ship the AWS SDK v3. */
export const NODE_EXTERNALS: readonly string[] = ['@aws-sdk/*'];

/** Decides the steps that turn `options.sourceDir` into a Lambda zip. Reads the folder, writes nothing. */
export function planWorkerBundle(options: WorkerBundleOptions): WorkerBundlePlan {
  const sourceDir = path.resolve(options.sourceDir);
  const outFile = path.resolve(options.outFile);
  assertWorkerFolder(sourceDir);
  const runtime = options.runtime ?? detectWorkerRuntime(sourceDir);
  switch (runtime) {
    case 'python':
      return { runtime, sourceDir, outFile, steps: planPython(sourceDir, outFile, options) };
    case 'node':
      return { runtime, sourceDir, outFile, steps: [planEsbuild(sourceDir, options)] };
    case 'provided':
      return { runtime, sourceDir, outFile, steps: planProvided(sourceDir, outFile) };
  }
}

function planPython(sourceDir: string, outFile: string, options: WorkerBundleOptions): BundleStep[] {
  const steps: BundleStep[] = [];
  const requirementsFile = path.join(sourceDir, 'requirements.txt');
  if (options.lambdaPlatform && options.omitInstalledRequirements) {
    throw new BundlingError('omitInstalledRequirements and lambdaPlatform exclude each other', {
      hint: 'a zip for Lambda must hold every requirement: leave omitInstalledRequirements off',
    });
  }
  if (fs.existsSync(requirementsFile) && hasRequirementLines(requirementsFile)) {
    steps.push({
      kind: 'pip-install',
      python: options.pythonExecutable ?? 'python3',
      args: [
        '--no-input',
        '--disable-pip-version-check',
        '--no-compile',
        '--no-warn-script-location',
        '--progress-bar',
        'off',
        ...(options.pipBuildIsolation ? [] : ['--no-build-isolation']),
        ...(options.lambdaPlatform ? lambdaPipArgs(options.lambdaPlatform) : []),
        ...(options.pipArgs ?? []),
      ],
      cwd: sourceDir,
      requirementsFile,
      ...(options.lambdaPlatform ? { lambdaPlatform: options.lambdaPlatform } : {}),
      omitInstalled: options.omitInstalledRequirements ?? false,
    });
  }
  steps.push({ kind: 'copy-tree', from: sourceDir, exclude: PYTHON_EXCLUDES, skip: [outFile] });
  return steps;
}

/** False for a requirements file of comments and blank lines only: pip would do nothing, so it is not run. */
function hasRequirementLines(file: string): boolean {
  return fs
    .readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .some((line) => line.replace(/(^|\s)#.*$/, '').trim() !== '');
}

function planProvided(sourceDir: string, outFile: string): BundleStep[] {
  if (!fs.existsSync(path.join(sourceDir, 'bootstrap'))) {
    throw new BundlingError(`provided worker '${sourceDir}' has no \`bootstrap\` at its root`, {
      hint: 'add an executable `bootstrap` that speaks the Lambda Runtime API',
    });
  }
  return [
    { kind: 'copy-tree', from: sourceDir, exclude: PROVIDED_EXCLUDES, skip: [outFile] },
    { kind: 'force-executable', entryName: 'bootstrap' },
  ];
}

function planEsbuild(sourceDir: string, options: WorkerBundleOptions): EsbuildStep {
  const files = nodeEntryFiles(sourceDir, options.entryPoints);
  const entryPoints: Record<string, string> = {};
  for (const file of files) {
    const absolute = path.resolve(sourceDir, file);
    if (!fs.existsSync(absolute)) {
      throw new BundlingError(`entry point '${file}' of worker '${sourceDir}' does not exist`);
    }
    const name = path.basename(file).replace(/\.[cm]?[jt]s$/, '');
    const clash = entryPoints[name];
    if (clash !== undefined) {
      throw new BundlingError(`entry points '${clash}' and '${absolute}' would both become ${name}.js`, {
        hint: 'keep one of them, or pass entryPoints explicitly',
      });
    }
    entryPoints[name] = absolute;
  }
  return {
    kind: 'esbuild',
    absWorkingDir: sourceDir,
    entryPoints,
    target: NODE_TARGET,
    external: NODE_EXTERNALS,
    sourcemap: options.sourcemap ?? false,
  };
}

function nodeEntryFiles(sourceDir: string, explicit: readonly string[] | undefined): readonly string[] {
  if (explicit && explicit.length > 0) return explicit;
  const packageJson = path.join(sourceDir, 'package.json');
  if (fs.existsSync(packageJson)) {
    const main = readPackageMain(packageJson);
    if (main) return [main];
  }
  const found = fs
    .readdirSync(sourceDir)
    .filter((name) => /\.([cm]?js|ts)$/.test(name) && !/(\.d\.ts|\.(test|spec|config)\.[cm]?[jt]s)$/.test(name))
    .sort();
  if (found.length === 0) {
    throw new BundlingError(`node worker '${sourceDir}' has no handler file`, {
      hint: 'put the handler (e.g. index.ts exporting `handler`) at its root, set `main` in package.json, or pass entryPoints',
    });
  }
  return found;
}

function readPackageMain(file: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new BundlingError(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed === 'object' && parsed !== null && 'main' in parsed && typeof parsed.main === 'string') {
    return parsed.main;
  }
  return undefined;
}
