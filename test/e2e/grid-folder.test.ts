// A grid folder belongs to one grid: another worker or handler cannot join while it runs; the same one can.
import fs from 'node:fs';
import path from 'node:path';
import { main, startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { applyOverrides, compileConfig, GridFolderInUseError } from '../../lib/core';
import { faultConfig, spawnAgent } from '../faults/fault-helpers';
import { FIXTURES, tempDir } from '../support/local-grid';

const probe = path.join(FIXTURES, 'e2e', 'probe');
const slow = path.join(FIXTURES, 'e2e', 'slow');

describe('a grid folder', () => {
  const grids: EmbeddedGrid[] = [];
  afterEach(async () => {
    for (const g of grids.splice(0)) await g.close(1_000);
  });
  const start = async (
    dir: string,
    worker: string,
    handlerFunction = 'lambda_handler',
    onTakeover?: (d: readonly string[]) => void,
  ) => {
    const config = compileConfig(applyOverrides({}, { slots: 1, lambda_handler_function_name: handlerFunction }));
    const grid = await startEmbeddedGrid({
      dataDir: dir,
      config,
      worker,
      claimFolder: true,
      onFolderTakeover: onTakeover,
    });
    grids.push(grid);
    return grid;
  };

  it('refuses a second grid with another worker or handler while the first runs, naming the difference and the fix', async () => {
    const dir = tempDir();
    await start(dir, probe);

    const otherWorker = start(dir, slow);
    await expect(otherWorker).rejects.toThrow(GridFolderInUseError);
    await expect(otherWorker).rejects.toThrow(
      new RegExp(
        `already runs another grid \\(1 agent\\(s\\) alive: pid ${process.pid} on .*\\n  - worker: ${probe} \\(zip sha256 [0-9a-f]{12}\\) ≠ ${slow}`,
      ),
    );
    await expect(otherWorker).rejects.toThrow(/fix: use another folder \(--dir\), or stop the grid running in/);
    await expect(start(dir, probe, 'raises')).rejects.toThrow(
      /handler: lambda_function\.lambda_handler ≠ lambda_function\.raises/,
    );
    // Nothing of the refused grids was left running.
    expect(await grids[0]!.client.aliveAgents()).toHaveLength(1);
  });

  it('lets an identical agent join, and passes to another grid once the first stopped, saying so', async () => {
    const dir = tempDir();
    const first = await start(dir, probe);
    await start(dir, probe);
    expect(await first.client.aliveAgents()).toHaveLength(2);
    for (const g of grids.splice(0)) await g.close(1_000);

    const takeovers: string[] = [];
    await start(dir, slow, 'lambda_handler', (d) => takeovers.push(...d));
    expect(takeovers).toEqual([expect.stringMatching(/^worker: .*probe .* ≠ .*slow /)]);
  });

  it('clears the worker folder a killed agent left: the next agent removes it and keeps those of live ones', async () => {
    const dir = tempDir();
    const live = await start(dir, probe);
    const killed = await spawnAgent(dir, faultConfig({ slots: 1 }), { worker: probe });
    const folders = (): string[] => fs.readdirSync(path.join(dir, 'workers')).sort();
    const ownedBy = (pid: number) => folders().filter((f) => f.startsWith(`${pid}-`));
    expect(ownedBy(killed.pid)).toHaveLength(1);
    killed.kill('SIGKILL');
    await killed.exited;
    expect(ownedBy(killed.pid)).toHaveLength(1);

    const next = await start(dir, probe);

    expect(ownedBy(killed.pid)).toEqual([]);
    expect(ownedBy(process.pid)).toHaveLength(2);
    expect(fs.existsSync(live.taskRoot!)).toBe(true);
    expect(fs.existsSync(next.taskRoot!)).toBe(true);
  });

  it('made by run --data-dir is one the session commands read', async () => {
    const dir = path.join(tempDir(), 'kept');
    const out = path.join(tempDir(), 'results.jsonl');
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, '{"a":1}\n');
    const stderr = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const lines: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((l: string) => void lines.push(l));
    try {
      expect(
        await main([
          'node',
          'htcgrid',
          'run',
          '--worker',
          probe,
          '--tasks',
          tasks,
          '--out',
          out,
          '--data-dir',
          dir,
          '--no-progress',
        ]),
      ).toBe(0);
      const sessionId = (JSON.parse(fs.readFileSync(out, 'utf8')) as { taskId: string }).taskId.replace(/_0$/, '');
      expect(await main(['node', 'htcgrid', 'status', sessionId, '--dir', dir, '--json'])).toBe(0);
      expect(JSON.parse(lines[0]!)).toMatchObject({ done: true, counts: { succeeded: 1 } });
    } finally {
      stderr.mockRestore();
      write.mockRestore();
      log.mockRestore();
    }
  });
});
