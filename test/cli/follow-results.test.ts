// Following a session into a results file that fails to be written ends with an error naming the file and how to
// read the results again, never an unhandled stream error that kills the process.
import fs from 'node:fs';
import path from 'node:path';
import { followResults } from '../../lib/cli/follow-results';
import { compileConfig } from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/local-grid';
import { tempDir } from '../support/local-grid';

describe('followResults into a file that cannot be written', () => {
  let grid: EmbeddedGrid;
  let dir: string;
  beforeEach(async () => {
    dir = tempDir();
    grid = await startEmbeddedGrid({ dataDir: path.join(dir, 'grid'), config: compileConfig({}) });
  });
  afterEach(async () => {
    await grid.close(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rejects naming the file and `htcgrid results <session>`, and the session keeps its results', async () => {
    const handle = await grid.client.submit([{ a: 1 }, { a: 2 }]);
    await handle.cancel();
    const out = path.join(dir, 'gone', 'results.jsonl');

    const followed = followResults(handle, { out, showProgress: false });

    await expect(followed).rejects.toThrow(
      new RegExp(`could not write the results file ${out}: ENOENT[^]*htcgrid results ${handle.sessionId}`),
    );
    expect((await handle.status()).counts.cancelled).toBe(2);
  });
});
