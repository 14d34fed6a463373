// The fixture workers that return what plain JSON cannot carry, and what every reader must hand back from them.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { FIXTURES } from './local-grid';

export type Flavour = 'python' | 'node';

export const EXACT_WORKERS: Record<Flavour, { dir: string; handler: string; runtime: string }> = {
  python: { dir: path.join(FIXTURES, 'e2e', 'exact'), handler: 'lambda_function.lambda_handler', runtime: 'python' },
  node: { dir: path.join(FIXTURES, 'e2e', 'exact-node'), handler: 'index.handler', runtime: 'node' },
};

const TEXT = 'caf\u00e9 \u4e2d \u{1f600} \u2028 "NaN" 12345678901234567890';

/** What the SDK gives for the exact worker's result: NaN and infinities as numbers, big integers as bigints. */
export function expectedSdkValue(flavour: Flavour, pad = 0): Record<string, unknown> {
  const common = { tenth: 0.1, text: TEXT, lone: '\ud800', pad: 'x'.repeat(pad) };
  return flavour === 'python'
    ? {
        price: NaN,
        vols: [Infinity, -Infinity, 0.25],
        negzero: -0,
        big: 2n ** 64n + 1n,
        bigneg: -(10n ** 30n) - 7n,
        safe: 2 ** 53 - 1,
        ...common,
      }
    : // Node's JSON.stringify writes NaN and infinities as null, -0 as 0, and 2**64 as 18446744073709552000.
      { price: null, vols: [null, null, 0.25], negzero: 0, big: 18446744073709552000n, ...common };
}

/** Reads a results file with Python's json and checks every line against the exact worker's values. */
export function checkWithPython(file: string, flavour: Flavour): { status: number | null; output: string } {
  const run = spawnSync('python3', [path.join(FIXTURES, 'e2e', 'check_exact_results.py'), file, flavour], {
    encoding: 'utf8',
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
