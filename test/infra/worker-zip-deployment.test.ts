// WorkerZipDeployment: worker folders become Lambda zips locally (no Docker), checked for their handler, and land in
// the worker bucket under workers/.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { App, DockerImage, Stack } from 'aws-cdk-lib';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import {
  buildImageFor,
  bundleWorkerLocally,
  dockerBundlingScript,
  LocalWorkerBundling,
} from '../../lib/infra/worker-bundling';
import { WorkerZipDeployment } from '../../lib/infra/worker-zip-deployment';
import { writeWheel } from '../packaging/packaging-helpers';
import { FIXTURES, PYTHON_WORKER, REPO_ROOT, synthGrid } from './grid-app';

/** A python3 whose pip builds local path packages offline (setuptools and wheel importable). */
function wheelBuildingPython(): string {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    if (spawnSync(candidate, ['-c', 'import setuptools, wheel, pip']).status === 0) return candidate;
  }
  throw new Error(
    'no python3 with pip, setuptools and wheel: apt-get install python3-pip python3-wheel python3-setuptools',
  );
}

function zipEntries(zipPath: string): string[] {
  return new AdmZip(zipPath)
    .getEntries()
    .map((e) => e.entryName)
    .sort();
}

let scratch: string;
beforeEach(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-infra-bundle-'));
});
afterEach(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('local worker bundling', () => {
  it('puts a Python handler and its local path requirement at the zip root', () => {
    // pip builds a local package in its own folder (build/, *.egg-info): work on a copy of the fixtures.
    const fixtures = path.join(scratch, 'fixtures');
    for (const dir of ['python-localdep-worker', 'greeting-lib']) {
      fs.cpSync(path.join(FIXTURES, dir), path.join(fixtures, dir), { recursive: true });
    }
    const out = path.join(scratch, 'out');
    fs.mkdirSync(out);

    const result = bundleWorkerLocally(
      {
        sourceDir: path.join(fixtures, 'python-localdep-worker'),
        runtime: resolveRuntime('python3.12'),
        pythonExecutable: wheelBuildingPython(),
      },
      out,
    );

    const entries = zipEntries(result.zipPath);
    expect(path.dirname(result.zipPath)).toBe(out);
    expect(entries).toEqual(expect.arrayContaining(['lambda_function.py', 'greeting_lib/__init__.py']));
    expect(entries.some((e) => e.includes('__pycache__'))).toBe(false);
  });

  it('bundles a TypeScript worker into index.js at the zip root', () => {
    const result = bundleWorkerLocally(
      { sourceDir: path.join(FIXTURES, 'ts-worker'), runtime: resolveRuntime('nodejs22.x') },
      scratch,
    );

    const entries = zipEntries(result.zipPath);
    expect(entries).toContain('index.js');
    expect(entries).not.toContain('index.ts');
  });
});

describe('the WorkerZipDeployment construct', () => {
  it('stages the locally built zip as the deployment source and exposes bucket, key and handler', () => {
    const outdir = path.join(scratch, 'cdk.out');
    const app = new App({ outdir });
    const stack = new Stack(app, 'Bundle');
    const bucket = new s3.Bucket(stack, 'Bucket');

    const bundle = new WorkerZipDeployment(stack, 'Worker', {
      bucket,
      sourceDir: PYTHON_WORKER,
      handlerFileName: 'portfolio_pricing_engine.py',
      handlerFunctionName: 'price',
    });
    const template = Template.fromStack(stack);
    app.synth();

    expect(bundle.handler).toBe('portfolio_pricing_engine.price');
    expect(bundle.bucket).toBe(bucket);
    expect(stack.resolve(bundle.key)).toEqual({
      'Fn::Join': ['', ['workers/', { 'Fn::Select': [0, { 'Fn::GetAtt': [expect.any(String), 'SourceObjectKeys'] }] }]],
    });
    template.hasResourceProperties('Custom::CDKBucketDeployment', { Extract: false });
    const deployment = Object.values(template.findResources('Custom::CDKBucketDeployment'))[0] as {
      Properties: { SourceObjectKeys: string[] };
    };
    const sourceKey = deployment.Properties.SourceObjectKeys[0]!;
    expect(zipEntries(path.join(outdir, `asset.${sourceKey}`))).toEqual([
      'lambda_function.py',
      'portfolio_pricing_engine.py',
    ]);
  });

  it('names the worker asset by its zip: the same for a copy of the folder elsewhere, with a stray __pycache__', () => {
    const sourceKeyOf = (sourceDir: string, name: string): string => {
      const app = new App({ outdir: path.join(scratch, `cdk.out-${name}`) });
      const stack = new Stack(app, 'Bundle');
      new WorkerZipDeployment(stack, 'Worker', {
        bucket: new s3.Bucket(stack, 'Bucket'),
        sourceDir,
        handlerFileName: 'portfolio_pricing_engine.py',
        handlerFunctionName: 'price',
      });
      const [deployment] = Object.values(Template.fromStack(stack).findResources('Custom::CDKBucketDeployment')) as {
        Properties: { SourceObjectKeys: string[] };
      }[];
      return deployment!.Properties.SourceObjectKeys[0]!;
    };
    // Another checkout of the same worker, where a test run left compiled files the zip leaves out.
    const copy = path.join(scratch, 'another-checkout', 'worker');
    fs.cpSync(PYTHON_WORKER, copy, { recursive: true });
    fs.mkdirSync(path.join(copy, '__pycache__'), { recursive: true });
    fs.writeFileSync(path.join(copy, '__pycache__', 'portfolio_pricing_engine.cpython-311.pyc'), 'stray');

    expect(sourceKeyOf(copy, 'copy')).toBe(sourceKeyOf(PYTHON_WORKER, 'original'));
  });

  it('rejects a missing worker folder, naming it and the fix', () => {
    const stack = new Stack(new App(), 'Bad');
    const bucket = new s3.Bucket(stack, 'Bucket');

    expect(() => new WorkerZipDeployment(stack, 'Worker', { bucket, sourceDir: path.join(scratch, 'nope') })).toThrow(
      /worker: ".*nope" is not a folder: pass the folder holding the handler module/,
    );
    expect(() => new WorkerZipDeployment(stack, 'Worker2', { bucket })).toThrow(
      /give exactly one of sourceDir and zipFile/,
    );
    expect(
      () => new WorkerZipDeployment(stack, 'Worker3', { bucket, sourceDir: PYTHON_WORKER, runtime: 'nodejs20.x' }),
    ).toThrow(/runtime "nodejs20\.x" is not supported/);
  });
});

describe('Python requirements in a deployed zip (defect 5)', () => {
  it.each([
    [{}, 'cp312-cp312-manylinux2014_x86_64'],
    [{ runtime: 'python3.13', ec2_instance_type: 'c7g.large' }, 'cp313-cp313-manylinux2014_aarch64'],
    [{ pip_platform: 'host' }, 'cp311-cp311-manylinux2014_x86_64'],
  ])(
    'with %j, are the wheels of the Lambda platform (%s)',
    (context, tag) => {
      const wheels = path.join(scratch, 'wheels');
      fs.mkdirSync(wheels);
      for (const t of [tag, 'cp311-cp311-manylinux2014_x86_64']) writeWheel(wheels, t);
      const worker = path.join(scratch, 'worker');
      fs.mkdirSync(worker);
      fs.writeFileSync(
        path.join(worker, 'lambda_function.py'),
        'import fastcalc\n\ndef lambda_handler(e, c):\n    return 1\n',
      );
      fs.writeFileSync(path.join(worker, 'requirements.txt'), 'fastcalc\n');

      const { app, template } = synthGrid(
        { worker, pip_args: `--no-index --find-links ${wheels}`, python_executable: 'python3', ...context },
        { bundle: true },
      );
      const deployment = Object.values(template.findResources('Custom::CDKBucketDeployment'))[0] as {
        Properties: { SourceObjectKeys: string[] };
      };
      const zip = new AdmZip(path.join(app.outdir, `asset.${deployment.Properties.SourceObjectKeys[0]!}`));

      expect(zip.getEntry('fastcalc/build.py')?.getData().toString('utf8')).toBe(`TAG = ${JSON.stringify(tag)}\n`);
    },
    120_000,
  );
});

describe('LocalWorkerBundling in a CDK asset', () => {
  it('writes the worker zip as the only file of the output folder and gives CDK exactly that zip, without Docker', () => {
    const app = new App({ outdir: path.join(scratch, 'cdk.out') });
    const stack = new Stack(app, 'WorkerAssetStack');
    const source = path.join(REPO_ROOT, 'workers', 'python', 'mock-compute');
    const local = new LocalWorkerBundling({
      sourceDir: source,
      runtime: resolveRuntime('python3.12'),
      handler: 'mock_compute_engine.lambda_handler',
    });

    const asset = new Asset(stack, 'Worker', {
      path: source,
      bundling: { image: DockerImage.fromRegistry('docker-is-never-used'), local },
    });
    const staged = path.join(app.outdir, asset.assetPath);

    expect(asset.isZipArchive).toBe(true);
    expect(asset.s3ObjectKey).toMatch(/\.zip$/);
    expect(local.lastBundle?.files).toEqual(['README.md', 'mock_compute_engine.py']);
    expect(createHash('sha256').update(fs.readFileSync(staged)).digest('hex')).toBe(local.lastBundle?.sha256);
  });
});

describe('Docker fallback', () => {
  it('is taken when a Python worker has requirements and no working pip is at hand', () => {
    const bundling = new LocalWorkerBundling({
      sourceDir: path.join(FIXTURES, 'python-localdep-worker'),
      runtime: resolveRuntime('python3.12'),
      pythonExecutable: path.join(scratch, 'no-such-python'),
    });

    expect(bundling.tryBundle(scratch)).toBe(false);
    expect(fs.readdirSync(scratch)).toEqual([]);
  });

  it('is not needed for a Python worker without requirements, whatever the Python', () => {
    const bundling = new LocalWorkerBundling({
      sourceDir: PYTHON_WORKER,
      runtime: resolveRuntime('python3.12'),
      pythonExecutable: path.join(scratch, 'no-such-python'),
    });

    expect(bundling.tryBundle(scratch)).toBe(true);
    expect(fs.readdirSync(scratch)).toEqual(['worker.zip']);
  });

  it('uses the AWS SAM build image of the runtime and installs requirements into the output', () => {
    const python = resolveRuntime('python3.13');

    expect(buildImageFor(python)).toBe('public.ecr.aws/sam/build-python3.13:latest');
    expect(dockerBundlingScript(python)).toContain('pip install --no-cache-dir -r requirements.txt -t /asset-output');
    expect(dockerBundlingScript(resolveRuntime('provided'))).toContain('chmod 755 /asset-output/bootstrap');
  });
});
