// Bundles one of this package's Node entries (the agent, the reaper) with esbuild at synth, from its TypeScript
// source in a checkout or its compiled JavaScript in an installed package: no npx, no Docker, the same bytes anywhere.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as cxapi from 'aws-cdk-lib/cx-api';
import type { Construct } from 'constructs';
import { buildSync } from 'esbuild';
import { BundlingError } from '../core/errors';
import { packageRoot, sourceOrCompiled } from './repo-paths';

export interface NodeBundleOptions {
  /** The entry, relative to the package root (`bin/agent.ts`), or an absolute path. */
  readonly entry: string;
  /** Output file name in the folder, e.g. `agent.js`; its source map is written beside it. */
  readonly outName: string;
  /** Minify the output (its source map still gives readable stack traces). */
  readonly minify?: boolean;
}

/**
 * Bundles `options.entry` into `outDir`: one CommonJS file for Node 22+ with every dependency inside (the AWS SDK
 * included). better-sqlite3 (local grids only) is never loaded in AWS and stays out. Output paths are anchored in
 * the package, so the same sources give the same bytes, and the same asset hash, on any machine.
 */
export function bundleNodeEntry(outDir: string, options: NodeBundleOptions): void {
  const entry = path.isAbsolute(options.entry) ? options.entry : sourceOrCompiled(options.entry);
  if (!entry || !fs.existsSync(entry)) {
    throw new BundlingError(`the entry ${options.entry} is missing from ${packageRoot()}`, {
      hint: 'build the package (npm run build), or pass the construct a prebuilt image or entry',
    });
  }
  const anchor = path.join(packageRoot(), '.htcgrid-bundle');
  const result = buildSync({
    absWorkingDir: packageRoot(),
    entryPoints: [entry],
    outfile: path.join(anchor, options.outName),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: options.minify ?? false,
    sourcemap: true,
    external: ['better-sqlite3'],
    write: false,
    logLevel: 'silent',
  });
  fs.mkdirSync(outDir, { recursive: true });
  for (const file of result.outputFiles) {
    fs.writeFileSync(path.join(outDir, path.relative(anchor, file.path)), file.contents);
  }
}

/** The settings of a function `bundledNodeFunction` makes that are not its code. */
export type BundledFunctionProps = Omit<lambda.FunctionProps, 'code' | 'handler' | 'runtime' | 'architecture'>;

/**
 * A Lambda function (Node.js 24 on arm64, `index.handler`) running `entry` bundled at synth into `index.js`
 * (`bundleNodeEntry`, minified), with `addFiles` adding what it reads beside it; a placeholder `index.js` in a synth
 * that does not bundle this stack.
 */
export function bundledNodeFunction(
  scope: Construct,
  id: string,
  entry: string,
  props: BundledFunctionProps,
  addFiles: (dir: string) => void = () => undefined,
): lambda.Function {
  return withStagedFolder(
    scope,
    (dir) => {
      bundleNodeEntry(dir, { entry, outName: 'index.js', minify: true });
      addFiles(dir);
    },
    (dir) =>
      fs.writeFileSync(path.join(dir, 'index.js'), 'exports.handler = undefined; // not bundled for this synth\n'),
    (dir) =>
      new lambda.Function(scope, id, {
        code: lambda.Code.fromAsset(dir),
        handler: 'index.handler',
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        ...props,
      }),
  );
}

/**
 * Fills a scratch folder with `fill` (when the stack's assets are being bundled; otherwise with `placeholder`, as
 * CDK skips bundling for stacks the CLI is not deploying), hands it to `stage` (which must copy it into the cloud
 * assembly, as asset constructs do), then removes it unless asset staging is off.
 */
export function withStagedFolder<T>(
  scope: Construct,
  fill: (dir: string) => void,
  placeholder: (dir: string) => void,
  stage: (dir: string) => T,
): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-asset-'));
  if (Stack.of(scope).bundlingRequired) fill(dir);
  else placeholder(dir);
  const staged = stage(dir);
  if (!scope.node.tryGetContext(cxapi.DISABLE_ASSET_STAGING_CONTEXT)) fs.rmSync(dir, { recursive: true });
  return staged;
}
