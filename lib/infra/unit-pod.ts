// The grid unit (grid-unit.ts) as Kubernetes objects: the agent pod, its Deployment, KEDA's ScaledObject on the
// SQS backlog, and Karpenter's NodePool for Spot. Pure functions of data, typed by kubernetes-models and checked
// against the Kubernetes JSON schemas (`validate()`), so the EKS plane and the tests read the very same manifests.
import { Deployment } from 'kubernetes-models/apps/v1';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { Namespace, ServiceAccount } from 'kubernetes-models/v1';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { idleMinutes } from './backlog-scaling';
import type { GridUnit, UnitContainer, UnitImage } from './grid-unit';

/** The HPA's longest scale-down stabilization window. */
export const MAX_STABILIZATION_SEC = 3600;
/** The Karpenter annotation that keeps voluntary disruption (consolidation, drift) off a node running the pod. */
export const DO_NOT_DISRUPT = 'karpenter.sh/do-not-disrupt';
/** Label of the nodes of a Karpenter NodePool (and the pod's node selector). */
export const NODEPOOL_LABEL = 'karpenter.sh/nodepool';

/** What a pod needs besides the unit: images by role, identity, placement and size. */
export interface UnitPodOptions {
  /** Image URI of each container role. */
  readonly images: Readonly<Record<UnitImage, string>>;
  /** Service account the pod runs as (its Pod Identity association gives the agent its AWS role). */
  readonly serviceAccountName: string;
  /** CPU of the whole pod, millicores (the agent gets a small share, the Lambda containers the rest evenly). */
  readonly cpuMillis: number;
  /** Memory of the whole pod, MiB. */
  readonly memoryMiB: number;
  /** Node labels the pod must run on (e.g. its NodePool). */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /**
   * Variables added to the agent container's environment after the unit's, for what only Kubernetes knows (e.g. the
   * node's IP from the downward API); a variable may use earlier ones as `$(NAME)`.
   */
  readonly agentEnv?: readonly IEnvVar[];
}

/** Where each unit container goes in a pod. */
export type PodPlacement = 'init' | 'sidecar' | 'main';

/** The agent's share of the pod: it runs no handler, only HTTP to its Lambda containers and AWS. */
const AGENT_CPU_MILLIS = 250;
const AGENT_MEMORY_MIB = 256;
/** The init container only downloads and unpacks the zip. */
const INIT_CPU_MILLIS = 250;
const INIT_MEMORY_MIB = 256;

/**
 * Where each container of the unit runs in a pod. A container that exits when done (`essential: false`) is an init
 * container: it completes before the next starts (ECS `SUCCESS`). A container others wait to have started (ECS
 * `START`) is a sidecar (an init container with `restartPolicy: Always`): it starts before them and, on termination,
 * is stopped after them, so the agent drains while its Lambda containers keep serving. The rest are the pod's main
 * containers. Start order must follow the dependencies, as the unit's container order does.
 */
export function podPlacements(unit: GridUnit): ReadonlyMap<string, PodPlacement> {
  const placements = new Map<string, PodPlacement>();
  const startedBy = new Set(unit.containers.flatMap((c) => c.dependsOn.filter((d) => d.condition === 'START')));
  const awaitedToStart = new Set([...startedBy].map((d) => d.container));
  for (const c of unit.containers) {
    for (const dependency of c.dependsOn) {
      const placed = placements.get(dependency.container);
      if (placed === undefined) {
        throw new Error(`grid unit: ${c.name} depends on ${dependency.container}, which does not start before it`);
      }
      if (placed === 'main') throw new Error(`grid unit: ${c.name} depends on main container ${dependency.container}`);
    }
    if (!c.essential) {
      if (awaitedToStart.has(c.name)) throw new Error(`grid unit: ${c.name} exits, so nothing may wait for its start`);
      placements.set(c.name, 'init');
    } else {
      placements.set(c.name, awaitedToStart.has(c.name) ? 'sidecar' : 'main');
    }
  }
  return placements;
}

/** `uid:gid` as numbers. */
export function parseUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(user);
  if (!m) throw new Error(`grid unit: user ${user} is not uid:gid`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/**
 * The pod spec of one unit: its containers, their users, volumes and order, and the drain grace. No container ports
 * are declared: every listener is on the pod's loopback (`LOOPBACK`), as in the ECS task, which maps none either.
 */
export function unitPodSpec(unit: GridUnit, options: UnitPodOptions): IPodSpec {
  const placements = podPlacements(unit);
  const lambdas = unit.containers.filter((c) => c.image === 'lambda').length;
  const lambdaCpu = Math.floor((options.cpuMillis - AGENT_CPU_MILLIS) / Math.max(1, lambdas));
  const lambdaMemory = Math.floor((options.memoryMiB - AGENT_MEMORY_MIB) / Math.max(1, lambdas));
  const size = (c: UnitContainer): { cpu: number; memory: number } =>
    c.image === 'lambda'
      ? { cpu: lambdaCpu, memory: lambdaMemory }
      : c.image === 'agent'
        ? { cpu: AGENT_CPU_MILLIS, memory: AGENT_MEMORY_MIB }
        : { cpu: INIT_CPU_MILLIS, memory: INIT_MEMORY_MIB };
  const container = (c: UnitContainer): IContainer => {
    const { uid, gid } = parseUser(c.user);
    const { cpu, memory } = size(c);
    return {
      name: c.name,
      image: options.images[c.image],
      ...(c.entryPoint ? { command: [...c.entryPoint] } : {}),
      ...(c.command ? { args: [...c.command] } : {}),
      ...(placements.get(c.name) === 'sidecar' ? { restartPolicy: 'Always' } : {}),
      env: [
        ...Object.entries(c.environment).map(([name, value]) => ({ name, value })),
        ...(c.image === 'agent' ? (options.agentEnv ?? []) : []),
      ],
      volumeMounts: c.mounts.map((m) => ({ name: m.volume, mountPath: m.path, readOnly: m.readOnly })),
      resources: {
        requests: { cpu: `${cpu}m`, memory: `${memory}Mi` },
        limits: { memory: `${memory}Mi` },
      },
      securityContext: {
        runAsUser: uid,
        runAsGroup: gid,
        runAsNonRoot: uid !== 0,
        readOnlyRootFilesystem: c.readOnlyRootFilesystem,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      },
    };
  };
  const placed = (...kinds: PodPlacement[]): IContainer[] =>
    unit.containers.filter((c) => kinds.includes(placements.get(c.name)!)).map(container);
  return {
    // One PID namespace, as ECS `pidMode: task`: the agent (same uid) kills a cancelled task's runtime.
    shareProcessNamespace: true,
    terminationGracePeriodSeconds: unit.stopTimeoutSec,
    serviceAccountName: options.serviceAccountName,
    // The agent needs AWS (Pod Identity), never the Kubernetes API.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
    ...(options.nodeSelector ? { nodeSelector: { ...options.nodeSelector } } : {}),
    initContainers: placed('init', 'sidecar'),
    containers: placed('main'),
    volumes: unit.volumes.map((name) => ({ name, emptyDir: {} })),
  };
}

/** Names of a grid's Kubernetes objects. */
export interface GridObjectNames {
  readonly namespace: string;
  readonly deployment: string;
  readonly serviceAccount: string;
  readonly triggerAuthentication: string;
  readonly nodePool: string;
}

/** A Kubernetes name (DNS label) for a grid: lower case, dashes, at most 63 characters. */
export function gridObjectNames(gridName: string): GridObjectNames {
  const label =
    gridName
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40)
      .replace(/-+$/, '') || 'grid';
  return {
    namespace: `htcgrid-${label}`,
    deployment: 'htcgrid-agent',
    serviceAccount: 'htcgrid-agent',
    triggerAuthentication: 'htcgrid-sqs',
    nodePool: `htcgrid-${label}`,
  };
}

/** The grid's namespace and the agent's service account. */
export function agentIdentityObjects(names: GridObjectNames): [Namespace, ServiceAccount] {
  return [
    new Namespace({ metadata: { name: names.namespace, labels: { 'app.kubernetes.io/part-of': 'htcgrid' } } }),
    new ServiceAccount({
      metadata: { name: names.serviceAccount, namespace: names.namespace },
      automountServiceAccountToken: false,
    }),
  ];
}

/**
 * The agents' Deployment. It has no replica count: KEDA owns it (a new Deployment starts one pod, which idles out),
 * and a stack update must not reset it. Updates replace every pod at once, as the ECS service does (0 %..200 %).
 */
export function agentDeployment(names: GridObjectNames, pod: IPodSpec): Deployment {
  const labels = { 'app.kubernetes.io/name': 'htcgrid-agent', 'app.kubernetes.io/instance': names.namespace };
  return new Deployment({
    metadata: { name: names.deployment, namespace: names.namespace, labels },
    spec: {
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '100%', maxSurge: '100%' } },
      template: {
        // Only scale-in and Spot interruption stop an agent: never consolidation moving it to a cheaper node.
        metadata: { labels, annotations: { [DO_NOT_DISRUPT]: 'true' } },
        spec: pod,
      },
    },
  });
}

/** What the agents scale on. */
export interface BacklogScalingOptions {
  /** The task queues, lowest priority first. */
  readonly queueUrls: readonly string[];
  readonly region: string;
  /** Queued plus in-flight messages per agent. */
  readonly targetBacklogPerAgent: number;
  readonly minAgents: number;
  readonly maxAgents: number;
  /** Per-task deadline, seconds: the grid scales in only after looking idle for longer. */
  readonly taskTimeoutSec: number;
}

/** KEDA reads SQS with its operator's own identity (EKS Pod Identity), not the agents'. */
export function sqsTriggerAuthentication(names: GridObjectNames): TriggerAuthentication {
  return new TriggerAuthentication({
    metadata: { name: names.triggerAuthentication, namespace: names.namespace },
    spec: { podIdentity: { provider: 'aws' } },
  });
}

/**
 * KEDA's ScaledObject: one `aws-sqs-queue` trigger per priority queue counting visible and in-flight messages, as the
 * ECS policies do. KEDA starts the first agent when a message waits (activation), the HPA adds agents as the backlog
 * per agent passes the target (with several queues it takes the largest per-queue need), and KEDA returns to zero
 * once every queue has been empty, in flight included, for longer than a task may run (`idleMinutes`). The HPA
 * never scales in on its own when the minimum is zero: an agent running a long task has an empty backlog and scaling
 * it in would cut the task short (ECS's target tracking has scale-in disabled for the same reason). With a minimum
 * above zero it scales in once the lower backlog lasted the idle time (at most the HPA's one hour).
 */
export function backlogScaledObject(names: GridObjectNames, options: BacklogScalingOptions): ScaledObject {
  const idleSec = idleMinutes(options.taskTimeoutSec) * 60;
  const scaleDown =
    options.minAgents === 0
      ? { selectPolicy: 'Disabled' }
      : { stabilizationWindowSeconds: Math.min(idleSec, MAX_STABILIZATION_SEC) };
  return new ScaledObject({
    metadata: { name: names.deployment, namespace: names.namespace },
    spec: {
      scaleTargetRef: { name: names.deployment },
      minReplicaCount: options.minAgents,
      maxReplicaCount: options.maxAgents,
      pollingInterval: 15,
      cooldownPeriod: idleSec,
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown } } },
      triggers: options.queueUrls.map((queueURL) => ({
        type: 'aws-sqs-queue',
        authenticationRef: { name: names.triggerAuthentication },
        metadata: {
          queueURL,
          awsRegion: options.region,
          queueLength: String(options.targetBacklogPerAgent),
          activationQueueLength: '0',
          scaleOnInFlight: 'true',
        },
      })),
    },
  });
}

/**
 * A Karpenter NodePool (EKS Auto Mode's `eks.amazonaws.com` NodeClass) for the agents: Spot preferred when allowed,
 * On-Demand otherwise; nodes are removed only once empty (an agent node is never consolidated mid-task). Typed here:
 * kubernetes-models has no CommonJS Karpenter models.
 */
export interface NodePoolManifest {
  readonly apiVersion: 'karpenter.sh/v1';
  readonly kind: 'NodePool';
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly spec: {
    readonly template: {
      readonly spec: {
        readonly nodeClassRef: { readonly group: string; readonly kind: string; readonly name: string };
        readonly requirements: readonly { key: string; operator: 'In' | 'NotIn'; values: string[] }[];
        readonly expireAfter: string;
      };
    };
    readonly disruption: { readonly consolidationPolicy: 'WhenEmpty'; readonly consolidateAfter: string };
    readonly limits?: { readonly cpu: string };
  };
}

export function agentNodePool(
  names: GridObjectNames,
  options: { spot: boolean; architecture: 'amd64' | 'arm64'; maxCpu?: number },
): NodePoolManifest {
  return {
    apiVersion: 'karpenter.sh/v1',
    kind: 'NodePool',
    metadata: { name: names.nodePool },
    spec: {
      template: {
        spec: {
          nodeClassRef: { group: 'eks.amazonaws.com', kind: 'NodeClass', name: 'default' },
          requirements: [
            {
              key: 'karpenter.sh/capacity-type',
              operator: 'In',
              values: options.spot ? ['spot', 'on-demand'] : ['on-demand'],
            },
            { key: 'kubernetes.io/arch', operator: 'In', values: [options.architecture] },
            { key: 'eks.amazonaws.com/instance-category', operator: 'In', values: ['c', 'm', 'r'] },
          ],
          // Auto Mode's longest node lifetime; do-not-disrupt pods hold an expired node until they end.
          expireAfter: '336h',
        },
      },
      disruption: { consolidationPolicy: 'WhenEmpty', consolidateAfter: '1m' },
      ...(options.maxCpu !== undefined ? { limits: { cpu: String(options.maxCpu) } } : {}),
    },
  };
}
