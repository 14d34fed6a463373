// Tests bundling worker folders into Lambda zips: contents, local dependencies, Node bundles, determinism, errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BundlingError } from '../../lib/core';
import {
  bundleWorker,
  bundleWorkerSync,
  detectWorkerRuntime,
  PipInstallError,
  planWorkerBundle,
  unpackWorker,
} from '../../lib/packaging';
import {
  copyFixtures,
  makeScratch,
  removeScratch,
  scratchOfEachTest,
  REPO_ROOT,
  runPython,
  wheelBuildingPython,
  writeFiles,
} from './packaging-helpers';

const pythonExecutable = wheelBuildingPython();

describe('bundleWorker', () => {
  let scratch: string;
  scratchOfEachTest((dir) => (scratch = dir));

  it('puts a python worker’s modules at the zip root and leaves out caches, VCS folders, venvs and tests', async () => {
    const worker = path.join(scratch, 'worker');
    writeFiles(worker, {
      'handler.py': 'def lambda_handler(event, context):\n    return event\n',
      'helpers/__init__.py': '',
      'helpers/maths.py': 'ONE = 1\n',
      'data/table.csv': 'a,b\n',
      '__pycache__/handler.cpython-311.pyc': 'junk',
      'helpers/__pycache__/maths.cpython-311.pyc': 'junk',
      'stale.pyc': 'junk',
      '.git/config': '[core]\n',
      'tests/test_handler.py': 'def test_x():\n    pass\n',
      'myenv/pyvenv.cfg': 'home = /usr/bin\n',
      'myenv/lib/site.py': '',
      'node_modules/x/index.js': '',
    });

    const bundle = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'out', 'worker.zip') });

    expect(bundle.runtime).toBe('python');
    expect(bundle.files).toEqual(['data/table.csv', 'handler.py', 'helpers/__init__.py', 'helpers/maths.py']);
    expect(fs.statSync(bundle.zipPath).size).toBe(bundle.bytes);
    expect(bundle.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('installs a requirement given by local path at the zip root, importable from the unpacked task root', async () => {
    const fixtures = copyFixtures(scratch);
    const taskRoot = path.join(scratch, 'task');

    const bundle = await bundleWorker({
      sourceDir: path.join(fixtures, 'python-with-localdep'),
      outFile: path.join(scratch, 'worker.zip'),
      pythonExecutable,
    });
    await unpackWorker(bundle.zipPath, taskRoot);
    const result = runPython(
      'python3',
      taskRoot,
      'import json, handler, localdep; print(json.dumps({"out": handler.lambda_handler({"name": "grid"}, None), "file": localdep.__file__}))',
    ) as { out: unknown; file: string };

    expect(bundle.files).toEqual(expect.arrayContaining(['handler.py', 'requirements.txt', 'localdep/__init__.py']));
    expect(bundle.files.filter((f) => f.endsWith('direct_url.json') || f.includes('__pycache__'))).toEqual([]);
    expect(result.out).toEqual({ greeting: 'hello grid from localdep' });
    expect(fs.realpathSync(result.file)).toBe(fs.realpathSync(path.join(taskRoot, 'localdep', '__init__.py')));
  });

  it('bundles a TypeScript worker into index.js at the zip root whose handler runs', async () => {
    const taskRoot = path.join(scratch, 'task');

    const bundle = await bundleWorker({
      sourceDir: path.join(REPO_ROOT, 'workers', 'typescript', 'pi-estimator'),
      outFile: path.join(scratch, 'pi.zip'),
    });
    await unpackWorker(bundle.zipPath, taskRoot);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(path.join(taskRoot, 'index.js')) as {
      handler: (event: unknown, context: unknown) => Promise<{ estimate: number; samples: number; taskId?: string }>;
    };
    const context = {
      awsRequestId: 'req-1',
      clientContext: { custom: { task_id: 't-7' } },
      getRemainingTimeInMillis: () => 60_000,
    };
    const result = await loaded.handler({ samples: 100_000, seed: 7 }, context);

    expect(bundle.runtime).toBe('node');
    expect(bundle.files).toEqual(['index.js']);
    expect(result.samples).toBe(100_000);
    expect(Math.abs(result.estimate - Math.PI)).toBeLessThan(0.05);
    expect(result.taskId).toBe('t-7');
    await expect(loaded.handler({ samples: 0 }, context)).rejects.toThrow(/samples must be an integer/);
  });

  it('bundles each root handler of a node folder and leaves @aws-sdk modules external', async () => {
    const worker = path.join(scratch, 'node-worker');
    writeFiles(worker, {
      'a.ts':
        "import { S3Client } from '@aws-sdk/client-s3';\nimport { twice } from './lib/twice';\nexport const handler = async (e: number) => ({ v: twice(e), s3: typeof S3Client });\n",
      'b.js': 'exports.handler = async () => 42;\n',
      'lib/twice.ts': 'export const twice = (n: number): number => 2 * n;\n',
      'a.test.ts': 'it("x", () => {});\n',
      'jest.config.js': 'module.exports = {};\n',
    });

    const bundle = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'node.zip') });
    await unpackWorker(bundle.zipPath, path.join(scratch, 'task'));
    const bundled = fs.readFileSync(path.join(scratch, 'task', 'a.js'), 'utf8');

    expect(bundle.files).toEqual(['a.js', 'b.js']);
    expect(bundled).toContain('require("@aws-sdk/client-s3")');
    expect(bundled).toContain('2 * n');
  });

  it('gives byte-identical zips when the same folder is bundled twice, whatever the time zone', async () => {
    const fixtures = copyFixtures(scratch);
    const sourceDir = path.join(fixtures, 'python-with-localdep');
    const savedTz = process.env.TZ;

    const first = await bundleWorker({ sourceDir, outFile: path.join(scratch, 'one.zip'), pythonExecutable });
    fs.utimesSync(path.join(sourceDir, 'handler.py'), new Date(), new Date(2001, 1, 1));
    process.env.TZ = 'Pacific/Kiritimati';
    let second;
    try {
      second = bundleWorkerSync({ sourceDir, outFile: path.join(scratch, 'two.zip'), pythonExecutable });
    } finally {
      if (savedTz === undefined) delete process.env.TZ;
      else process.env.TZ = savedTz;
    }
    const node1 = await bundleWorker({
      sourceDir: path.join(REPO_ROOT, 'workers', 'typescript', 'pi-estimator'),
      outFile: path.join(scratch, 'n1.zip'),
    });
    const node2 = bundleWorkerSync({
      sourceDir: path.join(REPO_ROOT, 'workers', 'typescript', 'pi-estimator'),
      outFile: path.join(scratch, 'n2.zip'),
    });

    expect(second.sha256).toBe(first.sha256);
    expect(fs.readFileSync(second.zipPath).equals(fs.readFileSync(first.zipPath))).toBe(true);
    expect(node2.sha256).toBe(node1.sha256);
  });

  it('leaves the zip out of itself when it is written inside the worker folder', async () => {
    const worker = path.join(scratch, 'worker');
    writeFiles(worker, { 'handler.py': 'X = 1\n' });
    const outFile = path.join(worker, 'dist', 'worker.zip');

    const first = await bundleWorker({ sourceDir: worker, outFile });
    const second = await bundleWorker({ sourceDir: worker, outFile });

    expect(second.files).toEqual(['handler.py']);
    expect(second.sha256).toBe(first.sha256);
  });

  it('changes the zip when a file’s content changes', async () => {
    const worker = path.join(scratch, 'worker');
    writeFiles(worker, { 'handler.py': 'X = 1\n' });
    const before = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'a.zip') });
    writeFiles(worker, { 'handler.py': 'X = 2\n' });

    const after = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'b.zip') });

    expect(after.sha256).not.toBe(before.sha256);
  });

  it('keeps the execute bit of a provided worker’s bootstrap through bundle and unpack', async () => {
    const worker = path.join(scratch, 'provided');
    writeFiles(
      worker,
      { bootstrap: '#!/bin/sh\necho hi\n', 'bin/tool': '#!/bin/sh\n', 'data.txt': 'x' },
      { bootstrap: 0o755, 'bin/tool': 0o700 },
    );
    const taskRoot = path.join(scratch, 'task');

    const bundle = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'provided.zip') });
    await unpackWorker(bundle.zipPath, taskRoot);

    expect(bundle.runtime).toBe('provided');
    expect(bundle.files).toEqual(['bin/tool', 'bootstrap', 'data.txt']);
    expect(fs.statSync(path.join(taskRoot, 'bootstrap')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(taskRoot, 'bin/tool')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(taskRoot, 'data.txt')).mode & 0o777).toBe(0o644);
  });

  it('ships a provided bootstrap as executable even when it lost its execute bit on disk', async () => {
    const worker = path.join(scratch, 'provided');
    writeFiles(worker, { bootstrap: '#!/bin/sh\n' }, { bootstrap: 0o644 });
    const taskRoot = path.join(scratch, 'task');

    const bundle = await bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'p.zip'), runtime: 'provided' });
    await unpackWorker(bundle.zipPath, taskRoot);

    expect(fs.statSync(path.join(taskRoot, 'bootstrap')).mode & 0o777).toBe(0o755);
  });

  it('registers its scratch folder for removal at exit before it first yields, so a signal then leaves nothing', async () => {
    const worker = path.join(scratch, 'worker');
    writeFiles(worker, { 'handler.py': 'def lambda_handler(event, context):\n    return event\n' });
    const scratchFolders = (): string[] => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('htcgrid-bundle-'));
    const before = new Set(scratchFolders());
    const exitListeners = process.listenerCount('exit');
    const pending = bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'out', 'worker.zip') });
    // Nothing has been awaited yet: a signal handled now (process.exit) must find the folder made and registered.
    const made = scratchFolders().filter((f) => !before.has(f));
    expect(made).toHaveLength(1);
    expect(process.listenerCount('exit')).toBe(exitListeners + 1);
    await pending;
    expect(scratchFolders()).not.toContain(made[0]);
    expect(process.listenerCount('exit')).toBe(exitListeners);
  });

  it('fails with a BundlingError naming the folder when it does not exist', async () => {
    const missing = path.join(scratch, 'nope');

    await expect(bundleWorker({ sourceDir: missing, outFile: path.join(scratch, 'x.zip') })).rejects.toThrow(
      BundlingError,
    );
    await expect(bundleWorker({ sourceDir: missing, outFile: path.join(scratch, 'x.zip') })).rejects.toThrow(
      /nope' does not exist/,
    );
  });

  it('fails with a BundlingError when the folder is empty, and writes no zip', async () => {
    const empty = path.join(scratch, 'empty');
    fs.mkdirSync(empty);

    await expect(bundleWorker({ sourceDir: empty, outFile: path.join(scratch, 'x.zip') })).rejects.toThrow(
      /holds no handler/,
    );
    await expect(
      bundleWorker({ sourceDir: empty, outFile: path.join(scratch, 'x.zip'), runtime: 'python' }),
    ).rejects.toThrow(/empty zip/);
    expect(fs.existsSync(path.join(scratch, 'x.zip'))).toBe(false);
  });

  it('fails with a PipInstallError naming the requirement and showing pip’s output when a requirement cannot be built', async () => {
    const fixtures = copyFixtures(scratch);

    const error = await bundleWorker({
      sourceDir: path.join(fixtures, 'python-with-brokendep'),
      outFile: path.join(scratch, 'x.zip'),
      pythonExecutable,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PipInstallError);
    const pipError = error as PipInstallError;
    expect(pipError.requirements).toEqual(['../brokendep']);
    expect(pipError.message).toMatch(/pip could not install requirement '\.\.\/brokendep'/);
    expect(pipError.message).toContain('brokendep: this package cannot be built on purpose');
  });

  it('fails with a BundlingError when the Python interpreter does not exist', async () => {
    const fixtures = copyFixtures(scratch);

    await expect(
      bundleWorker({
        sourceDir: path.join(fixtures, 'python-with-localdep'),
        outFile: path.join(scratch, 'x.zip'),
        pythonExecutable: 'python-that-does-not-exist',
      }),
    ).rejects.toThrow(/'python-that-does-not-exist' was not found/);
  });

  it('fails with a BundlingError showing esbuild’s message when a node handler does not compile', async () => {
    const worker = path.join(scratch, 'bad-node');
    writeFiles(worker, { 'index.ts': "import { nothing } from './missing';\nexport const handler = nothing;\n" });

    await expect(bundleWorker({ sourceDir: worker, outFile: path.join(scratch, 'x.zip') })).rejects.toThrow(
      /esbuild could not bundle[\s\S]*Could not resolve "\.\/missing"/,
    );
  });
});

describe('planWorkerBundle', () => {
  it('plans pip with the worker folder as working directory and without build isolation by default', () => {
    const plan = planWorkerBundle({
      sourceDir: path.join(REPO_ROOT, 'test', 'fixtures', 'packaging', 'python-with-localdep'),
      outFile: 'x.zip',
      pipArgs: ['--no-index'],
    });

    const pip = plan.steps[0];
    expect(plan.runtime).toBe('python');
    expect(pip).toMatchObject({ kind: 'pip-install', python: 'python3', cwd: plan.sourceDir });
    expect(pip?.kind === 'pip-install' && pip.args).toEqual(
      expect.arrayContaining(['--no-build-isolation', '--no-index']),
    );
    expect(plan.steps[1]).toMatchObject({ kind: 'copy-tree', from: plan.sourceDir });
  });

  it('plans no pip run for a requirements file of comments only', () => {
    const scratch = makeScratch();
    try {
      writeFiles(scratch, { 'handler.py': '', 'requirements.txt': '# no dependencies yet\n\n' });

      const plan = planWorkerBundle({ sourceDir: scratch, outFile: path.join(scratch, 'x.zip') });

      expect(plan.steps.map((step) => step.kind)).toEqual(['copy-tree']);
    } finally {
      removeScratch(scratch);
    }
  });

  it('plans an esbuild step for package.json main when no entry points are given', () => {
    const scratch = makeScratch();
    try {
      writeFiles(scratch, {
        'package.json': '{"main": "src/worker.ts"}',
        'src/worker.ts': 'export const handler = 1;\n',
      });

      const plan = planWorkerBundle({ sourceDir: scratch, outFile: path.join(scratch, 'x.zip') });

      expect(plan.steps).toEqual([
        expect.objectContaining({
          kind: 'esbuild',
          target: 'node22',
          external: ['@aws-sdk/*'],
          entryPoints: { worker: path.join(scratch, 'src/worker.ts') },
        }),
      ]);
    } finally {
      removeScratch(scratch);
    }
  });
});

describe('detectWorkerRuntime', () => {
  let scratch: string;
  scratchOfEachTest((dir) => (scratch = dir));

  it.each([
    [{ 'lambda_function.py': '' }, 'python'],
    [{ 'requirements.txt': 'x\n' }, 'python'],
    [{ 'index.ts': '', 'index.test.ts': '' }, 'node'],
    [{ 'package.json': '{}' }, 'node'],
    [{ bootstrap: '#!/bin/sh\n', 'README.md': '' }, 'provided'],
  ])('tells the runtime of a folder holding %p', (files, expected) => {
    writeFiles(scratch, files, { bootstrap: 0o755 });

    expect(detectWorkerRuntime(scratch)).toBe(expected);
  });

  it('refuses a folder that looks like two runtimes and says which files gave it away', () => {
    writeFiles(scratch, { 'handler.py': '', 'package.json': '{}' });

    expect(() => detectWorkerRuntime(scratch)).toThrow(/looks like python \(handler\.py\) and node \(package\.json\)/);
  });

  it('says to chmod a bootstrap that is not executable', () => {
    writeFiles(scratch, { bootstrap: '#!/bin/sh\n' });

    expect(() => detectWorkerRuntime(scratch)).toThrow(/not executable[\s\S]*chmod \+x/);
  });
});
