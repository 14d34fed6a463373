// An AWS::ECS::TaskDefinition as resolved from the template: the container definitions, volumes and task settings
// the twin runs, with ECS's defaults where the template leaves a field out.
import { TwinTemplateError } from '../errors';
import { text } from '../template/cfn-template';

export type DependencyCondition = 'START' | 'COMPLETE' | 'SUCCESS' | 'HEALTHY';

export interface ContainerDefinition {
  readonly name: string;
  readonly image: string;
  readonly entryPoint?: readonly string[];
  readonly command?: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  /** ECS's default: true. */
  readonly essential: boolean;
  readonly dependsOn: readonly { readonly containerName: string; readonly condition: DependencyCondition }[];
  readonly mountPoints: readonly {
    readonly sourceVolume: string;
    readonly containerPath: string;
    readonly readOnly: boolean;
  }[];
  readonly readonlyRootFilesystem: boolean;
  readonly user?: string;
  /** Seconds between SIGTERM and SIGKILL; ECS's default is 30. */
  readonly stopTimeoutSec: number;
  readonly workingDirectory?: string;
  readonly portMappings: readonly number[];
  readonly logStreamPrefix?: string;
  readonly healthCheck?: {
    readonly command: readonly string[];
    readonly intervalSec: number;
    readonly timeoutSec: number;
    readonly retries: number;
    readonly startPeriodSec: number;
  };
}

export interface TaskDefinition {
  readonly family: string;
  readonly networkMode: string;
  /** `task`: the containers share one PID namespace. */
  readonly pidMode?: string;
  readonly cpu?: string;
  readonly memory?: string;
  readonly volumes: readonly string[];
  readonly containers: readonly ContainerDefinition[];
  readonly taskRoleArn?: string;
  readonly executionRoleArn?: string;
}

const DEFAULT_STOP_TIMEOUT_SEC = 30;

/** Reads a resolved AWS::ECS::TaskDefinition's properties; refuses what the twin cannot run faithfully. */
export function parseTaskDefinition(props: Record<string, unknown>): TaskDefinition {
  const defs = (props.ContainerDefinitions ?? []) as Record<string, unknown>[];
  const containers = defs.map((d) => parseContainer(d));
  const names = new Set(containers.map((c) => c.name));
  for (const c of containers) {
    for (const dep of c.dependsOn) {
      if (!names.has(dep.containerName)) {
        throw new TwinTemplateError(
          `container ${c.name} depends on ${dep.containerName}, which the task definition does not hold`,
        );
      }
    }
  }
  return {
    family: text(props.Family ?? 'task'),
    networkMode: text(props.NetworkMode ?? 'bridge'),
    pidMode: props.PidMode === undefined ? undefined : text(props.PidMode),
    cpu: props.Cpu === undefined ? undefined : text(props.Cpu),
    memory: props.Memory === undefined ? undefined : text(props.Memory),
    volumes: ((props.Volumes ?? []) as { Name: string; Host?: unknown; EfsVolumeConfiguration?: unknown }[]).map(
      (v) => {
        if (v.Host || v.EfsVolumeConfiguration) {
          throw new TwinTemplateError(
            `volume ${v.Name}: host and EFS volumes are not run by the twin (Fargate volumes are empty task storage)`,
          );
        }
        return v.Name;
      },
    ),
    containers,
    taskRoleArn: props.TaskRoleArn === undefined ? undefined : text(props.TaskRoleArn),
    executionRoleArn: props.ExecutionRoleArn === undefined ? undefined : text(props.ExecutionRoleArn),
  };
}

function parseContainer(d: Record<string, unknown>): ContainerDefinition {
  const name = String(d.Name);
  for (const unsupported of ['Secrets', 'VolumesFrom', 'Links', 'EnvironmentFiles', 'RepositoryCredentials']) {
    if (d[unsupported] !== undefined)
      throw new TwinTemplateError(`container ${name}: ${unsupported} is not run by the twin`);
  }
  const env: Record<string, string> = {};
  for (const e of (d.Environment ?? []) as { Name: string; Value: unknown }[]) env[e.Name] = String(e.Value);
  const health = d.HealthCheck as
    { Command: string[]; Interval?: number; Timeout?: number; Retries?: number; StartPeriod?: number } | undefined;
  const log = d.LogConfiguration as { Options?: Record<string, string> } | undefined;
  return {
    name,
    image: String(d.Image),
    entryPoint: d.EntryPoint as string[] | undefined,
    command: d.Command as string[] | undefined,
    environment: env,
    essential: d.Essential === undefined ? true : Boolean(d.Essential),
    dependsOn: ((d.DependsOn ?? []) as { ContainerName: string; Condition: DependencyCondition }[]).map((x) => ({
      containerName: x.ContainerName,
      condition: x.Condition,
    })),
    mountPoints: ((d.MountPoints ?? []) as { SourceVolume: string; ContainerPath: string; ReadOnly?: boolean }[]).map(
      (m) => ({
        sourceVolume: m.SourceVolume,
        containerPath: m.ContainerPath,
        readOnly: Boolean(m.ReadOnly),
      }),
    ),
    readonlyRootFilesystem: Boolean(d.ReadonlyRootFilesystem),
    user: d.User === undefined ? undefined : text(d.User),
    stopTimeoutSec: d.StopTimeout === undefined ? DEFAULT_STOP_TIMEOUT_SEC : Number(d.StopTimeout),
    workingDirectory: d.WorkingDirectory === undefined ? undefined : text(d.WorkingDirectory),
    portMappings: ((d.PortMappings ?? []) as { ContainerPort: number }[]).map((p) => Number(p.ContainerPort)),
    logStreamPrefix: log?.Options?.['awslogs-stream-prefix'],
    healthCheck: health
      ? {
          command: health.Command,
          intervalSec: health.Interval ?? 30,
          timeoutSec: health.Timeout ?? 5,
          retries: health.Retries ?? 3,
          startPeriodSec: health.StartPeriod ?? 0,
        }
      : undefined,
  };
}
