// Python requirements installed for the Lambda platform (manylinux wheels of its architecture and Python version),
// not for the bundling machine, checked with real pip over local wheels (defect 5).
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { main } from '../../lib/cli/program';
import { bundleWorker, lambdaPipArgs, planWorkerBundle, type PipInstallStep } from '../../lib/packaging';
import { makeScratch, removeScratch, writeFiles, writeWheel } from './packaging-helpers';

/** Wheel tags a wheelhouse offers: the host's (CPython 3.11 here) and the Lambda platforms'. */
const TAGS = [
  'cp311-cp311-manylinux2014_x86_64',
  'cp312-cp312-manylinux2014_x86_64',
  'cp312-cp312-manylinux2014_aarch64',
  'cp313-cp313-manylinux2014_x86_64',
  'cp313-cp313-manylinux2014_aarch64',
];

let scratch: string;
let wheels: string;
let worker: string;
beforeEach(() => {
  scratch = makeScratch();
  wheels = path.join(scratch, 'wheels');
  fs.mkdirSync(wheels);
  for (const tag of TAGS) writeWheel(wheels, tag);
  worker = path.join(scratch, 'worker');
  writeFiles(worker, {
    'lambda_function.py': 'import fastcalc\n\ndef lambda_handler(event, context):\n    return fastcalc.TAG\n',
    'requirements.txt': 'fastcalc==1.0\n',
  });
});
afterEach(() => {
  removeScratch(scratch);
});

/** Which wheel pip put into the zip. */
function installedTag(zipPath: string): string {
  const entry = new AdmZip(zipPath).getEntry('fastcalc/build.py');
  if (!entry) throw new Error('fastcalc is not in the zip');
  return /TAG = "(.*)"/.exec(entry.getData().toString('utf8'))![1]!;
}

const offline = (): string[] => ['--no-index', '--find-links', wheels];

describe('bundling for the Lambda platform', () => {
  it.each([
    ['3.12', 'x86_64', 'cp312-cp312-manylinux2014_x86_64'],
    ['3.12', 'arm64', 'cp312-cp312-manylinux2014_aarch64'],
    ['3.13', 'x86_64', 'cp313-cp313-manylinux2014_x86_64'],
    ['3.13', 'arm64', 'cp313-cp313-manylinux2014_aarch64'],
  ] as const)(
    'installs the wheel of Python %s on %s, not the bundling machine’s',
    async (pythonVersion, architecture, tag) => {
      const bundle = await bundleWorker({
        sourceDir: worker,
        outFile: path.join(scratch, 'worker.zip'),
        lambdaPlatform: { pythonVersion, architecture },
        pipArgs: offline(),
      });

      expect(installedTag(bundle.zipPath)).toBe(tag);
    },
  );

  it('passes pip the platform flags AWS documents for Lambda', () => {
    const plan = planWorkerBundle({
      sourceDir: worker,
      outFile: path.join(scratch, 'worker.zip'),
      lambdaPlatform: { pythonVersion: '3.12', architecture: 'x86_64' },
    });
    const pip = plan.steps.find((s): s is PipInstallStep => s.kind === 'pip-install')!;

    expect(lambdaPipArgs({ pythonVersion: '3.12', architecture: 'x86_64' })).toEqual([
      '--platform',
      'manylinux2014_x86_64',
      '--only-binary=:all:',
      '--python-version',
      '3.12',
      '--implementation',
      'cp',
    ]);
    expect(pip.args.join(' ')).toContain(
      '--platform manylinux2014_x86_64 --only-binary=:all: --python-version 3.12 --implementation cp',
    );
  });

  it('installs the host’s wheel when no Lambda platform is asked (local runs)', async () => {
    const bundle = await bundleWorker({
      sourceDir: worker,
      outFile: path.join(scratch, 'worker.zip'),
      pythonExecutable: 'python3',
      pipArgs: offline(),
    });

    expect(installedTag(bundle.zipPath)).toBe('cp311-cp311-manylinux2014_x86_64');
  });

  it('fails naming the requirement and the fix when no wheel exists for the Lambda platform', async () => {
    fs.rmSync(path.join(wheels, 'fastcalc-1.0-cp313-cp313-manylinux2014_aarch64.whl'));

    await expect(
      bundleWorker({
        sourceDir: worker,
        outFile: path.join(scratch, 'worker.zip'),
        lambdaPlatform: { pythonVersion: '3.13', architecture: 'arm64' },
        pipArgs: offline(),
      }),
    ).rejects.toThrow(/requirement 'fastcalc==1\.0'[\s\S]*no wheel for Python 3\.13 on manylinux2014_aarch64/);
  });
});

describe('htcgrid bundle --lambda-platform', () => {
  it('builds the zip for the Lambda runtime and architecture given', async () => {
    const saved = { noIndex: process.env.PIP_NO_INDEX, findLinks: process.env.PIP_FIND_LINKS };
    process.env.PIP_NO_INDEX = '1';
    process.env.PIP_FIND_LINKS = wheels;
    try {
      const out = path.join(scratch, 'worker.zip');
      const args = ['bundle', worker, '-o', out, '--lambda-platform', 'arm64', '--lambda-runtime', 'python3.13'];

      const code = await main(['node', 'htcgrid', ...args]);

      expect(code).toBe(0);
      expect(installedTag(out)).toBe('cp313-cp313-manylinux2014_aarch64');
    } finally {
      for (const [key, value] of [
        ['PIP_NO_INDEX', saved.noIndex],
        ['PIP_FIND_LINKS', saved.findLinks],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe('bundling for a local run', () => {
  it('leaves out requirements the local Python already has and installs the others', async () => {
    writeFiles(worker, { 'requirements.txt': 'pip>=1\nfastcalc==1.0\n' });

    const bundle = await bundleWorker({
      sourceDir: worker,
      outFile: path.join(scratch, 'worker.zip'),
      pythonExecutable: 'python3',
      omitInstalledRequirements: true,
      pipArgs: offline(),
    });

    expect(installedTag(bundle.zipPath)).toBe('cp311-cp311-manylinux2014_x86_64');
    expect(bundle.files.filter((f) => f.startsWith('pip/'))).toEqual([]);
  });

  it('runs no pip at all when the local Python has every requirement', async () => {
    writeFiles(worker, { 'requirements.txt': 'pip\n' });

    const bundle = await bundleWorker({
      sourceDir: worker,
      outFile: path.join(scratch, 'worker.zip'),
      pythonExecutable: 'python3',
      omitInstalledRequirements: true,
      pipArgs: ['--no-index', '--find-links', path.join(scratch, 'nowhere')],
    });

    expect(bundle.files).toEqual(['lambda_function.py', 'requirements.txt']);
  });

  it('refuses to leave requirements out of a zip meant for Lambda', () => {
    expect(() =>
      planWorkerBundle({
        sourceDir: worker,
        outFile: path.join(scratch, 'worker.zip'),
        lambdaPlatform: { pythonVersion: '3.12', architecture: 'x86_64' },
        omitInstalledRequirements: true,
      }),
    ).toThrow(/omitInstalledRequirements and lambdaPlatform exclude each other/);
  });
});
