// HtcGrid: the whole grid in one construct — buckets, queues, table, worker zip, compute (ECS or EKS), reaper, monitoring.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { GridConfig } from '../core/config';
import { taskMetricNamespace, type AwsGridResources } from '../core/grid-resources';
import { clientConfigurationDocument } from './client-configuration';
import { CompletionNoticeQueues } from './completion-notice-queues';
import { instanceTypeArchitecture } from './cpu-architecture';
import { DataPlaneBucket, expiryDaysOf } from './data-plane-bucket';
import { GridApi } from './grid-api';
import { ConfigError } from '../core/errors';
import type { ComputeKind, ComputePlane, ComputePlaneProps } from './compute-plane';
import { EcsComputePlane, type EcsComputePlaneProps } from './ecs-compute-plane';
import { EksComputePlane, type EksComputePlaneProps } from './eks-compute-plane';
import { GridMonitoring } from './grid-monitoring';
import { GridTaskTable, type TaskTableCapacity } from './grid-task-table';
import { Reaper } from './reaper';
import { TaskQueues } from './task-queues';
import { WorkerBucket } from './worker-bucket';
import { WorkerZipDeployment, type PipPlatform } from './worker-zip-deployment';

/** The compute plane's props a grid passes through (see `EcsComputePlaneProps` for each). */
export type HtcGridComputeProps = Pick<
  EcsComputePlaneProps,
  | 'vpc'
  | 'natGateways'
  | 'taskCpu'
  | 'taskMemoryMiB'
  | 'cpuArchitecture'
  | 'spot'
  | 'ec2Capacity'
  | 'targetBacklogPerAgent'
  | 'agentImage'
>;

/** The EKS plane's own props a grid passes through (see `EksComputePlaneProps` for each). */
export type HtcGridEksProps = Pick<
  EksComputePlaneProps,
  'existingCluster' | 'agentImageUri' | 'lambdaImageUri' | 'initImageUri' | 'installKeda'
>;

export interface HtcGridProps extends HtcGridComputeProps {
  /**
   * Where the agents run: `ecs` (Fargate, or EC2 with `ec2Capacity`) or `eks` (a new EKS Auto Mode cluster, or
   * `eks.existingCluster`). The configuration, the stack outputs and the client are the same on both.
   * @default 'ecs'
   */
  readonly compute?: ComputeKind;
  /**
   * EKS settings, with `compute: 'eks'`. `taskCpu` (CPU units, 1024 = one vCPU) and `taskMemoryMiB` size the pod.
   * @default - a new cluster, images as on ECS, KEDA installed
   */
  readonly eks?: HtcGridEksProps;
  /** The compiled grid configuration (`compileConfig`): handler names, runtime, sizing, timeouts. */
  readonly config: GridConfig;
  /**
   * Folder of the worker to bundle and deploy. Exactly one of `workerDir` and `workerZip`.
   * @default - none
   */
  readonly workerDir?: string;
  /**
   * A prebuilt worker zip to deploy as is (it must hold the configured handler).
   * @default - none
   */
  readonly workerZip?: string;
  /**
   * Install the worker's Python requirements for the Lambda platform or for the synthesizing machine.
   * @default 'lambda'
   */
  readonly pipPlatform?: PipPlatform;
  /**
   * Extra `pip install` arguments for the worker's requirements (e.g. a local wheelhouse).
   * @default []
   */
  readonly pipArgs?: readonly string[];
  /**
   * Reaper handler source.
   * @default - lib/runtime/reaper-handler.ts
   */
  readonly reaperEntry?: string;
  /**
   * Removal policy of the buckets and the table (queues are always destroyed).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * How the task table pays for throughput: on demand, or provisioned with auto scaling for steady grids.
   * @default { mode: 'on-demand' }
   */
  readonly tableCapacity?: TaskTableCapacity;
  /**
   * Tasks per second the grid must sustain from its first minute: the table and its indexes are pre-warmed for it.
   * @default - not pre-warmed (a fresh table serves about 1,300 small tasks/s and doubles at most every 30 minutes)
   */
  readonly peakTasksPerSecond?: number;
  /**
   * Topic the grid's alarms notify.
   * @default - no notification
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Days after which data-plane objects (large payloads and results) expire.
   * @default - `task_retention_sec` rounded up to whole days (7): objects expire with the tasks that name them
   */
  readonly resultExpiryDays?: number;
}

/** A complete grid. Clients reach it with IAM: `grantSubmit(principal)`; `resources` is what they need to know. */
export class HtcGrid extends Construct {
  readonly config: GridConfig;
  readonly workerBucket: WorkerBucket;
  readonly dataPlane: DataPlaneBucket;
  readonly queues: TaskQueues;
  readonly table: GridTaskTable;
  readonly worker: WorkerZipDeployment;
  /** Where the agents run: an `EcsComputePlane` (the default) or an `EksComputePlane`. */
  readonly compute: ComputePlane;
  readonly reaper: Reaper;
  readonly monitoring: GridMonitoring;
  /** The HTTP API (function URL, AWS_IAM): `api.grantInvoke(principal)` lets a client call it. */
  readonly api: GridApi;
  /** The name space of the clients' completion notice queues, and its grants. */
  readonly noticeQueues: CompletionNoticeQueues;

  constructor(scope: Construct, id: string, props: HtcGridProps) {
    super(scope, id);
    const cfg = props.config;
    this.config = cfg;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.workerBucket = new WorkerBucket(this, 'WorkerBucket', { removalPolicy });
    this.dataPlane = new DataPlaneBucket(this, 'DataPlane', {
      removalPolicy,
      expiryDays: props.resultExpiryDays ?? expiryDaysOf(cfg.retentionMs),
    });
    this.queues = new TaskQueues(this, 'Queues', {
      priorityLevels: cfg.priorityLevels,
      visibilityTimeout: Duration.millis(cfg.queueVisibilityMs),
    });
    this.noticeQueues = new CompletionNoticeQueues(this, 'NoticeQueues');
    this.table = new GridTaskTable(this, 'Tasks', {
      removalPolicy,
      capacity: props.tableCapacity,
      peakTasksPerSecond: props.peakTasksPerSecond,
    });
    this.worker = new WorkerZipDeployment(this, 'Worker', {
      bucket: this.workerBucket.bucket,
      sourceDir: props.workerDir,
      zipFile: props.workerZip,
      runtime: cfg.runtime.name,
      handlerFileName: cfg.handlerFileName,
      handlerFunctionName: cfg.handlerFunctionName,
      pythonExecutable: cfg.pythonExecutable,
      architecture:
        props.cpuArchitecture ??
        (props.ec2Capacity ? instanceTypeArchitecture(props.ec2Capacity.instanceType.toString()) : 'x86_64'),
      pipPlatform: props.pipPlatform,
      pipArgs: props.pipArgs,
    });
    this.compute = this.createCompute(props);
    // Agents must not start before their zip is in the bucket.
    for (const workload of this.compute.workloads) workload.node.addDependency(this.worker.deployment);
    this.reaper = new Reaper(this, 'Reaper', {
      table: this.table.table,
      queues: this.queues.queues,
      dataBucketName: this.dataPlane.bucket.bucketName,
      entry: props.reaperEntry,
      configJson: JSON.stringify(clientConfigurationDocument(cfg.document)),
    });
    this.api = new GridApi(this, 'Api', {
      table: this.table.table,
      queues: this.queues.queues,
      dataBucket: this.dataPlane.bucket,
      dataPrefix: this.dataPlane.prefix,
      configJson: JSON.stringify(clientConfigurationDocument(cfg.document)),
    });
    this.monitoring = new GridMonitoring(this, 'Monitoring', {
      queues: this.queues,
      metricNamespace: taskMetricNamespace(cfg.gridName),
      agentLogGroup: this.compute.logGroup,
      agentLogJsonKey: this.compute.logJsonKey,
      reaperLogGroup: this.reaper.logGroup,
      runningAgents: this.compute.metricRunningAgents(),
      reaperErrors: this.reaper.metricErrors(),
      alarmTopic: props.alarmTopic,
    });
  }

  /** Step: the compute plane the props choose, given the grid's table, queues, buckets and worker. */
  protected createCompute(props: HtcGridProps): ComputePlane {
    const common: ComputePlaneProps = {
      config: props.config,
      worker: this.worker,
      table: this.table.table,
      queues: this.queues.queues,
      dataBucket: this.dataPlane.bucket,
      dataPrefix: this.dataPlane.prefix,
      vpc: props.vpc,
      natGateways: props.natGateways,
      cpuArchitecture: props.cpuArchitecture,
      spot: props.spot,
      targetBacklogPerAgent: props.targetBacklogPerAgent,
      noticeQueues: this.noticeQueues,
    };
    if ((props.compute ?? 'ecs') === 'eks') {
      const issues = [
        ...(props.ec2Capacity ? ['ec2Capacity: EC2 capacity is for ECS; on EKS the cluster brings the nodes'] : []),
        ...(props.agentImage ? ['agentImage: an ECS image; on EKS pass eks.agentImageUri'] : []),
      ];
      if (issues.length > 0) throw new ConfigError(issues);
      return new EksComputePlane(this, 'Compute', {
        ...common,
        ...props.eks,
        podCpuMillis: props.taskCpu !== undefined ? Math.round((props.taskCpu * 1000) / 1024) : undefined,
        podMemoryMiB: props.taskMemoryMiB,
      });
    }
    if (props.eks) throw new ConfigError(['eks: EKS settings need compute: eks']);
    return new EcsComputePlane(this, 'Compute', {
      ...common,
      taskCpu: props.taskCpu,
      taskMemoryMiB: props.taskMemoryMiB,
      ec2Capacity: props.ec2Capacity,
      agentImage: props.agentImage,
    });
  }

  /** What a client needs to reach the grid (deploy-time values). */
  get resources(): AwsGridResources {
    return {
      region: Stack.of(this).region,
      tableName: this.table.table.tableName,
      queueUrls: this.queues.queueUrls,
      dataBucket: this.dataPlane.bucket.bucketName,
      workerBucket: this.workerBucket.bucket.bucketName,
      workerKey: this.worker.key,
      noticeQueuePrefix: this.noticeQueues.namePrefix,
    };
  }

  /**
   * Everything a client does: create sessions and tasks, enqueue them, watch states, fetch results, cancel, and
   * receive completion notices on a queue of its own (`noticeQueues`).
   */
  grantSubmit(grantee: iam.IGrantable): iam.Grant {
    return this.table
      .grantReadWriteData(grantee)
      .combine(this.queues.grantSend(grantee))
      .combine(this.dataPlane.grantReadWrite(grantee))
      .combine(this.noticeQueues.grantReceive(grantee));
  }

  /** Queued plus in-flight tasks over all priority levels (what the agents scale on). */
  metricBacklog(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return this.queues.metricBacklog(props);
  }

  /** Age of the oldest queued task, over all priority levels. */
  metricOldestMessageAge(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return this.queues.metricOldestMessageAge(props);
  }

  /** Tasks that ended succeeded, per period. */
  metricTasksSucceeded(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricTasksSucceeded(props);
  }

  /** Tasks that ended failed (after their last attempt), per period. */
  metricTasksFailed(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricTasksFailed(props);
  }

  /** Attempts that failed and were retried, per period. */
  metricTasksRetried(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricTasksRetried(props);
  }

  /** Time from submission (or the previous attempt's end) to the claim, in ms. @default statistic p95 */
  metricTaskQueuedTime(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricTaskQueuedTime(props);
  }

  /** Time from the claim to the end of the attempt, in ms. @default statistic p95 */
  metricTaskRunTime(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricTaskRunTime(props);
  }

  /** Failed attempts (retried or final) with this error type, per period. */
  metricFailedAttempts(errorType: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.monitoring.metricFailedAttempts(errorType, props);
  }

  /** Share of the tasks that ended failed, per 5 minutes. */
  metricFailureRate(props: cloudwatch.MathExpressionOptions = {}): cloudwatch.MathExpression {
    return this.monitoring.metricFailureRate(props);
  }

  /** Agents running (ECS tasks of the service, or agent pods on EKS). */
  metricRunningAgents(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.compute.metricRunningAgents(props);
  }
}
