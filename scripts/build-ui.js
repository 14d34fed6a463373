// Bundles the dashboard (ui/) with esbuild into dist/ui: one minified app.js and app.css, no CDN, works offline.
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist', 'ui');

/** The bundle's esbuild options (a browser bundle: a Node module imported by mistake fails the build). */
function bundleOptions(outdir) {
  return {
    entryPoints: { app: path.join(root, 'ui', 'src', 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  };
}

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  const result = await esbuild.build(bundleOptions(out));
  fs.copyFileSync(path.join(root, 'ui', 'index.html'), path.join(out, 'index.html'));
  const sizes = Object.entries(result.metafile.outputs).map(
    ([file, o]) => `${path.basename(file)} ${(o.bytes / 1024).toFixed(1)} KiB`,
  );
  if (process.argv.includes('--verbose')) process.stdout.write(`dashboard: ${sizes.join(', ')}\n`);
}

module.exports = { bundleOptions };

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`building the dashboard failed: ${err.message}\n`);
    process.exit(1);
  });
}
