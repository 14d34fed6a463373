// Bundles a fixture of these tests (a process that opens the grid itself) with esbuild, so plain `node` runs it.
import path from 'node:path';
import { buildSync } from 'esbuild';

/** Bundles `fixtures/<name>.ts` into `<outDir>/<name>.js`, better-sqlite3 left to node_modules; returns that file. */
export function bundleFixture(name: string, outDir: string): string {
  const outfile = path.join(outDir, `${name}.js`);
  buildSync({
    entryPoints: [path.join(__dirname, 'fixtures', `${name}.ts`)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    external: ['better-sqlite3'],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}
