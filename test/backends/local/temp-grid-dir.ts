// A fresh temporary grid directory per test, removed afterwards (with the backends and client opened on it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openLocalBackends, type LocalBackends } from '../../../lib/backends/local';
import { GridClient } from '../../../lib/client';
import { compileConfig } from '../../../lib/core';

export function makeTempDir(prefix = 'htcgrid-local-'): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** What `localClientOfEachTest` opens for a test. */
export interface LocalClientGrid {
  readonly dir: string;
  readonly backends: LocalBackends;
  readonly client: GridClient;
}

/**
 * For each test of the calling `describe`: local backends on a fresh folder and a client with `config` on them, handed
 * to `use` before the test; closed and removed after it.
 */
export function localClientOfEachTest(config: Record<string, unknown>, use: (grid: LocalClientGrid) => void): void {
  let temp: ReturnType<typeof makeTempDir> | undefined;
  let backends: LocalBackends | undefined;
  beforeEach(() => {
    temp = makeTempDir();
    backends = openLocalBackends(temp.dir);
    use({ dir: temp.dir, backends, client: new GridClient({ config: compileConfig(config), ...backends }) });
  });
  afterEach(async () => {
    await backends?.close();
    temp?.remove();
  });
}
