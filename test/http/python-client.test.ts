// The Python client's pytest suite against a real `htcgrid local up --http` grid, so `npm test` runs it.
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, tempDir } from '../support/local-grid';
import { ROOT, SYSTEM_PYTHON, runPython, startLocalUp, systemPythonHas, type LocalUp } from './local-up';

const havePytest = systemPythonHas('pytest');
if (!havePytest) {
  console.warn(`skipping the Python client tests: ${SYSTEM_PYTHON} has no pytest (apt-get install python3-pytest)`);
}
const describeWithPytest = havePytest ? describe : describe.skip;

describeWithPytest('the Python client', () => {
  let grid: LocalUp;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('htcgrid-py-');
    grid = await startLocalUp(dir, ['--worker', path.join(FIXTURES, 'http', 'worker'), '--slots', '2']);
  }, 90_000);

  afterAll(async () => {
    await grid?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('passes its pytest suite against the grid', async () => {
    expect(fs.statSync(grid.clientConfig).mode & 0o777).toBe(0o600);
    const run = await runPython(['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'clients/python/tests'], {
      env: { HTCGRID_CLIENT_CONFIG: grid.clientConfig },
    });
    if (run.status !== 0) throw new Error(`pytest failed (${run.status}):\n${run.output}\n--- grid:\n${grid.output()}`);
    expect(run.output).toMatch(/\d+ passed/);
    expect(run.output).not.toMatch(/skipped|failed/);
  }, 300_000);

  test('installs offline with plain pip into a fresh virtual environment', async () => {
    const venv = path.join(tempDir('htcgrid-venv-'), 'venv');
    expect((await runPython(['-m', 'venv', venv])).status).toBe(0);
    const python = path.join(venv, 'bin', 'python');
    const outside = { cwd: path.dirname(venv), env: { PYTHONPATH: '' }, python };
    const client = path.join(ROOT, 'clients', 'python');
    // --no-index: nothing may come from a package index, the build backend included.
    const install = await runPython(['-m', 'pip', 'install', '--no-index', '-q', client], outside);
    expect(install).toMatchObject({ status: 0 });
    const check = await runPython(
      [
        '-c',
        'import htcgrid, htcgrid.compat, os; assert "site-packages" in htcgrid.__file__; assert os.path.exists(os.path.join(os.path.dirname(htcgrid.__file__), "py.typed"))',
      ],
      outside,
    );
    expect(check).toMatchObject({ status: 0 });
    fs.rmSync(path.dirname(venv), { recursive: true, force: true });
  }, 120_000);
});
