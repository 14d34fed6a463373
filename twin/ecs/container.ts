// One container of a twin ECS task: launched into the task's namespaces with its own mount namespace and cgroup,
// logged like the awslogs driver (one stream per container and task), stopped as ECS stops it (SIGTERM to its main
// process, SIGKILL to all its processes after its stop timeout).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { containerScript, type ContainerScriptSpec } from './container-script';
import type { ContainerDefinition } from './task-definition';

export type ContainerStatus = 'PENDING' | 'RUNNING' | 'STOPPED';

export interface ContainerLaunch {
  readonly definition: ContainerDefinition;
  readonly script: ContainerScriptSpec;
  /** The process holding the task's namespaces. */
  readonly holderPid: number;
  /** The containers share the task's PID namespace (`pidMode: task`); else each gets its own. */
  readonly sharedPidNamespace: boolean;
  readonly dir: string;
  readonly logFile: string;
  /** Each line the container writes (stdout and stderr). */
  readonly onLine: (line: string) => void;
}

export class Container {
  status: ContainerStatus = 'PENDING';
  exitCode: number | undefined;
  startedAt: number | undefined;
  stoppedAt: number | undefined;
  /** Host pid of the container's main process (its entrypoint). */
  mainPid: number | undefined;
  healthy = false;
  readonly exited: Promise<number>;
  private resolveExit!: (code: number) => void;
  private readonly tail: string[] = [];
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(private readonly launch: ContainerLaunch) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get name(): string {
    return this.launch.definition.name;
  }

  get definition(): ContainerDefinition {
    return this.launch.definition;
  }

  /** The last lines the container wrote. */
  get recentOutput(): string {
    return this.tail.join('\n');
  }

  async start(): Promise<void> {
    const { dir, script, holderPid } = this.launch;
    fs.mkdirSync(script.root, { recursive: true });
    fs.mkdirSync(script.scratch, { recursive: true });
    fs.mkdirSync(path.dirname(script.cgroupProcs), { recursive: true });
    const scriptFile = path.join(dir, 'launch.sh');
    fs.writeFileSync(scriptFile, containerScript(script), { mode: 0o700 });
    const ns = ['--target', String(holderPid), '--net'];
    const args = this.launch.sharedPidNamespace
      ? [...ns, '--pid', '--', 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', scriptFile]
      : [
          ...ns,
          '--',
          'unshare',
          '--mount',
          '--pid',
          '--fork',
          '--kill-child',
          '--propagation',
          'private',
          '--',
          '/bin/sh',
          scriptFile,
        ];
    const log = fs.createWriteStream(this.launch.logFile, { flags: 'a' });
    const child = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.status = 'RUNNING';
    this.startedAt = Date.now();
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.on('data', (chunk: Buffer) => {
        log.write(chunk);
        const text = partial + chunk.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.line(line);
      });
    }
    child.once('exit', (code, signal) => {
      // Docker reports a process ended by a signal as 128 + the signal's number.
      const exitCode = code ?? 128 + (signal ? (SIGNALS[signal] ?? 9) : 9);
      this.killAll();
      clearInterval(this.healthTimer);
      this.status = 'STOPPED';
      this.exitCode = exitCode;
      this.stoppedAt = Date.now();
      log.end();
      this.resolveExit(exitCode);
    });
    this.mainPid = await this.findMainPid(child.pid ?? 0);
    if (this.launch.definition.healthCheck) this.watchHealth();
  }

  /** SIGTERM to the main process, then SIGKILL to every process of the container after its stop timeout. */
  async stop(): Promise<number> {
    if (this.status === 'PENDING') {
      this.status = 'STOPPED';
      this.resolveExit(-1);
      return -1;
    }
    if (this.status === 'STOPPED') return this.exitCode ?? -1;
    if (this.mainPid) signal(this.mainPid, 'SIGTERM');
    const timer = setTimeout(() => this.killAll(), this.launch.definition.stopTimeoutSec * 1000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGKILLs every process in the container's cgroup. */
  killAll(): void {
    for (let round = 0; round < 20; round++) {
      const pids = this.cgroupPids();
      if (pids.length === 0) return;
      for (const pid of pids) signal(pid, 'SIGKILL');
    }
  }

  /** Pids (host view) of the container's processes. */
  cgroupPids(): number[] {
    try {
      return fs.readFileSync(this.launch.script.cgroupProcs, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  removeCgroup(): void {
    try {
      fs.rmdirSync(path.dirname(this.launch.script.cgroupProcs));
    } catch {
      // Still busy or already gone.
    }
  }

  private line(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
    this.launch.onLine(line);
  }

  /** The main process is the launcher's child: it joins the cgroup first thing, then becomes the entrypoint. */
  private async findMainPid(launcherPid: number): Promise<number | undefined> {
    for (let i = 0; i < 400 && this.status === 'RUNNING'; i++) {
      for (const pid of this.cgroupPids()) if (parentOf(pid) === launcherPid) return pid;
      await new Promise((r) => setTimeout(r, 5));
    }
    return undefined;
  }

  private watchHealth(): void {
    const check = this.launch.definition.healthCheck!;
    let failures = 0;
    const started = Date.now();
    this.healthTimer = setInterval(() => {
      if (!this.mainPid || this.status !== 'RUNNING') return;
      const [kind, ...rest] = check.command;
      const argv = kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : rest;
      const probe = spawn(
        'nsenter',
        ['--target', String(this.mainPid), '--mount', '--net', '--pid', '--root', '--wd', '--', ...argv],
        {
          stdio: 'ignore',
        },
      );
      const timer = setTimeout(() => probe.kill('SIGKILL'), check.timeoutSec * 1000);
      probe.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) {
          this.healthy = true;
          failures = 0;
        } else if (Date.now() - started > check.startPeriodSec * 1000 && ++failures >= check.retries) {
          this.healthy = false;
        }
      });
    }, check.intervalSec * 1000);
  }
}

const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGTERM: 15,
};

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}
