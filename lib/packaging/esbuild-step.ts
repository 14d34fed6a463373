// Bundles a Node worker's handlers with esbuild into CommonJS files for the zip root, in memory.
import * as path from 'node:path';
import { build, buildSync, formatMessagesSync, type BuildFailure, type BuildOptions, type OutputFile } from 'esbuild';
import { BundlingError } from '../core';
import type { EsbuildStep } from './bundle-plan';
import type { ZipEntrySource } from './deterministic-zip';

/**
 * The esbuild options for a step. Nothing is written: `outdir` only anchors the output names and source-map paths,
 * and it sits inside the worker folder so both are the same wherever the bundling runs.
 */
export function esbuildOptions(step: EsbuildStep): BuildOptions & { write: false } {
  return {
    absWorkingDir: step.absWorkingDir,
    entryPoints: { ...step.entryPoints },
    outdir: path.join(step.absWorkingDir, '.htcgrid-bundle'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: step.target,
    external: [...step.external],
    minify: false,
    sourcemap: step.sourcemap ? 'inline' : false,
    write: false,
    logLevel: 'silent',
    metafile: false,
  };
}

export function runEsbuildSync(step: EsbuildStep): ZipEntrySource[] {
  try {
    return toEntries(step, buildSync(esbuildOptions(step)).outputFiles);
  } catch (error) {
    throw asBundlingError(step, error);
  }
}

export async function runEsbuild(step: EsbuildStep): Promise<ZipEntrySource[]> {
  try {
    return toEntries(step, (await build(esbuildOptions(step))).outputFiles);
  } catch (error) {
    throw asBundlingError(step, error);
  }
}

function toEntries(step: EsbuildStep, outputs: readonly OutputFile[]): ZipEntrySource[] {
  const outdir = esbuildOptions(step).outdir!;
  return outputs.map((output) => ({
    entryName: path.relative(outdir, output.path).split(path.sep).join('/'),
    content: { data: output.contents },
    executable: false,
  }));
}

function asBundlingError(step: EsbuildStep, error: unknown): BundlingError {
  const failure = error as Partial<BuildFailure>;
  const details = Array.isArray(failure.errors)
    ? formatMessagesSync(failure.errors, { kind: 'error', color: false }).join('\n').trim()
    : String(error);
  return new BundlingError(`esbuild could not bundle the node worker '${step.absWorkingDir}':\n${details}`, {
    cause: error,
    hint: 'fix the errors above (missing modules: run npm install in the worker folder)',
  });
}
