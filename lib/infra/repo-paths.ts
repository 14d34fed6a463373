// Locates the project's own files (Dockerfiles, handler entries) from sources and from the compiled dist/ alike.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The folder holding this package's package.json (the repository root when run from a checkout). */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(__dirname, '..', '..');
    dir = parent;
  }
}

/** First existing file among a TypeScript source and its compiled JavaScript twin (`lib/x.ts` or `dist/lib/x.js`). */
export function sourceOrCompiled(relativeTs: string): string | undefined {
  const root = packageRoot();
  const candidates = [path.join(root, relativeTs), path.join(root, 'dist', relativeTs.replace(/\.ts$/, '.js'))];
  return candidates.find((p) => fs.existsSync(p));
}
