// Tests that run the compiled package (dist/) check first that it was built from the sources as they are now: a stale
// build would test yesterday's code and pass or fail for the wrong reason.
import fs from 'node:fs';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
const DIST = path.join(REPO_ROOT, 'dist');
/** Every build rewrites it (tsc emits all files each time): its time is the build's. */
const BUILD_MARK = path.join('dist', 'lib', 'index.js');

/** The newest file under `dir` with one of `extensions`: its path and modification time. */
export function newestFile(dir: string, extensions: readonly string[]): { file: string; mtimeMs: number } {
  let newest = { file: '', mtimeMs: 0 };
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !extensions.some((e) => entry.name.endsWith(e))) continue;
    const file = path.join(entry.parentPath, entry.name);
    const { mtimeMs } = fs.statSync(file);
    if (mtimeMs > newest.mtimeMs) newest = { file, mtimeMs };
  }
  return newest;
}

/**
 * Why `<root>/dist` cannot be trusted (missing, or older than a source of lib/ or bin/), or undefined when it is
 * fresh.
 */
export function staleDistReason(root = REPO_ROOT): string | undefined {
  const mark = path.join(root, BUILD_MARK);
  if (!fs.existsSync(mark)) return `${BUILD_MARK} is missing`;
  const builtAt = fs.statSync(mark).mtimeMs;
  for (const [dir, extensions] of [
    ['lib', ['.ts', '.py', '.js', '.json', '.yaml', '.html', '.css']],
    ['bin', ['.ts']],
  ] as const) {
    const newest = newestFile(path.join(root, dir), extensions);
    if (newest.mtimeMs > builtAt) {
      return `dist/ is older than ${path.relative(root, newest.file)} (changed since the last build)`;
    }
  }
  return undefined;
}

let checked = false;

/** `dist/<segments>`, after checking once per test file that dist/ is fresh; throws naming the fix when it is not. */
export function freshDistFile(...segments: string[]): string {
  if (!checked) {
    const reason = staleDistReason();
    if (reason) throw new Error(`${reason}: run \`npm run build\` (npm test builds first)`);
    checked = true;
  }
  return path.join(DIST, ...segments);
}

/** The built `htcgrid` command, checked fresh. */
export function htcgridBin(): string {
  return freshDistFile('bin', 'htcgrid.js');
}
