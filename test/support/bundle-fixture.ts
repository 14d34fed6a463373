// Bundles a test fixture (a process a test starts) with esbuild, so plain `node` runs it without a compiler service.
import path from 'node:path';
import { buildSync } from 'esbuild';

/**
 * Bundles the TypeScript file `entry` into `<outDir>/<its name>.js` (CommonJS, packages left to node_modules: run it
 * with `NODE_PATH` at the repository's node_modules when it is outside the repository); returns that file.
 */
export function bundleFixture(entry: string, outDir: string): string {
  const outfile = path.join(outDir, `${path.basename(entry, '.ts')}.js`);
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}
