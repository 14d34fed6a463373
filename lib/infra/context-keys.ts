// The CDK context keys the app reads (`-c key=value`), validated by one zod schema: infrastructure keys, grid
// configuration keys, HTC-Grid keys accepted and ignored on purpose, and "did you mean" for the rest.
import { z } from 'zod';
import { closestName } from '../core/closest-name';
import { gridConfigSchema } from '../core/config';
import { IGNORED_HTCGRID_KEYS } from '../core/htc-grid-keys';
import { COMPUTE_KINDS, type ComputeKind } from './compute-plane';
import { CPU_ARCHITECTURES } from './cpu-architecture';

/** A -c value as the CLI gives it (a string) or cdk.json does (JSON). */
type ContextValue = unknown;

const numeric = (v: ContextValue): unknown =>
  typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;
const boolean = (v: ContextValue): unknown => (v === 'true' ? true : v === 'false' ? false : v);

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    numeric,
    z
      .number({ error: 'not a number' })
      .int({ error: 'not a whole number' })
      .min(min, { error: `use ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}`.replace(/\.\.$/, ' or more') })
      .max(max, { error: `use ${min}..${max}` }),
  );
const positive = () =>
  z.preprocess(numeric, z.number({ error: 'not a number' }).positive({ error: 'must be above 0' }));
const flag = () => z.preprocess(boolean, z.boolean({ error: 'use true or false' }));
const text = (pattern?: RegExp, fix = 'not a valid value') =>
  z.preprocess(
    (v) => (typeof v === 'number' ? String(v) : v),
    pattern ? z.string({ error: 'not a string' }).regex(pattern, { error: fix }) : z.string({ error: 'not a string' }),
  );
const oneOf = <T extends string>(values: readonly [T, ...T[]]) =>
  z.enum(values, { error: `use ${values.join(' or ')}` });

/** The infrastructure keys: what they set, and how their values are checked. */
export const infraContextSchema = z.object({
  config: text().describe('path of a grid config JSON (HTC-Grid keys)'),
  worker: text().describe('worker folder to bundle and deploy'),
  worker_zip: text().describe('prebuilt worker zip to deploy instead of a folder'),
  max_agents: int(1).describe('most agents (ECS tasks); alias of max_htc_agents'),
  min_agents: int(0).describe('fewest agents (0 scales to zero); alias of min_htc_agents'),
  cpu: int(128).describe('CPU units of one agent task (a Fargate size)'),
  memory: int(512).describe('memory of one agent task, MiB'),
  cpu_architecture: oneOf(CPU_ARCHITECTURES as [string, ...string[]]).describe(
    'CPU architecture of the agents on Fargate (x86_64 or arm64); on EC2 the instance type decides',
  ),
  compute: oneOf(COMPUTE_KINDS as [ComputeKind, ...ComputeKind[]]).describe(
    'where the agents run: ecs (Fargate, or EC2 with ec2_instance_type) or eks (a new EKS Auto Mode cluster, or eks_cluster_name)',
  ),
  eks_cluster_name: text(/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/, 'not an EKS cluster name').describe(
    'with compute=eks: run on this existing EKS cluster instead of creating one',
  ),
  eks_kubectl_role_arn: text(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'not an IAM role ARN').describe(
    "with eks_cluster_name: role the stack's kubectl function runs as (default: a new role given cluster admin by an access entry)",
  ),
  spot: flag().describe('run agents on Spot capacity: Fargate Spot, or Spot instances with ec2_instance_type'),
  ec2_instance_type: text(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'not an instance type: use e.g. c6i.2xlarge').describe(
    'run agents on EC2 instances of this type instead of Fargate',
  ),
  ec2_max_instances: int(1).describe('most EC2 instances (with ec2_instance_type)'),
  nat_gateways: int(0, 3).describe('NAT gateways of the new VPC (0 = none)'),
  scaling_target: positive().describe('queued + in-flight tasks per agent the service scales to'),
  htc_agent_target_value: positive().describe("HTC-Grid's name of scaling_target"),
  stack_name: text(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, 'use letters, digits and dashes, starting with a letter').describe(
    'CloudFormation stack name',
  ),
  reaper_entry: text().describe('reaper handler source file'),
  retain_data: flag().describe('keep the buckets and the task table on cdk destroy'),
  table_capacity: oneOf(['on-demand', 'provisioned']).describe('task table billing: on-demand or provisioned'),
  table_max_write_units: int(1).describe('provisioned task table: highest write units of the table and each index'),
  table_min_write_units: int(1).describe('provisioned task table: lowest write units'),
  table_max_read_units: int(1).describe('provisioned task table: highest read units'),
  table_target_utilization: int(20, 90).describe('provisioned task table: utilisation auto scaling aims at'),
  peak_tasks_per_sec: positive().describe('tasks per second to pre-warm the task table for'),
  alarm_topic_arn: text(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$/, 'not an SNS topic ARN').describe(
    "SNS topic the grid's alarms notify",
  ),
  pip_platform: oneOf(['lambda', 'host']).describe(
    "whose platform the worker's Python requirements are installed for: lambda, or host (this machine)",
  ),
  pip_args: text().describe('extra pip install arguments, e.g. "--no-index --find-links wheels"'),
});

export type InfraContext = z.output<ReturnType<typeof infraContextSchema.partial>>;

export { IGNORED_HTCGRID_KEYS };

/** Keys of the grid configuration document that -c may set (lambda ones land under agent_configuration.lambda). */
export const CONFIG_CONTEXT_KEYS: readonly string[] = [
  ...Object.keys(gridConfigSchema.shape).filter((k) => k !== 'agent_configuration'),
  'lambda_handler_file_name',
  'lambda_handler_function_name',
  'runtime',
  'function_name',
  'memory_size_mb',
];

/** Infrastructure keys that name a configuration key. */
export const CONTEXT_ALIASES: Readonly<Record<string, string>> = {
  max_agents: 'max_htc_agents',
  min_agents: 'min_htc_agents',
};

/** Context keys that belong to the CDK itself (feature flags, lookups, CLI settings), never to the grid. */
function isCdkKey(key: string): boolean {
  return key.includes(':') || key.startsWith('@') || key === 'acknowledged-issue-numbers';
}

export interface ParsedContext {
  /** The infrastructure keys, checked and converted. */
  readonly infra: InfraContext;
  /** The configuration keys, as given (compileConfig checks them); aliases resolved. */
  readonly configOverrides: Record<string, unknown>;
  /** HTC-Grid keys given and ignored, with why. */
  readonly ignored: readonly string[];
  /** Every problem, naming the key, the value and the fix. */
  readonly issues: readonly string[];
}

/** Sorts every context key the app was given into infrastructure, configuration, ignored, or a problem. */
export function parseContext(context: Readonly<Record<string, unknown>>): ParsedContext {
  const infraKeys = new Set(Object.keys(infraContextSchema.shape));
  const configKeys = new Set(CONFIG_CONTEXT_KEYS);
  const known = [...infraKeys, ...configKeys];
  const issues: string[] = [];
  const ignored: string[] = [];
  const infraInput: Record<string, unknown> = {};
  const configOverrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (isCdkKey(key) || value === undefined || value === null || value === '') continue;
    if (infraKeys.has(key)) infraInput[key] = value;
    else if (configKeys.has(key)) configOverrides[key] = value;
    else if (key in IGNORED_HTCGRID_KEYS)
      ignored.push(`-c ${key}: an HTC-Grid key ignored here (${IGNORED_HTCGRID_KEYS[key]})`);
    else if (key === 'agent_configuration') {
      issues.push('-c agent_configuration: set it in the -c config file, or its keys one by one (-c runtime=...)');
    } else {
      const guess = closestName(key, known);
      issues.push(`-c ${key}: unknown context key${guess ? `: did you mean ${guess}?` : ''} (see lib/infra/README.md)`);
    }
  }
  // Key by key, so one bad value does not hide the others.
  const infra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(infraInput)) {
    const schema = infraContextSchema.shape[key as keyof typeof infraContextSchema.shape];
    const parsed = schema.safeParse(value);
    if (parsed.success) infra[key] = parsed.data;
    else issues.push(`-c ${key}=${String(value)}: ${parsed.error.issues[0]?.message} (${schema.description})`);
  }
  for (const [alias, key] of Object.entries(CONTEXT_ALIASES)) {
    const value = infra[alias];
    if (value !== undefined) configOverrides[key] = value;
  }
  return { infra: infra, configOverrides, ignored, issues };
}
