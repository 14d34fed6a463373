// The seam between a grid and where its agents run: what every compute plane (ECS, EKS) takes, what it offers the
// grid, and the parts they share so the two cannot drift: the agent's configuration and environment, the unit of
// work, its AWS permissions and the checks on the props.
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import type { GridConfig } from '../core/config';
import { GRID_ENV, resourcesToEnv } from '../core/grid-resources';
import type { WorkerRuntime } from '../core/runtime-kind';
import { priorityLevelIssue } from './backlog-scaling';
import type { CompletionNoticeQueues } from './completion-notice-queues';
import type { CpuArchitecture } from './cpu-architecture';
import { grantDataPrefix } from './data-plane-bucket';
import { gridUnit, MAX_SLOTS, type GridUnit } from './grid-unit';
import { grantGetObject } from './worker-bucket';

/** Where a grid's agents run: `ecs` (Fargate, or EC2 with `ec2Capacity`) or `eks` (a Kubernetes cluster). */
export type ComputeKind = 'ecs' | 'eks';
export const COMPUTE_KINDS: readonly ComputeKind[] = ['ecs', 'eks'];

/** Where the worker zip is and how to call it; `WorkerZipDeployment` provides it. */
export interface WorkerLocation {
  readonly bucket: s3.IBucket;
  readonly key: string;
  readonly handler: string;
  readonly handlerFileName: string;
  readonly handlerFunctionName: string;
  readonly runtime: WorkerRuntime;
}

/** SQS's longest visibility timeout: no task may run longer. */
const MAX_TASK_TIMEOUT_SEC = 12 * 3600;

/** What every compute plane takes. */
export interface ComputePlaneProps {
  /** The compiled grid configuration (handler names, timeouts, sizing, what the agent reads as `HTCGRID_CONFIG`). */
  readonly config: GridConfig;
  /** The worker zip to run. */
  readonly worker: WorkerLocation;
  /** The task table. */
  readonly table: dynamodb.ITable;
  /** The task queues, lowest priority first. */
  readonly queues: readonly sqs.IQueue[];
  /** The data-plane bucket. */
  readonly dataBucket: s3.IBucket;
  /**
   * The clients' completion notice queues, which agents send to as tasks finish.
   * @default - none: agents get no grant, and clients' handles find results by polling
   */
  readonly noticeQueues?: CompletionNoticeQueues;
  /**
   * Key prefix of the grid's payloads and results in `dataBucket`.
   * @default 'data/'
   */
  readonly dataPrefix?: string;
  /**
   * VPC to run in.
   * @default - a new `GridVpc`
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of `vpc` the agents run in.
   * @default - the private subnets of the VPC
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * NAT gateways of the new VPC (ignored with `vpc`).
   * @default - 0 on ECS, 1 on EKS (see `EksComputePlaneProps.natGateways`)
   */
  readonly natGateways?: number;
  /**
   * CPU architecture of the agents.
   * @default 'x86_64' (on ECS with `ec2Capacity`: the instance type's)
   */
  readonly cpuArchitecture?: CpuArchitecture;
  /**
   * Run agents on Spot capacity (cheaper, may be interrupted: the agent drains and the reaper re-queues what is lost).
   * @default false
   */
  readonly spot?: boolean;
  /**
   * Target of the backlog scaling: queued plus in-flight messages per running agent.
   *
   * An agent holds one task per slot; the default keeps about one more waiting per slot, HTC-Grid's target of 2.
   * @default 2 × slots
   */
  readonly targetBacklogPerAgent?: number;
  /**
   * How long a stopping agent gets to drain (stop receiving, finish or release running tasks).
   * @default Duration.seconds(120) (Fargate's maximum)
   */
  readonly stopTimeout?: Duration;
  /**
   * Log retention of the agents' logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/** What a grid needs of its compute plane, whichever it is. */
export interface ComputePlane extends IConstruct {
  readonly kind: ComputeKind;
  /** The VPC the agents run in (none known for an existing EKS cluster). */
  readonly vpc?: ec2.IVpc;
  /** The unit of work one agent runs with, as data (`gridUnit`): the same on every plane. */
  readonly unit: GridUnit;
  /** CPU architecture of the agents (and of the agent image and the worker's wheels). */
  readonly cpuArchitecture: CpuArchitecture;
  /** The document the agent reads from `HTCGRID_CONFIG` (deploy-time tokens included). */
  readonly agentConfiguration: Record<string, unknown>;
  /** Queued plus in-flight messages per running agent: what the agents scale on. */
  readonly backlogPerAgentTarget: number;
  /** The agents' log group, whose `agent-stats` lines become task metrics (none where the plane has no such group). */
  readonly logGroup?: logs.ILogGroup;
  /** The key of `logGroup`'s events the agent's JSON line is merged under (none: the event is the line). */
  readonly logJsonKey?: string;
  /** The constructs that start agents: they must wait for the worker zip to be in its bucket. */
  readonly workloads: readonly IConstruct[];
  /** Running agents. */
  metricRunningAgents(props?: cloudwatch.MetricOptions): cloudwatch.Metric;
}

/** The props every plane checks alike, with defaults applied. */
export interface CommonPlaneSettings {
  readonly slots: number;
  readonly targetBacklogPerAgent: number;
  readonly taskTimeoutSec: number;
}

/** The settings every plane derives from its props: the shared ones and the agents' CPU architecture. */
export interface PlaneSettingsBase extends CommonPlaneSettings {
  readonly architecture: CpuArchitecture;
}

/**
 * What the ECS and EKS planes set up alike, first: their props checked into settings (by the plane's own check,
 * which throws every problem at once), the CPU architecture and scaling target read from them, and the agent's
 * configuration document; and the shape of their running-agents metric. Each plane adds the resources that run its
 * unit of work (`planeUnit`).
 */
export abstract class ComputePlaneBase<
  Props extends ComputePlaneProps,
  Settings extends PlaneSettingsBase,
> extends Construct {
  /** CPU architecture of the agents (and of the agent image and the worker's wheels). */
  readonly cpuArchitecture: CpuArchitecture;
  /** The document the agent reads from `HTCGRID_CONFIG` (deploy-time tokens included). */
  readonly agentConfiguration: Record<string, unknown>;
  /** Queued plus in-flight messages per running agent: what the agents scale on. */
  readonly backlogPerAgentTarget: number;
  protected readonly props: Props;
  protected readonly settings: Settings;

  protected constructor(scope: Construct, id: string, props: Props, checkSettings: (props: Props) => Settings) {
    super(scope, id);
    this.props = props;
    this.settings = checkSettings(props);
    this.cpuArchitecture = this.settings.architecture;
    this.backlogPerAgentTarget = this.settings.targetBacklogPerAgent;
    this.agentConfiguration = agentConfigurationDocument(props.config, props.worker);
  }

  /** Container Insights' count of running agents: `metricName` in `namespace`, averaged over a minute. */
  protected runningAgentsMetric(
    namespace: string,
    metricName: string,
    dimensionsMap: Record<string, string>,
    props: cloudwatch.MetricOptions,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace,
      metricName,
      dimensionsMap,
      statistic: 'Average',
      period: Duration.minutes(1),
      ...props,
    });
  }
}

/** Applies the shared defaults and adds the problems every plane has with the props to `issues`. */
export function commonPlaneSettings(props: ComputePlaneProps, issues: string[]): CommonPlaneSettings {
  const cfg = props.config;
  const settings: CommonPlaneSettings = {
    slots: cfg.slots,
    targetBacklogPerAgent: props.targetBacklogPerAgent ?? 2 * cfg.slots,
    taskTimeoutSec: Math.ceil(cfg.taskTimeoutMs / 1000),
  };
  if (settings.slots > MAX_SLOTS) {
    issues.push(
      `slots: ${settings.slots} Lambda containers per task is too many for one task: use 1..${MAX_SLOTS} and raise max_agents instead`,
    );
  }
  if (!(settings.targetBacklogPerAgent > 0)) {
    issues.push(`scaling target: ${settings.targetBacklogPerAgent} must be a positive number of tasks per agent`);
  }
  if (settings.taskTimeoutSec > MAX_TASK_TIMEOUT_SEC) {
    issues.push(
      `task_timeout_sec: ${cfg.taskTimeoutMs / 1000} exceeds the 12 h SQS visibility limit: use at most ${MAX_TASK_TIMEOUT_SEC}`,
    );
  }
  const levels = priorityLevelIssue(props.queues.length);
  if (levels) issues.push(levels);
  return settings;
}

/** The document the agent reads from `HTCGRID_CONFIG`: the validated configuration with the worker's names filled in. */
export function agentConfigurationDocument(cfg: GridConfig, worker: WorkerLocation): Record<string, unknown> {
  const doc = cfg.document as Record<string, unknown> & {
    agent_configuration: Record<string, unknown> & { lambda: Record<string, unknown> };
  };
  return {
    ...doc,
    grid_name: cfg.gridName,
    slots: cfg.slots,
    agent_configuration: {
      ...doc.agent_configuration,
      lambda: {
        ...doc.agent_configuration.lambda,
        lambda_handler_file_name: worker.handlerFileName,
        lambda_handler_function_name: worker.handlerFunctionName,
        runtime: worker.runtime.name,
        s3_source: `s3://${worker.bucket.bucketName}/${worker.key}`,
      },
    },
  };
}

/** The unit of work of a plane (`gridUnit`), its agent environment carrying the configuration and resource names. */
export function planeUnit(
  scope: IConstruct,
  props: ComputePlaneProps,
  settings: CommonPlaneSettings & { readonly stopTimeoutSec: number },
  agentConfiguration: Record<string, unknown>,
): GridUnit {
  const { config, worker, table, queues, dataBucket } = props;
  const stack = Stack.of(scope);
  return gridUnit({
    slots: settings.slots,
    runtime: worker.runtime,
    handler: worker.handler,
    taskTimeoutSec: settings.taskTimeoutSec,
    memorySizeMb: config.memorySizeMb,
    functionName: config.functionName,
    workerBucket: worker.bucket.bucketName,
    workerKey: worker.key,
    stopTimeoutSec: settings.stopTimeoutSec,
    agentEnvironment: {
      [GRID_ENV.config]: stack.toJsonString(agentConfiguration),
      ...resourcesToEnv({
        tableName: table.tableName,
        queueUrls: queues.map((q) => q.queueUrl),
        dataBucket: dataBucket.bucketName,
        workerBucket: worker.bucket.bucketName,
        workerKey: worker.key,
      }),
      [GRID_ENV.region]: stack.region,
    },
  });
}

/**
 * Least privilege for the identity a unit runs as (ECS task role, EKS pod role): the one zip, the data prefix, the
 * table's items and indexes, the queues, sending to the clients' completion notice queues.
 */
export function grantAgentAccess(grantee: iam.IGrantable, props: ComputePlaneProps): void {
  const { worker, dataBucket, dataPrefix, table, queues, noticeQueues } = props;
  // Completion notices to the clients' own queues (one name prefix).
  noticeQueues?.grantSend(grantee);
  grantGetObject(worker.bucket, grantee, worker.key);
  grantDataPrefix(dataBucket, grantee, dataPrefix ?? 'data/', true);
  table.grant(
    grantee,
    'dynamodb:GetItem',
    'dynamodb:BatchGetItem',
    'dynamodb:Query',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:ConditionCheckItem',
    'dynamodb:TransactWriteItems',
  );
  for (const q of queues) {
    q.grantConsumeMessages(grantee);
    q.grantSendMessages(grantee);
  }
}
