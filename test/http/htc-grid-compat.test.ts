// HTC-Grid's portfolio pricing client runs against our grid with only its import line changed.
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, tempDir } from '../support/local-grid';
import { SYSTEM_PYTHON, runPython, startLocalUp, systemPythonHas, type LocalUp } from './local-up';

const HTC_GRID = path.join(FIXTURES, 'htc-grid');
const haveQuantLib = systemPythonHas('QuantLib');
if (!haveQuantLib) {
  console.warn(
    `skipping HTC-Grid's portfolio client: ${SYSTEM_PYTHON} has no QuantLib (apt-get install quantlib-python)`,
  );
}
const describeWithQuantLib = haveQuantLib ? describe : describe.skip;

describeWithQuantLib("HTC-Grid's portfolio pricing client", () => {
  let grid: LocalUp;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('htcgrid-compat-');
    grid = await startLocalUp(dir, [
      '--worker',
      path.join(HTC_GRID, 'quant_lib'),
      '--handler',
      'portfolio_pricing_engine.lambda_handler',
      '--python',
      SYSTEM_PYTHON,
      '--slots',
      '2',
    ]);
  }, 90_000);

  afterAll(async () => {
    await grid?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('prices a random portfolio on our grid with only its import line changed', async () => {
    const original = fs.readFileSync(path.join(HTC_GRID, 'client', 'portfolio_pricing_client.py'), 'utf8');
    const changed = original.replace(
      'from api.connector import AWSConnector',
      'from htcgrid.compat import AWSConnector',
    );
    const differing = original.split('\n').filter((line, i) => line !== changed.split('\n')[i]);
    expect(differing).toEqual(['from api.connector import AWSConnector']);
    const work = tempDir('htcgrid-compat-client-');
    fs.writeFileSync(path.join(work, 'portfolio_pricing_client.py'), changed);
    fs.copyFileSync(path.join(HTC_GRID, 'client', 'sample_portfolio.json'), path.join(work, 'sample_portfolio.json'));
    const run = await runPython(
      [
        'portfolio_pricing_client.py',
        '--workload_type',
        'random_portfolio',
        '--portfolio_size',
        '24',
        '--trades_per_worker',
        '3',
      ],
      { cwd: work, env: { AGENT_CONFIG_FILE: grid.clientConfig } },
    );
    if (run.status !== 0)
      throw new Error(`the client failed (${run.status}):\n${run.output}\n--- grid:\n${grid.output()}`);
    const value = /Portfolio value: ([\d.]+)/.exec(run.output);
    expect(value).not.toBeNull();
    expect(Number(value![1])).toBeGreaterThan(0);
    // Eight tasks of three trades, each a JSON text of {"results": [three prices]}.
    const results = /Finish get_results/.test(run.output);
    expect(results).toBe(true);
    fs.writeFileSync(path.join(dir, 'client-output.txt'), run.output);
    fs.rmSync(work, { recursive: true, force: true });
  }, 180_000);
});
