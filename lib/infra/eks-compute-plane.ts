// The EKS compute plane: the grid unit as a pod (unit-pod.ts) in a Deployment scaled by KEDA on the SQS backlog, on
// a new EKS Auto Mode cluster or an existing cluster, with the agent's AWS access through EKS Pod Identity.
import { KubectlV34Layer } from '@aws-cdk/lambda-layer-kubectl-v34';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as eks from 'aws-cdk-lib/aws-eks-v2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct, type IConstruct } from 'constructs';
import { ConfigError } from '../core/errors';
import { GRID_ENV } from '../core/grid-resources';
import { agentDockerImage } from './agent-image';
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
import type { CpuArchitecture } from './cpu-architecture';
import type { GridUnit, UnitImage } from './grid-unit';
import { GridVpc } from './grid-vpc';
import { eksPlaneSuppressions } from './nag-suppressions';
import {
  agentDeployment,
  agentIdentityObjects,
  agentNodePool,
  backlogScaledObject,
  gridObjectNames,
  NODEPOOL_LABEL,
  sqsTriggerAuthentication,
  unitPodSpec,
  type GridObjectNames,
} from './unit-pod';

/** Kubernetes version of a new cluster; the kubectl layer (`@aws-cdk/lambda-layer-kubectl-v34`) matches it. */
export const EKS_KUBERNETES_VERSION = eks.KubernetesVersion.V1_34;
/** KEDA's Helm chart, pinned: a stack update never moves the autoscaler under a running grid. */
export const KEDA_CHART = { repository: 'https://kedacore.github.io/charts', chart: 'keda', version: '2.18.0' };
/** The key Container Insights' Fluent Bit merges a JSON log line under (`Merge_Log_Key`). */
export const CONTAINER_INSIGHTS_LOG_KEY = 'log_processed';
/**
 * The CloudWatch agent configuration of a new cluster's Observability add-on: the add-on's default (Container
 * Insights with enhanced observability, Application Signals) plus the `emf` input, which listens for EMF on TCP and
 * UDP port 25888. A configuration given to the add-on replaces its default, hence the default's parts here.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_CloudWatch_Agent.html
 */
export const OBSERVABILITY_AGENT_CONFIG = {
  logs: { metrics_collected: { kubernetes: { enhanced_container_insights: true }, application_signals: {}, emf: {} } },
  traces: { traces_collected: { application_signals: {} } },
};
/** The CloudWatch agent's EMF port (its `emf` input's default). */
export const CLOUDWATCH_AGENT_EMF_PORT = 25888;
/** The agent pod's variable holding its node's IP (the add-on's CloudWatch agent runs on the host network). */
export const NODE_IP_ENV = 'HTCGRID_NODE_IP';
/** KEDA's namespace and operator service account (the chart's names). */
export const KEDA_NAMESPACE = 'keda';
export const KEDA_OPERATOR_SERVICE_ACCOUNT = 'keda-operator';
/** The longest drain a pod gets on EKS (no Fargate cap; the HPA and Spot notices make longer pointless). */
const MAX_STOP_TIMEOUT_SEC = 3600;
/** Spot's interruption notice: a longer drain is cut short on Spot. */
const SPOT_NOTICE_SEC = 120;

/** An existing EKS cluster to run the agents on. */
export interface ExistingEksCluster {
  /** The cluster's name. */
  readonly clusterName: string;
  /**
   * A role the stack's kubectl function runs as; it must be able to apply manifests and Helm charts (e.g. an access
   * entry with `AmazonEKSClusterAdminPolicy`) and be assumable by Lambda.
   * @default - the stack creates the function's role and an access entry giving it `AmazonEKSClusterAdminPolicy`
   * (the cluster's authentication mode must allow access entries: `API` or `API_AND_CONFIG_MAP`)
   */
  readonly kubectlRoleArn?: string;
}

export interface EksComputePlaneProps extends ComputePlaneProps {
  /**
   * Run on this existing cluster instead of creating one. It needs the EKS Pod Identity agent (an add-on; built in
   * with Auto Mode), nodes that can pull the stack's images (its CDK asset repository and the pull-through cache),
   * and, for Spot with `spot`, Karpenter or EKS Auto Mode.
   * @default - a new EKS Auto Mode cluster
   */
  readonly existingCluster?: ExistingEksCluster;
  /**
   * NAT gateways of the new VPC (ignored with `vpc`). KEDA's images come from ghcr.io, and Auto Mode nodes reach the
   * EKS and EC2 APIs, so the EKS plane needs internet egress.
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * CPU of one agent pod, millicores (the agent gets 250m, the Lambda containers share the rest).
   * @default 1000
   */
  readonly podCpuMillis?: number;
  /**
   * Memory of one agent pod, MiB (the agent gets 256, the Lambda containers share the rest).
   * @default 3072
   */
  readonly podMemoryMiB?: number;
  /**
   * Image URI of the agent; it must be built for the pods' CPU architecture.
   * @default - bin/agent.ts bundled at synth, built on Node.js 22 for the architecture at deploy time
   */
  readonly agentImageUri?: string;
  /**
   * Image URI of the Lambda containers.
   * @default - the runtime's AWS Lambda base image through an ECR pull-through cache
   */
  readonly lambdaImageUri?: string;
  /**
   * Image URI of the init container (`sh`, the AWS CLI and Python).
   * @default - `public.ecr.aws/aws-cli/aws-cli` through an ECR pull-through cache
   */
  readonly initImageUri?: string;
  /**
   * Install KEDA from its pinned Helm chart. Turn off on a cluster that runs KEDA already (give its operator
   * `sqs:GetQueueAttributes` on the queues yourself).
   * @default true
   */
  readonly installKeda?: boolean;
}

/** The props with defaults applied. */
interface EksPlaneSettings extends CommonPlaneSettings {
  readonly architecture: CpuArchitecture;
  readonly stopTimeoutSec: number;
  readonly podCpuMillis: number;
  readonly podMemoryMiB: number;
}

/** Applies the defaults and collects every problem with the props (then throws them at once as a `ConfigError`). */
export function eksPlaneSettings(props: EksComputePlaneProps): EksPlaneSettings {
  const issues: string[] = [];
  const stopTimeoutSec = (props.stopTimeout ?? Duration.seconds(120)).toSeconds();
  if (stopTimeoutSec < 2 || stopTimeoutSec > MAX_STOP_TIMEOUT_SEC) {
    issues.push(`stop timeout: ${stopTimeoutSec}s must be 2..${MAX_STOP_TIMEOUT_SEC}s`);
  }
  if (props.spot && stopTimeoutSec > SPOT_NOTICE_SEC) {
    issues.push(
      `stop timeout: ${stopTimeoutSec}s is longer than Spot's ${SPOT_NOTICE_SEC}s interruption notice: use at most ${SPOT_NOTICE_SEC}s with spot`,
    );
  }
  const common = commonPlaneSettings(props, issues);
  const podCpuMillis = props.podCpuMillis ?? 1000;
  const podMemoryMiB = props.podMemoryMiB ?? 3072;
  // The agent's share plus at least 100m and 128 MiB per Lambda container.
  const minCpu = 250 + 100 * common.slots;
  const minMemory = 256 + 128 * common.slots;
  if (!(podCpuMillis >= minCpu)) {
    issues.push(`pod cpu: ${podCpuMillis}m is too little for ${common.slots} slot(s): use at least ${minCpu}m`);
  }
  if (!(podMemoryMiB >= minMemory)) {
    issues.push(`pod memory: ${podMemoryMiB} MiB is too little for ${common.slots} slot(s): use at least ${minMemory}`);
  }
  if (props.existingCluster && props.vpc) {
    issues.push('existing EKS cluster: the pods run in its VPC; do not pass vpc');
  }
  if (props.existingCluster && props.natGateways !== undefined) {
    issues.push('existing EKS cluster: nat_gateways only applies to a new VPC; remove it');
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return {
    ...common,
    architecture: props.cpuArchitecture ?? 'x86_64',
    stopTimeoutSec,
    podCpuMillis,
    podMemoryMiB,
  };
}

/**
 * EKS: one pod = one grid unit (`gridUnit`, translated by `unitPodSpec`): the init container fetching the worker
 * zip, one lambda-rie sidecar per slot on its own ports, and the agent, sharing one PID namespace and the sandbox
 * uid, read-only root file systems with emptyDir volumes, and the drain as the termination grace. A Deployment runs
 * the pods; KEDA scales it on the SQS backlog, from and to zero; the agent's role reaches it by EKS Pod Identity.
 *
 * A new cluster runs EKS Auto Mode: AWS-managed Karpenter brings nodes for pending pods and removes them when empty
 * (to zero for the agents), handles Spot interruptions by draining the node (the agent gets SIGTERM and drains),
 * and runs the Pod Identity agent. With `spot` the agents get a NodePool of their own allowing Spot.
 */
export class EksComputePlane extends ComputePlaneBase<EksComputePlaneProps, EksPlaneSettings> implements ComputePlane {
  readonly kind = 'eks' as const;
  readonly vpc?: ec2.IVpc;
  readonly cluster: eks.ICluster;
  /** The unit of work every pod runs, as data (shared with the ECS plane). */
  readonly unit: GridUnit;
  /**
   * A new cluster's Container Insights application log group, where the CloudWatch Observability add-on's Fluent Bit
   * sends the pods' stdout, each JSON line merged under `log_processed` (none on an existing cluster).
   */
  readonly logGroup?: logs.ILogGroup;
  readonly logJsonKey?: string;
  /**
   * Where the agents send their EMF lines: the CloudWatch agent on their node (a new cluster's Observability add-on),
   * not stdout, whose JSON lines the add-on's Fluent Bit nests under `log_processed`, out of CloudWatch's EMF
   * extraction (none on an existing cluster: the agents write EMF to stdout).
   */
  readonly emfEndpoint?: string;
  /** Names of the grid's Kubernetes objects (namespace, Deployment, service account). */
  readonly names: GridObjectNames;
  /** The role of the agent pods (Pod Identity): the same grants as the ECS task role. */
  readonly agentRole: iam.Role;
  /** The Kubernetes manifests of the grid, as applied (tokens unresolved). */
  readonly manifests: Readonly<Record<string, Record<string, unknown>>> = {};
  /** The Deployment's manifest resource: it starts agents, so it waits for the worker zip. */
  readonly workloads: readonly IConstruct[];

  private readonly newCluster?: eks.Cluster;
  /** The new cluster's Auto Mode node role (it pulls the images). */
  private autoModeNodeRole?: iam.Role;
  /** The new cluster's Container Insights application log group. */
  private applicationLogs?: logs.LogGroup;
  /** The access entry letting the stack's kubectl function into an existing cluster (when the stack made one). */
  private kubectlAccess?: eks.AccessEntry;

  constructor(scope: Construct, id: string, props: EksComputePlaneProps) {
    super(scope, id, props, eksPlaneSettings);
    this.names = gridObjectNames(props.config.gridName);
    const kubectlLayer = new KubectlV34Layer(this, 'KubectlLayer');
    if (props.existingCluster) {
      this.cluster = this.importCluster(props.existingCluster, kubectlLayer);
    } else {
      const natGateways = props.vpc ? undefined : (props.natGateways ?? 1);
      const network = new GridVpc(this, 'Network', { vpc: props.vpc, natGateways });
      this.vpc = network.vpc;
      this.newCluster = this.createCluster(network, kubectlLayer);
      this.cluster = this.newCluster;
      this.logGroup = this.applicationLogs;
      this.logJsonKey = CONTAINER_INSIGHTS_LOG_KEY;
      this.emfEndpoint = `tcp://$(${NODE_IP_ENV}):${CLOUDWATCH_AGENT_EMF_PORT}`;
    }
    this.unit = planeUnit(this, props, this.settings, this.agentConfiguration);
    this.agentRole = this.createAgentRole();
    const images = this.resolveImages();
    const prerequisites = this.addAgentIdentity();
    const placement = this.agentPlacement();
    if (placement.nodePool) prerequisites.push(placement.nodePool);
    const workload = this.addAgentDeployment(images, placement.nodeSelector, prerequisites);
    this.workloads = [workload];
    this.addBacklogScaling(workload);
    NagSuppressions.addResourceSuppressions(this, eksPlaneSuppressions(), true);
  }

  /** Applies `manifest` to the cluster after `after` (and the kubectl access entry), keeping it in `manifests`. */
  protected applyManifest(
    id: string,
    manifest: Record<string, unknown>[],
    after: readonly IConstruct[] = [],
  ): eks.KubernetesManifest {
    const manifests = this.manifests as Record<string, Record<string, unknown>>;
    manifest.forEach((m, i) => (manifests[`${id}${manifest.length > 1 ? i : ''}`] = m));
    const resource = new eks.KubernetesManifest(this, id, { cluster: this.cluster, manifest });
    for (const dependency of [...after, ...(this.kubectlAccess ? [this.kubectlAccess] : [])]) {
      resource.node.addDependency(dependency);
    }
    return resource;
  }

  /** The agents' namespace and service account, and the Pod Identity association giving it the agent role. */
  protected addAgentIdentity(): IConstruct[] {
    const identity = this.applyManifest(
      'AgentIdentity',
      agentIdentityObjects(this.names).map((o) => o.toJSON() as Record<string, unknown>),
    );
    const association = new eks.CfnPodIdentityAssociation(this, 'AgentPodIdentity', {
      clusterName: this.cluster.clusterName,
      namespace: this.names.namespace,
      serviceAccount: this.names.serviceAccount,
      roleArn: this.agentRole.roleArn,
    });
    association.node.addDependency(identity);
    return [identity, association];
  }

  /** Where agent pods run: a Spot NodePool of their own with `spot`, else any node of the grid's architecture. */
  protected agentPlacement(): { nodeSelector: Record<string, string>; nodePool?: eks.KubernetesManifest } {
    const arch = this.settings.architecture === 'arm64' ? 'arm64' : 'amd64';
    if (!this.props.spot) return { nodeSelector: { 'kubernetes.io/arch': arch } };
    const nodePool = this.applyManifest('AgentNodePool', [
      agentNodePool(this.names, { spot: true, architecture: arch }) as unknown as Record<string, unknown>,
    ]);
    return { nodeSelector: { [NODEPOOL_LABEL]: this.names.nodePool }, nodePool };
  }

  /** The Deployment of grid-unit pods, validated against the Kubernetes schema before it is applied. */
  protected addAgentDeployment(
    images: Record<UnitImage, string>,
    nodeSelector: Record<string, string>,
    after: readonly IConstruct[],
  ): eks.KubernetesManifest {
    const pod = unitPodSpec(this.unit, {
      images,
      serviceAccountName: this.names.serviceAccount,
      cpuMillis: this.settings.podCpuMillis,
      memoryMiB: this.settings.podMemoryMiB,
      nodeSelector,
      agentEnv: this.emfEndpoint
        ? [
            { name: NODE_IP_ENV, valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
            { name: GRID_ENV.emfAgentEndpoint, value: this.emfEndpoint },
          ]
        : [],
    });
    const deployment = agentDeployment(this.names, pod);
    deployment.validate();
    return this.applyManifest('AgentDeployment', [deployment.toJSON() as Record<string, unknown>], after);
  }

  /** KEDA (unless installed already) and the ScaledObject that scales the Deployment on the SQS backlog. */
  protected addBacklogScaling(workload: eks.KubernetesManifest): void {
    const keda = (this.props.installKeda ?? true) ? this.installKeda() : undefined;
    const scaledObject = backlogScaledObject(this.names, {
      queueUrls: this.props.queues.map((q) => q.queueUrl),
      region: Stack.of(this).region,
      targetBacklogPerAgent: this.backlogPerAgentTarget,
      minAgents: this.props.config.minAgents,
      maxAgents: this.props.config.maxAgents,
      taskTimeoutSec: this.settings.taskTimeoutSec,
    });
    const auth = sqsTriggerAuthentication(this.names);
    scaledObject.validate();
    auth.validate();
    this.applyManifest(
      'BacklogScaling',
      [auth.toJSON() as Record<string, unknown>, scaledObject.toJSON() as Record<string, unknown>],
      [workload, ...(keda ? [keda] : [])],
    );
  }

  /** Running agent pods, from Container Insights (the CloudWatch Observability add-on on the cluster). */
  metricRunningAgents(props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.runningAgentsMetric(
      'ContainerInsights',
      'namespace_number_of_running_pods',
      { ClusterName: this.cluster.clusterName, Namespace: this.names.namespace },
      props,
    );
  }

  /** Step: a new EKS Auto Mode cluster in the grid's VPC, with the kubectl provider and control-plane logs. */
  protected createCluster(network: GridVpc, kubectlLayer: KubectlV34Layer): eks.Cluster {
    // The CDK's default node role, made here so the nodes may also pull the agent image and the cached images.
    const nodeRole = new iam.Role(this, 'NodeRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonEKSWorkerNodePolicy'),
        iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonEC2ContainerRegistryReadOnly'),
      ],
    });
    this.autoModeNodeRole = nodeRole;
    const cluster = new eks.Cluster(this, 'Cluster', {
      version: EKS_KUBERNETES_VERSION,
      vpc: network.vpc,
      vpcSubnets: [network.subnets],
      defaultCapacityType: eks.DefaultCapacityType.AUTOMODE,
      compute: { nodePools: ['system', 'general-purpose'], nodeRole },
      kubectlProviderOptions: { kubectlLayer },
      secretsEncryptionKey: this.secretsKey(),
      clusterLogging: [
        eks.ClusterLoggingTypes.API,
        eks.ClusterLoggingTypes.AUDIT,
        eks.ClusterLoggingTypes.AUTHENTICATOR,
        eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
        eks.ClusterLoggingTypes.SCHEDULER,
      ],
    });
    // Container Insights: the running-agents metric and the pods' logs in CloudWatch, in a group made here (with its
    // retention) before the add-on's Fluent Bit would make one of its own.
    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/containerinsights/${cluster.clusterName}/application`,
      retention: this.props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.applicationLogs = logGroup;
    const observability = new iam.Role(this, 'ObservabilityRole', {
      assumedBy: new iam.SessionTagsPrincipal(new iam.ServicePrincipal('pods.eks.amazonaws.com')),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('CloudWatchAgentServerPolicy')],
    });
    // The add-on's Fluent Bit merges each JSON line of a pod's stdout under `log_processed` (its `kubernetes` filter's
    // Merge_Log_Key, https://github.com/aws-observability/helm-charts chart amazon-cloudwatch-observability
    // values.yaml), so an EMF line from stdout has no `_aws` at its root and CloudWatch extracts nothing from it
    // (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
    // The add-on's CloudWatch agent, with its `emf` input, takes the agents' EMF lines instead (`emfEndpoint`).
    const addon = new eks.Addon(this, 'Observability', {
      cluster,
      addonName: 'amazon-cloudwatch-observability',
      configurationValues: { agent: { config: OBSERVABILITY_AGENT_CONFIG } },
    });
    addon.node.addDependency(logGroup);
    addon.node.addDependency(
      new eks.CfnPodIdentityAssociation(this, 'ObservabilityPodIdentity', {
        clusterName: cluster.clusterName,
        namespace: 'amazon-cloudwatch',
        serviceAccount: 'cloudwatch-agent',
        roleArn: observability.roleArn,
      }),
    );
    return cluster;
  }

  /**
   * The key of the new cluster's envelope encryption of Kubernetes secrets. The grid keeps none there; the key costs
   * little and keeps any added later encrypted. Only AWS services may create grants on it (EKS does).
   */
  private secretsKey(): kms.Key {
    const key = new kms.Key(this, 'SecretsKey', {
      enableKeyRotation: true,
      description: 'Envelope encryption of the grid cluster Kubernetes secrets',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:CreateGrant'],
        resources: ['*'],
        conditions: { BoolIfExists: { 'kms:GrantIsForAWSResource': 'false', 'aws:PrincipalIsAWSService': 'false' } },
      }),
    );
    return key;
  }

  /** Step: an existing cluster, with a kubectl provider that may apply manifests to it. */
  protected importCluster(existing: ExistingEksCluster, kubectlLayer: KubectlV34Layer): eks.ICluster {
    const role = existing.kubectlRoleArn
      ? iam.Role.fromRoleArn(this, 'KubectlRole', existing.kubectlRoleArn, { mutable: false })
      : undefined;
    // An imported cluster takes a ready provider, and the provider takes the cluster it controls.
    const target = eks.Cluster.fromClusterAttributes(this, 'Target', { clusterName: existing.clusterName });
    const provider = new eks.KubectlProvider(this, 'KubectlProvider', { cluster: target, kubectlLayer, role });
    const cluster = eks.Cluster.fromClusterAttributes(this, 'Cluster', {
      clusterName: existing.clusterName,
      kubectlProvider: provider,
    });
    if (!role && provider.role) {
      const access = new eks.AccessEntry(this, 'KubectlAccess', {
        cluster,
        principal: provider.role.roleArn,
        accessPolicies: [
          eks.AccessPolicy.fromAccessPolicyName('AmazonEKSClusterAdminPolicy', {
            accessScopeType: eks.AccessScopeType.CLUSTER,
          }),
        ],
      });
      this.kubectlAccess = access;
    }
    return cluster;
  }

  /** Step: the agent pods' role, trusted by EKS Pod Identity, with the ECS task role's grants (`grantAgentAccess`). */
  protected createAgentRole(): iam.Role {
    const role = new iam.Role(this, 'AgentRole', {
      assumedBy: new iam.SessionTagsPrincipal(new iam.ServicePrincipal('pods.eks.amazonaws.com')),
      description: 'HTC-Grid agent pods (EKS Pod Identity): the same grants as the ECS task role',
    });
    grantAgentAccess(role, this.props);
    return role;
  }

  /** Step: image URIs of the unit's containers (public ones through a pull-through cache unless given). */
  protected resolveImages(): Record<UnitImage, string> {
    const { agentImageUri, lambdaImageUri, initImageUri, worker } = this.props;
    const cache = !lambdaImageUri || !initImageUri ? new PublicImageCache(this, 'PublicImages') : undefined;
    let agent = agentImageUri;
    if (!agent) {
      const asset = agentDockerImage(this, 'AgentImage', this.settings.architecture);
      agent = asset.imageUri;
      if (this.autoModeNodeRole) asset.repository.grantPull(this.autoModeNodeRole);
    }
    if (cache && this.autoModeNodeRole) cache.grantPull(this.autoModeNodeRole);
    return {
      init: initImageUri ?? cache!.imageUri(INIT_IMAGE),
      lambda: lambdaImageUri ?? cache!.imageUri(worker.runtime.baseImage),
      agent,
    };
  }

  /** Step: KEDA from its pinned chart, its operator reading the queues' attributes through EKS Pod Identity. */
  protected installKeda(): IConstruct {
    const role = new iam.Role(this, 'KedaRole', {
      assumedBy: new iam.SessionTagsPrincipal(new iam.ServicePrincipal('pods.eks.amazonaws.com')),
      description: 'KEDA operator (EKS Pod Identity): reads the grid queues backlog',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['sqs:GetQueueAttributes'],
        resources: this.props.queues.map((q) => q.queueArn),
      }),
    );
    // Before the chart: Pod Identity gives credentials to pods created after their association exists.
    const association = new eks.CfnPodIdentityAssociation(this, 'KedaPodIdentity', {
      clusterName: this.cluster.clusterName,
      namespace: KEDA_NAMESPACE,
      serviceAccount: KEDA_OPERATOR_SERVICE_ACCOUNT,
      roleArn: role.roleArn,
    });
    const chart = new eks.HelmChart(this, 'Keda', {
      cluster: this.cluster,
      ...KEDA_CHART,
      namespace: KEDA_NAMESPACE,
      createNamespace: true,
      wait: true,
    });
    chart.node.addDependency(association);
    if (this.kubectlAccess) chart.node.addDependency(this.kubectlAccess);
    return chart;
  }
}
