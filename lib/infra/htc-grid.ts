// HtcGrid: the whole grid in one construct — buckets, queues, table, worker bundle, ECS compute, reaper, monitoring.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { GridConfig } from '../core/config';
import type { AwsGridResources } from '../core/grid-resources';
import { EcsComputePlane, type Ec2CapacityProps } from './compute-plane';
import { DataPlaneBucket } from './data-plane-bucket';
import { GridApi } from './grid-api';
import { GridMonitoring } from './grid-monitoring';
import { Reaper } from './reaper';
import { TaskQueues } from './task-queues';
import { TaskTable, type TaskTableCapacity } from './task-table';
import { WorkerBucket } from './worker-bucket';
import { WorkerBundle } from './worker-bundle';

export interface HtcGridProps {
  /** The compiled grid configuration (`compileConfig`): handler names, runtime, sizing, timeouts. */
  readonly config: GridConfig;
  /**
   * Folder of the worker to bundle and deploy. Exactly one of `workerDir` and `workerZip`.
   * @default - none
   */
  readonly workerDir?: string;
  /**
   * A prebuilt worker zip to deploy as is.
   * @default - none
   */
  readonly workerZip?: string;
  /**
   * Existing VPC for the compute plane.
   * @default - a new VPC without NAT, reaching AWS services through endpoints
   */
  readonly vpc?: ec2.IVpc;
  /**
   * NAT gateways of the new VPC.
   * @default 0
   */
  readonly natGateways?: number;
  /**
   * CPU units of one agent task (see `EcsComputePlaneProps.taskCpu`).
   * @default 1024
   */
  readonly taskCpu?: number;
  /**
   * Memory of one agent task in MiB.
   * @default 3072
   */
  readonly taskMemoryMiB?: number;
  /**
   * Run agents on Fargate Spot.
   * @default false
   */
  readonly spot?: boolean;
  /**
   * Run agents on EC2 instances instead of Fargate.
   * @default - Fargate
   */
  readonly ec2Capacity?: Ec2CapacityProps;
  /**
   * Scaling target: queued plus in-flight tasks per agent.
   * @default 2 × slots
   */
  readonly targetBacklogPerAgent?: number;
  /**
   * Agent image.
   * @default - built from docker/agent/Dockerfile at deploy time
   */
  readonly agentImage?: ecs.ContainerImage;
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
   * Days after which data-plane objects (large payloads and results) expire.
   * @default 30
   */
  readonly resultExpiryDays?: number;
}

/** A complete grid. Clients reach it with IAM: `grantSubmit(principal)`; `resources` is what they need to know. */
export class HtcGrid extends Construct {
  readonly config: GridConfig;
  readonly workerBucket: WorkerBucket;
  readonly dataPlane: DataPlaneBucket;
  readonly queues: TaskQueues;
  readonly table: TaskTable;
  readonly worker: WorkerBundle;
  readonly compute: EcsComputePlane;
  readonly reaper: Reaper;
  readonly monitoring: GridMonitoring;
  /** The HTTP API (function URL, AWS_IAM): `api.grantInvoke(principal)` lets a client call it. */
  readonly api: GridApi;

  constructor(scope: Construct, id: string, props: HtcGridProps) {
    super(scope, id);
    const cfg = props.config;
    this.config = cfg;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.workerBucket = new WorkerBucket(this, 'WorkerBucket', { removalPolicy });
    this.dataPlane = new DataPlaneBucket(this, 'DataPlane', { removalPolicy, expiryDays: props.resultExpiryDays });
    this.queues = new TaskQueues(this, 'Queues', {
      priorityLevels: cfg.priorityLevels,
      visibilityTimeout: Duration.millis(cfg.queueVisibilityMs),
    });
    this.table = new TaskTable(this, 'Tasks', { removalPolicy, capacity: props.tableCapacity });
    this.worker = new WorkerBundle(this, 'Worker', {
      bucket: this.workerBucket.bucket,
      sourceDir: props.workerDir,
      zipFile: props.workerZip,
      runtime: cfg.runtime.name,
      handlerFileName: cfg.handlerFileName,
      handlerFunctionName: cfg.handlerFunctionName,
      pythonExecutable: cfg.pythonExecutable,
    });
    this.compute = new EcsComputePlane(this, 'Compute', {
      config: cfg,
      worker: this.worker,
      table: this.table.table,
      queues: this.queues.queues,
      dataBucket: this.dataPlane.bucket,
      dataPrefix: this.dataPlane.prefix,
      vpc: props.vpc,
      natGateways: props.natGateways,
      taskCpu: props.taskCpu,
      taskMemoryMiB: props.taskMemoryMiB,
      spot: props.spot,
      ec2Capacity: props.ec2Capacity,
      targetBacklogPerAgent: props.targetBacklogPerAgent,
      agentImage: props.agentImage,
    });
    // Tasks must not start before their zip is in the bucket.
    this.compute.service.node.addDependency(this.worker.deployment);
    this.reaper = new Reaper(this, 'Reaper', {
      table: this.table.table,
      queues: this.queues.queues,
      dataBucketName: this.dataPlane.bucket.bucketName,
      configJson: Stack.of(this).toJsonString(this.compute.agentConfiguration),
      entry: props.reaperEntry,
    });
    this.api = new GridApi(this, 'Api', {
      table: this.table.table,
      queues: this.queues.queues,
      dataBucket: this.dataPlane.bucket,
      dataPrefix: this.dataPlane.prefix,
      configJson: Stack.of(this).toJsonString(this.compute.agentConfiguration),
    });
    this.monitoring = new GridMonitoring(this, 'Monitoring', {
      queues: this.queues,
      runningAgents: this.compute.metricRunningAgents(),
      reaperErrors: this.reaper.metricErrors(),
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
    };
  }

  /** Everything a client does: create sessions and tasks, enqueue them, watch states, fetch results, cancel. */
  grantSubmit(grantee: iam.IGrantable): void {
    this.table.grantReadWriteData(grantee);
    this.queues.grantSend(grantee);
    this.dataPlane.grantReadWrite(grantee);
  }
}
