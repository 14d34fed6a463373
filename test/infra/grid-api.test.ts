// The GridApi construct: a streaming function URL behind AWS_IAM, least-privilege grants, cdk-nag clean.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Aspects, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DataPlaneBucket } from '../../lib/infra/data-plane-bucket';
import { GridApi } from '../../lib/infra/grid-api';
import { TaskQueues } from '../../lib/infra/task-queues';
import { GridTaskTable } from '../../lib/infra/grid-task-table';

function apiStack(props: { timeout?: Duration } = {}): { stack: Stack; api: GridApi } {
  const stack = new Stack(new App(), 'Api');
  const table = new GridTaskTable(stack, 'Tasks');
  const queues = new TaskQueues(stack, 'Queues');
  const data = new DataPlaneBucket(stack, 'Data');
  const api = new GridApi(stack, 'Api', {
    table: table.table,
    queues: queues.queues,
    dataBucket: data.bucket,
    dataPrefix: data.prefix,
    configJson: '{}',
    ...props,
  });
  return { stack, api };
}

let built: { stack: Stack; api: GridApi; template: Template };
beforeAll(() => {
  const { stack, api } = apiStack();
  const caller = new iam.Role(stack, 'Caller', { assumedBy: new iam.AccountRootPrincipal() });
  api.grantInvoke(caller);
  Aspects.of(stack).add(new AwsSolutionsChecks());
  built = { stack, api, template: Template.fromStack(stack) };
}, 120_000);

describe('GridApi', () => {
  it('stages its own esbuild bundle and the OpenAPI document it serves (no lock file or esbuild needed in the app)', () => {
    const outdir = (built.stack.node.root as App).outdir;
    const assets = fs.readdirSync(outdir).filter((f) => f.startsWith('asset.'));
    const staged = assets.filter((a) => fs.existsSync(path.join(outdir, a, 'openapi.yaml')));
    expect(staged).toHaveLength(1);
    const dir = path.join(outdir, staged[0]!);
    expect(fs.readdirSync(dir).sort()).toEqual(['index.js', 'index.js.map', 'openapi.yaml']);
    expect(fs.readFileSync(path.join(dir, 'openapi.yaml'), 'utf8')).toMatch(/^openapi: 3\.1/m);
    expect(fs.readFileSync(path.join(dir, 'index.js'), 'utf8')).toMatch(/exports/);
  });

  it('serves a streaming function URL that only IAM-signed requests reach', () => {
    built.template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM', InvokeMode: 'RESPONSE_STREAM' });
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Timeout: 900,
      Environment: {
        Variables: Match.objectLike({ HTCGRID_CONFIG: '{}', HTCGRID_DATA_PREFIX: 'data/' }),
      },
    });
  });

  it('grantInvoke allows invoking through the URL, with both actions function URLs require', () => {
    const policies = built.template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^Caller') }] },
    });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as { Action: string; Condition?: unknown }[],
    );
    expect(statements.map((s) => s.Action).sort()).toEqual(['lambda:InvokeFunction', 'lambda:InvokeFunctionUrl']);
  });

  it("lets the function reach the table, send to the queues and use only the grid's data prefix", () => {
    const statements = Object.values(built.template.findResources('AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles).includes('ApiFunction'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[]);
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'sqs:SendMessage', 's3:PutObject']));
    expect(actions).not.toContain('sqs:ReceiveMessage');
    expect(JSON.stringify(statements.filter((s) => JSON.stringify(s.Action).includes('s3:PutObject')))).toContain(
      '/data/*',
    );
  });

  it('is cdk-nag AwsSolutions clean', () => {
    const findings = [
      ...Annotations.fromStack(built.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...Annotations.fromStack(built.stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ];
    expect(findings.map((f) => `${f.id}: ${JSON.stringify(f.entry.data).slice(0, 120)}`)).toEqual([]);
  });

  it('rejects a timeout Lambda cannot run, naming the range', () => {
    expect(() => apiStack({ timeout: Duration.minutes(20) })).toThrow(/must be from 30 to 900 s/);
  });
});
