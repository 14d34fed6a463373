// The checkpoint thread only speeds the grid's commits up: a grid whose thread cannot start runs all the same, says
// so once, and its commits checkpoint the log themselves.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import * as localBackends from '../../lib/backends/local';
import { compileConfig } from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/local-grid';
import { collect, FIXTURES, tempDir } from '../support/local-grid';

describe('a local grid whose checkpoint thread cannot start', () => {
  let grid: EmbeddedGrid | undefined;
  let dataDir: string;
  afterEach(async () => {
    await grid?.close(0);
    grid = undefined;
    jest.restoreAllMocks();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs its tasks and logs one warning that its commits checkpoint the log themselves', async () => {
    dataDir = tempDir();
    // A thread that fails to start is a fault no test set-up produces on demand (it needs the thread's entry broken).
    jest
      .spyOn(localBackends, 'startWalCheckpoints')
      .mockRejectedValue(new Error('the checkpoint thread could not start: Error: no threads left'));
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as never) });
    grid = await startEmbeddedGrid({
      dataDir,
      config: compileConfig({ slots: 1 }),
      worker: path.join(FIXTURES, 'e2e', 'probe'),
      logger,
    });

    const handle = await grid.client.submit([{ n: 1 }, { n: 2 }]);
    expect((await collect(handle.results())).map((r) => r.state)).toEqual(['succeeded', 'succeeded']);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      "the checkpoint thread did not start; the grid's commits checkpoint the log themselves",
    ]);
  });
});
