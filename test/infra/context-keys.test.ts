// CDK context keys: every value checked by one schema, unknown keys answered with the closest known one, HTC-Grid
// keys we ignore on purpose accepted and reported, CDK's own keys left alone (issue 11, for CDK context).
import * as path from 'node:path';
import { closestName, editDistance } from '../../lib/core/closest-name';
import { ConfigError } from '../../lib/core/errors';
import { gridSettingsFromContext } from '../../lib/infra/app-config';
import { IGNORED_HTCGRID_KEYS, infraContextSchema, parseContext } from '../../lib/infra/context-keys';
import { PYTHON_WORKER, REPO_ROOT } from './grid-app';

const WORKER = path.relative(REPO_ROOT, PYTHON_WORKER);

function issuesOf(context: Record<string, unknown>): readonly string[] {
  try {
    gridSettingsFromContext({ worker: WORKER, ...context }, REPO_ROOT);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues;
  }
}

describe('closestName', () => {
  it('finds the key a typo meant and nothing for a word far from every key', () => {
    const keys = ['max_agents', 'min_agents', 'max_attempts', 'slots'];

    expect(closestName('max_agnets', keys)).toBe('max_agents');
    expect(closestName('max_attemps', keys)).toBe('max_attempts');
    expect(closestName('SLOTS', keys)).toBe('slots');
    expect(closestName('frobnicate', keys)).toBeUndefined();
    expect(editDistance('ab', 'ba')).toBe(1);
  });
});

describe('unknown context keys', () => {
  it.each([
    ['max_agnets', 'max_agents'],
    ['slot', 'slots'],
    ['lambda_handler_file', 'lambda_handler_file_name'],
    ['taks_timeout_sec', 'task_timeout_sec'],
    ['peak_task_per_sec', 'peak_tasks_per_sec'],
    ['cpu_arch', undefined],
  ])('-c %s fails, naming the closest known key', (key, guess) => {
    const issues = issuesOf({ [key]: '1' });

    expect(issues).toContainEqual(
      guess
        ? `-c ${key}: unknown context key: did you mean ${guess}? (see lib/infra/README.md)`
        : `-c ${key}: unknown context key (see lib/infra/README.md)`,
    );
  });

  it('leaves the CDK’s own keys (feature flags, lookups, CLI settings) alone', () => {
    const parsed = parseContext({
      '@aws-cdk/core:checkSecretUsage': true,
      'aws:cdk:bundling-stacks': ['**'],
      'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a'],
      'acknowledged-issue-numbers': [32775],
      worker: WORKER,
    });

    expect(parsed.issues).toEqual([]);
  });
});

describe('HTC-Grid keys ignored on purpose', () => {
  it.each(Object.keys(IGNORED_HTCGRID_KEYS))('-c %s is accepted and reported as ignored, with why', (key) => {
    const settings = gridSettingsFromContext({ worker: WORKER, [key]: 'x' }, REPO_ROOT);

    expect(settings.ignored).toEqual([`-c ${key}: an HTC-Grid key ignored here (${IGNORED_HTCGRID_KEYS[key]})`]);
  });

  it('maps HTC-Grid’s htc_agent_target_value onto the scaling target', () => {
    expect(
      gridSettingsFromContext({ worker: WORKER, htc_agent_target_value: '6' }, REPO_ROOT).targetBacklogPerAgent,
    ).toBe(6);
  });
});

describe('bad context values', () => {
  it.each([
    ['cpu', 'fast', 'not a number'],
    ['cpu', '333', 'cpu: 333 is not a Fargate task size: use one of 256, 512, 1024, 2048, 4096, 8192, 16384'],
    ['memory', '1.5', 'not a whole number'],
    ['cpu_architecture', 'sparc', 'use x86_64 or arm64'],
    ['spot', 'yes', 'use true or false'],
    ['retain_data', '1', 'use true or false'],
    ['nat_gateways', '4', 'use 0..3'],
    ['ec2_instance_type', 'big one', 'not an instance type: use e.g. c6i.2xlarge'],
    ['ec2_max_instances', '0', 'use 1 or more'],
    ['scaling_target', '-2', 'must be above 0'],
    ['table_capacity', 'cheap', 'use on-demand or provisioned'],
    ['table_target_utilization', '95', 'use 20..90'],
    ['peak_tasks_per_sec', '0', 'must be above 0'],
    ['alarm_topic_arn', 'my-topic', 'not an SNS topic ARN'],
    ['pip_platform', 'mac', 'use lambda or host'],
    ['stack_name', '1grid', 'use letters, digits and dashes, starting with a letter'],
    ['slots', '9', 'slots: 9 Lambda containers per agent task: use 1..8 and raise max_agents'],
    ['priority_levels', '5', 'priority_levels: 5 levels is more than a deployed grid scales on: use at most 4'],
    ['max_htc_agents', 'many', 'max_htc_agents'],
    ['runtime', 'nodejs20.x', 'runtime "nodejs20.x" is not supported'],
    ['stalled_after_ms', 'soon', 'stalled_after_ms: use a number of milliseconds above 0, e.g. 20 (the default)'],
    ['stalled_after_ms', '-5', 'stalled_after_ms: use a number of milliseconds above 0, e.g. 20 (the default)'],
  ])('-c %s=%s is a configuration error naming the key, the value and the fix', (key, value, expected) => {
    const issues = issuesOf({ [key]: value });

    expect(issues.some((issue) => issue.includes(expected))).toBe(true);
    expect(issues.some((issue) => issue.includes(key))).toBe(true);
  });

  it('are all reported at once, each with its key', () => {
    const issues = issuesOf({ cpu: 'fast', spot: 'maybe', max_agnets: '3', nat_gateways: '9' });

    expect(issues.map((i) => /^-c (\w+)/.exec(i)?.[1]).sort()).toEqual(['cpu', 'max_agnets', 'nat_gateways', 'spot']);
  });

  it('documents every infrastructure key in the schema', () => {
    for (const [key, schema] of Object.entries(infraContextSchema.shape)) {
      expect({ key, description: schema.description?.length ?? 0 }).toEqual({ key, description: expect.any(Number) });
      expect(schema.description?.length ?? 0).toBeGreaterThan(10);
    }
  });
});
