// Each construct on its own in a bare stack: defaults, grants, and validation messages that name the fix.
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { compileConfig } from '../../lib/core/config';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { EcsComputePlane } from '../../lib/infra/ecs-compute-plane';
import { fetchWorkerScript, runtimeBootstrap } from '../../lib/infra/grid-unit';
import { DataPlaneBucket } from '../../lib/infra/data-plane-bucket';
import { GridVpc } from '../../lib/infra/grid-vpc';
import { HtcGrid } from '../../lib/infra/htc-grid';
import { MIN_MAX_RECEIVE_COUNT, TaskQueues } from '../../lib/infra/task-queues';
import { GridTaskTable } from '../../lib/infra/grid-task-table';
import { WorkerBucket } from '../../lib/infra/worker-bucket';
import { PYTHON_WORKER } from './grid-app';

function newStack(): Stack {
  return new Stack(new App(), 'Test');
}

function actionsOf(template: Template): string[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) =>
    (p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]).flatMap((s) =>
      Array.isArray(s.Action) ? s.Action : [s.Action],
    ),
  );
}

describe('TaskQueues', () => {
  it('makes one encrypted queue per priority level sharing one dead-letter queue', () => {
    const stack = newStack();

    const queues = new TaskQueues(stack, 'Queues', { priorityLevels: 5, visibilityTimeout: Duration.seconds(90) });

    expect(queues.queues).toHaveLength(5);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SQS::Queue', 6);
    template.resourcePropertiesCountIs(
      'AWS::SQS::Queue',
      { VisibilityTimeout: 90, SqsManagedSseEnabled: true, RedrivePolicy: Match.objectLike({ maxReceiveCount: 10 }) },
      5,
    );
  });

  it('grants clients sending only, not receiving', () => {
    const stack = newStack();
    const queues = new TaskQueues(stack, 'Queues');
    const client = new iam.Role(stack, 'Client', { assumedBy: new iam.AccountRootPrincipal() });

    queues.grantSend(client);

    const actions = actionsOf(Template.fromStack(stack));
    expect(actions).toContain('sqs:SendMessage');
    expect(actions).not.toContain('sqs:ReceiveMessage');
  });

  it('rejects a priority level count SQS cannot serve, naming the range', () => {
    expect(() => new TaskQueues(newStack(), 'Queues', { priorityLevels: 0 })).toThrow(
      /priorityLevels: 0 must be a whole number from 1 to 10/,
    );
  });

  it('rejects a dead-letter receive count that leaves no room for the releases of a message ahead of its task', () => {
    expect(() => new TaskQueues(newStack(), 'Queues', { maxReceiveCount: MIN_MAX_RECEIVE_COUNT - 1 })).toThrow(
      /maxReceiveCount: 5 must be a whole number from 6 to 1000: a message sent beside its task's write may be received 4 times/,
    );
    expect(() => new TaskQueues(newStack(), 'Queues', { maxReceiveCount: MIN_MAX_RECEIVE_COUNT })).not.toThrow();
  });
});

describe('GridTaskTable', () => {
  it('is on demand with PITR, TTL and the adapter’s session and lease indexes', () => {
    const stack = newStack();

    const table = new GridTaskTable(stack, 'Tasks');

    expect([table.sessionIndexName, table.leaseIndexName]).toEqual(['session_index', 'lease_index']);
    Template.fromStack(stack).hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      GlobalSecondaryIndexes: [
        Match.objectLike({ IndexName: 'session_index', Projection: { ProjectionType: 'KEYS_ONLY' } }),
        Match.objectLike({
          IndexName: 'lease_index',
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['session_id'] },
        }),
      ],
    });
  });

  it('on provisioned capacity scales the table and both indexes, reads and writes, on utilisation', () => {
    const stack = newStack();

    new GridTaskTable(stack, 'Tasks', { capacity: { mode: 'provisioned', maxWriteUnits: 3000 } });

    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: Match.absent(),
      ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 },
      GlobalSecondaryIndexes: [
        Match.objectLike({ ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
        Match.objectLike({ ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 } }),
      ],
    });
    const targets = Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalableTarget')).map(
      (r) => (r as { Properties: { ScalableDimension: string; MaxCapacity: number; ResourceId: unknown } }).Properties,
    );
    expect(targets.map((t) => `${t.ScalableDimension} ${t.MaxCapacity}`).sort()).toEqual(
      [
        'dynamodb:index:ReadCapacityUnits 1500',
        'dynamodb:index:ReadCapacityUnits 1500',
        'dynamodb:index:WriteCapacityUnits 3000',
        'dynamodb:index:WriteCapacityUnits 3000',
        'dynamodb:table:ReadCapacityUnits 1500',
        'dynamodb:table:WriteCapacityUnits 3000',
      ].sort(),
    );
    template.resourcePropertiesCountIs(
      'AWS::ApplicationAutoScaling::ScalingPolicy',
      { TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 70 }) },
      6,
    );
  });

  it('rejects provisioned bounds that cannot work, every problem at once', () => {
    expect(
      () =>
        new GridTaskTable(newStack(), 'Tasks', {
          capacity: { mode: 'provisioned', maxWriteUnits: 2, minWriteUnits: 10, targetUtilizationPercent: 95 },
        }),
    ).toThrow(
      /minWriteUnits \(10\) exceeds maxWriteUnits \(2\)[\s\S]*targetUtilizationPercent must be between 20 and 90/,
    );
  });

  it('grants item access and index queries but no scans or table administration', () => {
    const stack = newStack();
    const table = new GridTaskTable(stack, 'Tasks');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.AccountRootPrincipal() });

    table.grantReadWriteData(role);

    const actions = actionsOf(Template.fromStack(stack));
    expect(actions).toEqual(
      expect.arrayContaining(['dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem']),
    );
    expect(actions.filter((a) => /Scan|DeleteTable|UpdateTable|\*/.test(a))).toEqual([]);
  });
});

describe('DataPlaneBucket and WorkerBucket', () => {
  it('expire results after the configured days and scope grants to the grid prefix', () => {
    const stack = newStack();
    const data = new DataPlaneBucket(stack, 'Data', { expiryDays: 7 });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.AccountRootPrincipal() });

    data.grantReadWrite(role);

    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ ExpirationInDays: 7, Status: 'Enabled' })]),
      },
    });
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).toContain('/data/*');
  });

  it('version worker zips', () => {
    const stack = newStack();

    new WorkerBucket(stack, 'Workers');

    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
    });
  });

  it('reject an expiry that is not a whole number of days', () => {
    expect(() => new DataPlaneBucket(newStack(), 'Data', { expiryDays: 0.5 })).toThrow(
      /expiryDays: 0.5 is not a whole number of days >= 1/,
    );
  });
});

describe('GridVpc', () => {
  it('has no NAT and reaches S3, DynamoDB, ECR, Logs and SQS through endpoints by default', () => {
    const stack = newStack();

    new GridVpc(stack, 'Net');

    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourcePropertiesCountIs('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' }, 2);
    template.resourcePropertiesCountIs('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface' }, 4);
  });

  it('adds NAT gateways and public subnets only when asked', () => {
    const stack = newStack();

    new GridVpc(stack, 'Net', { natGateways: 1 });

    Template.fromStack(stack).resourceCountIs('AWS::EC2::NatGateway', 1);
  });
});

describe('EcsComputePlane on its own', () => {
  it('runs in an existing VPC with given images, no asset build and no new network', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Existing', { natGateways: 1, maxAzs: 2 });
    const bucket = new s3.Bucket(stack, 'Workers');
    const queues = new TaskQueues(stack, 'Queues', { priorityLevels: 1 });
    const table = new GridTaskTable(stack, 'Tasks');
    const data = new DataPlaneBucket(stack, 'Data');

    new EcsComputePlane(stack, 'Compute', {
      config: compileConfig({ slots: 1, max_htc_agents: 5 }),
      worker: {
        bucket,
        key: 'workers/w.zip',
        handler: 'lambda_function.lambda_handler',
        handlerFileName: 'lambda_function',
        handlerFunctionName: 'lambda_handler',
        runtime: resolveRuntime('python3.12'),
      },
      table: table.table,
      queues: queues.queues,
      dataBucket: data.bucket,
      vpc,
      agentImage: ecs.ContainerImage.fromRegistry('123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1'),
      lambdaImage: ecs.ContainerImage.fromRegistry('123456789012.dkr.ecr.eu-west-1.amazonaws.com/lambda:py312'),
      initImage: ecs.ContainerImage.fromRegistry('123456789012.dkr.ecr.eu-west-1.amazonaws.com/aws-cli:2'),
      spot: true,
    });

    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::ECR::PullThroughCacheRule', 0);
    template.hasResourceProperties('AWS::ECS::Service', {
      CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE_SPOT', Weight: 1 }],
    });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: Match.arrayWith([
        Match.objectLike({ Name: 'agent', Image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1' }),
      ]),
    });
  });
});

describe('HtcGrid.grantSubmit', () => {
  it('lets a client write tasks, enqueue, read states and results, and use its own notice queue, but not consume the task queues', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Grid');
    const grid = new HtcGrid(stack, 'Grid', { config: compileConfig({ slots: 1 }), workerDir: PYTHON_WORKER });
    const client = new iam.Role(stack, 'Client', { assumedBy: new iam.AccountRootPrincipal() });

    const grant = grid.grantSubmit(client);

    expect(grant).toBeInstanceOf(iam.Grant);
    expect(grant.success).toBe(true);

    const policies = Template.fromStack(stack).findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: stack.getLogicalId(client.node.defaultChild as iam.CfnRole) }] },
    });
    type Statement = { Action: string | string[]; Resource: unknown };
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
    const actionsOf = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);
    const actions = statements.flatMap(actionsOf);
    expect(actions).toEqual(
      expect.arrayContaining([
        'dynamodb:BatchWriteItem',
        'dynamodb:Query',
        'sqs:SendMessage',
        's3:PutObject',
        's3:GetObject',
        'sqs:CreateQueue',
        'sqs:DeleteQueue',
      ]),
    );
    // Receiving (and creating, deleting) only on queues named with the notice prefix, none of the task queues.
    const receiving = statements.filter((st) => actionsOf(st).includes('sqs:ReceiveMessage'));
    expect(receiving).toHaveLength(1);
    expect(JSON.stringify(receiving[0]!.Resource)).toContain(`:${grid.noticeQueues.namePrefix}*`);
    expect(JSON.stringify(receiving[0]!.Resource)).not.toContain('Fn::GetAtt');
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });
});

describe('container commands', () => {
  it('start the base image runtime for Python and Node and the worker’s bootstrap for provided', () => {
    expect(runtimeBootstrap(resolveRuntime('python3.12'))).toBe('/var/runtime/bootstrap');
    expect(runtimeBootstrap(resolveRuntime('nodejs22.x'))).toBe('/var/runtime/bootstrap');
    expect(runtimeBootstrap(resolveRuntime('provided.al2023'))).toBe('/var/task/bootstrap');
  });

  it('unpack the zip keeping executable bits and open every slot’s tmp volume', () => {
    const script = fetchWorkerScript(compileConfig({ slots: 3 }).slots);

    expect(script).toContain('os.chmod(p, 0o755 if');
    expect(script).toContain('chmod 1777 /lambda-tmp-0 /lambda-tmp-1 /lambda-tmp-2 /agent-tmp');
  });
});

describe('HtcGrid metrics', () => {
  it('turn the agents’ and the reaper’s log lines into TasksSucceeded and TasksFailed under the grid’s namespace', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Grid');
    const grid = new HtcGrid(stack, 'Grid', {
      config: compileConfig({ slots: 1, grid_name: 'risk' }),
      workerDir: PYTHON_WORKER,
    });

    const filters = Object.values(Template.fromStack(stack).findResources('AWS::Logs::MetricFilter')).map(
      (f) => (f as { Properties: Record<string, any> }).Properties,
    );
    const rendered = filters.map((f) => ({
      pattern: f.FilterPattern,
      metric: `${f.MetricTransformations[0].MetricNamespace}/${f.MetricTransformations[0].MetricName}`,
      value: f.MetricTransformations[0].MetricValue,
    }));

    expect(rendered).toEqual(
      expect.arrayContaining([
        { pattern: '{ $.event = "agent-stats" }', metric: 'HtcGrid/risk/TasksSucceeded', value: '$.succeeded' },
        { pattern: '{ $.event = "agent-stats" }', metric: 'HtcGrid/risk/TasksFailed', value: '$.failed' },
        { pattern: '{ $.event = "reaper-run" }', metric: 'HtcGrid/risk/TasksFailed', value: '$.failed' },
      ]),
    );
    expect(grid.metricTasksSucceeded().namespace).toBe('HtcGrid/risk');
    expect(grid.metricRunningAgents().metricName).toBe('RunningTaskCount');
    expect(stack.resolve(grid.metricBacklog().toMetricConfig().mathExpression?.expression)).toBe(
      'FILL(visible0, 0) + FILL(inflight0, 0) + FILL(visible1, 0) + FILL(inflight1, 0) + FILL(visible2, 0) + FILL(inflight2, 0)',
    );
    expect(grid.metricOldestMessageAge().toMetricConfig().mathExpression?.expression).toBe('MAX([age0,age1,age2])');
  });

  it('chart the agents’ EMF task metrics (times queued and running, failures by error type) and alarm on the failure rate', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Grid');
    const grid = new HtcGrid(stack, 'Grid', {
      config: compileConfig({ slots: 1, grid_name: 'risk' }),
      workerDir: PYTHON_WORKER,
    });
    const template = Template.fromStack(stack);

    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 0.1,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'IF(ok + failed > 0, failed / (ok + failed), 0)' }),
        Match.objectLike({ MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'TasksFailed' }) }) }),
      ]),
    });
    const dashboard = JSON.stringify(
      stack.resolve(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]!.Properties.DashboardBody),
    );
    for (const expected of [
      'TaskQueuedTime',
      'TaskRunTime',
      '\\"p99\\"',
      'ErrorType} MetricName=\\\\\\"TaskAttemptsFailed',
    ]) {
      expect(dashboard).toContain(expected);
    }
    expect(grid.metricTaskQueuedTime().namespace).toBe('HtcGrid/risk');
    expect(grid.metricTaskRunTime({ statistic: 'p50' }).statistic).toBe('p50');
    expect(grid.metricFailedAttempts('PricingError').dimensions).toEqual({ ErrorType: 'PricingError' });
    expect(grid.metricTasksRetried().metricName).toBe('TasksRetried');
  });
});
