// The platform a worker's Python requirements are installed for when its zip is meant for AWS Lambda's base images.
import { BundlingError } from '../core';

/** CPU architecture of the Lambda containers that will run the zip. */
export type LambdaArchitecture = 'x86_64' | 'arm64';

/**
 * What pip must install for: the Lambda runtime's Python version and CPU architecture. The Python base images run
 * Amazon Linux, whose glibc accepts `manylinux2014` wheels.
 */
export interface LambdaPlatform {
  /** Python version of the Lambda runtime, e.g. `3.12` for `python3.12`. */
  readonly pythonVersion: string;
  readonly architecture: LambdaArchitecture;
}

/** The pip platform tag of the Lambda containers, e.g. `manylinux2014_x86_64`. */
export function manylinuxTag(architecture: LambdaArchitecture): string {
  return `manylinux2014_${architecture === 'arm64' ? 'aarch64' : 'x86_64'}`;
}

/**
 * pip arguments that select wheels for the Lambda platform instead of the bundling machine's, as AWS documents for
 * Lambda deployment packages: binary wheels only (pip cannot compile for another platform), CPython of that version.
 * Local path requirements (`./mylib`) are still built from source, so pure-Python ones keep working.
 */
export function lambdaPipArgs(platform: LambdaPlatform): string[] {
  return [
    '--platform',
    manylinuxTag(platform.architecture),
    '--only-binary=:all:',
    '--python-version',
    platform.pythonVersion,
    '--implementation',
    'cp',
  ];
}

/**
 * The Lambda platform of a Python runtime (`python3.12` → Python 3.12) on an architecture; `undefined` for other
 * runtimes, whose zips hold no Python wheels.
 */
export function lambdaPlatformOf(runtimeName: string, architecture: LambdaArchitecture): LambdaPlatform | undefined {
  const version = /^python(\d+\.\d+)$/.exec(runtimeName)?.[1];
  return version === undefined ? undefined : { pythonVersion: version, architecture };
}

/** Parses a `--lambda-platform` style value: an architecture, `x86_64` or `arm64`. */
export function parseLambdaArchitecture(value: string): LambdaArchitecture {
  if (value === 'x86_64' || value === 'arm64') return value;
  if (value === 'amd64' || value === 'x86-64') return 'x86_64';
  if (value === 'aarch64') return 'arm64';
  throw new BundlingError(`'${value}' is not a Lambda architecture`, { hint: 'use x86_64 or arm64' });
}
