// Invariants of the synthesized template, one per defect class of issue 10, over every accepted value of the
// settings involved: what AWS would refuse or run wrongly is checked here from the template itself.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { evaluateMetricMath } from '../support/metric-math';
import { FIXTURES, PYTHON_WORKER, REPO_ROOT, synthGrid } from './grid-app';
import {
  agentDocument,
  backlogPolicy,
  container,
  lambdaContainers,
  metricQueryLists,
  portOf,
  returnedExpression,
  rieAddresses,
  taskDefinition,
} from './template-helpers';

/** Every slot count a grid accepts (one Lambda container per slot). */
const SLOTS = [1, 2, 3, 4, 5, 6, 7, 8];
/** Every priority level count the grid configuration accepts. */
const PRIORITY_LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
/** CloudWatch's limit on metrics in an alarm's metric math and in a target tracking customized metric. */
const CLOUDWATCH_MAX_METRICS = 10;

describe('runtime API and invoke addresses (defect 1)', () => {
  it.each(SLOTS)(
    'with %i slot(s), no two Lambda containers bind the same address in the shared awsvpc localhost',
    (slots) => {
      const { template } = synthGrid({ worker: PYTHON_WORKER, slots: String(slots) });
      const lambdas = lambdaContainers(template);

      const bound = lambdas.flatMap((c) => {
        const { invoke, runtimeApi } = rieAddresses([...(c.EntryPoint ?? []), ...(c.Command ?? [])]);
        return [portOf(invoke), portOf(runtimeApi)];
      });

      expect(lambdas).toHaveLength(slots);
      expect(new Set(bound).size).toBe(bound.length);
    },
  );

  it.each(SLOTS)('with %i slot(s), the agent is told each Lambda container’s invoke port', (slots) => {
    const { template } = synthGrid({ worker: PYTHON_WORKER, slots: String(slots) });
    const agentEndpoints = String(
      container(template, 'agent').Environment?.find((e) => e.Name === 'HTCGRID_LAMBDA_ENDPOINTS')?.Value,
    ).split(',');

    const invokePorts = lambdaContainers(template).map((c) =>
      portOf(rieAddresses([...(c.EntryPoint ?? []), ...(c.Command ?? [])]).invoke),
    );

    expect(agentEndpoints.map(portOf)).toEqual(invokePorts);
  });
});

describe('metric math within CloudWatch’s limits (defect 3)', () => {
  it.each(PRIORITY_LEVELS)(
    'with %i priority level(s), every alarm and scaling policy uses at most 10 metrics, or synth refuses the level count',
    (levels) => {
      let template;
      try {
        ({ template } = synthGrid({ worker: PYTHON_WORKER, priority_levels: String(levels) }));
      } catch (err) {
        expect((err as Error).constructor.name).toBe('ConfigError');
        expect((err as Error).message).toMatch(/priority_levels: \d+ .*at most 4 .*10 metrics/);
        expect(levels).toBeGreaterThan(4);
        return;
      }
      const lists = metricQueryLists(template);
      const overLimit = lists
        .map(({ name, queries }) => ({ name, metrics: queries.filter((q) => q.MetricStat).length }))
        .filter((l) => l.metrics > CLOUDWATCH_MAX_METRICS);

      expect(lists.length).toBeGreaterThan(0);
      expect(overLimit).toEqual([]);
    },
  );
});

describe('scaling out from zero and back to zero (defects 6 and 7)', () => {
  /** The backlog target tracking metric at one instant: every queue's visible and in-flight counts, and running agents. */
  function backlogPerAgent(levels: number, perQueue: { visible?: number; inflight?: number }, running?: number) {
    const { template } = synthGrid({ worker: PYTHON_WORKER, priority_levels: String(levels) });
    const policy = backlogPolicy(template);
    const queries = policy.TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification.Metrics as {
      Id: string;
      MetricStat?: { Metric: { MetricName: string } };
    }[];
    const values: Record<string, number | undefined> = {};
    for (const q of queries.filter((m) => m.MetricStat)) {
      const name = q.MetricStat!.Metric.MetricName;
      if (name === 'RunningTaskCount') values[q.Id] = running;
      else if (name === 'ApproximateNumberOfMessagesVisible') values[q.Id] = perQueue.visible;
      else if (name === 'ApproximateNumberOfMessagesNotVisible') values[q.Id] = perQueue.inflight;
      else throw new Error(`unexpected metric ${name}`);
    }
    return {
      value: evaluateMetricMath(returnedExpression(queries), values),
      target: policy.TargetTrackingScalingPolicyConfiguration.TargetValue as number,
    };
  }

  it.each([1, 3, 4])(
    'with %i level(s), the target metric is above target when work waits and no agent runs yet',
    (levels) => {
      for (const running of [0, undefined]) {
        const { value, target } = backlogPerAgent(levels, { visible: 5, inflight: 0 }, running);
        expect(value).toBeGreaterThan(target);
      }
    },
  );

  it('the target metric is backlog per running agent once agents run, and 0 when idle', () => {
    expect(backlogPerAgent(3, { visible: 10, inflight: 2 }, 4).value).toBe(9);
    expect(backlogPerAgent(3, { visible: 0, inflight: 0 }, 2).value).toBe(0);
  });

  /** The scaling alarms of a template, keyed by what their expression is for. */
  function scalingAlarm(context: Record<string, string>, kind: 'WakeUp' | 'ScaleToZero') {
    const { template } = synthGrid({ worker: PYTHON_WORKER, ...context });
    const [alarm] = Object.entries(template.findResources('AWS::CloudWatch::Alarm'))
      .filter(([id]) => id.includes(`${kind}Alarm`))
      .map(([, a]) => (a as { Properties: Record<string, any> }).Properties);
    if (!alarm) throw new Error(`no ${kind} alarm`);
    const queries = alarm.Metrics as { Id: string; MetricStat?: { Metric: { MetricName: string } } }[];
    const at = (perQueue: { visible: number; inflight: number }, running: number | undefined) => {
      const values: Record<string, number | undefined> = {};
      for (const q of queries.filter((m) => m.MetricStat)) {
        const name = q.MetricStat!.Metric.MetricName;
        values[q.Id] =
          name === 'RunningTaskCount'
            ? running
            : name === 'ApproximateNumberOfMessagesVisible'
              ? perQueue.visible
              : perQueue.inflight;
      }
      return evaluateMetricMath(returnedExpression(queries), values);
    };
    return { alarm, at };
  }

  it.each([1, 2, 3, 4])('with %i level(s), starts the first agent when work waits and none runs', (levels) => {
    const { alarm, at } = scalingAlarm({ priority_levels: String(levels) }, 'WakeUp');

    expect(alarm.Threshold).toBe(1);
    expect(at({ visible: 3, inflight: 0 }, 0)).toBe(1);
    expect(at({ visible: 3, inflight: 0 }, undefined)).toBe(1);
    expect(at({ visible: 3, inflight: 0 }, 2)).toBe(0);
    expect(at({ visible: 0, inflight: 0 }, 0)).toBe(0);
  });

  it.each([1, 2, 3, 4])(
    'with %i level(s), scales to zero only when agents run and nothing is queued or in flight',
    (levels) => {
      const { alarm, at } = scalingAlarm({ priority_levels: String(levels) }, 'ScaleToZero');

      expect(at({ visible: 0, inflight: 0 }, 2)).toBe(1);
      expect(at({ visible: 1, inflight: 0 }, 2)).toBe(0);
      expect(at({ visible: 0, inflight: 1 }, 2)).toBe(0);
      expect(at({ visible: 0, inflight: 0 }, 0)).toBe(0);
      expect(alarm.DatapointsToAlarm).toBe(alarm.EvaluationPeriods);
    },
  );

  it.each(['60', '900', '3600', '43200'])(
    'with task_timeout_sec=%s, waits out the task timeout before scaling to zero, so no running task is cut short',
    (timeout) => {
      const { alarm } = scalingAlarm({ task_timeout_sec: timeout }, 'ScaleToZero');
      const periods = (alarm.Metrics as { MetricStat?: { Period: number } }[]).flatMap((m) =>
        m.MetricStat ? [m.MetricStat.Period] : [],
      );
      const windowSec = Math.max(...periods) * alarm.EvaluationPeriods;

      expect(new Set(periods).size).toBe(1);
      expect(windowSec).toBeGreaterThan(Number(timeout) + 60);
      expect(windowSec).toBeLessThanOrEqual(24 * 3600);
    },
  );

  it('scales in to zero explicitly: the idle alarm sets the service to its minimum, and target tracking never scales in', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER });

    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      StepScalingPolicyConfiguration: Match.objectLike({
        AdjustmentType: 'ExactCapacity',
        StepAdjustments: [Match.objectLike({ ScalingAdjustment: 0 })],
      }),
    });
    expect(backlogPolicy(template).TargetTrackingScalingPolicyConfiguration.DisableScaleIn).toBe(true);
  });

  it.each(['0', '3'])(
    'leaves DesiredCount out of the service (min_agents=%s), so an update keeps the scaled count',
    (min) => {
      const { template } = synthGrid({ worker: PYTHON_WORKER, min_agents: min });

      template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: Match.absent() });
      template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: Number(min) });
    },
  );
});

describe('worker zips kept for rollbacks (defect 8)', () => {
  it('never prunes older zips on deploy and expires superseded object versions with a lifecycle rule', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER });

    template.hasResourceProperties('Custom::CDKBucketDeployment', { Prune: false });
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ NoncurrentVersionExpiration: Match.objectLike({ NoncurrentDays: Match.anyValue() }) }),
        ]),
      },
    });
  });
});

describe('the reaper (defect 9)', () => {
  it('gets the resource names it reads and the client’s share of the configuration, not the agent document', () => {
    const { template } = synthGrid({
      worker: PYTHON_WORKER,
      config: path.join(FIXTURES, 'python_runtime_grid_config.json'),
    });
    const reaper = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => JSON.stringify(f).includes('HTCGRID_TABLE_NAME') && !JSON.stringify(f).includes('HTCGRID_DATA_PREFIX'),
    ) as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    const variables = reaper.Properties.Environment.Variables;

    expect(Object.keys(variables).sort()).toEqual([
      'HTCGRID_CONFIG',
      'HTCGRID_DATA_BUCKET',
      'HTCGRID_QUEUE_URLS',
      'HTCGRID_TABLE_NAME',
      'NODE_OPTIONS',
    ]);
    // It reads task_retention_sec there (the TTL of the tasks it fails); the agent document stays out.
    expect(Object.keys(JSON.parse(String(variables.HTCGRID_CONFIG)) as object)).toContain('task_retention_sec');
    expect(JSON.stringify(variables).length).toBeLessThan(2048);
  });
});

describe('the HTTP API function (defect 9’s class: a Lambda’s 4 KB of environment)', () => {
  it('gets only the client’s share of the configuration, whatever else an HTC-Grid configuration carries', () => {
    const { template } = synthGrid({
      worker: PYTHON_WORKER,
      config: path.join(FIXTURES, 'python_runtime_grid_config.json'),
    });
    const api = Object.values(template.findResources('AWS::Lambda::Function')).find((f) =>
      JSON.stringify(f).includes('HTCGRID_DATA_PREFIX'),
    ) as { Properties: { Environment: { Variables: Record<string, unknown> } } } | undefined;
    const variables = api?.Properties.Environment.Variables ?? {};
    const document = JSON.parse(String(variables.HTCGRID_CONFIG)) as Record<string, unknown>;

    expect(Object.keys(document).sort()).toEqual([
      'inline_payload_max_bytes',
      'max_attempts',
      'max_payload_bytes',
      'non_retryable_error_types',
      'priority_levels',
      'task_retention_sec',
      'task_timeout_sec',
    ]);
    expect(JSON.stringify(variables).length).toBeLessThan(2048);
  });
});

describe('the reaper’s code (defect 9)', () => {
  it('bundles the AWS SDK it is tested with (whose clients honour throwOnRequestTimeout), not the runtime’s', () => {
    const { app, template } = synthGrid({ worker: PYTHON_WORKER }, { bundle: true });
    const assembly = app.synth();
    const reaper = Object.values(template.findResources('AWS::Lambda::Function')).find((f) =>
      JSON.stringify(f).includes('HTCGRID_TABLE_NAME'),
    ) as { Properties: { Code: { S3Key: string } } };
    const assetDir = `asset.${reaper.Properties.Code.S3Key.replace(/\.zip$/, '')}`;
    const code = fs.readFileSync(path.join(assembly.directory, assetDir, 'index.js'), 'utf8');

    expect(code).toContain('throwOnRequestTimeout');
    // Only the optional SigV4a signers (never used here) are left to guarded requires, as in the SDK itself.
    expect(code).not.toMatch(/require\(["']@aws-sdk\/(?!signature-v4a|signature-v4-crt)/);
  }, 120_000);
});

describe('containers as the README says (defect 10)', () => {
  it('runs the init container with a read-only root file system, writing only to its volumes', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER });
    const init = container(template, 'fetch-worker');

    expect(init.ReadonlyRootFilesystem).toBe(true);
    expect(init.MountPoints?.map((m) => m.ContainerPath)).toEqual(expect.arrayContaining(['/var/task', '/tmp']));
  });

  it('sends the monitoring alarms (not the scaling ones) to an SNS topic when one is given', () => {
    const topic = 'arn:aws:sns:eu-west-1:123456789012:grid-alarms';
    const { template } = synthGrid({ worker: PYTHON_WORKER, alarm_topic_arn: topic });
    const policies = new Set(Object.keys(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')));
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as {
      Properties: { AlarmActions?: { Ref?: string }[]; OKActions?: unknown[] };
    }[];
    const scaling = alarms.filter((a) => (a.Properties.AlarmActions ?? []).some((x) => policies.has(x.Ref ?? '')));
    const monitoring = alarms.filter((a) => !scaling.includes(a));

    expect(scaling).toHaveLength(2);
    // Dead letters, oldest message age, task failure rate.
    expect(monitoring).toHaveLength(3);
    for (const alarm of monitoring) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
      expect(alarm.Properties.OKActions).toEqual([topic]);
    }
  });

  it('notifies no one without a topic, as documented', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as {
      Properties: { AlarmActions?: unknown[]; AlarmDescription: string };
    }[];

    expect(alarms.filter((a) => !a.Properties.AlarmActions).map((a) => a.Properties.AlarmDescription)).toHaveLength(3);
  });
});

describe('a fresh table pre-warmed for the expected peak (defect 12)', () => {
  it('sets warm write throughput on the table and its indexes from the measured write units per task', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER, peak_tasks_per_sec: '5000' });
    const table = Object.values(template.findResources('AWS::DynamoDB::Table'))[0] as {
      Properties: { WarmThroughput?: { WriteUnitsPerSecond: number }; GlobalSecondaryIndexes: any[] };
    };

    expect(table.Properties.WarmThroughput?.WriteUnitsPerSecond).toBe(15000);
    for (const index of table.Properties.GlobalSecondaryIndexes) {
      expect(index.WarmThroughput?.WriteUnitsPerSecond).toBeGreaterThanOrEqual(5000);
    }
  });

  it('leaves warm throughput alone without the setting', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER });

    template.hasResourceProperties('AWS::DynamoDB::Table', { WarmThroughput: Match.absent() });
  });
});

describe('the task definition', () => {
  it('is one task definition holding the init container, one Lambda container per slot and the agent', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER, slots: '2' });

    expect((taskDefinition(template).ContainerDefinitions as { Name: string }[]).map((c) => c.Name)).toEqual([
      'fetch-worker',
      'lambda-0',
      'lambda-1',
      'agent',
    ]);
  });
});

describe('every runtime (defect 4)', () => {
  const WORKERS: Record<string, string> = {
    python: PYTHON_WORKER,
    node: path.join(FIXTURES, 'ts-worker'),
    provided: path.join(REPO_ROOT, 'workers', 'provided', 'echo'),
  };
  it.each([
    ['python3.12', 'python', '/lambda/python:3.12', '/var/runtime/bootstrap', 'lambda_function.lambda_handler'],
    ['python3.13', 'python', '/lambda/python:3.13', '/var/runtime/bootstrap', 'lambda_function.lambda_handler'],
    ['nodejs22.x', 'node', '/lambda/nodejs:22', '/var/runtime/bootstrap', 'index.handler'],
    ['nodejs24.x', 'node', '/lambda/nodejs:24', '/var/runtime/bootstrap', 'index.handler'],
    ['provided.al2023', 'provided', '/lambda/provided:al2023', '/var/task/bootstrap', 'lambda_function.lambda_handler'],
  ])('%s runs its base image, its bootstrap and its default handler', (runtime, family, image, bootstrap, handler) => {
    const { template } = synthGrid({ worker: WORKERS[family]!, runtime });
    const [lambda] = lambdaContainers(template);

    expect(JSON.stringify(lambda!.Image)).toContain(image);
    expect(lambda!.EntryPoint!.at(-1)).toBe(bootstrap);
    expect(lambda!.Command).toEqual([handler]);
    expect(agentDocument(template).agent_configuration.lambda.runtime).toBe(runtime);
  });

  it.each([
    ['python', 'python3.12', 'lambda_function.lambda_handler'],
    ['node', 'nodejs22.x', 'index.handler'],
    ['provided', 'provided.al2023', 'lambda_function.lambda_handler'],
  ])('a %s worker without -c runtime gets %s and %s', (family, runtime, handler) => {
    const { template } = synthGrid({ worker: WORKERS[family]! });

    expect(lambdaContainers(template)[0]!.Command).toEqual([handler]);
    expect(agentDocument(template).agent_configuration.lambda.runtime).toBe(runtime);
  });
});

describe('every capacity mode', () => {
  it.each([
    ['Fargate', {}, 'FARGATE'],
    ['Fargate Spot', { spot: 'true' }, 'FARGATE_SPOT'],
    ['EC2', { ec2_instance_type: 'c6i.xlarge' }, undefined],
    ['EC2 Spot', { ec2_instance_type: 'c6i.xlarge', spot: 'true' }, undefined],
    ['EC2 Graviton', { ec2_instance_type: 'c7g.xlarge' }, undefined],
  ])(
    '%s keeps the unit’s shape: shared PID namespace, sandbox uid, read-only roots, no shared port',
    (_, context, provider) => {
      const { template } = synthGrid({ worker: PYTHON_WORKER, slots: '3', ...context });
      const def = taskDefinition(template);
      const bound = lambdaContainers(template).flatMap((c) => {
        const { invoke, runtimeApi } = rieAddresses([...(c.EntryPoint ?? []), ...(c.Command ?? [])]);
        return [portOf(invoke), portOf(runtimeApi)];
      });

      expect(def.PidMode).toBe('task');
      expect(def.NetworkMode).toBe('awsvpc');
      expect(new Set(bound).size).toBe(6);
      for (const c of def.ContainerDefinitions as { Name: string; User: string; ReadonlyRootFilesystem: boolean }[]) {
        expect(c.ReadonlyRootFilesystem).toBe(true);
        expect(c.User).toBe(c.Name === 'fetch-worker' ? '0:0' : '993:990');
      }
      const service = Object.values(template.findResources('AWS::ECS::Service'))[0] as {
        Properties: { CapacityProviderStrategy: { CapacityProvider: unknown }[]; DesiredCount?: number };
      };
      expect(service.Properties.DesiredCount).toBeUndefined();
      if (provider) expect(service.Properties.CapacityProviderStrategy[0]!.CapacityProvider).toBe(provider);
      else expect(template.findResources('AWS::ECS::CapacityProvider')).not.toEqual({});
    },
  );

  it.each([
    ['on demand', {}],
    ['provisioned', { table_capacity: 'provisioned', table_max_write_units: '20000' }],
  ])('an %s table is pre-warmed for the peak on the table and both indexes', (_, context) => {
    const { template } = synthGrid({ worker: PYTHON_WORKER, peak_tasks_per_sec: '4000', ...context });
    const table = Object.values(template.findResources('AWS::DynamoDB::Table'))[0] as {
      Properties: {
        WarmThroughput?: Record<string, number>;
        GlobalSecondaryIndexes: { IndexName: string; WarmThroughput?: Record<string, number> }[];
      };
    };

    expect(table.Properties.WarmThroughput).toEqual({ WriteUnitsPerSecond: 12000 });
    expect(
      Object.fromEntries(table.Properties.GlobalSecondaryIndexes.map((i) => [i.IndexName, i.WarmThroughput])),
    ).toEqual({
      session_index: { WriteUnitsPerSecond: 4520 },
      lease_index: { WriteUnitsPerSecond: 8000 },
    });
  });

  it('pre-warms nothing for a peak a fresh table serves anyway (about 1,000 tasks/s)', () => {
    const { template } = synthGrid({ worker: PYTHON_WORKER, peak_tasks_per_sec: '1000' });

    template.hasResourceProperties('AWS::DynamoDB::Table', {
      WarmThroughput: Match.absent(),
      GlobalSecondaryIndexes: [
        Match.objectLike({ WarmThroughput: Match.absent() }),
        Match.objectLike({ WarmThroughput: Match.absent() }),
      ],
    });
  });
});
