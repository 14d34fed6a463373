// A worker zip that cannot serve its handler fails synth, naming the file and the function (defect 4).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { App, Stack } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { zipHandlerIssues, zipRuntimeFamilies, type ZipContents } from '../../lib/infra/handler-check';
import { WorkerZipDeployment } from '../../lib/infra/worker-zip-deployment';
import { FIXTURES, PYTHON_WORKER, synthGrid } from './grid-app';

function zipOf(files: Record<string, string>): ZipContents {
  return { names: Object.keys(files), read: (name) => files[name] ?? '' };
}

const PYTHON = resolveRuntime('python3.12');
const NODE = resolveRuntime('nodejs22.x');
const PROVIDED = resolveRuntime('provided.al2023');

describe('zipHandlerIssues', () => {
  it('accepts a Python module at the root or in a package, and a Node module', () => {
    expect(zipHandlerIssues(zipOf({ 'pricer.py': 'def price(e, c): pass' }), 'pricer.price', PYTHON)).toEqual([]);
    expect(zipHandlerIssues(zipOf({ 'risk/pricer.py': 'def price(e, c): pass' }), 'risk.pricer.price', PYTHON)).toEqual(
      [],
    );
    expect(zipHandlerIssues(zipOf({ 'risk/__init__.py': 'price = 1' }), 'risk.price', PYTHON)).toEqual([]);
    expect(zipHandlerIssues(zipOf({ 'index.js': 'exports.handler = async () => 1;' }), 'index.handler', NODE)).toEqual(
      [],
    );
    expect(zipHandlerIssues(zipOf({ bootstrap: '#!/bin/sh' }), 'any.thing', PROVIDED)).toEqual([]);
  });

  it('names the missing file, the modules the zip has, and the fix', () => {
    const zip = zipOf({ 'lambda_function.py': 'def lambda_handler(e, c): pass', 'util.py': '', 'lib/x.py': '' });

    expect(zipHandlerIssues(zip, 'pricer.price', PYTHON)).toEqual([
      'handler pricer.price: the worker zip has no pricer.py: set lambda_handler_file_name to one of its modules ' +
        '(lambda_function, util), or add pricer.py to the worker',
    ]);
    expect(zipHandlerIssues(zipOf({ 'index.ts': '' }), 'index.handler', NODE)[0]).toMatch(
      /the worker zip has no index\.js/,
    );
    expect(zipHandlerIssues(zipOf({ 'run.sh': '' }), 'x.y', PROVIDED)[0]).toMatch(/no bootstrap at its root/);
  });

  it('names a function the module never mentions', () => {
    const zip = zipOf({ 'pricer.py': 'def price_all(event, context):\n    return 1\n' });

    expect(zipHandlerIssues(zip, 'pricer.price', PYTHON)).toEqual([
      'handler pricer.price: pricer.py in the worker zip defines no price: set lambda_handler_function_name to its handler function',
    ]);
  });

  it('tells runtimes apart by the zip root', () => {
    expect(zipRuntimeFamilies(['a.py', 'pkg/b.js'])).toEqual(['python']);
    expect(zipRuntimeFamilies(['index.js'])).toEqual(['node']);
    expect(zipRuntimeFamilies(['bootstrap', 'lib/x.so'])).toEqual(['provided']);
  });
});

describe('a prebuilt worker zip', () => {
  let scratch: string;
  beforeEach(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-handler-check-'));
  });
  afterEach(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  function writeZip(files: Record<string, string>): string {
    const zip = new AdmZip();
    for (const [name, content] of Object.entries(files)) zip.addFile(name, Buffer.from(content));
    const file = path.join(scratch, 'worker.zip');
    zip.writeZip(file);
    return file;
  }

  it('without the handler fails synth naming the file and the function', () => {
    const zip = writeZip({ 'lambda_function.py': 'def lambda_handler(event, context):\n    return event\n' });

    expect(() =>
      synthGrid({ worker_zip: zip, lambda_handler_file_name: 'pricer', lambda_handler_function_name: 'price' }),
    ).toThrow(/handler pricer\.price: the worker zip has no pricer\.py/);
  });

  it('of a Node worker deploys on Node with index.handler when nothing says otherwise', () => {
    const zip = writeZip({ 'index.js': 'exports.handler = async (e) => e;\n' });

    const lambda = new WorkerZipDeployment(new Stack(new App(), 'S'), 'W', {
      bucket: new s3.Bucket(new Stack(new App(), 'B'), 'B'),
      zipFile: zip,
    });

    expect([lambda.runtime.name, lambda.handler]).toEqual(['nodejs22.x', 'index.handler']);
  });
});

describe('a worker folder whose files contradict the configured runtime', () => {
  it('fails synth naming the runtime to set', () => {
    expect(() => synthGrid({ worker: path.join(FIXTURES, 'ts-worker'), runtime: 'python3.12' })).toThrow(
      /runtime python3\.12: the worker .*ts-worker is a node worker: set -c runtime .* e\.g\. nodejs22\.x/,
    );
    expect(() => synthGrid({ worker: PYTHON_WORKER, runtime: 'nodejs22.x' })).toThrow(/is a python worker/);
  });
});
