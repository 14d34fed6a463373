// What the CLI keeps in a grid folder besides the grid itself: the configuration the session commands read, and what
// it says when the folder passes from one grid to another.
import fs from 'node:fs';
import path from 'node:path';
import type { GridConfig } from '../core';
import { LOCAL_CONFIG_FILE } from './grid-target';
import * as output from './output';

/** Writes the grid folder's configuration, which the session commands (`status --dir`, ...) read. */
export function writeLocalConfig(dir: string, config: GridConfig): void {
  fs.writeFileSync(path.join(dir, LOCAL_CONFIG_FILE), `${JSON.stringify(config.document, null, 2)}\n`);
}

/** Says that a folder which ran another grid (now stopped) runs this one from now on. */
export function announceTakeover(dir: string, differences: readonly string[]): void {
  output.info(
    `note: ${dir} ran another grid, stopped now; it runs this one from now on (tasks still queued there too):`,
  );
  for (const d of differences) output.info(`  - ${d}`);
}
