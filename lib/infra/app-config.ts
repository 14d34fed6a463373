// Reads the grid configuration of a CDK app: `-c config=<file>` (HTC-Grid JSON) with `-c key=value` overrides winning.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyOverrides, compileConfig, gridConfigSchema, type GridConfig } from '../core/config';
import { ConfigError } from '../core/errors';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { HtcGridStackProps } from './htc-grid-stack';
import { capacityIssues, type TaskTableCapacity } from './task-table';

/** Context keys that are not configuration-document keys, with what they set. */
export const INFRA_CONTEXT_KEYS = {
  config: 'path of a grid config JSON (HTC-Grid keys)',
  worker: 'worker folder to bundle and deploy',
  worker_zip: 'prebuilt worker zip to deploy instead of a folder',
  max_agents: 'alias of max_htc_agents',
  min_agents: 'alias of min_htc_agents',
  cpu: 'CPU units of one agent task (Fargate size)',
  memory: 'memory of one agent task, MiB',
  spot: 'run agents on Spot capacity: Fargate Spot, or Spot instances with ec2_instance_type (true/false)',
  ec2_instance_type: 'run agents on EC2 instances of this type (e.g. c6i.2xlarge) instead of Fargate',
  ec2_max_instances: 'most EC2 instances (with ec2_instance_type)',
  nat_gateways: 'NAT gateways of the new VPC (0 = none)',
  scaling_target: 'queued + in-flight tasks per agent the service scales to',
  stack_name: 'CloudFormation stack name',
  reaper_entry: 'reaper handler source file (default lib/runtime/reaper-handler.ts)',
  retain_data: 'keep the buckets and the task table on cdk destroy (default true)',
  table_capacity: 'task table billing: on-demand (default) or provisioned (with auto scaling)',
  table_max_write_units: 'provisioned task table: highest write units of the table and of each index',
  table_min_write_units: 'provisioned task table: lowest write units (default 5)',
  table_max_read_units: 'provisioned task table: highest read units (default half the write units)',
  table_target_utilization: 'provisioned task table: utilisation auto scaling aims at, 20-90 (default 70)',
} as const;

/**
 * Inline limit in AWS unless configured: an inline kilobyte is rewritten by the create, the claim and the completion
 * (3 write units, $1.9 per million tasks on demand), while an S3 PUT and GET cost $5.4 per million whatever the size,
 * so inlining pays up to about 3 KiB. (Locally, where writes are cheap, the schema's 32 KiB default stands.)
 */
export const AWS_INLINE_PAYLOAD_MAX_BYTES = 3 * 1024;

const ALIASES: Readonly<Record<string, string>> = { max_agents: 'max_htc_agents', min_agents: 'min_htc_agents' };
const LAMBDA_KEYS = [
  'lambda_handler_file_name',
  'lambda_handler_function_name',
  'runtime',
  'function_name',
  'memory_size_mb',
];

/** The app's inputs after validation. */
export interface GridAppSettings {
  readonly config: GridConfig;
  readonly workerDir?: string;
  readonly workerZip?: string;
  readonly taskCpu?: number;
  readonly taskMemoryMiB?: number;
  readonly spot?: boolean;
  readonly natGateways?: number;
  readonly targetBacklogPerAgent?: number;
  /** EC2 instance type to run agents on instead of Fargate. */
  readonly ec2InstanceType?: string;
  readonly ec2MaxInstances?: number;
  readonly reaperEntry?: string;
  readonly tableCapacity?: TaskTableCapacity;
  /** Keep buckets and table when the stack is deleted. */
  readonly retainData: boolean;
  readonly stackName: string;
}

/**
 * Builds the settings from context values. `getContext` is `app.node.tryGetContext`; `baseDir` resolves relative
 * paths (the directory `cdk` runs in). Every problem is reported at once, naming the key, the value and the fix.
 */
export function gridSettingsFromContext(
  getContext: (key: string) => unknown,
  baseDir: string = process.cwd(),
): GridAppSettings {
  const issues: string[] = [];
  const str = (key: string): string | undefined => {
    const v = getContext(key);
    if (v === undefined || v === null || v === '') return undefined;
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  const num = (key: string): number | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) {
      issues.push(
        `-c ${key}=${v}: not a number (${INFRA_CONTEXT_KEYS[key as keyof typeof INFRA_CONTEXT_KEYS] ?? key})`,
      );
      return undefined;
    }
    return n;
  };
  const bool = (key: string): boolean | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (v === 'true' || v === 'false') return v === 'true';
    issues.push(`-c ${key}=${v}: use true or false`);
    return undefined;
  };

  let doc: Record<string, unknown> = {};
  const configPath = str('config');
  if (configPath !== undefined) {
    const file = path.resolve(baseDir, configPath);
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        issues.push(`-c config=${configPath}: the file must hold a JSON object (HTC-Grid's grid config format)`);
      } else {
        doc = parsed as Record<string, unknown>;
      }
    } catch (err) {
      issues.push(
        `-c config=${configPath}: cannot read it as JSON (${(err as Error).message}): pass a grid config JSON file`,
      );
    }
  }

  const overrides: Record<string, unknown> = {};
  const docKeys = new Set([...Object.keys(gridConfigSchema.shape), ...LAMBDA_KEYS]);
  for (const key of docKeys) {
    const v = getContext(key);
    if (v !== undefined && key !== 'agent_configuration') overrides[key] = v;
  }
  for (const [alias, key] of Object.entries(ALIASES)) {
    const v = getContext(alias);
    if (v !== undefined) overrides[key] = v;
  }
  const merged = applyOverrides(doc, overrides);
  // In AWS one agent task drives `slots` Lambda containers; HTC-Grid's shape (one each) unless asked otherwise.
  if (merged.slots === undefined) merged.slots = 1;
  if (merged.inline_payload_max_bytes === undefined) merged.inline_payload_max_bytes = AWS_INLINE_PAYLOAD_MAX_BYTES;

  let config: GridConfig | undefined;
  try {
    config = compileConfig(merged, configPath ? `grid config ${configPath} with -c overrides` : 'grid config (-c)');
  } catch (err) {
    if (err instanceof ConfigError) issues.push(...err.issues);
    else throw err;
  }

  const workerDirRaw = str('worker');
  const workerZipRaw = str('worker_zip');
  const workerDir = workerDirRaw !== undefined ? path.resolve(baseDir, workerDirRaw) : undefined;
  const workerZip = workerZipRaw !== undefined ? path.resolve(baseDir, workerZipRaw) : undefined;
  if (workerDir !== undefined && workerZip !== undefined) {
    issues.push('-c worker and -c worker_zip: give only one of them');
  }
  if (workerDir === undefined && workerZip === undefined) {
    issues.push('-c worker: not set: pass the worker folder, e.g. -c worker=workers/python/mock-compute');
  }
  if (workerDir !== undefined && !isDirectory(workerDir)) {
    issues.push(`-c worker=${workerDirRaw}: no such folder: pass the folder holding the handler module`);
  }
  if (workerZip !== undefined && !fs.existsSync(workerZip)) {
    issues.push(`-c worker_zip=${workerZipRaw}: no such file: build it with \`htcgrid bundle\``);
  }

  const settings = {
    taskCpu: num('cpu'),
    taskMemoryMiB: num('memory'),
    spot: bool('spot'),
    natGateways: num('nat_gateways'),
    targetBacklogPerAgent: num('scaling_target'),
    ec2InstanceType: str('ec2_instance_type'),
    ec2MaxInstances: num('ec2_max_instances'),
  };
  if (settings.ec2InstanceType !== undefined && !/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(settings.ec2InstanceType)) {
    issues.push(`-c ec2_instance_type=${settings.ec2InstanceType}: not an instance type: use e.g. c6i.2xlarge`);
  }
  if (settings.ec2MaxInstances !== undefined && settings.ec2InstanceType === undefined) {
    issues.push('-c ec2_max_instances: only applies with -c ec2_instance_type');
  }
  const stackName = str('stack_name') ?? (config ? `HtcGrid-${config.gridName}` : 'HtcGrid');
  if (!/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stackName)) {
    issues.push(`-c stack_name=${stackName}: use letters, digits and dashes, starting with a letter`);
  }
  const retainData = bool('retain_data');
  const reaperRaw = str('reaper_entry');
  const reaperEntry = reaperRaw !== undefined ? path.resolve(baseDir, reaperRaw) : undefined;
  if (reaperEntry !== undefined && !fs.existsSync(reaperEntry)) {
    issues.push(`-c reaper_entry=${reaperRaw}: no such file: pass a file exporting the reaper's handler`);
  }
  const tableCapacity = tableCapacityFromContext(str, num, issues);
  if (issues.length > 0 || config === undefined) throw new ConfigError(issues);
  return {
    config,
    workerDir,
    workerZip,
    stackName,
    reaperEntry,
    tableCapacity,
    retainData: retainData ?? true,
    ...settings,
  };
}

/** `-c table_capacity=...` and its bounds; problems are added to `issues`. */
function tableCapacityFromContext(
  str: (key: string) => string | undefined,
  num: (key: string) => number | undefined,
  issues: string[],
): TaskTableCapacity | undefined {
  const mode = str('table_capacity');
  const bounds = ['table_max_write_units', 'table_min_write_units', 'table_max_read_units', 'table_target_utilization'];
  if (mode === undefined || mode === 'on-demand') {
    for (const key of bounds) {
      if (str(key) !== undefined) issues.push(`-c ${key}: only applies with -c table_capacity=provisioned`);
    }
    return mode === undefined ? undefined : { mode: 'on-demand' };
  }
  if (mode !== 'provisioned') {
    issues.push(`-c table_capacity=${mode}: use on-demand or provisioned`);
    return undefined;
  }
  const maxWriteUnits = num('table_max_write_units');
  if (maxWriteUnits === undefined) {
    issues.push('-c table_max_write_units: required with -c table_capacity=provisioned (e.g. 3000 for ≈ 1000 tasks/s)');
    return undefined;
  }
  const capacity: TaskTableCapacity = {
    mode: 'provisioned',
    maxWriteUnits,
    minWriteUnits: num('table_min_write_units'),
    maxReadUnits: num('table_max_read_units'),
    targetUtilizationPercent: num('table_target_utilization'),
  };
  issues.push(...capacityIssues(capacity).map((issue) => `-c table_capacity=provisioned: ${issue}`));
  return capacity;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The stack properties the settings stand for; the app and the tests build the stack from this one mapping. */
export function gridStackProps(settings: GridAppSettings): HtcGridStackProps {
  return {
    config: settings.config,
    workerDir: settings.workerDir,
    workerZip: settings.workerZip,
    taskCpu: settings.taskCpu,
    taskMemoryMiB: settings.taskMemoryMiB,
    spot: settings.spot,
    ec2Capacity: settings.ec2InstanceType
      ? {
          instanceType: new ec2.InstanceType(settings.ec2InstanceType),
          maxInstances: settings.ec2MaxInstances,
          spot: settings.spot,
        }
      : undefined,
    natGateways: settings.natGateways,
    targetBacklogPerAgent: settings.targetBacklogPerAgent,
    reaperEntry: settings.reaperEntry,
    tableCapacity: settings.tableCapacity,
    removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
  };
}
