// Copies the non-TypeScript assets (the Python and Node bootstraps, the HTTP API's OpenAPI document) next to the
// compiled code.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const assets = ['lib/runtime/bootstrap', 'lib/http'];
for (const dir of assets) {
  const from = path.join(root, dir);
  if (!fs.existsSync(from)) continue;
  fs.cpSync(from, path.join(root, 'dist', dir), {
    recursive: true,
    filter: (f) => !f.endsWith('.ts') && !f.includes('__pycache__'),
  });
}
