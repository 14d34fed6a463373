// The check that a test runs the compiled package as built from today's sources (on a folder of its own: the real
// dist/ is left alone while other test files read it).
import fs from 'node:fs';
import path from 'node:path';
import { staleDistReason } from './fresh-dist';
import { tempDir } from './local-grid';

/** A checkout with one source in lib/ and bin/ and, unless `built` is false, a build. */
function checkout(built = true): { root: string; touch: (relative: string, atMs: number) => void } {
  const root = tempDir('htcgrid-fresh-dist-');
  const touch = (relative: string, atMs: number): void => {
    const file = path.join(root, relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (!fs.existsSync(file)) fs.writeFileSync(file, '');
    fs.utimesSync(file, new Date(atMs), new Date(atMs));
  };
  touch('lib/core/task.ts', 1_000_000);
  touch('lib/runtime/bootstrap/bootstrap.py', 1_000_000);
  touch('bin/agent.ts', 1_000_000);
  if (built) touch('dist/lib/index.js', 2_000_000);
  return { root, touch };
}

describe('the freshness check of dist/', () => {
  it('trusts a build newer than every source of lib/ and bin/', () => {
    expect(staleDistReason(checkout().root)).toBeUndefined();
  });

  it('names the source of lib/ changed since the last build', () => {
    const { root, touch } = checkout();
    touch('lib/core/task.ts', 3_000_000);

    expect(staleDistReason(root)).toBe('dist/ is older than lib/core/task.ts (changed since the last build)');
  });

  it('counts the Python bootstrap and bin/ as sources too', () => {
    const a = checkout();
    a.touch('lib/runtime/bootstrap/bootstrap.py', 3_000_000);
    const b = checkout();
    b.touch('bin/agent.ts', 3_000_000);

    expect(staleDistReason(a.root)).toMatch(/older than lib\/runtime\/bootstrap\/bootstrap\.py/);
    expect(staleDistReason(b.root)).toMatch(/older than bin\/agent\.ts/);
  });

  it('says the build is missing', () => {
    expect(staleDistReason(checkout(false).root)).toBe('dist/lib/index.js is missing');
  });
});
