// One ECS task of the twin: a network and PID namespace held by a small init process (awsvpc: one localhost for all
// containers; `pidMode: task`: one process table), its volumes, and its containers started in `DependsOn` order and
// stopped as ECS stops them (dependents first, each with its stop timeout). An essential container's exit stops it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TwinTemplateError } from '../errors';
import { Container } from './container';
import type { ImageStandIn } from './images';
import type { TwinBridge } from './task-network';
import type { ContainerDefinition, TaskDefinition } from './task-definition';

export interface EcsTaskOptions {
  readonly index: number;
  readonly definition: TaskDefinition;
  readonly images: (container: ContainerDefinition) => ImageStandIn;
  readonly bridge: TwinBridge;
  readonly dir: string;
  readonly cgroupRoot: string;
  /** What ECS injects into every container (credentials URI, region, ...), given the task's id. */
  readonly injectedEnv: (taskId: string) => Readonly<Record<string, string>>;
  /** The twin's own additions (endpoint variables), listed in the run's report. */
  readonly twinEnv: Readonly<Record<string, string>>;
  readonly onEvent: (event: TaskEvent) => void;
}

export type TaskEvent =
  | { kind: 'container-started'; task: string; container: string }
  | { kind: 'container-stopped'; task: string; container: string; exitCode: number; essential: boolean }
  | { kind: 'container-line'; task: string; container: string; line: string }
  | { kind: 'task-stopping'; task: string; reason: string };

export interface TaskStopped {
  readonly taskId: string;
  readonly reason: string;
  readonly containers: readonly {
    readonly name: string;
    readonly exitCode: number | undefined;
    readonly ran: boolean;
  }[];
}

/** A reaping PID 1 for the task's PID namespace (ECS runs a small init there too). */
const HOLDER = [
  'import os, signal, time',
  'signal.signal(signal.SIGTERM, lambda *_: os._exit(0))',
  'while True:',
  '    try:',
  '        os.waitpid(-1, 0)',
  '    except ChildProcessError:',
  '        time.sleep(0.2)',
].join('\n');

export class EcsTask {
  readonly taskId = randomUUID().replace(/-/g, '');
  readonly containers: Container[] = [];
  address: string | undefined;
  stopReason: string | undefined;
  readonly stopped: Promise<TaskStopped>;
  private holder: ChildProcess | undefined;
  private holderPid = 0;
  private resolveStopped!: (s: TaskStopped) => void;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: EcsTaskOptions) {
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  get name(): string {
    return `task-${this.options.index}`;
  }

  container(name: string): Container | undefined {
    return this.containers.find((c) => c.name === name);
  }

  async start(): Promise<void> {
    const def = this.options.definition;
    if (def.networkMode !== 'awsvpc') {
      throw new TwinTemplateError(`network mode ${def.networkMode}: the twin runs awsvpc tasks (Fargate's only mode)`);
    }
    fs.mkdirSync(this.options.dir, { recursive: true });
    this.holder = spawn('unshare', ['--net', '--pid', '--fork', '--kill-child', '--', 'python3', '-c', HOLDER], {
      stdio: 'ignore',
    });
    this.holderPid = await childOf(this.holder.pid ?? 0);
    this.address = await this.options.bridge.attachTask(this.holderPid, this.options.index);
    const volumes = new Map<string, string>();
    for (const v of def.volumes) {
      // Fargate task storage: an empty directory owned by root.
      const hostPath = path.join(this.options.dir, 'volumes', v);
      fs.mkdirSync(hostPath, { recursive: true, mode: 0o755 });
      volumes.set(v, hostPath);
    }
    const injected = this.options.injectedEnv(this.taskId);
    for (const c of def.containers) {
      this.containers.push(this.prepare(c, volumes, injected));
    }
    this.advance();
  }

  /** Stops the task as ECS does: dependents first, each container with SIGTERM and its stop timeout. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.shutdown(reason);
    return this.stopping;
  }

  private prepare(
    def: ContainerDefinition,
    volumes: Map<string, string>,
    injected: Readonly<Record<string, string>>,
  ): Container {
    const image = this.options.images(def);
    const dir = path.join(this.options.dir, def.name);
    fs.mkdirSync(dir, { recursive: true });
    const logDir = path.join(this.options.dir, '..', 'logs', def.logStreamPrefix ?? def.name, def.name);
    fs.mkdirSync(logDir, { recursive: true });
    const user = parseUser(def.user ?? image.user);
    const argv = [...(def.entryPoint ?? image.entryPoint), ...(def.command ?? (def.entryPoint ? [] : image.command))];
    const env: Record<string, string> = {
      ...image.env,
      HOSTNAME: `ip-${(this.address ?? '').replace(/\./g, '-')}`,
      HOME: user && user.uid !== 0 ? '/' : '/root',
      ...injected,
      ...def.environment,
      ...this.options.twinEnv,
    };
    return new Container({
      definition: def,
      holderPid: this.holderPid,
      sharedPidNamespace: this.options.definition.pidMode === 'task',
      dir,
      logFile: path.join(logDir, this.taskId),
      onLine: (line) => this.options.onEvent({ kind: 'container-line', task: this.name, container: def.name, line }),
      script: {
        root: path.join(dir, 'root'),
        scratch: path.join(dir, 'layer'),
        cgroupProcs: path.join(this.options.cgroupRoot, this.taskId, def.name, 'cgroup.procs'),
        readonlyRoot: def.readonlyRootFilesystem,
        files: image.files,
        volumes: def.mountPoints.map((m) => {
          const hostPath = volumes.get(m.sourceVolume);
          if (!hostPath)
            throw new TwinTemplateError(
              `container ${def.name} mounts volume ${m.sourceVolume}, which the task does not define`,
            );
          return { hostPath, containerPath: m.containerPath, readOnly: m.readOnly };
        }),
        workingDir: def.workingDirectory ?? image.workingDir,
        env,
        user,
        argv: image.argv ? image.argv(argv) : argv,
      },
    });
  }

  /** Starts every container whose dependencies hold; stops the task when one can never start. */
  private advance(): void {
    if (this.stopping) return;
    for (const c of this.containers) {
      if (c.status !== 'PENDING') continue;
      const verdict = this.dependencies(c.definition);
      if (verdict === 'wait') continue;
      if (verdict !== 'go') {
        void this.stop(verdict);
        return;
      }
      void c.start().then(
        () => {
          this.options.onEvent({ kind: 'container-started', task: this.name, container: c.name });
          void c.exited.then((code) => this.onExit(c, code));
          this.advance();
        },
        (error: unknown) => void this.stop(`CannotStartContainerError: ${c.name}: ${String(error)}`),
      );
    }
  }

  /** `go`, `wait`, or why the container can never start. */
  private dependencies(def: ContainerDefinition): string {
    for (const dep of def.dependsOn) {
      const other = this.container(dep.containerName)!;
      switch (dep.condition) {
        case 'START':
          if (other.status === 'PENDING' || other.mainPid === undefined) return 'wait';
          break;
        case 'COMPLETE':
          if (other.status !== 'STOPPED') return 'wait';
          break;
        case 'SUCCESS':
          if (other.status !== 'STOPPED') return 'wait';
          if (other.exitCode !== 0) {
            return `CannotStartContainerError: dependency ${other.name} of ${def.name} did not succeed (exit code ${other.exitCode})`;
          }
          break;
        case 'HEALTHY':
          if (other.status === 'STOPPED')
            return `CannotStartContainerError: dependency ${other.name} of ${def.name} stopped before it was healthy`;
          if (!other.healthy) return 'wait';
          break;
      }
    }
    return 'go';
  }

  private onExit(c: Container, code: number): void {
    this.options.onEvent({
      kind: 'container-stopped',
      task: this.name,
      container: c.name,
      exitCode: code,
      essential: c.definition.essential,
    });
    if (c.definition.essential && !this.stopping) {
      void this.stop(`Essential container in task exited: ${c.name} (exit code ${code})`);
      return;
    }
    this.advance();
  }

  private async shutdown(reason: string): Promise<void> {
    this.stopReason = reason;
    this.options.onEvent({ kind: 'task-stopping', task: this.name, reason });
    for (;;) {
      const running = this.containers.filter((c) => c.status === 'RUNNING');
      if (running.length === 0) break;
      // Dependents first: a container is stopped once no running container depends on it.
      const next = running.filter(
        (c) => !running.some((o) => o !== c && o.definition.dependsOn.some((d) => d.containerName === c.name)),
      );
      await Promise.all((next.length > 0 ? next : running).map((c) => c.stop()));
    }
    for (const c of this.containers) if (c.status === 'PENDING') await c.stop();
    this.holder?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 50));
    for (const c of this.containers) c.removeCgroup();
    try {
      fs.rmdirSync(path.join(this.options.cgroupRoot, this.taskId));
    } catch {
      // Left for the next cleanup.
    }
    this.resolveStopped({
      taskId: this.taskId,
      reason,
      containers: this.containers.map((c) => ({ name: c.name, exitCode: c.exitCode, ran: c.startedAt !== undefined })),
    });
  }
}

/** `uid`, `uid:gid`, or `root`; names other than root are not resolved by the twin. */
export function parseUser(user: string | undefined): { uid: number; gid: number } | undefined {
  if (user === undefined || user === '' || user === 'root') return undefined;
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) throw new TwinTemplateError(`User "${user}": the twin runs numeric users (uid or uid:gid)`);
  const uid = Number(m[1]);
  return { uid, gid: m[2] === undefined ? uid : Number(m[2]) };
}

/** The pid of `parent`'s child (unshare --fork's child: the task's PID 1). */
async function childOf(parent: number): Promise<number> {
  for (let i = 0; i < 400; i++) {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) return Number(entry);
      } catch {
        // Gone meanwhile.
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`the task's namespace holder (child of ${parent}) did not start`);
}
