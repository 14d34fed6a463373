// Reads the grid configuration of a CDK app: `-c config=<file>` (HTC-Grid JSON) with `-c key=value` overrides winning.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { applyOverrides, compileConfig, type GridConfig } from '../core/config';
import { BundlingError, ConfigError } from '../core/errors';
import { resolveRuntime, type RuntimeFamily } from '../core/runtime-kind';
import { detectWorkerRuntime } from '../packaging';
import { priorityLevelIssue } from './backlog-scaling';
import type { ComputeKind } from './compute-plane';
import { parseContext, type InfraContext } from './context-keys';
import { instanceTypeArchitecture, type CpuArchitecture } from './cpu-architecture';
import { MAX_SLOTS } from './grid-unit';
import { capacityIssues, type TaskTableCapacity } from './grid-task-table';
import { defaultHandlerNames, readZip, zipRuntimeFamilies } from './handler-check';
import type { HtcGridStackProps } from './htc-grid-stack';
import { taskSizeIssues } from './task-size';
import type { PipPlatform } from './worker-zip-deployment';

/**
 * Inline limit in AWS unless configured: an inline kilobyte is rewritten by the create, the claim and the completion
 * (3 write units, $1.9 per million tasks on demand), while an S3 PUT and GET cost $5.4 per million whatever the size,
 * so inlining pays up to about 3 KiB. (Locally, where writes are cheap, the schema's 32 KiB default stands.)
 */
export const AWS_INLINE_PAYLOAD_MAX_BYTES = 3 * 1024;

/** The runtime a worker's files point at gets the oldest Lambda runtime AWS supports for its family. */
const DETECTED_RUNTIMES: Readonly<Record<RuntimeFamily, string>> = {
  python: 'python3.12',
  node: 'nodejs22.x',
  provided: 'provided.al2023',
};

/** The app's inputs after validation. */
export interface GridAppSettings {
  readonly config: GridConfig;
  readonly workerDir?: string;
  readonly workerZip?: string;
  readonly taskCpu?: number;
  readonly taskMemoryMiB?: number;
  readonly cpuArchitecture?: CpuArchitecture;
  readonly spot?: boolean;
  readonly natGateways?: number;
  readonly targetBacklogPerAgent?: number;
  /** Where the agents run (`-c compute`). */
  readonly compute?: ComputeKind;
  /** An existing EKS cluster to run on (`-c eks_cluster_name`), with `-c eks_kubectl_role_arn`. */
  readonly eksClusterName?: string;
  readonly eksKubectlRoleArn?: string;
  /** EC2 instance type to run agents on instead of Fargate. */
  readonly ec2InstanceType?: string;
  readonly ec2MaxInstances?: number;
  readonly reaperEntry?: string;
  readonly tableCapacity?: TaskTableCapacity;
  readonly peakTasksPerSecond?: number;
  readonly alarmTopicArn?: string;
  readonly pipPlatform?: PipPlatform;
  readonly pipArgs?: readonly string[];
  /** Keep buckets and table when the stack is deleted. */
  readonly retainData: boolean;
  readonly stackName: string;
  /** HTC-Grid keys given and ignored on purpose, each with why (the app shows them as warnings). */
  readonly ignored: readonly string[];
}

/**
 * Builds the settings from the app's context (`app.node.getAllContext()`); `baseDir` resolves relative paths (the
 * directory `cdk` runs in). Unknown keys, bad values and settings that cannot deploy are all reported at once, as
 * a `ConfigError` naming the key, the value and the fix.
 */
export function gridSettingsFromContext(
  context: Readonly<Record<string, unknown>>,
  baseDir: string = process.cwd(),
): GridAppSettings {
  const parsed = parseContext(context);
  const issues = [...parsed.issues];
  const ctx = parsed.infra;
  const worker = workerPaths(ctx, baseDir, issues);
  const doc = readConfigFile(ctx.config, baseDir, issues);
  const merged = applyOverrides(doc, parsed.configOverrides);
  applyAwsDefaults(merged, worker);
  let config: GridConfig | undefined;
  try {
    config = compileConfig(merged, ctx.config ? `grid config ${ctx.config} with -c overrides` : 'grid config (-c)');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
  }
  const tableCapacity = tableCapacityOf(ctx, issues);
  if (config) issues.push(...deployabilityIssues(ctx, config));
  const reaperEntry = ctx.reaper_entry !== undefined ? path.resolve(baseDir, ctx.reaper_entry) : undefined;
  if (reaperEntry !== undefined && !fs.existsSync(reaperEntry)) {
    issues.push(`-c reaper_entry=${ctx.reaper_entry}: no such file: pass a file exporting the reaper's handler`);
  }
  if (issues.length > 0 || config === undefined) throw new ConfigError(issues);
  return {
    config,
    ...worker,
    taskCpu: ctx.cpu,
    taskMemoryMiB: ctx.memory,
    cpuArchitecture: ctx.cpu_architecture as CpuArchitecture | undefined,
    spot: ctx.spot,
    natGateways: ctx.nat_gateways,
    targetBacklogPerAgent: ctx.scaling_target ?? ctx.htc_agent_target_value,
    compute: ctx.compute,
    eksClusterName: ctx.eks_cluster_name,
    eksKubectlRoleArn: ctx.eks_kubectl_role_arn,
    ec2InstanceType: ctx.ec2_instance_type,
    ec2MaxInstances: ctx.ec2_max_instances,
    reaperEntry,
    tableCapacity,
    peakTasksPerSecond: ctx.peak_tasks_per_sec,
    alarmTopicArn: ctx.alarm_topic_arn,
    pipPlatform: ctx.pip_platform,
    pipArgs: ctx.pip_args?.split(/\s+/).filter(Boolean),
    retainData: ctx.retain_data ?? true,
    stackName: ctx.stack_name ?? `HtcGrid-${config.gridName}`,
    ignored: [...parsed.ignored, ...(config.ignoredKeys ?? [])],
  };
}

/** `-c worker` or `-c worker_zip`, resolved against `baseDir` and checked to exist. */
function workerPaths(ctx: InfraContext, baseDir: string, issues: string[]): { workerDir?: string; workerZip?: string } {
  const workerDir = ctx.worker !== undefined ? path.resolve(baseDir, ctx.worker) : undefined;
  const workerZip = ctx.worker_zip !== undefined ? path.resolve(baseDir, ctx.worker_zip) : undefined;
  if (workerDir !== undefined && workerZip !== undefined) issues.push('-c worker and -c worker_zip: give only one');
  if (workerDir === undefined && workerZip === undefined) {
    issues.push('-c worker: not set: pass the worker folder, e.g. -c worker=workers/python/mock-compute');
  }
  if (workerDir !== undefined && !isDirectory(workerDir)) {
    issues.push(`-c worker=${ctx.worker}: no such folder: pass the folder holding the handler module`);
  }
  if (workerZip !== undefined && !fs.existsSync(workerZip)) {
    issues.push(`-c worker_zip=${ctx.worker_zip}: no such file: build it with \`htcgrid bundle\``);
  }
  return {
    ...(workerDir !== undefined && isDirectory(workerDir) ? { workerDir } : {}),
    ...(workerZip !== undefined && fs.existsSync(workerZip) ? { workerZip } : {}),
  };
}

/** The `-c config` file's JSON object (empty without one). */
function readConfigFile(configPath: string | undefined, baseDir: string, issues: string[]): Record<string, unknown> {
  if (configPath === undefined) return {};
  try {
    const parsed = JSON.parse(fs.readFileSync(path.resolve(baseDir, configPath), 'utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
    issues.push(`-c config=${configPath}: the file must hold a JSON object (HTC-Grid's grid config format)`);
  } catch (err) {
    issues.push(
      `-c config=${configPath}: cannot read it as JSON (${(err as Error).message}): pass a grid config JSON file`,
    );
  }
  return {};
}

/**
 * What the configuration leaves open gets the AWS shape: one slot (HTC-Grid's one Lambda per agent), the AWS inline
 * limit, and, as `htcgrid run` and `htcgrid bundle` do, the runtime the worker's files point at; without handler
 * names, the runtime's default handler (a TypeScript folder deploys on Node.js as `index.handler`).
 */
function applyAwsDefaults(doc: Record<string, unknown>, worker: { workerDir?: string; workerZip?: string }): void {
  if (doc.slots === undefined) doc.slots = 1;
  if (doc.inline_payload_max_bytes === undefined) doc.inline_payload_max_bytes = AWS_INLINE_PAYLOAD_MAX_BYTES;
  const lambda = (doc.agent_configuration as { lambda: Record<string, unknown> }).lambda;
  const family = lambda.runtime !== undefined ? familyOf(lambda.runtime) : workerFamily(worker);
  if (family === undefined) return;
  lambda.runtime ??= DETECTED_RUNTIMES[family];
  if (lambda.lambda_handler_file_name === undefined && lambda.lambda_handler_function_name === undefined) {
    const names = defaultHandlerNames(family);
    lambda.lambda_handler_file_name = names.fileName;
    lambda.lambda_handler_function_name = names.functionName;
  }
}

/** The family of a configured runtime name (`undefined` when it is not one: compileConfig reports that). */
function familyOf(runtime: unknown): RuntimeFamily | undefined {
  try {
    return typeof runtime === 'string' ? resolveRuntime(runtime).family : undefined;
  } catch (err) {
    if (err instanceof ConfigError) return undefined;
    throw err;
  }
}

/** The runtime family of the worker's files, when they tell one (the worker construct reports the rest). */
function workerFamily(worker: { workerDir?: string; workerZip?: string }): RuntimeFamily | undefined {
  try {
    if (worker.workerDir) return detectWorkerRuntime(worker.workerDir);
    const families = worker.workerZip ? zipRuntimeFamilies(readZip(worker.workerZip).names) : [];
    return families.length === 1 ? families[0] : undefined;
  } catch (err) {
    if (err instanceof BundlingError) return undefined;
    throw err;
  }
}

/** Settings that are each valid but cannot deploy together, or not on AWS. */
function deployabilityIssues(ctx: InfraContext, config: GridConfig): string[] {
  const issues: string[] = [];
  const fargate = ctx.ec2_instance_type === undefined;
  const eks = ctx.compute === 'eks';
  if (!eks) issues.push(...taskSizeIssues({ fargate, cpu: ctx.cpu ?? 1024, memoryMiB: ctx.memory ?? 3072 }));
  if (eks && !fargate) {
    issues.push('-c ec2_instance_type: EC2 capacity is for ECS; with -c compute=eks the cluster brings the nodes');
  }
  for (const key of ['eks_cluster_name', 'eks_kubectl_role_arn'] as const) {
    if (ctx[key] !== undefined && !eks) issues.push(`-c ${key}: only applies with -c compute=eks`);
  }
  if (ctx.eks_kubectl_role_arn !== undefined && ctx.eks_cluster_name === undefined) {
    issues.push('-c eks_kubectl_role_arn: only applies with -c eks_cluster_name (an existing cluster)');
  }
  if (ctx.eks_cluster_name !== undefined && ctx.nat_gateways !== undefined) {
    issues.push('-c nat_gateways: an existing EKS cluster brings its own VPC; remove it');
  }
  const levels = priorityLevelIssue(config.priorityLevels);
  if (levels) issues.push(levels);
  if (config.slots > MAX_SLOTS) {
    issues.push(`slots: ${config.slots} Lambda containers per agent task: use 1..${MAX_SLOTS} and raise max_agents`);
  }
  if (ctx.ec2_max_instances !== undefined && fargate) {
    issues.push('-c ec2_max_instances: only applies with -c ec2_instance_type');
  }
  if (!fargate && ctx.cpu_architecture !== undefined) {
    const arch = instanceTypeArchitecture(ctx.ec2_instance_type!);
    if (arch !== ctx.cpu_architecture) {
      issues.push(
        `cpu_architecture: ${ctx.cpu_architecture} does not match ec2_instance_type ${ctx.ec2_instance_type} (${arch}): leave it out or pick an instance type of that architecture`,
      );
    }
  }
  return issues;
}

/** `-c table_capacity=...` and its bounds; problems are added to `issues`. */
function tableCapacityOf(ctx: InfraContext, issues: string[]): TaskTableCapacity | undefined {
  const bounds = ['table_max_write_units', 'table_min_write_units', 'table_max_read_units', 'table_target_utilization'];
  if (ctx.table_capacity !== 'provisioned') {
    for (const key of bounds.filter((k) => ctx[k as keyof InfraContext] !== undefined)) {
      issues.push(`-c ${key}: only applies with -c table_capacity=provisioned`);
    }
    return ctx.table_capacity === undefined ? undefined : { mode: 'on-demand' };
  }
  if (ctx.table_max_write_units === undefined) {
    issues.push('-c table_max_write_units: required with -c table_capacity=provisioned (e.g. 3000 for ≈ 1000 tasks/s)');
    return undefined;
  }
  const capacity: TaskTableCapacity = {
    mode: 'provisioned',
    maxWriteUnits: ctx.table_max_write_units,
    minWriteUnits: ctx.table_min_write_units,
    maxReadUnits: ctx.table_max_read_units,
    targetUtilizationPercent: ctx.table_target_utilization,
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
    cpuArchitecture: settings.cpuArchitecture,
    spot: settings.spot,
    compute: settings.compute,
    eks:
      settings.compute === 'eks' && settings.eksClusterName
        ? {
            existingCluster: { clusterName: settings.eksClusterName, kubectlRoleArn: settings.eksKubectlRoleArn },
          }
        : undefined,
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
    peakTasksPerSecond: settings.peakTasksPerSecond,
    pipPlatform: settings.pipPlatform,
    pipArgs: settings.pipArgs,
    alarmTopicArn: settings.alarmTopicArn,
    removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
  };
}
