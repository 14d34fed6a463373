// Results exactly as the worker returned them on the local grid: NaN, infinities, -0.0, big integers and any Unicode
// reach the results file (read back by Python), `htcgrid results` and the SDK, inline or from the payload store.
import fs from 'node:fs';
import path from 'node:path';
import { checkWithPython, EXACT_WORKERS, expectedSdkValue, type Flavour } from '../support/exact-results';
import { collect, startTestGrid, tempDir, type TestGrid } from '../support/local-grid';
import { runHtcgrid } from '../support/htcgrid-cli';

/** Two tasks: one result small enough to travel inline, one sent to the payload store (inline limit 1 KiB). */
const TASKS = [{}, { pad: 4000 }];
const SMALL_INLINE = { inline_payload_max_bytes: 1024 };

describe.each<Flavour>(['python', 'node'])('results of a %s worker on the local grid', (flavour) => {
  const worker = EXACT_WORKERS[flavour];

  it('htcgrid run --out writes them so that Python reads back the values the handler returned', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'grid.json');
    fs.writeFileSync(config, JSON.stringify(SMALL_INLINE));
    const tasks = path.join(dir, 'tasks.jsonl');
    fs.writeFileSync(tasks, TASKS.map((t) => JSON.stringify(t)).join('\n'));
    const out = path.join(dir, 'results.jsonl');

    const run = await runHtcgrid(
      'run',
      '--worker',
      worker.dir,
      '--handler',
      worker.handler,
      '--runtime',
      worker.runtime,
      '--config',
      config,
      '--tasks',
      tasks,
      '--out',
      out,
      '--slots',
      '1',
      '--no-progress',
    );

    expect(run).toMatchObject({ code: 0 });
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(2);
    expect(checkWithPython(out, flavour)).toEqual({ status: 0, output: 'ok 2\n' });
  });

  describe('on a grid folder', () => {
    let grid: TestGrid | undefined;
    afterEach(async () => {
      await grid?.close(1_000);
      grid = undefined;
    });

    it('the SDK gives NaN and infinities as numbers and big integers as bigints, and `htcgrid results` never fails', async () => {
      grid = await startTestGrid(worker.dir, {
        ...SMALL_INLINE,
        lambda_handler_file_name: worker.handler.split('.')[0],
        lambda_handler_function_name: worker.handler.split('.')[1],
        ...(flavour === 'node' ? { runtime: 'nodejs22.x' } : {}),
      });
      // What `htcgrid local up` leaves in its folder, so that the session commands find the grid.
      fs.writeFileSync(path.join(grid.dataDir, 'config.json'), '{}');
      const handle = await grid.client.submit(TASKS);

      const results = await collect(handle.results());
      expect(results.map((r) => r.state)).toEqual(['succeeded', 'succeeded']);
      expect(results[0]!.result).toEqual(expectedSdkValue(flavour));
      expect(results[1]!.result).toEqual(expectedSdkValue(flavour, 4000));
      if (flavour === 'python') expect(Object.is((results[0]!.result as { negzero: number }).negzero, -0)).toBe(true);

      // Read again by the CLI, as often as a user likes: the session stays readable.
      for (let i = 0; i < 2; i++) {
        const out = path.join(grid.dataDir, `results-${i}.jsonl`);
        const read = await runHtcgrid('results', handle.sessionId, '--dir', grid.dataDir, '--out', out);
        expect(read).toMatchObject({ code: 0 });
        expect(checkWithPython(out, flavour)).toEqual({ status: 0, output: 'ok 2\n' });
      }
      const stdout = await runHtcgrid('results', handle.sessionId, '--dir', grid.dataDir);
      expect(stdout.code).toBe(0);
      expect(stdout.stdout.split('\n')).toHaveLength(2);
      const status = await runHtcgrid('status', handle.sessionId, '--dir', grid.dataDir, '--json');
      expect(JSON.parse(status.stdout)).toMatchObject({ done: true, counts: { succeeded: 2 } });
    });
  });
});
