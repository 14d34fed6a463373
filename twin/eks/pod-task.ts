// An agent pod of the EKS plane (its Deployment manifest, resolved) read as the task the twin runs: the same
// container model as an ECS task definition, with Kubernetes' start and stop order written as ECS dependencies.
import { TwinTemplateError } from '../errors';
import type { ContainerDefinition, TaskDefinition } from '../ecs/task-definition';

/** Kubernetes' default grace between SIGTERM and SIGKILL. */
const DEFAULT_GRACE_SEC = 30;

interface PodContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: unknown;
  ports?: { containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  restartPolicy?: string;
  workingDir?: string;
  securityContext?: { runAsUser?: number; runAsGroup?: number; readOnlyRootFilesystem?: boolean };
}

interface PodSpec {
  serviceAccountName?: string;
  shareProcessNamespace?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  initContainers?: PodContainer[];
  containers: PodContainer[];
  volumes?: { name: string; emptyDir?: unknown }[];
}

/** The pod template of a Deployment manifest (an object, or its JSON). */
export function deploymentPod(manifest: unknown): { name: string; spec: PodSpec } {
  const m = (typeof manifest === 'string' ? JSON.parse(manifest) : manifest) as {
    kind?: string;
    metadata?: { name?: string };
    spec?: { template?: { spec?: PodSpec } };
  };
  if (m.kind !== 'Deployment' || !m.spec?.template?.spec) {
    throw new TwinTemplateError(`expected a Deployment manifest with a pod template, got ${m.kind ?? 'no kind'}`);
  }
  return { name: m.metadata?.name ?? 'pod', spec: m.spec.template.spec };
}

/**
 * The pod as the twin's task: init containers run to completion one after the other (each later container waits for
 * their `SUCCESS`), sidecars (`restartPolicy: Always`) start one after the other before the main containers (each
 * later container waits for their `START`) and stop after them, and every container gets the pod's grace period.
 * A shared process namespace is ECS's `pidMode: task`. Refuses what the twin would not run faithfully.
 */
export function podTaskDefinition(manifest: unknown): TaskDefinition {
  const { name, spec } = deploymentPod(manifest);
  const grace = spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SEC;
  const volumes = (spec.volumes ?? []).map((v) => {
    if (v.emptyDir === undefined) {
      throw new TwinTemplateError(`volume ${v.name}: only emptyDir volumes are run by the twin (pod scratch storage)`);
    }
    return v.name;
  });
  const earlier: ContainerDefinition['dependsOn'][number][] = [];
  const containers: ContainerDefinition[] = [];
  const add = (c: PodContainer, kind: 'init' | 'sidecar' | 'main') => {
    containers.push(podContainer(c, spec, grace, kind !== 'init', [...earlier]));
    if (kind === 'init') earlier.push({ containerName: c.name, condition: 'SUCCESS' });
    if (kind === 'sidecar') earlier.push({ containerName: c.name, condition: 'START' });
  };
  for (const c of spec.initContainers ?? []) add(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init');
  for (const c of spec.containers) add(c, 'main');
  return {
    family: name,
    networkMode: 'awsvpc',
    pidMode: spec.shareProcessNamespace ? 'task' : undefined,
    volumes,
    containers,
  };
}

/** Downward API fields as the twin's pod has them: its node and pod are this host, its containers on loopback. */
const TWIN_POD_FIELDS: Record<string, string> = { 'status.hostIP': '127.0.0.1', 'status.podIP': '127.0.0.1' };

/**
 * Kubernetes' expansion of an env value: `$(NAME)` of a variable defined earlier in the container becomes its value,
 * `$$` is a `$`, an unknown reference stays as written.
 */
export function expandVariables(value: string, defined: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) =>
    name === undefined ? '$' : (defined[name] ?? whole),
  );
}

function podContainer(
  c: PodContainer,
  pod: PodSpec,
  grace: number,
  essential: boolean,
  dependsOn: ContainerDefinition['dependsOn'][number][],
): ContainerDefinition {
  if (c.envFrom !== undefined) throw new TwinTemplateError(`container ${c.name}: envFrom is not run by the twin`);
  const environment: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      environment[e.name] = expandVariables(String(e.value), environment);
      continue;
    }
    const field = (e.valueFrom as { fieldRef?: { fieldPath?: string } } | undefined)?.fieldRef?.fieldPath;
    if (field === undefined || !TWIN_POD_FIELDS[field]) {
      throw new TwinTemplateError(
        `container ${c.name}: env ${e.name} without a plain value or a field the twin knows (${Object.keys(TWIN_POD_FIELDS).join(', ')})`,
      );
    }
    environment[e.name] = TWIN_POD_FIELDS[field];
  }
  const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
  const gid = c.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup;
  return {
    name: c.name,
    image: c.image,
    entryPoint: c.command,
    command: c.args,
    environment,
    essential,
    dependsOn,
    mountPoints: (c.volumeMounts ?? []).map((m) => {
      if (m.subPath !== undefined) throw new TwinTemplateError(`container ${c.name}: subPath mounts are not run`);
      return { sourceVolume: m.name, containerPath: m.mountPath, readOnly: Boolean(m.readOnly) };
    }),
    readonlyRootFilesystem: Boolean(c.securityContext?.readOnlyRootFilesystem),
    user: uid === undefined ? undefined : gid === undefined ? String(uid) : `${uid}:${gid}`,
    stopTimeoutSec: grace,
    workingDirectory: c.workingDir,
    portMappings: (c.ports ?? []).map((p) => Number(p.containerPort)),
    logStreamPrefix: c.name,
  };
}
