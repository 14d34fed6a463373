// The grid's unit of work as plain data: the containers one agent runs with, for any compute plane to translate.
//
// One unit = an init container that fetches and unpacks the worker zip, one Lambda container per slot (the AWS
// Lambda base image running lambda-rie, each on its own invoke port and its own Runtime API address, since the
// containers share one network namespace), and the agent. They share one PID namespace and the sandbox uid, so the
// agent can kill a cancelled task's runtime. The ECS plane translates this into a task definition; an EKS plane
// would translate the very same data into a pod.
import { GRID_ENV } from '../core/grid-resources';
import type { WorkerRuntime } from '../core/runtime-kind';

/** Mount point of the worker code in the Lambda containers (`LAMBDA_TASK_ROOT`). */
export const TASK_ROOT = '/var/task';
/** Invoke port of slot 0's lambda-rie; slot i listens on `RIE_PORT + i` (lambda-rie's own default is 8080). */
export const RIE_PORT = 8080;
/** Runtime API port of slot 0's lambda-rie; slot i serves it on `RUNTIME_API_PORT + i` (lambda-rie's default: 9001). */
export const RUNTIME_API_PORT = 9001;
/** Every address is on the unit's own loopback: nothing outside the task or pod can invoke a worker. */
export const LOOPBACK = '127.0.0.1';
/** Most Lambda containers in one unit, so the invoke ports (8080..) and Runtime API ports (9001..) never meet. */
export const MAX_SLOTS = 8;
/**
 * The uid:gid of the Lambda containers (the Lambda base images' sandbox user, `sbx_user1051`) and of the agent.
 * The agent shares it so that, with the shared PID namespace, it may SIGKILL a cancelled task's runtime (signalling
 * needs the same uid or CAP_KILL, which Fargate cannot grant a non-root user).
 */
export const SANDBOX_USER = '993:990';
/**
 * The init container runs as root: task volumes are created root-owned, and it hands them to the sandbox uid. It
 * only downloads and unpacks the zip, with a read-only root file system, and exits before any worker code runs.
 */
export const INIT_USER = '0:0';
/** Every Lambda container's endpoint, comma-separated, one per slot (the first is also `HTCGRID_LAMBDA_ENDPOINT`). */
export const LAMBDA_ENDPOINTS_ENV = GRID_ENV.lambdaEndpoints;

/** What a container runs from: the unit names images by role; each plane decides where they come from. */
export type UnitImage = 'init' | 'lambda' | 'agent';

export interface UnitMount {
  readonly volume: string;
  readonly path: string;
  readonly readOnly: boolean;
}

/** Start-order dependency: `SUCCESS` waits for the container to exit 0, `START` for it to have started. */
export interface UnitDependency {
  readonly container: string;
  readonly condition: 'SUCCESS' | 'START';
}

export interface UnitContainer {
  /** Container name, unique in the unit (`fetch-worker`, `lambda-<i>`, `agent`). */
  readonly name: string;
  readonly image: UnitImage;
  readonly entryPoint?: readonly string[];
  readonly command?: readonly string[];
  /** Values may be deploy-time tokens. */
  readonly environment: Readonly<Record<string, string>>;
  /** `uid:gid`. */
  readonly user: string;
  readonly readOnlyRootFilesystem: boolean;
  /** When it stops, the unit stops (false for the init container, which exits once done). */
  readonly essential: boolean;
  readonly mounts: readonly UnitMount[];
  /** Loopback ports it listens on. */
  readonly listens: readonly number[];
  readonly dependsOn: readonly UnitDependency[];
  /** Soft memory reservation, MiB, where the container needs little. */
  readonly memoryReservationMiB?: number;
}

export interface GridUnit {
  /** Task-local scratch volumes (ephemeral, created empty and root-owned). */
  readonly volumes: readonly string[];
  /** The containers, in start order. */
  readonly containers: readonly UnitContainer[];
  /** How long a stopping unit gets to drain, seconds. */
  readonly stopTimeoutSec: number;
}

export interface GridUnitOptions {
  /** Lambda containers in the unit, 1..`MAX_SLOTS`. */
  readonly slots: number;
  readonly runtime: WorkerRuntime;
  /** The handler string, `<file>.<function>`. */
  readonly handler: string;
  /** Per-task deadline, whole seconds (lambda-rie's `AWS_LAMBDA_FUNCTION_TIMEOUT`). */
  readonly taskTimeoutSec: number;
  /** What `context.memory_limit_in_mb` reports. */
  readonly memorySizeMb: number;
  /** What `context.function_name` reports. */
  readonly functionName: string;
  /** Where the worker zip is (deploy-time tokens). */
  readonly workerBucket: string;
  readonly workerKey: string;
  /** The agent's environment besides its Lambda endpoints: configuration document and resource names. */
  readonly agentEnvironment: Readonly<Record<string, string>>;
  readonly stopTimeoutSec: number;
}

/** Invoke and Runtime API addresses of one slot's lambda-rie. */
export interface SlotAddresses {
  readonly invokePort: number;
  readonly runtimeApiPort: number;
  /** `--runtime-interface-emulator-address`: where the agent invokes it. */
  readonly invokeAddress: string;
  /** `--runtime-api-address`: where its runtime asks for the next invocation. */
  readonly runtimeApiAddress: string;
  /** The agent's URL for it. */
  readonly endpoint: string;
}

export function slotAddresses(slot: number): SlotAddresses {
  const invokePort = RIE_PORT + slot;
  const runtimeApiPort = RUNTIME_API_PORT + slot;
  return {
    invokePort,
    runtimeApiPort,
    invokeAddress: `${LOOPBACK}:${invokePort}`,
    runtimeApiAddress: `${LOOPBACK}:${runtimeApiPort}`,
    endpoint: `http://${LOOPBACK}:${invokePort}`,
  };
}

/**
 * The runtime's bootstrap lambda-rie starts: the base image's runtime for Python and Node, the worker's own
 * `bootstrap` (unpacked into the task root) for `provided`.
 */
export function runtimeBootstrap(runtime: WorkerRuntime): string {
  return runtime.family === 'provided' ? `${TASK_ROOT}/bootstrap` : '/var/runtime/bootstrap';
}

const WORKER_VOLUME = 'worker';
const AGENT_TMP = 'agent-tmp';
const INIT_TMP = 'init-tmp';
const lambdaTmp = (slot: number): string => `lambda-tmp-${slot}`;

/** The unit's containers and volumes for these options. */
export function gridUnit(options: GridUnitOptions): GridUnit {
  const slots = Array.from({ length: options.slots }, (_, i) => i);
  const init = fetchWorkerContainer(options);
  const lambdas = slots.map((slot) => lambdaContainer(options, slot, init.name));
  return {
    volumes: [WORKER_VOLUME, INIT_TMP, AGENT_TMP, ...slots.map(lambdaTmp)],
    containers: [init, ...lambdas, agentContainer(options, lambdas)],
    stopTimeoutSec: options.stopTimeoutSec,
  };
}

function fetchWorkerContainer(options: GridUnitOptions): UnitContainer {
  const tmpVolumes = [...Array.from({ length: options.slots }, (_, i) => lambdaTmp(i)), AGENT_TMP];
  return {
    name: 'fetch-worker',
    image: 'init',
    entryPoint: ['sh', '-c'],
    command: [fetchWorkerScript(options.slots)],
    environment: {
      [GRID_ENV.workerBucket]: options.workerBucket,
      [GRID_ENV.workerKey]: options.workerKey,
      // The AWS CLI keeps nothing it needs under HOME; a read-only root leaves /tmp as the only writable place.
      HOME: '/tmp',
    },
    user: INIT_USER,
    readOnlyRootFilesystem: true,
    essential: false,
    mounts: [
      { volume: WORKER_VOLUME, path: TASK_ROOT, readOnly: false },
      { volume: INIT_TMP, path: '/tmp', readOnly: false },
      ...tmpVolumes.map((volume) => ({ volume, path: `/${volume}`, readOnly: false })),
    ],
    listens: [],
    dependsOn: [],
    memoryReservationMiB: 128,
  };
}

function lambdaContainer(options: GridUnitOptions, slot: number, init: string): UnitContainer {
  const addresses = slotAddresses(slot);
  return {
    name: `lambda-${slot}`,
    image: 'lambda',
    // What the base image's /lambda-entrypoint.sh runs (`aws-lambda-rie <bootstrap> <handler>`), with both of
    // lambda-rie's addresses made explicit: the containers share one loopback, and lambda-rie's defaults
    // (invoke 8080, Runtime API 9001) would collide from the second slot on.
    entryPoint: [
      '/usr/local/bin/aws-lambda-rie',
      '--runtime-interface-emulator-address',
      addresses.invokeAddress,
      '--runtime-api-address',
      addresses.runtimeApiAddress,
      runtimeBootstrap(options.runtime),
    ],
    command: [options.handler],
    environment: {
      _HANDLER: options.handler,
      AWS_LAMBDA_FUNCTION_HANDLER: options.handler,
      AWS_LAMBDA_FUNCTION_TIMEOUT: String(options.taskTimeoutSec),
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memorySizeMb),
      AWS_LAMBDA_FUNCTION_NAME: options.functionName,
      LAMBDA_TASK_ROOT: TASK_ROOT,
    },
    user: SANDBOX_USER,
    readOnlyRootFilesystem: true,
    essential: true,
    mounts: [
      { volume: WORKER_VOLUME, path: TASK_ROOT, readOnly: true },
      { volume: lambdaTmp(slot), path: '/tmp', readOnly: false },
    ],
    listens: [addresses.invokePort, addresses.runtimeApiPort],
    dependsOn: [{ container: init, condition: 'SUCCESS' }],
  };
}

function agentContainer(options: GridUnitOptions, lambdas: readonly UnitContainer[]): UnitContainer {
  const endpoints = lambdas.map((_, slot) => slotAddresses(slot).endpoint);
  return {
    name: 'agent',
    image: 'agent',
    environment: {
      ...options.agentEnvironment,
      // One Lambda container per slot: the first in HTCGRID_LAMBDA_ENDPOINT, all of them in HTCGRID_LAMBDA_ENDPOINTS.
      [GRID_ENV.lambdaEndpoint]: endpoints[0]!,
      [LAMBDA_ENDPOINTS_ENV]: endpoints.join(','),
      TMPDIR: '/tmp',
    },
    // The Lambda containers' uid, so it may signal their runtimes (see SANDBOX_USER); never root.
    user: SANDBOX_USER,
    readOnlyRootFilesystem: true,
    essential: true,
    mounts: [{ volume: AGENT_TMP, path: '/tmp', readOnly: false }],
    listens: [],
    // Dependents stop first: the agent gets SIGTERM and drains while its Lambda containers keep serving.
    dependsOn: lambdas.map((l) => ({ container: l.name, condition: 'START' as const })),
  };
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
  const tmpDirs = [...Array.from({ length: slots }, (_, i) => `/${lambdaTmp(i)}`), `/${AGENT_TMP}`].join(' ');
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
