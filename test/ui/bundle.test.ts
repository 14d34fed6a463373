// The dashboard's bundle: the API's types come from the one shared module, and nothing of Node or the server enters.
import path from 'node:path';
import { build, type Metafile } from 'esbuild';

const ROOT = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the build script is plain CommonJS
const { bundleOptions } = require(path.join(ROOT, 'scripts', 'build-ui.js')) as {
  bundleOptions: (outdir: string) => Parameters<typeof build>[0];
};

let metafile: Metafile;

beforeAll(async () => {
  const result = await build({ ...bundleOptions(path.join(ROOT, 'dist', 'ui-check')), write: false });
  metafile = result.metafile!;
}, 60_000);

test('takes from the server code only the dependency-free API types module (and the task states it names)', () => {
  const fromLib = Object.keys(metafile.inputs).filter((file) => file.startsWith('lib/'));
  expect(fromLib.sort()).toEqual(['lib/core/api-views.ts', 'lib/core/task-state.ts']);
  for (const file of fromLib) {
    expect(metafile.inputs[file]!.imports.map((i) => i.path).filter((p) => !p.startsWith('lib/core/'))).toEqual([]);
  }
});

test('stays a few hundred kilobytes at most (JS and CSS together)', () => {
  const bytes = Object.values(metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
  // 85 KiB when written; the issue allows "a few hundred kilobytes at most".
  expect(bytes).toBeLessThan(300 * 1024);
});
