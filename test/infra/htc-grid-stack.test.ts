// The default grid stack: handler wiring, worker bucket, least privilege, encryption, scaling, reaper, cdk-nag.
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { compileConfig } from '../../lib/core/config';
import { GRID_ENV } from '../../lib/core/grid-resources';
import { SANDBOX_USER } from '../../lib/infra/grid-unit';
import type { HtcGridStack } from '../../lib/infra/htc-grid-stack';
import { maskedTemplate, PYTHON_WORKER, synthGrid } from './grid-app';

type Resource = { Type: string; Properties: Record<string, unknown> };
type ContainerDef = {
  Name: string;
  Command?: string[];
  EntryPoint?: string[];
  Environment?: { Name: string; Value: unknown }[];
  User?: string;
  ReadonlyRootFilesystem?: boolean;
  StopTimeout?: number;
  DependsOn?: { ContainerName: string; Condition: string }[];
};

let template: Template;
let stack: HtcGridStack;

beforeAll(() => {
  ({ template, stack } = synthGrid({ worker: PYTHON_WORKER }, { nag: true }));
});

function containers(t: Template): ContainerDef[] {
  const defs = Object.values(t.findResources('AWS::ECS::TaskDefinition')) as Resource[];
  expect(defs).toHaveLength(1);
  return (defs[0]!.Properties.ContainerDefinitions as ContainerDef[]) ?? [];
}

function container(t: Template, name: string): ContainerDef {
  const found = containers(t).find((c) => c.Name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

function env(c: ContainerDef, name: string): unknown {
  return c.Environment?.find((e) => e.Name === name)?.Value;
}

/** The agent configuration document with its deploy-time values rendered as `<Ref>` placeholders. */
function agentDocument(t: Template): Record<string, any> {
  const value = env(container(t, 'agent'), GRID_ENV.config) as { 'Fn::Join': [string, unknown[]] };
  const text = value['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '<token>')).join('');
  return JSON.parse(text);
}

function policyStatementsOf(
  t: Template,
  roleLogicalIdPrefix: string,
): { Action: string | string[]; Resource: unknown }[] {
  const policies = Object.values(t.findResources('AWS::IAM::Policy')) as Resource[];
  return policies
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith(roleLogicalIdPrefix)))
    .flatMap(
      (p) =>
        (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }).Statement,
    );
}

describe('the default grid stack', () => {
  it('matches its snapshot (asset hashes masked)', () => {
    expect(maskedTemplate(template)).toMatchSnapshot();
  });

  it('runs the default handler lambda_function.lambda_handler in the Lambda container through lambda-rie', () => {
    const lambda = container(template, 'lambda-0');
    expect(lambda.Command).toEqual(['lambda_function.lambda_handler']);
    expect(lambda.EntryPoint).toEqual([
      '/usr/local/bin/aws-lambda-rie',
      '--runtime-interface-emulator-address',
      '127.0.0.1:8080',
      '--runtime-api-address',
      '127.0.0.1:9001',
      '/var/runtime/bootstrap',
    ]);
    expect(env(lambda, 'AWS_LAMBDA_FUNCTION_TIMEOUT')).toBe('900');
  });

  it('puts the default handler names and the deployed zip into the agent configuration document', () => {
    const lambda = agentDocument(template).agent_configuration.lambda;
    expect(lambda.lambda_handler_file_name).toBe('lambda_function');
    expect(lambda.lambda_handler_function_name).toBe('lambda_handler');
    expect(lambda.s3_source).toBe('s3://<token>/workers/<token>');
  });

  it('gives the agent a configuration document it compiles to the same handler, one slot per Lambda container', () => {
    const config = compileConfig(agentDocument(template), GRID_ENV.config);

    expect(config.handler).toBe('lambda_function.lambda_handler');
    expect(config.slots).toBe(1);
    expect(config.workerS3Source).toBe('s3://<token>/workers/<token>');
  });

  it('sets S3_LAMBDA_HTCGRID_BUCKET_NAME to the worker bucket on the init container and the agent', () => {
    const bucket = Object.keys(template.findResources('AWS::S3::Bucket')).find((id) =>
      id.startsWith('GridWorkerBucket'),
    );
    expect(bucket).toBeDefined();
    for (const name of ['fetch-worker', 'agent']) {
      expect(env(container(template, name), GRID_ENV.workerBucket)).toEqual({ Ref: bucket });
    }
  });

  it('has the init container fetch the key the bucket deployment wrote, before the Lambda container starts', () => {
    const init = container(template, 'fetch-worker');
    expect(env(init, GRID_ENV.workerKey)).toEqual({
      'Fn::Join': [
        '',
        [
          'workers/',
          { 'Fn::Select': [0, { 'Fn::GetAtt': [expect.stringMatching(/^GridWorkerDeployment/), 'SourceObjectKeys'] }] },
        ],
      ],
    });
    expect(init.Command?.[0]).toContain(
      'aws s3 cp --only-show-errors "s3://$S3_LAMBDA_HTCGRID_BUCKET_NAME/$HTCGRID_WORKER_KEY"',
    );
    expect(container(template, 'lambda-0').DependsOn).toEqual([
      { ContainerName: 'fetch-worker', Condition: 'SUCCESS' },
    ]);
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      Extract: false,
      DestinationBucketKeyPrefix: 'workers/',
    });
  });

  it('runs the agent and Lambda containers as non-root with read-only root file systems and a drain stop timeout', () => {
    for (const name of ['agent', 'lambda-0']) {
      const c = container(template, name);
      expect(c.User).not.toMatch(/^(0|root)(:|$)/);
      expect(c.ReadonlyRootFilesystem).toBe(true);
      expect(c.StopTimeout).toBe(120);
    }
    expect(container(template, 'agent').DependsOn).toEqual([{ ContainerName: 'lambda-0', Condition: 'START' }]);
  });

  it("shares one PID namespace and one non-root uid between the agent and the Lambda containers, so the agent can kill a cancelled task's runtime", () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      PidMode: 'task',
      RuntimePlatform: { OperatingSystemFamily: 'LINUX', CpuArchitecture: 'X86_64' },
    });
    const agentUser = container(template, 'agent').User;
    expect(agentUser).toBe(SANDBOX_USER);
    for (const c of containers(template).filter((d) => d.Name.startsWith('lambda-'))) {
      expect(c.User).toBe(agentUser);
      expect(c.ReadonlyRootFilesystem).toBe(true);
    }
  });

  it('pulls public images through an ECR pull-through cache, so tasks need no NAT', () => {
    template.hasResourceProperties('AWS::ECR::PullThroughCacheRule', { UpstreamRegistryUrl: 'public.ecr.aws' });
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 6);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({}),
    });
  });

  it('grants the task role only what an agent does, with no action or resource wildcard beyond scoped ones', () => {
    const statements = policyStatementsOf(template, 'GridComputeTaskDefinitionTaskRole');
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).not.toContain('*');
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual([
      's3:DeleteObject',
      's3:GetObject',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    expect(actions).toEqual(
      expect.arrayContaining([
        'dynamodb:UpdateItem',
        'dynamodb:Query',
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
        's3:PutObject',
      ]),
    );
    expect(actions).not.toEqual(expect.arrayContaining(['dynamodb:Scan']));
    expect(actions).not.toEqual(expect.arrayContaining(['dynamodb:DeleteTable']));
    const rendered = JSON.stringify(statements.map((s) => s.Resource));
    expect(rendered).not.toMatch(/"\*"/);
    expect(rendered).toContain('/data/*');
  });

  it("lets agents only send to the clients' completion notice queues, named by the prefix the stack outputs", () => {
    const prefix = template.toJSON().Outputs.NoticeQueuePrefix.Value as string;
    expect(prefix).toMatch(/^[A-Za-z0-9_-]{1,49}$/);
    const statements = policyStatementsOf(template, 'GridComputeTaskDefinitionTaskRole');
    const onNotices = statements.filter((s) => JSON.stringify(s.Resource).includes(`:${prefix}*`));
    expect(onNotices.map((s) => s.Action)).toEqual(['sqs:SendMessage']);
  });

  it('encrypts the buckets, queues and table and denies non-TLS access to buckets and queues', () => {
    template.allResourcesProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    template.allResourcesProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'task_id', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      GlobalSecondaryIndexes: Match.arrayWith([
        Match.objectLike({ IndexName: 'session_index' }),
        Match.objectLike({ IndexName: 'lease_index' }),
      ]),
    });
    const tlsDeny = Match.objectLike({
      PolicyDocument: Match.objectLike({
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      }),
    });
    expect(Object.keys(template.findResources('AWS::S3::BucketPolicy', { Properties: tlsDeny }))).toHaveLength(2);
    expect(
      Object.keys(template.findResources('AWS::SQS::QueuePolicy', { Properties: tlsDeny })).length,
    ).toBeGreaterThan(0);
  });

  it('makes one queue per priority level, each with the dead-letter queue', () => {
    const queues = template.findResources('AWS::SQS::Queue', { Properties: { RedrivePolicy: Match.anyValue() } });
    expect(Object.keys(queues)).toHaveLength(3);
  });

  it('scales the service on queued plus in-flight messages per agent, from zero and to zero, with the documented target', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 0, MaxCapacity: 100 });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 2,
        DisableScaleIn: true,
        CustomizedMetricSpecification: {
          Metrics: Match.arrayWith([
            Match.objectLike({
              Id: 'backlog_per_agent',
              Expression:
                '(FILL(visible0, 0) + FILL(inflight0, 0) + FILL(visible1, 0) + FILL(inflight1, 0) + FILL(visible2, 0) + ' +
                'FILL(inflight2, 0)) / IF(FILL(running, 0) < 1, 1, FILL(running, 0))',
              ReturnData: true,
            }),
          ]),
        },
      }),
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      StepScalingPolicyConfiguration: Match.objectLike({
        AdjustmentType: 'ChangeInCapacity',
        StepAdjustments: [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }],
      }),
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      StepScalingPolicyConfiguration: Match.objectLike({
        AdjustmentType: 'ExactCapacity',
        StepAdjustments: [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 0 }],
      }),
    });
    template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: Match.absent() });
  });

  it('runs the reaper on Node.js 22 or later every minute', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: Match.stringLikeRegexp('^nodejs(2[2-9]|[3-9]\\d)\\.x$'),
      Environment: {
        Variables: Match.objectLike({ HTCGRID_TABLE_NAME: Match.anyValue(), HTCGRID_QUEUE_URLS: Match.anyValue() }),
      },
    });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)' });
  });

  it('has a dashboard and alarms on the dead-letter queue and the oldest message age', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      MetricName: 'ApproximateNumberOfMessagesVisible',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 900 });
  });

  it('outputs everything a client needs', () => {
    const outputs = template.findOutputs('*');
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining([
        'TableName',
        'QueueUrls',
        'DataBucket',
        'WorkerBucket',
        'WorkerKey',
        'Region',
        'Handler',
        'ClientConfig',
      ]),
    );
    expect(outputs.Handler?.Value).toBe('lambda_function.lambda_handler');
    expect(JSON.parse(outputs.ClientConfig?.Value as string)).toEqual({
      max_attempts: 3,
      task_timeout_sec: 900,
      priority_levels: 3,
      inline_payload_max_bytes: 3072,
      max_payload_bytes: 6291456,
      non_retryable_error_types: [],
      task_retention_sec: 604800,
    });
  });

  it('passes cdk-nag AwsSolutions with zero unsuppressed errors or warnings', () => {
    const errors = Annotations.fromStack(stack).findError(
      '*',
      Match.stringLikeRegexp('AwsSolutions-.*|CdkNagValidationFailure.*'),
    );
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('AwsSolutions-.*|CdkNagValidationFailure.*'),
    );
    expect([...errors, ...warnings].map((e) => `${e.id}: ${JSON.stringify(e.entry.data)}`)).toEqual([]);
  });
});
