// One runtime OS process: spawned in its own process group, its stdout/stderr drained into an OutputCapture.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { OutputCapture } from './output-capture';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  readonly spawnError?: Error;
}

/** How a runtime process is started: its command and arguments, folder and environment, and where its output goes. */
export interface RuntimeLaunch {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly capture: OutputCapture;
}

export interface RuntimeProcessOptions extends RuntimeLaunch {
  /** Open pipe fds 3 (to the runtime), 4 (from the runtime) and 5 (withdrawals, to the runtime). */
  readonly transportPipes: boolean;
  /**
   * Start it in a new session and process group (setsid), so a kill reaches what it started too. Costly for
   * ping-pong latency (the scheduler puts each session in its own autogroup), so the pipe runtimes instead make
   * their own process group with setpgid (bootstrap.py does).
   */
  readonly detached: boolean;
}

const STDERR_TAIL_BYTES = 4096;

export class RuntimeProcess {
  readonly exited: Promise<ExitInfo>;
  /** Our end of fd 3 (requests), when transport pipes were asked for. */
  readonly requests: Writable | undefined;
  /** Our end of fd 4 (responses). */
  readonly responses: Readable | undefined;
  /** Our end of fd 5 (requests taken back before they started). */
  readonly withdrawals: Writable | undefined;
  private readonly child: ChildProcess;
  private exitInfo: ExitInfo | undefined;
  private stderrTail = '';

  constructor(options: RuntimeProcessOptions) {
    const stdio: ('ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe'];
    if (options.transportPipes) stdio.push('pipe', 'pipe', 'pipe');
    this.child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env,
      stdio,
      detached: options.detached,
    });
    const capture = options.capture;
    this.child.stdout?.on('data', (chunk: Buffer) => capture.data('stdout', chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      capture.data('stderr', chunk);
    });
    for (const stream of this.child.stdio) stream?.on('error', () => undefined);
    this.requests = (this.child.stdio[3] ?? undefined) as Writable | undefined;
    this.responses = (this.child.stdio[4] ?? undefined) as Readable | undefined;
    this.withdrawals = ((this.child.stdio as readonly unknown[])[5] ?? undefined) as Writable | undefined;
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.child.once('error', (error) => {
        if (this.exitInfo) return;
        // 'error' without a pid: the process never started, and no 'exit' will follow.
        if (this.child.pid === undefined) {
          this.exitInfo = { code: null, signal: null, spawnError: error };
          resolve(this.exitInfo);
        }
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last few KiB the runtime wrote on stderr (for init failures). */
  get recentStderr(): string {
    return this.stderrTail;
  }

  /**
   * SIGKILLs the process, its process group if it leads one, and (where /proc exists) every descendant, so work the
   * worker started stops too. Safe to call at any time, any number of times.
   */
  kill(): void {
    const pid = this.child.pid;
    if (!this.alive || pid === undefined) return;
    // Collected first: once the parent dies its children are re-parented and can no longer be found.
    const descendants = descendantsOf(pid);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // No such group: the runtime did not make one (the Node bootstrap cannot).
    }
    this.child.kill('SIGKILL');
    for (const child of descendants) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Pids of all descendants of `root`, read from /proc; empty where there is no /proc (macOS). */
export function descendantsOf(root: number): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...: comm may contain spaces and parentheses, so parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}
