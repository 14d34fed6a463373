// The ECS compute plane: the grid unit (init, Lambda and agent containers) as a task definition, the service running
// it, and the scaling on backlog, built in named steps a variant can override.
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { ConfigError } from '../core/errors';
import { agentImageAsset } from './agent-image';
import {
  backlogPerAgentExpression,
  idleExpression,
  idleMinutes,
  inflightId,
  RUNNING_ID,
  visibleId,
  wakeUpExpression,
} from './backlog-scaling';
import {
  commonPlaneSettings,
  ComputePlaneBase,
  grantAgentAccess,
  planeUnit,
  type CommonPlaneSettings,
  type ComputePlane,
  type ComputePlaneProps,
} from './compute-plane';
import { INIT_IMAGE, PublicImageCache } from './container-images';
import {
  amiHardwareType,
  ecsCpuArchitecture,
  instanceTypeArchitecture,
  type CpuArchitecture,
} from './cpu-architecture';
import { GridVpc } from './grid-vpc';
import type { GridUnit, UnitContainer, UnitImage } from './grid-unit';
import { ec2CapacitySuppressions, taskDefinitionSuppressions } from './nag-suppressions';
import { taskSizeIssues } from './task-size';

/** EC2 capacity for the compute plane. */
export interface Ec2CapacityProps {
  /** Instance type of the Auto Scaling group, e.g. `c6i.2xlarge` (Graviton types run the grid on arm64). */
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

/** Fargate's upper bound on a container's stop timeout. */
const MAX_STOP_TIMEOUT_SEC = 120;

export interface EcsComputePlaneProps extends ComputePlaneProps {
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
   * Image of the agent container; it must be built for the tasks' CPU architecture.
   * @default - bin/agent.ts bundled at synth, built on Node.js 22 for the tasks' architecture at deploy time
   */
  readonly agentImage?: ecs.ContainerImage;
  /**
   * Image of the Lambda containers.
   * @default - the runtime's AWS Lambda base image through an ECR pull-through cache
   */
  readonly lambdaImage?: ecs.ContainerImage;
  /**
   * Image of the init container; it needs `sh`, the AWS CLI and Python (any version) for unzipping.
   * @default - `public.ecr.aws/aws-cli/aws-cli` through an ECR pull-through cache
   */
  readonly initImage?: ecs.ContainerImage;
}

/** The props with defaults applied and every problem reported at once. */
interface PlaneSettings extends CommonPlaneSettings {
  readonly fargate: boolean;
  readonly taskCpu: number;
  readonly taskMemoryMiB: number;
  readonly architecture: CpuArchitecture;
  readonly stopTimeout: Duration;
}

/** Applies the defaults and collects every problem with the props (then throws them at once as a `ConfigError`). */
export function planeSettings(props: EcsComputePlaneProps): PlaneSettings {
  const fargate = props.ec2Capacity === undefined;
  const instanceArch = props.ec2Capacity
    ? instanceTypeArchitecture(props.ec2Capacity.instanceType.toString())
    : undefined;
  const taskCpu = props.taskCpu ?? 1024;
  const taskMemoryMiB = props.taskMemoryMiB ?? 3072;
  const stopTimeout = props.stopTimeout ?? Duration.seconds(MAX_STOP_TIMEOUT_SEC);
  const issues = taskSizeIssues({ fargate, cpu: taskCpu, memoryMiB: taskMemoryMiB });
  const stopSec = stopTimeout.toSeconds();
  if (stopSec < 2 || stopSec > MAX_STOP_TIMEOUT_SEC) {
    issues.push(`stop timeout: ${stopSec}s must be 2..${MAX_STOP_TIMEOUT_SEC}s on Fargate`);
  }
  const settings: PlaneSettings = {
    fargate,
    taskCpu,
    taskMemoryMiB,
    architecture: props.cpuArchitecture ?? instanceArch ?? 'x86_64',
    stopTimeout,
    ...commonPlaneSettings(props, issues),
  };
  if (instanceArch && props.cpuArchitecture && props.cpuArchitecture !== instanceArch) {
    issues.push(
      `cpu_architecture: ${props.cpuArchitecture} does not match ec2_instance_type ${props.ec2Capacity!.instanceType.toString()} (${instanceArch}): leave it out or pick an instance type of that architecture`,
    );
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return settings;
}

/**
 * ECS: one task = one grid unit (`gridUnit`): an init container that unpacks the worker zip into a shared volume,
 * `slots` Lambda containers (AWS Lambda base image running lambda-rie with the handler as command) and the agent.
 * The service scales on backlog per agent, out from zero when work arrives and back to zero when idle.
 *
 * The task shares one PID namespace (`pidMode: task`) and the agent runs under the Lambda containers' uid, so a
 * cancelled, lost or timed-out task's handler is killed at once (lambda-rie alone lets it run on to its timeout).
 *
 * Built in steps (`createNetwork`, `createTaskDefinition`, `addInitContainer`, `addLambdaContainers`,
 * `addAgentContainer`, `grantTaskRole`, `createService`, `addScaling`) that a subclass may override.
 */
export class EcsComputePlane extends ComputePlaneBase<EcsComputePlaneProps, PlaneSettings> implements ComputePlane {
  readonly kind = 'ecs' as const;
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.Cluster;
  readonly logGroup: logs.ILogGroup;
  readonly taskDefinition: ecs.TaskDefinition;
  /** The unit of work the task definition holds, as data (shared with other compute planes). */
  readonly unit: GridUnit;
  /** The init container fetching the worker zip. */
  readonly initContainer: ecs.ContainerDefinition;
  /** The Lambda containers, one per slot. */
  readonly lambdaContainers: readonly ecs.ContainerDefinition[];
  /** The agent container (its environment carries `HTCGRID_CONFIG` and the resource names). */
  readonly agentContainer: ecs.ContainerDefinition;
  readonly service: ecs.BaseService;
  /** The service: it starts agents, so it waits for the worker zip. */
  readonly workloads: readonly IConstruct[];
  /** The Auto Scaling group, with `ec2Capacity`. */
  readonly autoScalingGroup?: autoscaling.AutoScalingGroup;
  /** The scalable desired count of the service. */
  readonly scalableTarget: appscaling.ScalableTarget;

  private readonly subnets: ec2.SubnetSelection;
  private readonly images: Readonly<Record<UnitImage, ecs.ContainerImage>>;

  constructor(scope: Construct, id: string, props: EcsComputePlaneProps) {
    super(scope, id, props, planeSettings);
    ({ vpc: this.vpc, subnets: this.subnets } = this.createNetwork());
    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = this.createTaskDefinition();
    this.images = this.resolveImages();
    this.unit = this.describeUnit();
    for (const volume of this.unit.volumes) this.taskDefinition.addVolume({ name: volume });
    const byImage = (image: UnitImage) => this.unit.containers.filter((c) => c.image === image);
    this.initContainer = this.addInitContainer(byImage('init')[0]!);
    this.lambdaContainers = this.addLambdaContainers(byImage('lambda'));
    this.agentContainer = this.addAgentContainer(byImage('agent')[0]!);
    this.grantTaskRole();
    let capacity: ecs.AsgCapacityProvider | undefined;
    if (props.ec2Capacity) {
      capacity = this.addEc2Capacity(props.ec2Capacity);
      this.autoScalingGroup = capacity.autoScalingGroup;
    }
    this.service = this.createService(capacity);
    this.workloads = [this.service];
    this.scalableTarget = this.addScaling();
    NagSuppressions.addResourceSuppressions(this.taskDefinition, taskDefinitionSuppressions(), true);
  }

  /** Running agents (ECS tasks of the service), from Container Insights. */
  metricRunningAgents(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.runningAgentsMetric(
      'ECS/ContainerInsights',
      'RunningTaskCount',
      { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
      props,
    );
  }

  /** Step: the VPC and the subnets the tasks run in (a new `GridVpc` unless one is given). */
  protected createNetwork(): { vpc: ec2.IVpc; subnets: ec2.SubnetSelection } {
    const { vpc, vpcSubnets, natGateways, ec2Capacity } = this.props;
    if (vpc) return { vpc, subnets: vpcSubnets ?? { subnets: vpc.privateSubnets } };
    const network = new GridVpc(this, 'Network', { natGateways, ecsInstanceEndpoints: ec2Capacity !== undefined });
    return { vpc: network.vpc, subnets: vpcSubnets ?? network.subnets };
  }

  /** Step: the images of the unit's containers (public ones through a pull-through cache unless given). */
  protected resolveImages(): Record<UnitImage, ecs.ContainerImage> {
    const { agentImage, lambdaImage, initImage, worker } = this.props;
    const cache = !lambdaImage || !initImage ? new PublicImageCache(this, 'PublicImages') : undefined;
    if (cache) cache.grantPull(this.taskDefinition.obtainExecutionRole());
    return {
      init: initImage ?? cache!.image(INIT_IMAGE),
      lambda: lambdaImage ?? cache!.image(worker.runtime.baseImage),
      agent: agentImage ?? agentImageAsset(this, 'AgentImage', this.settings.architecture),
    };
  }

  /**
   * Step: the task definition, sharing one PID namespace so the agent sees the Lambda containers' processes and can
   * kill a cancelled task's runtime (lambda-rie then starts a fresh one on the next invoke). On Fargate it names the
   * CPU architecture; on EC2 the instances' AMI decides it (ECS refuses a runtime platform there).
   */
  protected createTaskDefinition(): ecs.TaskDefinition {
    const { taskCpu, taskMemoryMiB, architecture, fargate } = this.settings;
    return fargate
      ? new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
          cpu: taskCpu,
          memoryLimitMiB: taskMemoryMiB,
          pidMode: ecs.PidMode.TASK,
          runtimePlatform: {
            cpuArchitecture: ecsCpuArchitecture(architecture),
            operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
          },
        })
      : new ecs.TaskDefinition(this, 'TaskDefinition', {
          compatibility: ecs.Compatibility.EC2,
          networkMode: ecs.NetworkMode.AWS_VPC,
          cpu: String(taskCpu),
          memoryMiB: String(taskMemoryMiB),
          pidMode: ecs.PidMode.TASK,
        });
  }

  /** Step: the unit of work this plane runs, as data (`gridUnit`). */
  protected describeUnit(): GridUnit {
    return planeUnit(
      this,
      this.props,
      { ...this.settings, stopTimeoutSec: this.settings.stopTimeout.toSeconds() },
      this.agentConfiguration,
    );
  }

  /** Step: the init container that fetches and unpacks the worker zip before any Lambda container starts. */
  protected addInitContainer(spec: UnitContainer): ecs.ContainerDefinition {
    return this.addUnitContainer(spec);
  }

  /** Step: one Lambda container per slot. */
  protected addLambdaContainers(specs: readonly UnitContainer[]): ecs.ContainerDefinition[] {
    return specs.map((spec) => this.addUnitContainer(spec));
  }

  /** Step: the agent container. */
  protected addAgentContainer(spec: UnitContainer): ecs.ContainerDefinition {
    return this.addUnitContainer(spec);
  }

  /** Translates one container of the unit into the task definition (construct id: its name in PascalCase). */
  protected addUnitContainer(spec: UnitContainer): ecs.ContainerDefinition {
    const container = this.taskDefinition.addContainer(pascalCase(spec.name), {
      containerName: spec.name,
      image: this.images[spec.image],
      entryPoint: spec.entryPoint ? [...spec.entryPoint] : undefined,
      command: spec.command ? [...spec.command] : undefined,
      environment: { ...spec.environment },
      user: spec.user,
      readonlyRootFilesystem: spec.readOnlyRootFilesystem,
      essential: spec.essential,
      stopTimeout: spec.essential ? Duration.seconds(this.unit.stopTimeoutSec) : undefined,
      memoryReservationMiB: spec.memoryReservationMiB,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: spec.name }),
    });
    container.addMountPoints(
      ...spec.mounts.map((m) => ({ containerPath: m.path, sourceVolume: m.volume, readOnly: m.readOnly })),
    );
    for (const dependency of spec.dependsOn) {
      const other = this.taskDefinition.findContainer(dependency.container);
      if (!other) throw new Error(`grid unit: ${spec.name} depends on ${dependency.container}, added later or never`);
      container.addContainerDependencies({
        container: other,
        condition:
          dependency.condition === 'SUCCESS'
            ? ecs.ContainerDependencyCondition.SUCCESS
            : ecs.ContainerDependencyCondition.START,
      });
    }
    return container;
  }

  /** Step: least privilege for the task role: the one zip, the data prefix, the table's items and indexes, the queues. */
  protected grantTaskRole(): void {
    grantAgentAccess(this.taskDefinition.taskRole, this.props);
  }

  /**
   * Step: the service. It has no desired count: CloudFormation would reset the scaled count to it on every update
   * (a new worker version); scaling owns the count (a new service starts with one task, which idles out).
   */
  protected createService(capacity: ecs.AsgCapacityProvider | undefined): ecs.BaseService {
    const common = {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      minHealthyPercent: 0,
      maxHealthyPercent: 200,
      vpcSubnets: this.subnets,
      assignPublicIp: false,
      circuitBreaker: { enable: true, rollback: true },
      enableExecuteCommand: false,
    };
    if (capacity) {
      return new ecs.Ec2Service(this, 'Service', {
        ...common,
        capacityProviderStrategies: [{ capacityProvider: capacity.capacityProviderName, weight: 1 }],
      });
    }
    return new ecs.FargateService(this, 'Service', {
      ...common,
      capacityProviderStrategies: [{ capacityProvider: this.props.spot ? 'FARGATE_SPOT' : 'FARGATE', weight: 1 }],
    });
  }

  /** Step: an Auto Scaling group of ECS-optimized instances of the task's architecture, scaled by ECS. */
  protected addEc2Capacity(props: Ec2CapacityProps): ecs.AsgCapacityProvider {
    const autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Instances', {
      vpc: this.vpc,
      vpcSubnets: this.subnets,
      instanceType: props.instanceType,
      machineImage: ecs.EcsOptimizedImage.amazonLinux2023(amiHardwareType(this.settings.architecture)),
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
    NagSuppressions.addResourceSuppressions(autoScalingGroup, ec2CapacitySuppressions(), true);
    return provider;
  }

  /**
   * Step: scaling between `min_htc_agents` and `max_htc_agents`. Target tracking adds agents as the backlog per agent
   * grows; a step policy starts the first agent when work waits and none runs; another scales to zero (the minimum)
   * once nothing has been queued or in flight for longer than a task may run. Target tracking never scales in on
   * its own: an agent running a long task has an empty backlog, and scaling it in would cut the task short.
   */
  protected addScaling(): appscaling.ScalableTarget {
    const target = new appscaling.ScalableTarget(this, 'Scaling', {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${this.cluster.clusterName}/${this.service.serviceName}`,
      minCapacity: this.props.config.minAgents,
      maxCapacity: this.props.config.maxAgents,
    });
    this.addBacklogTracking(target);
    this.addStepPolicy(target, 'WakeUp', {
      expression: wakeUpExpression(this.props.queues.length),
      metrics: this.scalingMetrics(false),
      evaluationMinutes: 1,
      adjustment: { type: appscaling.AdjustmentType.CHANGE_IN_CAPACITY, value: 1 },
      label: 'Work waiting and no agent running',
      description: 'Tasks are queued and no agent runs: start one (backlog target tracking takes over from there).',
    });
    const idle = idleMinutes(this.settings.taskTimeoutSec);
    this.addStepPolicy(target, 'ScaleToZero', {
      expression: idleExpression(this.props.queues.length),
      metrics: this.scalingMetrics(true),
      evaluationMinutes: idle,
      adjustment: { type: appscaling.AdjustmentType.EXACT_CAPACITY, value: 0 },
      label: 'Agents running with nothing queued or in flight',
      description: `Nothing queued or in flight for ${idle} minutes (longer than a task may run): scale to the minimum.`,
    });
    return target;
  }

  /** The queue metrics (visible, and in flight when asked) and the running agents, by the ids the expressions use. */
  private scalingMetrics(withInFlight: boolean): Record<string, cloudwatch.IMetric> {
    const minute = { statistic: 'Maximum', period: Duration.minutes(1) };
    const metrics: Record<string, cloudwatch.IMetric> = { [RUNNING_ID]: this.metricRunningAgents(minute) };
    this.props.queues.forEach((q, level) => {
      metrics[visibleId(level)] = q.metric('ApproximateNumberOfMessagesVisible', minute);
      if (withInFlight) metrics[inflightId(level)] = q.metric('ApproximateNumberOfMessagesNotVisible', minute);
    });
    return metrics;
  }

  /** Target tracking of backlog per running agent (scale-out only; see `addScaling`). */
  private addBacklogTracking(target: appscaling.ScalableTarget): void {
    const stack = Stack.of(this);
    const metricQueries = Object.entries(this.scalingMetrics(true)).map(([id, metric]) => {
      const stat = metric.toMetricConfig().metricStat!;
      return {
        id,
        metricStat: {
          metric: {
            namespace: stat.namespace,
            metricName: stat.metricName,
            dimensions: (stat.dimensions ?? []).map((d) => ({ name: d.name, value: String(d.value) })),
          },
          stat: 'Maximum',
        },
        returnData: false,
      };
    });
    new appscaling.CfnScalingPolicy(this, 'BacklogPerAgent', {
      policyName: `${stack.stackName}-backlog-per-agent`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: target.scalableTargetId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: this.backlogPerAgentTarget,
        disableScaleIn: true,
        scaleOutCooldown: 60,
        customizedMetricSpecification: {
          metrics: [
            ...metricQueries,
            {
              id: 'backlog_per_agent',
              label: 'Queued + in-flight tasks per agent',
              expression: backlogPerAgentExpression(this.props.queues.length),
              returnData: true,
            },
          ],
        },
      },
    });
  }

  /** A step policy driven by an alarm on a 0/1 metric-math expression. */
  private addStepPolicy(
    target: appscaling.ScalableTarget,
    id: string,
    policy: {
      expression: string;
      metrics: Record<string, cloudwatch.IMetric>;
      evaluationMinutes: number;
      adjustment: { type: appscaling.AdjustmentType; value: number };
      label: string;
      description: string;
    },
  ): void {
    const action = new appscaling.StepScalingAction(this, id, {
      scalingTarget: target,
      adjustmentType: policy.adjustment.type,
      cooldown: Duration.seconds(60),
    });
    action.addAdjustment({ adjustment: policy.adjustment.value, lowerBound: 0 });
    const alarm = new cloudwatch.Alarm(this, `${id}Alarm`, {
      metric: new cloudwatch.MathExpression({
        expression: policy.expression,
        usingMetrics: policy.metrics,
        period: Duration.minutes(1),
        label: policy.label,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: policy.evaluationMinutes,
      datapointsToAlarm: policy.evaluationMinutes,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: policy.description,
    });
    alarm.addAlarmAction(new cwActions.ApplicationScalingAction(action));
  }
}

function pascalCase(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
