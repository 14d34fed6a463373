// htc-grid-cdk as a construct library: packed as npm would publish it, installed into a user's own CDK app, imported
// through its exports (types included) and synthesized into the user's stack.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freshDistFile } from '../support/fresh-dist';
import { REPO_ROOT } from './grid-app';

/** The files `npm pack` would publish (no lifecycle scripts: dist/ is already built). */
function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
}

const USER_APP = `
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import { compileConfig, GridTaskTable, HtcGrid, WorkerZipDeployment } from 'htc-grid-cdk';
import { HtcGrid as HtcGridFromInfra } from 'htc-grid-cdk/infra';

const app = new App({ outdir: process.argv[2] });
const stack = new Stack(app, 'MyRiskStack', { env: { account: '123456789012', region: 'eu-west-1' } });
const grid = new HtcGrid(stack, 'Grid', {
  config: compileConfig({ slots: 2, grid_name: 'risk' }),
  workerDir: path.join(__dirname, '..', 'worker'),
});
const analysts = new iam.Role(stack, 'Analysts', { assumedBy: new iam.AccountRootPrincipal() });
const grant: iam.Grant = grid.grantSubmit(analysts);
new cloudwatch.Alarm(stack, 'BacklogHigh', { metric: grid.metricBacklog(), threshold: 10000, evaluationPeriods: 3 });
const metrics: cloudwatch.IMetric[] = [
  grid.metricOldestMessageAge(),
  grid.metricTasksSucceeded(),
  grid.metricTasksFailed(),
  grid.metricRunningAgents(),
];
app.synth();
console.log(
  JSON.stringify({
    grantIsGrant: grant instanceof iam.Grant && grant.success,
    sameClass: HtcGridFromInfra === HtcGrid,
    table: grid.table instanceof GridTaskTable,
    worker: grid.worker instanceof WorkerZipDeployment,
    metrics: metrics.length,
  }),
);
`;

let scratch: string;
beforeAll(() => {
  freshDistFile('lib', 'index.js');
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-library-'));
}, 300_000);
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('publishes the compiled library, the CLI, the agent Dockerfile and the README, but no tests or benches', () => {
    const files = packedFiles();

    expect(files).toEqual(
      expect.arrayContaining([
        'dist/lib/index.js',
        'dist/lib/index.d.ts',
        'dist/lib/infra/htc-grid.js',
        'dist/bin/agent.js',
        'dist/bin/htcgrid.js',
        'dist/lib/runtime/reaper-handler.js',
        'docker/agent/Dockerfile',
        'README.md',
      ]),
    );
    expect(files.filter((f) => /^(test|bench|dist\/test|dist\/bench|lib|workers|scripts)\//.test(f))).toEqual([]);
  });

  it('asks for aws-cdk-lib and constructs as peer dependencies, so a user’s app and the grid share one copy', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, any>;

    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(['aws-cdk-lib', 'constructs']);
    expect(pkg.dependencies['aws-cdk-lib']).toBeUndefined();
    expect(pkg.dependencies.constructs).toBeUndefined();
    expect(pkg.exports['.']).toEqual({ types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
  });

  it('installs into a user’s CDK app, type-checks through its exports and synthesizes a grid into the user’s stack', () => {
    const appDir = path.join(scratch, 'my-app');
    const modules = path.join(appDir, 'node_modules');
    fs.mkdirSync(modules, { recursive: true });
    // Installed as npm would: the packed files only, its dependencies (and the peers) beside it.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', scratch], { cwd: REPO_ROOT, stdio: 'pipe' });
    const tarball = fs.readdirSync(scratch).find((f) => f.endsWith('.tgz'))!;
    fs.mkdirSync(path.join(modules, 'htc-grid-cdk'));
    execFileSync('tar', [
      'xzf',
      path.join(scratch, tarball),
      '-C',
      path.join(modules, 'htc-grid-cdk'),
      '--strip-components=1',
    ]);
    for (const entry of fs.readdirSync(path.join(REPO_ROOT, 'node_modules'))) {
      if (entry !== '.bin' && entry !== 'htc-grid-cdk') {
        fs.symlinkSync(path.join(REPO_ROOT, 'node_modules', entry), path.join(modules, entry));
      }
    }
    fs.mkdirSync(path.join(appDir, 'worker'));
    fs.writeFileSync(
      path.join(appDir, 'worker', 'lambda_function.py'),
      'def lambda_handler(event, context):\n    return event\n',
    );
    fs.writeFileSync(path.join(appDir, 'app.ts'), USER_APP);
    fs.writeFileSync(
      path.join(appDir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'ES2022',
          strict: true,
          types: ['node'],
          outDir: 'out',
          rootDir: '.',
        },
        files: ['app.ts'],
      }),
    );

    const tsc = spawnSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', appDir], { encoding: 'utf8' });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    const outdir = path.join(appDir, 'cdk.out');
    const run = spawnSync(process.execPath, [path.join(appDir, 'out', 'app.js'), outdir], {
      cwd: appDir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: scratch, CDK_DOCKER: path.join(scratch, 'no-docker') },
      timeout: 240_000,
    });

    expect(run.stderr).not.toMatch(/Error/);
    expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toEqual({
      grantIsGrant: true,
      sameClass: true,
      table: true,
      worker: true,
      metrics: 4,
    });
    const template = JSON.parse(fs.readFileSync(path.join(outdir, 'MyRiskStack.template.json'), 'utf8'));
    const types = Object.values(template.Resources as Record<string, { Type: string }>).map((r) => r.Type);
    expect(types).toEqual(expect.arrayContaining(['AWS::ECS::TaskDefinition', 'AWS::DynamoDB::Table']));
    const assets = JSON.parse(fs.readFileSync(path.join(outdir, 'MyRiskStack.assets.json'), 'utf8'));
    const [agentImage] = Object.values(assets.dockerImages as Record<string, { source: { directory: string } }>);
    expect(fs.readdirSync(path.join(outdir, agentImage!.source.directory)).sort()).toEqual([
      'Dockerfile',
      'agent.js',
      'agent.js.map',
    ]);
  }, 300_000);
});
