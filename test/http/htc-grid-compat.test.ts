// HTC-Grid's portfolio pricing client runs against our grid with only its import line changed.
// HTC-Grid's code is not ours to commit: the test runs on a checkout of finos/htc-grid named by HTCGRID_UPSTREAM_DIR
// (its examples/client/python and examples/workloads/python/quant_lib), and says why it skips without one. The
// connector's shapes are also covered by clients/python/tests (test_htc_grid_connector_...), which always run.
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/local-grid';
import { SYSTEM_PYTHON, runPython, startLocalUp, systemPythonHas, type LocalUp } from './local-up';

const UPSTREAM = process.env.HTCGRID_UPSTREAM_DIR ?? '';
const CLIENT_DIR = path.join(UPSTREAM, 'examples', 'client', 'python');
const WORKER_DIR = path.join(UPSTREAM, 'examples', 'workloads', 'python', 'quant_lib');
const haveUpstream = UPSTREAM !== '' && fs.existsSync(path.join(CLIENT_DIR, 'portfolio_pricing_client.py'));
const haveQuantLib = systemPythonHas('QuantLib');
if (!haveUpstream) {
  console.warn(
    "skipping HTC-Grid's portfolio client: set HTCGRID_UPSTREAM_DIR to a checkout of finos/htc-grid to run it",
  );
} else if (!haveQuantLib) {
  console.warn(
    `skipping HTC-Grid's portfolio client: ${SYSTEM_PYTHON} has no QuantLib (apt-get install quantlib-python)`,
  );
}
const describeWithUpstream = haveUpstream && haveQuantLib ? describe : describe.skip;

describeWithUpstream("HTC-Grid's portfolio pricing client", () => {
  let grid: LocalUp;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('htcgrid-compat-');
    grid = await startLocalUp(dir, [
      '--worker',
      WORKER_DIR,
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
    const original = fs.readFileSync(path.join(CLIENT_DIR, 'portfolio_pricing_client.py'), 'utf8');
    const changed = original.replace(
      'from api.connector import AWSConnector',
      'from htcgrid.compat import AWSConnector',
    );
    const differing = original.split('\n').filter((line, i) => line !== changed.split('\n')[i]);
    expect(differing).toEqual(['from api.connector import AWSConnector']);
    const work = tempDir('htcgrid-compat-client-');
    fs.writeFileSync(path.join(work, 'portfolio_pricing_client.py'), changed);
    fs.copyFileSync(path.join(CLIENT_DIR, 'sample_portfolio.json'), path.join(work, 'sample_portfolio.json'));
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
