// The ECS compute plane: cluster, the task definition (init + Lambda + agent containers), the service and its scaling.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { GridConfig } from '../core/config';
import { ConfigError } from '../core/errors';
import { GRID_ENV, resourcesToEnv } from '../core/grid-resources';
import type { WorkerRuntime } from '../core/runtime-kind';
import { agentImageFromRepository, INIT_IMAGE, PublicImageCache } from './container-images';
import { grantDataPrefix } from './data-plane-bucket';
import { GridVpc } from './grid-vpc';
import { grantGetObject } from './worker-bucket';

/** Where the worker zip is and how to call it; `WorkerBundle` provides it. */
export interface WorkerLocation {
  readonly bucket: s3.IBucket;
  readonly key: string;
  readonly handler: string;
  readonly handlerFileName: string;
  readonly handlerFunctionName: string;
  readonly runtime: WorkerRuntime;
}

/** EC2 capacity for the compute plane. */
export interface Ec2CapacityProps {
  /** Instance type of the Auto Scaling group, e.g. `c6i.2xlarge`. */
  readonly instanceType: ec2.InstanceType;
  /**
   * Most instances.
   * @default 10
   */
  readonly maxInstances?: number;
  /**
   * Use Spot instances.
   * @default false
   */
  readonly spot?: boolean;
}

/** Mount point of the worker code in the Lambda container (`LAMBDA_TASK_ROOT`). */
export const TASK_ROOT = '/var/task';
/** Port of the first Lambda container's Runtime Interface Emulator; slot i listens on `port + i`. */
export const RIE_PORT = 8080;
/** Every Lambda container's endpoint, comma-separated, one per slot (the first is also `HTCGRID_LAMBDA_ENDPOINT`). */
export const LAMBDA_ENDPOINTS_ENV = 'HTCGRID_LAMBDA_ENDPOINTS';
/**
 * The uid:gid of the Lambda containers (the Lambda base images' sandbox user, `sbx_user1051`) and of the agent.
 * The agent shares it so that, with the task's shared PID namespace, it may SIGKILL a cancelled task's runtime
 * (signalling needs the same uid or CAP_KILL, which Fargate cannot grant a non-root user).
 */
export const SANDBOX_USER = '993:990';
/** Fargate's upper bound on a container's stop timeout. */
const MAX_STOP_TIMEOUT_SEC = 120;

export interface EcsComputePlaneProps {
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
   * Key prefix of the grid's payloads and results in `dataBucket`.
   * @default 'data/'
   */
  readonly dataPrefix?: string;
  /**
   * VPC to run in.
   * @default - a new `GridVpc` (private isolated subnets, endpoints, no NAT)
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of `vpc` the tasks run in.
   * @default - the private subnets of the VPC
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * NAT gateways of the new VPC (ignored with `vpc`).
   * @default 0
   */
  readonly natGateways?: number;
  /**
   * CPU units of one task (agent + Lambda containers), a Fargate size: 256, 512, 1024, 2048, 4096, 8192, 16384.
   * @default 1024
   */
  readonly taskCpu?: number;
  /**
   * Memory of one task in MiB; must be valid for `taskCpu` on Fargate.
   * @default 3072
   */
  readonly taskMemoryMiB?: number;
  /**
   * Run tasks on Fargate Spot (cheaper, may be interrupted: the agent drains and the reaper re-queues what is lost).
   * @default false
   */
  readonly spot?: boolean;
  /**
   * Run tasks on EC2 instances of an Auto Scaling group (an ECS capacity provider with managed scaling) instead of
   * Fargate. Useful for instance types Fargate does not offer, or Spot instances at a lower price.
   * @default - Fargate
   */
  readonly ec2Capacity?: Ec2CapacityProps;
  /**
   * Image of the agent container.
   * @default - built from `docker/agent/Dockerfile` at deploy time
   */
  readonly agentImage?: ecs.ContainerImage;
  /**
   * Image of the Lambda container.
   * @default - the runtime's AWS Lambda base image through an ECR pull-through cache
   */
  readonly lambdaImage?: ecs.ContainerImage;
  /**
   * Image of the init container; it needs `sh`, the AWS CLI and Python (any version) for unzipping.
   * @default - `public.ecr.aws/aws-cli/aws-cli` through an ECR pull-through cache
   */
  readonly initImage?: ecs.ContainerImage;
  /**
   * Target of the backlog scaling policy: queued plus in-flight messages per running agent.
   *
   * An agent holds one task per slot; the default keeps about one more waiting per slot, HTC-Grid's target of 2.
   * @default 2 × slots
   */
  readonly targetBacklogPerAgent?: number;
  /**
   * How long a stopping task gets to drain (agent: stop receiving, finish or release running tasks).
   * @default Duration.seconds(120) (Fargate's maximum)
   */
  readonly stopTimeout?: Duration;
  /**
   * Log retention of the containers' logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * ECS on Fargate: one task = one agent plus `slots` Lambda containers (AWS Lambda base image running lambda-rie with
 * the handler as command), fed by an init container that unpacks the worker zip into a shared volume.
 * The service scales on backlog per agent and down to zero when idle.
 *
 * The task shares one PID namespace (`pidMode: task`) and the agent runs under the Lambda containers' uid, so a
 * cancelled, lost or timed-out task's handler is killed at once (lambda-rie alone lets it run on to its timeout).
 */
export class EcsComputePlane extends Construct {
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.TaskDefinition;
  readonly service: ecs.BaseService;
  /** The Auto Scaling group, with `ec2Capacity`. */
  readonly autoScalingGroup?: autoscaling.AutoScalingGroup;
  readonly vpc: ec2.IVpc;
  /** The agent container (its environment carries `HTCGRID_CONFIG` and the resource names). */
  readonly agentContainer: ecs.ContainerDefinition;
  /** The Lambda containers, one per slot. */
  readonly lambdaContainers: readonly ecs.ContainerDefinition[];
  /** The init container fetching the worker zip. */
  readonly initContainer: ecs.ContainerDefinition;
  /** The scalable desired count of the service. */
  readonly scalableTarget: appscaling.ScalableTarget;
  /** Queued plus in-flight messages per running agent: what the service scales on. */
  readonly backlogPerAgentTarget: number;
  /** The document the agent reads from `HTCGRID_CONFIG` (deploy-time tokens included). */
  readonly agentConfiguration: Record<string, unknown>;
  readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: EcsComputePlaneProps) {
    super(scope, id);
    const cfg = props.config;
    const taskCpu = props.taskCpu ?? 1024;
    const taskMemoryMiB = props.taskMemoryMiB ?? 3072;
    const stopTimeout = props.stopTimeout ?? Duration.seconds(MAX_STOP_TIMEOUT_SEC);
    const slots = cfg.slots;
    this.backlogPerAgentTarget = props.targetBacklogPerAgent ?? 2 * slots;
    validate({
      fargate: !props.ec2Capacity,
      taskCpu,
      taskMemoryMiB,
      stopTimeoutSec: stopTimeout.toSeconds(),
      slots,
      target: this.backlogPerAgentTarget,
      cfg,
    });

    const network = props.vpc
      ? undefined
      : new GridVpc(this, 'Network', {
          natGateways: props.natGateways,
          ecsInstanceEndpoints: props.ec2Capacity !== undefined,
        });
    this.vpc = props.vpc ?? (network as GridVpc).vpc;
    const subnets = props.vpcSubnets ?? network?.subnets ?? { subnets: this.vpc.privateSubnets };

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const needsCache = !props.lambdaImage || !props.initImage;
    const cache = needsCache ? new PublicImageCache(this, 'PublicImages') : undefined;

    // One PID namespace for the task: the agent sees the Lambda containers' processes in its /proc and can kill
    // a cancelled task's runtime (lambda-rie then resets and starts a fresh one on the next invoke).
    this.taskDefinition = props.ec2Capacity
      ? new ecs.TaskDefinition(this, 'TaskDefinition', {
          compatibility: ecs.Compatibility.EC2,
          networkMode: ecs.NetworkMode.AWS_VPC,
          cpu: String(taskCpu),
          memoryMiB: String(taskMemoryMiB),
          pidMode: ecs.PidMode.TASK,
        })
      : new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
          cpu: taskCpu,
          memoryLimitMiB: taskMemoryMiB,
          pidMode: ecs.PidMode.TASK,
          runtimePlatform: {
            cpuArchitecture: ecs.CpuArchitecture.X86_64,
            operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
          },
        });
    if (cache) cache.grantPull(this.taskDefinition.obtainExecutionRole());

    const workerVolume = 'worker';
    this.taskDefinition.addVolume({ name: workerVolume });
    this.taskDefinition.addVolume({ name: 'agent-tmp' });
    for (let i = 0; i < slots; i++) this.taskDefinition.addVolume({ name: `lambda-tmp-${i}` });

    const logging = (prefix: string) => ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: prefix });
    const workerEnv = {
      [GRID_ENV.workerBucket]: props.worker.bucket.bucketName,
      [GRID_ENV.workerKey]: props.worker.key,
    };

    // (1) Init container: root only so it can prepare the Fargate volumes (created root-owned) for non-root users.
    this.initContainer = this.taskDefinition.addContainer('FetchWorker', {
      containerName: 'fetch-worker',
      image: props.initImage ?? (cache as PublicImageCache).image(INIT_IMAGE),
      essential: false,
      entryPoint: ['sh', '-c'],
      command: [fetchWorkerScript(slots)],
      environment: workerEnv,
      logging: logging('fetch-worker'),
      memoryReservationMiB: 128,
    });
    this.initContainer.addMountPoints({ containerPath: TASK_ROOT, sourceVolume: workerVolume, readOnly: false });
    for (let i = 0; i < slots; i++) {
      this.initContainer.addMountPoints({
        containerPath: `/lambda-tmp-${i}`,
        sourceVolume: `lambda-tmp-${i}`,
        readOnly: false,
      });
    }
    this.initContainer.addMountPoints({ containerPath: '/agent-tmp', sourceVolume: 'agent-tmp', readOnly: false });

    // (2) Lambda containers: the AWS Lambda base image running lambda-rie with the handler as its command.
    const timeoutSec = Math.ceil(cfg.taskTimeoutMs / 1000);
    const lambdaImage = props.lambdaImage ?? (cache as PublicImageCache).image(props.worker.runtime.baseImage);
    const lambdas: ecs.ContainerDefinition[] = [];
    for (let i = 0; i < slots; i++) {
      const port = RIE_PORT + i;
      const container = this.taskDefinition.addContainer(`Lambda${i}`, {
        containerName: `lambda-${i}`,
        image: lambdaImage,
        // lambda-rie runs `<bootstrap> <handler>` and serves the invoke API on the port (what the base image's
        // /lambda-entrypoint.sh does, with the port made explicit so several slots can share the task's network).
        entryPoint: [
          '/usr/local/bin/aws-lambda-rie',
          '--runtime-interface-emulator-address',
          `0.0.0.0:${port}`,
          runtimeBootstrap(props.worker.runtime),
        ],
        command: [props.worker.handler],
        environment: {
          _HANDLER: props.worker.handler,
          AWS_LAMBDA_FUNCTION_HANDLER: props.worker.handler,
          AWS_LAMBDA_FUNCTION_TIMEOUT: String(timeoutSec),
          AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(cfg.memorySizeMb),
          AWS_LAMBDA_FUNCTION_NAME: cfg.functionName,
          LAMBDA_TASK_ROOT: TASK_ROOT,
        },
        user: SANDBOX_USER,
        readonlyRootFilesystem: true,
        essential: true,
        stopTimeout,
        portMappings: [{ containerPort: port }],
        logging: logging(`lambda-${i}`),
      });
      container.addMountPoints(
        { containerPath: TASK_ROOT, sourceVolume: workerVolume, readOnly: true },
        { containerPath: '/tmp', sourceVolume: `lambda-tmp-${i}`, readOnly: false },
      );
      container.addContainerDependencies({
        container: this.initContainer,
        condition: ecs.ContainerDependencyCondition.SUCCESS,
      });
      lambdas.push(container);
    }
    this.lambdaContainers = lambdas;

    // (3) The agent, with the grid configuration as one JSON document and the resources as environment.
    const s3Source = `s3://${props.worker.bucket.bucketName}/${props.worker.key}`;
    this.agentConfiguration = agentConfigurationDocument(cfg, props.worker, s3Source);
    const endpoints = lambdas.map((_, i) => `http://localhost:${RIE_PORT + i}`);
    this.agentContainer = this.taskDefinition.addContainer('Agent', {
      containerName: 'agent',
      image: props.agentImage ?? agentImageFromRepository(),
      environment: {
        [GRID_ENV.config]: Stack.of(this).toJsonString(this.agentConfiguration),
        ...resourcesToEnv({
          tableName: props.table.tableName,
          queueUrls: props.queues.map((q) => q.queueUrl),
          dataBucket: props.dataBucket.bucketName,
          workerBucket: props.worker.bucket.bucketName,
          workerKey: props.worker.key,
        }),
        // One Lambda container per slot: the first in HTCGRID_LAMBDA_ENDPOINT, all of them (comma-separated) in
        // HTCGRID_LAMBDA_ENDPOINTS for an agent that drives several.
        [GRID_ENV.lambdaEndpoint]: endpoints[0] ?? `http://localhost:${RIE_PORT}`,
        [LAMBDA_ENDPOINTS_ENV]: endpoints.join(','),
        [GRID_ENV.region]: Stack.of(this).region,
        TMPDIR: '/tmp',
      },
      // The Lambda containers' uid, so it may signal their runtimes (see SANDBOX_USER); never root.
      user: SANDBOX_USER,
      readonlyRootFilesystem: true,
      essential: true,
      stopTimeout,
      logging: logging('agent'),
    });
    this.agentContainer.addMountPoints({ containerPath: '/tmp', sourceVolume: 'agent-tmp', readOnly: false });
    // ECS stops dependents first: the agent gets SIGTERM and drains while its Lambda containers keep serving.
    for (const l of lambdas)
      this.agentContainer.addContainerDependencies({ container: l, condition: ecs.ContainerDependencyCondition.START });

    // Least privilege: the one zip, the grid's data prefix, the table's items and indexes, the priority queues.
    const taskRole = this.taskDefinition.taskRole;
    grantGetObject(props.worker.bucket, taskRole, props.worker.key);
    grantDataPrefix(props.dataBucket, taskRole, props.dataPrefix ?? 'data/', true);
    props.table.grant(
      taskRole,
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:TransactWriteItems',
    );
    for (const q of props.queues) {
      q.grantConsumeMessages(taskRole);
      q.grantSendMessages(taskRole);
    }

    const serviceProps = {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: cfg.minAgents,
      minHealthyPercent: 0,
      maxHealthyPercent: 200,
      vpcSubnets: subnets,
      assignPublicIp: false,
      circuitBreaker: { enable: true, rollback: true },
      enableExecuteCommand: false,
    };
    if (props.ec2Capacity) {
      const capacity = this.addEc2Capacity(props.ec2Capacity, subnets);
      this.autoScalingGroup = capacity.autoScalingGroup;
      this.service = new ecs.Ec2Service(this, 'Service', {
        ...serviceProps,
        capacityProviderStrategies: [{ capacityProvider: capacity.capacityProviderName, weight: 1 }],
      });
    } else {
      this.service = new ecs.FargateService(this, 'Service', {
        ...serviceProps,
        capacityProviderStrategies: [{ capacityProvider: props.spot ? 'FARGATE_SPOT' : 'FARGATE', weight: 1 }],
      });
    }

    this.scalableTarget = new appscaling.ScalableTarget(this, 'Scaling', {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${this.cluster.clusterName}/${this.service.serviceName}`,
      minCapacity: cfg.minAgents,
      maxCapacity: cfg.maxAgents,
    });
    this.addBacklogScaling(props.queues);
    this.suppressNagFindings();
  }

  /** An Auto Scaling group of ECS-optimized instances, scaled by ECS to fit the service's tasks. */
  private addEc2Capacity(props: Ec2CapacityProps, subnets: ec2.SubnetSelection): ecs.AsgCapacityProvider {
    const autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Instances', {
      vpc: this.vpc,
      vpcSubnets: subnets,
      instanceType: props.instanceType,
      machineImage: ecs.EcsOptimizedImage.amazonLinux2023(),
      minCapacity: 0,
      maxCapacity: props.maxInstances ?? 10,
      requireImdsv2: true,
      spotPrice: props.spot ? '1000' : undefined,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: autoscaling.BlockDeviceVolume.ebs(30, {
            encrypted: true,
            volumeType: autoscaling.EbsDeviceVolumeType.GP3,
          }),
        },
      ],
    });
    const provider = new ecs.AsgCapacityProvider(this, 'CapacityProvider', {
      autoScalingGroup,
      enableManagedScaling: true,
      enableManagedTerminationProtection: false,
      targetCapacityPercent: 100,
    });
    this.cluster.addAsgCapacityProvider(provider);
    NagSuppressions.addResourceSuppressions(
      autoScalingGroup,
      [
        {
          id: 'AwsSolutions-AS3',
          reason: 'ECS managed scaling owns the group; its scaling is visible in the ECS and Auto Scaling consoles.',
        },
        {
          id: 'AwsSolutions-L1',
          reason: 'The ECS instance drain hook function is created by aws-cdk-lib, which chooses its runtime.',
        },
        {
          id: 'AwsSolutions-IAM4',
          reason: 'The drain hook function (aws-cdk-lib): AWSLambdaBasicExecutionRole only lets it write its own logs.',
          appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'The ECS container instance role and drain hook (aws-cdk-lib): ecs:Submit*/Poll/StartTelemetrySession, ' +
            'ECR token and Auto Scaling lifecycle calls have no resource-level permissions.',
        },
        {
          id: 'AwsSolutions-SNS3',
          reason:
            'The drain hook topic (aws-cdk-lib) is published to by Auto Scaling lifecycle hooks only, inside AWS.',
        },
      ],
      true,
    );
    return provider;
  }

  /** Running agents (ECS tasks of the service), from Container Insights. */
  metricRunningAgents(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: 'Average',
      period: Duration.minutes(1),
      ...props,
    });
  }

  /**
   * Target tracking on (visible + in-flight messages over all priority queues) / running agents, plus a step policy
   * that starts the first agent when the service is at zero and work arrives (target tracking cannot scale from 0).
   */
  private addBacklogScaling(queues: readonly sqs.IQueue[]): void {
    const stack = Stack.of(this);
    const queueMetrics = queues.flatMap((q, i) =>
      ['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesNotVisible'].map((metricName, j) => ({
        id: `${j === 0 ? 'visible' : 'inflight'}${i}`,
        metricStat: {
          metric: { namespace: 'AWS/SQS', metricName, dimensions: [{ name: 'QueueName', value: q.queueName }] },
          stat: 'Maximum',
        },
        returnData: false,
      })),
    );
    const backlogExpr = queueMetrics.map((m) => m.id).join('+');
    new appscaling.CfnScalingPolicy(this, 'BacklogPerAgent', {
      policyName: `${stack.stackName}-backlog-per-agent`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: this.scalableTarget.scalableTargetId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: this.backlogPerAgentTarget,
        scaleInCooldown: 300,
        scaleOutCooldown: 60,
        customizedMetricSpecification: {
          metrics: [
            ...queueMetrics,
            {
              id: 'running',
              metricStat: {
                metric: {
                  namespace: 'ECS/ContainerInsights',
                  metricName: 'RunningTaskCount',
                  dimensions: [
                    { name: 'ClusterName', value: this.cluster.clusterName },
                    { name: 'ServiceName', value: this.service.serviceName },
                  ],
                },
                stat: 'Average',
              },
              returnData: false,
            },
            {
              id: 'backlog_per_agent',
              label: 'Queued + in-flight tasks per agent',
              expression: `IF(running > 0, (${backlogExpr}) / running, 0)`,
              returnData: true,
            },
          ],
        },
      },
    });

    const usingMetrics: Record<string, cloudwatch.IMetric> = {
      running: this.metricRunningAgents({ statistic: 'Maximum' }),
    };
    queues.forEach((q, i) => {
      usingMetrics[`visible${i}`] = q.metric('ApproximateNumberOfMessagesVisible', {
        statistic: 'Maximum',
        period: Duration.minutes(1),
      });
    });
    const visibleExpr = queues.map((_, i) => `visible${i}`).join('+');
    const wakeUp = new cloudwatch.MathExpression({
      expression: `IF(FILL(running, 0) < 1 AND (${visibleExpr}) > 0, 1, 0)`,
      usingMetrics,
      period: Duration.minutes(1),
      label: 'Work waiting and no agent running',
    });
    const action = new appscaling.StepScalingAction(this, 'WakeUp', {
      scalingTarget: this.scalableTarget,
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      cooldown: Duration.seconds(60),
    });
    action.addAdjustment({ adjustment: 1, lowerBound: 0 });
    const alarm = new cloudwatch.Alarm(this, 'WakeUpAlarm', {
      metric: wakeUp,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'Tasks are queued and no agent runs: start one (backlog target tracking takes over from there).',
    });
    alarm.addAlarmAction(new cwActions.ApplicationScalingAction(action));
  }

  private suppressNagFindings(): void {
    NagSuppressions.addResourceSuppressions(
      this.taskDefinition,
      [
        {
          id: 'AwsSolutions-ECS2',
          reason: 'Environment variables carry only resource names and the grid configuration; no secrets.',
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Only resource wildcards, each scoped: data-plane objects under the grid prefix (data/*), the task ' +
            "table's indexes (index/*), the pull-through cache repositories (<prefix>/*); ecr:GetAuthorizationToken " +
            'has no resource-level permissions.',
        },
      ],
      true,
    );
  }
}

/** The document the agent reads from `HTCGRID_CONFIG`: the validated configuration with the worker's names filled in. */
export function agentConfigurationDocument(
  cfg: GridConfig,
  worker: WorkerLocation,
  s3Source: string,
): Record<string, unknown> {
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
        s3_source: s3Source,
      },
    },
  };
}

/**
 * The runtime's bootstrap lambda-rie starts: the base image's runtime for Python and Node, the worker's own
 * `bootstrap` (unpacked into the task root) for `provided`.
 */
export function runtimeBootstrap(runtime: WorkerRuntime): string {
  return runtime.family === 'provided' ? `${TASK_ROOT}/bootstrap` : '/var/runtime/bootstrap';
}

/**
 * Shell run by the init container: download the zip to the shared volume, unpack it keeping executable bits
 * (`bootstrap` of provided runtimes), make it readable, and open the tmp volumes to the non-root containers.
 */
export function fetchWorkerScript(slots: number): string {
  const unzip = [
    'import os, zipfile',
    `z = zipfile.ZipFile("${TASK_ROOT}/.worker.zip")`,
    'for i in z.infolist():',
    `    p = z.extract(i, "${TASK_ROOT}")`,
    '    m = (i.external_attr >> 16) & 0o777',
    '    os.chmod(p, 0o755 if (i.filename.endswith("/") or m & 0o111) else 0o644)',
  ].join('\n');
  const tmpDirs = [...Array.from({ length: slots }, (_, i) => `/lambda-tmp-${i}`), '/agent-tmp'].join(' ');
  return [
    'set -eu',
    `aws s3 cp --only-show-errors "s3://$${GRID_ENV.workerBucket}/$${GRID_ENV.workerKey}" ${TASK_ROOT}/.worker.zip`,
    `PY=$(command -v python3 || command -v python)`,
    `"$PY" -c '${unzip}'`,
    `rm -f ${TASK_ROOT}/.worker.zip`,
    `chmod 755 ${TASK_ROOT}`,
    `chmod 1777 ${tmpDirs}`,
  ].join('\n');
}

const FARGATE_MEMORY: Readonly<Record<number, readonly [number, number, number]>> = {
  256: [512, 2048, 1024],
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
  8192: [16384, 61440, 4096],
  16384: [32768, 122880, 8192],
};

function validate(v: {
  fargate: boolean;
  taskCpu: number;
  taskMemoryMiB: number;
  stopTimeoutSec: number;
  slots: number;
  target: number;
  cfg: GridConfig;
}): void {
  const issues: string[] = [];
  const mem = FARGATE_MEMORY[v.taskCpu];
  if (!v.fargate) {
    if (
      !Number.isInteger(v.taskCpu) ||
      v.taskCpu < 128 ||
      !Number.isInteger(v.taskMemoryMiB) ||
      v.taskMemoryMiB < 512
    ) {
      issues.push(`cpu/memory: ${v.taskCpu} units / ${v.taskMemoryMiB} MiB: use at least 128 CPU units and 512 MiB`);
    }
  } else if (!mem) {
    issues.push(`cpu: ${v.taskCpu} is not a Fargate task size: use one of ${Object.keys(FARGATE_MEMORY).join(', ')}`);
  } else {
    const [min, max, step] = mem;
    const ok =
      v.taskMemoryMiB >= min &&
      v.taskMemoryMiB <= max &&
      (v.taskCpu === 256 ? [512, 1024, 2048].includes(v.taskMemoryMiB) : v.taskMemoryMiB % step === 0);
    if (!ok) {
      issues.push(
        `memory: ${v.taskMemoryMiB} MiB does not fit cpu ${v.taskCpu} on Fargate: use ${min}..${max} MiB in steps of ${step} MiB`,
      );
    }
  }
  if (v.stopTimeoutSec < 2 || v.stopTimeoutSec > MAX_STOP_TIMEOUT_SEC) {
    issues.push(`stop timeout: ${v.stopTimeoutSec}s must be 2..${MAX_STOP_TIMEOUT_SEC}s on Fargate`);
  }
  if (v.slots > 8) {
    issues.push(
      `slots: ${v.slots} Lambda containers per task is too many for one Fargate task: use 1..8 and raise max_agents instead`,
    );
  }
  if (!(v.target > 0)) issues.push(`scaling target: ${v.target} must be a positive number of tasks per agent`);
  if (v.cfg.taskTimeoutMs > 12 * 3600 * 1000) {
    issues.push(
      `task_timeout_sec: ${v.cfg.taskTimeoutMs / 1000} exceeds the 12 h SQS visibility limit: use at most 43200`,
    );
  }
  if (issues.length > 0) throw new ConfigError(issues);
}
