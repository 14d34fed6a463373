// The app's configuration: -c overrides and an HTC-Grid config file reach the Lambda command and the agent document.
import * as path from 'node:path';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { ConfigError } from '../../lib/core/errors';
import { GRID_ENV } from '../../lib/core/grid-resources';
import { gridSettingsFromContext } from '../../lib/infra/app-config';
import { LAMBDA_ENDPOINTS_ENV } from '../../lib/infra/grid-unit';
import { FIXTURES, maskedTemplate, PYTHON_WORKER, REPO_ROOT, synthGrid } from './grid-app';

type ContainerDef = {
  Name: string;
  Command?: string[];
  Image?: unknown;
  Environment?: { Name: string; Value: unknown }[];
};

function containers(t: Template): ContainerDef[] {
  const defs = Object.values(t.findResources('AWS::ECS::TaskDefinition')) as {
    Properties: { ContainerDefinitions: ContainerDef[] };
  }[];
  return defs[0]!.Properties.ContainerDefinitions;
}

function agentDocument(t: Template): Record<string, any> {
  const agent = containers(t).find((c) => c.Name === 'agent')!;
  const value = agent.Environment!.find((e) => e.Name === GRID_ENV.config)!.Value as {
    'Fn::Join': [string, unknown[]];
  };
  return JSON.parse(value['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : '<token>')).join(''));
}

const CONFIG_FILE = path.join(FIXTURES, 'python_runtime_grid_config.json');

describe('-c overrides', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synthGrid({
      worker: PYTHON_WORKER,
      lambda_handler_file_name: 'portfolio_pricing_engine',
      lambda_handler_function_name: 'price',
      grid_name: 'risk-nightly',
      max_agents: '250',
      min_agents: '1',
      slots: '2',
      cpu: '2048',
      memory: '8192',
      runtime: 'python3.13',
      task_timeout_sec: '300',
    }));
  });

  it('matches its snapshot (asset hashes masked)', () => {
    expect(maskedTemplate(template)).toMatchSnapshot();
  });

  it('run the overridden handler in every Lambda container, one per slot on its own port', () => {
    const lambdas = containers(template).filter((c) => c.Name.startsWith('lambda-'));
    expect(lambdas.map((c) => c.Command)).toEqual([
      ['portfolio_pricing_engine.price'],
      ['portfolio_pricing_engine.price'],
    ]);
    expect((lambdas[1] as { EntryPoint?: string[] }).EntryPoint).toEqual([
      '/usr/local/bin/aws-lambda-rie',
      '--runtime-interface-emulator-address',
      '127.0.0.1:8081',
      '--runtime-api-address',
      '127.0.0.1:9002',
      '/var/runtime/bootstrap',
    ]);
    const agent = containers(template).find((c) => c.Name === 'agent')!;
    expect(agent.Environment!.find((e) => e.Name === GRID_ENV.lambdaEndpoint)!.Value).toBe('http://127.0.0.1:8080');
    expect(agent.Environment!.find((e) => e.Name === LAMBDA_ENDPOINTS_ENV)!.Value).toBe(
      'http://127.0.0.1:8080,http://127.0.0.1:8081',
    );
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: { TargetValue: 4 },
    });
  });

  it('put the overridden handler names, slots and grid name into the agent configuration document', () => {
    const doc = agentDocument(template);
    expect(doc.agent_configuration.lambda).toMatchObject({
      lambda_handler_file_name: 'portfolio_pricing_engine',
      lambda_handler_function_name: 'price',
      runtime: 'python3.13',
    });
    expect(doc).toMatchObject({ grid_name: 'risk-nightly', slots: 2, max_htc_agents: 250, min_htc_agents: 1 });
  });

  it('size the task, the Lambda timeout, the image and the scaling bounds', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '2048', Memory: '8192' });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 1, MaxCapacity: 250 });
    const lambda = containers(template).find((c) => c.Name === 'lambda-0')!;
    expect(lambda.Environment).toContainEqual({ Name: 'AWS_LAMBDA_FUNCTION_TIMEOUT', Value: '300' });
    expect(JSON.stringify(lambda.Image)).toContain('/lambda/python:3.13');
  });
});

describe('-c task_retention_sec', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synthGrid({ worker: PYTHON_WORKER, task_retention_sec: '259200' }));
  });

  it('reaches every writer of a finished task: the agents, the reaper and the API (their HTCGRID_CONFIG)', () => {
    expect(agentDocument(template)).toMatchObject({ task_retention_sec: 259200 });
    const functions = Object.values(template.findResources('AWS::Lambda::Function')) as {
      Properties: { Environment?: { Variables?: Record<string, unknown> } };
    }[];
    const documents = functions
      .map((f) => f.Properties.Environment?.Variables?.[GRID_ENV.config])
      .filter((v): v is string => typeof v === 'string')
      .map((v) => JSON.parse(v) as Record<string, unknown>);
    expect(documents).toHaveLength(2);
    for (const doc of documents) expect(doc).toMatchObject({ task_retention_sec: 259200 });
    // The stack output a CLI client reads (htcgrid ... --stack) carries it too.
    const outputs = Object.values(template.findOutputs('ClientConfig'));
    expect(outputs.map((o) => JSON.parse(String(o.Value)))).toEqual([
      expect.objectContaining({ task_retention_sec: 259200 }),
    ]);
  });

  it('the table deletes finished tasks by their ttl attribute, and data-plane objects expire with them (3 days)', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ Id: 'ExpireResults', ExpirationInDays: 3, Status: 'Enabled' })]),
      },
    });
  });
});

describe('a grid config file in HTC-Grid format', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synthGrid({ worker: PYTHON_WORKER, config: path.relative(REPO_ROOT, CONFIG_FILE) }));
  });

  it('matches its snapshot (asset hashes masked)', () => {
    expect(maskedTemplate(template)).toMatchSnapshot();
  });

  it('sets the handler from agent_configuration.lambda in the Lambda command and the agent document', () => {
    expect(containers(template).find((c) => c.Name === 'lambda-0')!.Command).toEqual([
      'portfolio_pricing_engine.price',
    ]);
    const doc = agentDocument(template);
    expect(doc.agent_configuration.lambda.lambda_handler_file_name).toBe('portfolio_pricing_engine');
    expect(doc.grid_name).toBe('quant-risk');
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MaxCapacity: 40 });
  });
});

describe('-c ec2_instance_type', () => {
  let synth: ReturnType<typeof synthGrid>;
  beforeAll(() => {
    synth = synthGrid(
      { worker: PYTHON_WORKER, ec2_instance_type: 'c6i.xlarge', spot: 'true', ec2_max_instances: '4' },
      { nag: true },
    );
  });

  it('runs the agents on Spot instances of that type through an ECS capacity provider', () => {
    const { template } = synth;
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        InstanceType: 'c6i.xlarge',
        InstanceMarketOptions: Match.objectLike({ MarketType: 'spot' }),
        MetadataOptions: Match.objectLike({ HttpTokens: 'required' }),
      }),
    });
    template.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '0', MaxSize: '4' });
    template.hasResourceProperties('AWS::ECS::CapacityProvider', {
      AutoScalingGroupProvider: Match.objectLike({ ManagedScaling: Match.objectLike({ Status: 'ENABLED' }) }),
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: Match.absent(),
      CapacityProviderStrategy: [Match.objectLike({ Weight: 1 })],
    });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['EC2'],
      NetworkMode: 'awsvpc',
    });
  });

  it("shares one PID namespace in the task on EC2 too, so the agent can stop a cancelled task's runtime", () => {
    synth.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['EC2'],
      PidMode: 'task',
    });
  });

  it('adds the ECS endpoints container instances need without a NAT, and stays cdk-nag clean', () => {
    const { template, stack } = synth;
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 9);
    const findings = [
      ...Annotations.fromStack(stack).findError(
        '*',
        Match.stringLikeRegexp('AwsSolutions-.*|CdkNagValidationFailure.*'),
      ),
      ...Annotations.fromStack(stack).findWarning(
        '*',
        Match.stringLikeRegexp('AwsSolutions-.*|CdkNagValidationFailure.*'),
      ),
    ];
    expect(findings.map((f) => f.id)).toEqual([]);
  });
});

describe('context winning over the config file', () => {
  it('takes the -c handler names over the file’s', () => {
    const settings = gridSettingsFromContext(
      { config: CONFIG_FILE, worker: PYTHON_WORKER, lambda_handler_file_name: 'lambda_function', max_agents: '7' },
      REPO_ROOT,
    );
    expect(settings.config.handler).toBe('lambda_function.price');
    expect(settings.config.maxAgents).toBe(7);
    expect(settings.config.runtime.name).toBe('python3.13');
  });
});

describe('-c table_capacity=provisioned', () => {
  it('provisions the task table with auto scaling up to the given write units, cdk-nag clean', () => {
    const { template, stack } = synthGrid(
      {
        worker: PYTHON_WORKER,
        table_capacity: 'provisioned',
        table_max_write_units: '900',
        table_target_utilization: '60',
      },
      { nag: true },
    );

    template.hasResourceProperties('AWS::DynamoDB::Table', { ProvisionedThroughput: Match.anyValue() });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ScalableDimension: 'dynamodb:table:WriteCapacityUnits',
      MaxCapacity: 900,
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 60 }),
    });
    const annotations = Annotations.fromStack(stack);
    const nag = Match.stringLikeRegexp('AwsSolutions-.*|CdkNagValidationFailure.*');
    expect([...annotations.findError('*', nag), ...annotations.findWarning('*', nag)].map((f) => f.id)).toEqual([]);
  });
});

describe('the AWS defaults', () => {
  it('inline payloads and results up to 3 KiB unless configured, where S3 becomes cheaper than item writes', () => {
    const defaults = gridSettingsFromContext({ worker: PYTHON_WORKER }, REPO_ROOT);
    const configured = gridSettingsFromContext({ worker: PYTHON_WORKER, inline_payload_max_bytes: '10000' }, REPO_ROOT);

    expect(defaults.config.inlinePayloadMaxBytes).toBe(3072);
    expect(configured.config.inlinePayloadMaxBytes).toBe(10000);
  });
});

describe('invalid context values', () => {
  const settingsFor = (ctx: Record<string, string>) => () =>
    gridSettingsFromContext({ worker: PYTHON_WORKER, ...ctx }, REPO_ROOT);

  it('fail with the key, the value and the fix', () => {
    expect(settingsFor({ runtime: 'nodejs20.x' })).toThrow(
      /runtime "nodejs20\.x" is not supported.*use one of python3\.12/,
    );
    expect(settingsFor({ max_agents: 'many' })).toThrow(/-c max_agents=many: not a number \(most agents/);
    expect(settingsFor({ max_htc_agents: 'many' })).toThrow(/max_htc_agents.*got "many"/);
    expect(settingsFor({ min_agents: '5', max_agents: '2' })).toThrow(
      /min_htc_agents \(5\) must not exceed max_htc_agents \(2\)/,
    );
    expect(settingsFor({ lambda_handler_function_name: 'not-a-name' })).toThrow(/"not-a-name" is not a function name/);
    expect(settingsFor({ grid_name: 'Bad Name' })).toThrow(/grid_name.*lowercase/);
    expect(settingsFor({ worker: 'no/such/folder' })).toThrow(/-c worker=no\/such\/folder: no such folder/);
    expect(settingsFor({ cpu: 'fast' })).toThrow(/-c cpu=fast: not a number/);
    expect(settingsFor({ ec2_instance_type: 'big one' })).toThrow(/-c ec2_instance_type=big one: not an instance type/);
    expect(settingsFor({ config: 'missing.json' })).toThrow(/-c config=missing\.json: cannot read it as JSON/);
  });

  it('of the table capacity name the key and what it needs', () => {
    expect(settingsFor({ table_capacity: 'cheap' })).toThrow(/-c table_capacity=cheap: use on-demand or provisioned/);
    expect(settingsFor({ table_capacity: 'provisioned' })).toThrow(/-c table_max_write_units: required/);
    expect(settingsFor({ table_max_write_units: '100' })).toThrow(
      /-c table_max_write_units: only applies with -c table_capacity=provisioned/,
    );
    expect(settingsFor({ table_capacity: 'provisioned', table_max_write_units: '0' })).toThrow(
      /-c table_max_write_units=0: use 1 or more/,
    );
    expect(
      settingsFor({ table_capacity: 'provisioned', table_max_write_units: '10', table_min_write_units: '20' }),
    ).toThrow(/minWriteUnits \(20\) exceeds maxWriteUnits \(10\)/);
  });

  it('report every problem at once as a ConfigError', () => {
    let caught: unknown;
    try {
      settingsFor({ max_agents: 'x', cpu: 'fast', worker: 'nowhere' })();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).issues.length).toBeGreaterThanOrEqual(3);
  });

  it('fail synthesis for a Fargate size that does not exist, naming the valid range', () => {
    expect(() => synthGrid({ worker: PYTHON_WORKER, cpu: '1024', memory: '512' })).toThrow(
      /memory: 512 MiB does not fit cpu 1024 on Fargate: use 2048\.\.8192 MiB/,
    );
  });
});
