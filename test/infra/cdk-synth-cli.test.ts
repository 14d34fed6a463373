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

/**
 * Runs `npx cdk synth` into `out` with `-c key=value` for each context entry, as a user would: no credentials to sign
 * with and no Docker engine, so bundling must be local and synth must not call AWS. Returns the template's JSON and
 * the cdk-nag report's rows.
 */
function synth(out: string, context: Record<string, string>, stack: string): { template: any; nagRows: string[] } {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: outdir,
    CDK_DOCKER: path.join(outdir, 'no-docker'),
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
  const args = ['cdk', 'synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', out];
  for (const [key, value] of Object.entries(context)) args.push('-c', `${key}=${value}`);
  execFileSync('npx', args, { cwd: REPO_ROOT, env, stdio: 'pipe', timeout: 240_000 });
  const template = JSON.parse(fs.readFileSync(path.join(out, `${stack}.template.json`), 'utf8'));
  const nagReport = fs.readFileSync(path.join(out, `AwsSolutions--${stack}-NagReport.csv`), 'utf8');
  return { template, nagRows: nagReport.trim().split('\n').slice(1) };
}

it('synthesises a template with the -c handler in the Lambda command, the agent document and the outputs', () => {
  const { template, nagRows: rows } = synth(
    outdir,
    {
      lambda_handler_file_name: 'portfolio_pricing_engine',
      lambda_handler_function_name: 'price',
      worker: path.relative(REPO_ROOT, PYTHON_WORKER),
      grid_name: 'cli-check',
      max_agents: '12',
      retain_data: 'false',
    },
    'HtcGrid-cli-check',
  );
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
  expect(rows.length).toBeGreaterThan(20);
  expect(rows.filter((row) => row.includes('"Non-Compliant"'))).toEqual([]);
  // Every suppression carries a written reason.
  const suppressed = rows.filter((row) => row.includes('"Suppressed"'));
  expect(suppressed.filter((row) => /"Suppressed","(N\/A)?"/.test(row))).toEqual([]);
}, 300_000);

it('synthesises the EKS plane with -c compute=eks: the handler in the pod, KEDA scaling, cdk-nag clean', () => {
  // The command, with the fixture worker: the real portfolio-pricing folder needs QuantLib's wheel from PyPI.
  const { template, nagRows: rows } = synth(
    path.join(outdir, 'eks'),
    {
      compute: 'eks',
      worker: path.relative(REPO_ROOT, PYTHON_WORKER),
      lambda_handler_file_name: 'portfolio_pricing_engine',
      lambda_handler_function_name: 'lambda_handler',
      grid_name: 'eks-check',
    },
    'HtcGrid-eks-check',
  );
  const resources = Object.values(template.Resources as Record<string, any>);
  const manifests = resources
    .filter((r) => r.Type === 'Custom::AWSCDK-EKS-KubernetesResource')
    .map((r) => JSON.stringify(r.Properties.Manifest));
  const deployment = manifests.find((m) => m.includes('\\"kind\\":\\"Deployment\\"'));
  expect(deployment).toContain('\\"args\\":[\\"portfolio_pricing_engine.lambda_handler\\"]');
  expect(manifests.some((m) => m.includes('\\"kind\\":\\"ScaledObject\\"'))).toBe(true);
  expect(resources.filter((r) => r.Type === 'AWS::EKS::Cluster')).toHaveLength(1);
  expect(template.Outputs.Handler.Value).toBe('portfolio_pricing_engine.lambda_handler');
  expect(rows.filter((row) => row.includes('"Non-Compliant"'))).toEqual([]);
  expect(rows.filter((row) => /"Suppressed","(N\/A)?"/.test(row))).toEqual([]);
}, 300_000);
