// `npx cdk synth` with -c overrides works as users run it: no AWS credentials, no Docker, handler wired everywhere.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PYTHON_WORKER, REPO_ROOT } from './grid-app';

let outdir: string;
beforeAll(() => {
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-cdk-synth-'));
});
afterAll(() => {
  fs.rmSync(outdir, { recursive: true, force: true });
});

it('synthesises a template with the -c handler in the Lambda command, the agent document and the outputs', () => {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: outdir,
    // Nothing to sign with and no Docker engine: bundling must be local and synth must not call AWS.
    CDK_DOCKER: path.join(outdir, 'no-docker'),
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
  const args = [
    'cdk',
    'synth',
    '--quiet',
    '--no-notices',
    '--no-version-reporting',
    '-o',
    outdir,
    '-c',
    'lambda_handler_file_name=portfolio_pricing_engine',
    '-c',
    'lambda_handler_function_name=price',
    '-c',
    `worker=${path.relative(REPO_ROOT, PYTHON_WORKER)}`,
    '-c',
    'grid_name=cli-check',
    '-c',
    'max_agents=12',
    '-c',
    'retain_data=false',
  ];

  execFileSync('npx', args, { cwd: REPO_ROOT, env, stdio: 'pipe', timeout: 240_000 });

  const template = JSON.parse(fs.readFileSync(path.join(outdir, 'HtcGrid-cli-check.template.json'), 'utf8'));
  const text = JSON.stringify(template);
  const taskDef = Object.values(template.Resources as Record<string, any>).find(
    (r) => r.Type === 'AWS::ECS::TaskDefinition',
  );
  const lambda = taskDef.Properties.ContainerDefinitions.find((c: { Name: string }) => c.Name === 'lambda-0');
  expect(lambda.Command).toEqual(['portfolio_pricing_engine.price']);
  expect(text).toContain(
    '\\"lambda_handler_file_name\\":\\"portfolio_pricing_engine\\",\\"lambda_handler_function_name\\":\\"price\\"',
  );
  expect(template.Outputs.Handler.Value).toBe('portfolio_pricing_engine.price');
  // retain_data=false: buckets are emptied and deleted with the stack.
  expect(text).toContain('Custom::S3AutoDeleteObjects');
  const nagReport = fs.readFileSync(path.join(outdir, 'AwsSolutions--HtcGrid-cli-check-NagReport.csv'), 'utf8');
  const rows = nagReport.trim().split('\n').slice(1);
  expect(rows.length).toBeGreaterThan(20);
  expect(rows.filter((row) => row.includes('"Non-Compliant"'))).toEqual([]);
  // Every suppression carries a written reason.
  const suppressed = rows.filter((row) => row.includes('"Suppressed"'));
  expect(suppressed.filter((row) => /"Suppressed","(N\/A)?"/.test(row))).toEqual([]);
}, 300_000);

it('synthesises the EKS plane with -c compute=eks: the handler in the pod, KEDA scaling, cdk-nag clean', () => {
  const out = path.join(outdir, 'eks');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: outdir,
    CDK_DOCKER: path.join(outdir, 'no-docker'),
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
  // The command, with the fixture worker: the real portfolio-pricing folder needs QuantLib's wheel from PyPI.
  const args = [
    'cdk',
    'synth',
    '--quiet',
    '--no-notices',
    '--no-version-reporting',
    '-o',
    out,
    '-c',
    'compute=eks',
    '-c',
    `worker=${path.relative(REPO_ROOT, PYTHON_WORKER)}`,
    '-c',
    'lambda_handler_file_name=portfolio_pricing_engine',
    '-c',
    'lambda_handler_function_name=lambda_handler',
    '-c',
    'grid_name=eks-check',
  ];

  execFileSync('npx', args, { cwd: REPO_ROOT, env, stdio: 'pipe', timeout: 240_000 });

  const template = JSON.parse(fs.readFileSync(path.join(out, 'HtcGrid-eks-check.template.json'), 'utf8'));
  const resources = Object.values(template.Resources as Record<string, any>);
  const manifests = resources
    .filter((r) => r.Type === 'Custom::AWSCDK-EKS-KubernetesResource')
    .map((r) => JSON.stringify(r.Properties.Manifest));
  const deployment = manifests.find((m) => m.includes('\\"kind\\":\\"Deployment\\"'));
  expect(deployment).toContain('\\"args\\":[\\"portfolio_pricing_engine.lambda_handler\\"]');
  expect(manifests.some((m) => m.includes('\\"kind\\":\\"ScaledObject\\"'))).toBe(true);
  expect(resources.filter((r) => r.Type === 'AWS::EKS::Cluster')).toHaveLength(1);
  expect(template.Outputs.Handler.Value).toBe('portfolio_pricing_engine.lambda_handler');
  const nagReport = fs.readFileSync(path.join(out, 'AwsSolutions--HtcGrid-eks-check-NagReport.csv'), 'utf8');
  const rows = nagReport.trim().split('\n').slice(1);
  expect(rows.filter((row) => row.includes('"Non-Compliant"'))).toEqual([]);
  expect(rows.filter((row) => /"Suppressed","(N\/A)?"/.test(row))).toEqual([]);
}, 300_000);
