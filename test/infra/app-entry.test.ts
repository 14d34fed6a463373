// bin/app.ts run as the CDK CLI runs it (context in CDK_CONTEXT_JSON, output in CDK_OUTDIR): what a user sees.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { PYTHON_WORKER, REPO_ROOT } from './grid-app';

let scratch: string;
beforeEach(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-app-entry-'));
});
afterEach(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

interface AppRun {
  readonly status: number | null;
  readonly stderr: string;
  readonly outdir: string;
}

/** Runs the CDK app entry with `-c` values, as `cdk synth` would (no AWS credentials, no Docker). */
function runApp(context: Record<string, string>): AppRun {
  const outdir = path.join(scratch, 'cdk.out');
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  const run = spawnSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), [path.join(REPO_ROOT, 'bin', 'app.ts')], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: scratch,
      CDK_OUTDIR: outdir,
      CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJson.context, ...context }),
      CDK_DOCKER: path.join(scratch, 'no-docker'),
    },
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { status: run.status, stderr: run.stderr, outdir };
}

function templateOf(run: AppRun, stackName: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(run.outdir, `${stackName}.template.json`), 'utf8'));
}

/** What an uncaught exception prints: stack frames, Node's own frames, CDK's construct path. */
const STACK_TRACE_LINE = /^\s+at |triggerUncaughtException|node:internal|Relates to construct/m;

describe('bin/app.ts', () => {
  it('reports a bad -c value as a configuration error naming the key, the value and the fix, never a stack trace', () => {
    const run = runApp({ worker: path.relative(REPO_ROOT, PYTHON_WORKER), cpu: '333' });

    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cpu: 333 is not a Fargate task size: use one of 256, 512, 1024/);
    expect(run.stderr).not.toMatch(STACK_TRACE_LINE);
  }, 300_000);

  it('refuses an unknown -c key, naming the closest known one', () => {
    const run = runApp({ worker: path.relative(REPO_ROOT, PYTHON_WORKER), max_agnets: '20' });

    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/-c max_agnets: unknown context key: did you mean max_agents\?/);
    expect(run.stderr).not.toMatch(STACK_TRACE_LINE);
  }, 300_000);

  it('detects a TypeScript worker: the Node base image, index.handler, and index.js in the zip', () => {
    const run = runApp({ worker: 'workers/typescript/pi-estimator', grid_name: 'pi', dynamodb_billing_mode: 'X' });

    expect(run.stderr).not.toMatch(STACK_TRACE_LINE);
    expect(run.status).toBe(0);
    const template = templateOf(run, 'HtcGrid-pi');
    const taskDef = Object.values(template.Resources as Record<string, any>).find(
      (r) => r.Type === 'AWS::ECS::TaskDefinition',
    );
    const lambda = taskDef.Properties.ContainerDefinitions.find((c: { Name: string }) => c.Name === 'lambda-0');
    expect(lambda.Command).toEqual(['index.handler']);
    expect(JSON.stringify(lambda.Image)).toContain('/lambda/nodejs:22');
    const deployment = Object.values(template.Resources as Record<string, any>).find(
      (r) => r.Type === 'Custom::CDKBucketDeployment',
    );
    const zipKey = deployment.Properties.SourceObjectKeys[0] as string;
    const zip = new AdmZip(path.join(run.outdir, `asset.${zipKey}`));
    expect(zip.getEntries().map((e) => e.entryName)).toEqual(['index.js']);
    // An HTC-Grid key that does not apply here is accepted, with a warning `cdk synth` shows.
    const manifest = fs.readFileSync(path.join(run.outdir, 'HtcGrid-pi.metadata.json'), 'utf8');
    expect(manifest).toContain('-c dynamodb_billing_mode: an HTC-Grid key ignored here (use table_capacity)');
  }, 300_000);

  it('fails synth when the handler is not in the worker zip, naming the file and the function', () => {
    const run = runApp({
      worker: path.relative(REPO_ROOT, PYTHON_WORKER),
      lambda_handler_file_name: 'pricer',
      lambda_handler_function_name: 'price',
    });

    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /^worker: handler pricer\.price: the worker zip has no pricer\.py: set lambda_handler_file_name to one of its modules \(lambda_function, portfolio_pricing_engine\)/m,
    );
    expect(run.stderr).not.toMatch(STACK_TRACE_LINE);
  }, 300_000);
});
