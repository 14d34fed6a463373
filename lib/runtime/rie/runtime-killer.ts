// Finds one slot's Lambda runtime through /proc (lambda-rie on the slot's port, and what it started) and SIGKILLs it.
import fs from 'node:fs';
import path from 'node:path';
import { silentLogger, type Logger } from '../../logging';
import { sleep } from '../../timing';

/** lambda-rie's flag naming the address its invoke API listens on (`internal/lambda/rie/run.go`). */
export const RIE_ADDRESS_FLAG = '--runtime-interface-emulator-address';

/** One process as /proc shows it. */
export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  /** `R`, `S`, `D`, `Z` (zombie: dead, waiting for its parent to reap it), … */
  readonly state: string;
  readonly cmdline: readonly string[];
}

/** What `RuntimeKiller.kill()` did. It never throws: every failure is one of these outcomes. */
export type RuntimeKillOutcome =
  /** The runtime processes got SIGKILL; `survivors` are those still not dead after `confirmTimeoutMs`. */
  | {
      readonly kind: 'killed';
      readonly riePids: readonly number[];
      readonly killedPids: readonly number[];
      readonly survivors: readonly number[];
    }
  /** lambda-rie runs but has no runtime under it (not initialised yet, or already reset): nothing to stop. */
  | { readonly kind: 'no-runtime'; readonly riePids: readonly number[] }
  /** No lambda-rie for this port among the visible processes (the task does not share its PID namespace?). */
  | { readonly kind: 'rie-not-found'; readonly message: string }
  /** Signalling was refused (the agent and the Lambda container run under different uids?). */
  | {
      readonly kind: 'permission-denied';
      readonly riePids: readonly number[];
      readonly deniedPids: readonly number[];
      readonly killedPids: readonly number[];
      readonly message: string;
    }
  /** No process table to read (no /proc: not Linux). */
  | { readonly kind: 'unsupported'; readonly message: string };

export interface RuntimeKillerOptions {
  /** The port of the slot's lambda-rie (`--runtime-interface-emulator-address <host>:<port>`). */
  readonly port: number;
  /**
   * Where the process table is mounted.
   * @default '/proc'
   */
  readonly procRoot?: string;
  /**
   * How long `kill()` waits for the killed processes to be gone (or zombies left for lambda-rie to reap).
   * @default 1000
   */
  readonly confirmTimeoutMs?: number;
  /** @default - a silent logger */
  readonly logger?: Logger;
}

const PID_MODE_HINT =
  'the agent sees the Lambda containers only when the ECS task shares one PID namespace (pidMode: task)';
const UID_HINT =
  "the agent may signal the runtime only when it runs under the Lambda containers' uid (no CAP_KILL on Fargate)";

/**
 * Stops the Lambda runtime of one slot, the way lambda-rie itself does on its own timeout, so a cancelled or
 * timed-out task stops at once instead of running on until `AWS_LAMBDA_FUNCTION_TIMEOUT`.
 *
 * It finds the slot's lambda-rie (the process whose command line carries `--runtime-interface-emulator-address`
 * with the slot's port) and SIGKILLs every process below it (the runtime bootstrap, the handler's own children,
 * extensions), never lambda-rie itself: lambda-rie sees its runtime exit, answers the pending invoke
 * `502 Runtime.ExitError`, resets, and starts a fresh runtime on the next invoke.
 *
 * In ECS this needs the task's PID namespace shared (`pidMode: task`) and the agent running under the Lambda
 * containers' uid. When either is missing it reports what it found (`rie-not-found`, `permission-denied`) and
 * logs a hint; it never throws.
 */
export class RuntimeKiller {
  readonly port: number;
  private readonly procRoot: string;
  private readonly confirmTimeoutMs: number;
  private readonly logger: Logger;

  constructor(options: RuntimeKillerOptions) {
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new RangeError(`RuntimeKiller port: ${options.port} is not a TCP port (1..65535)`);
    }
    this.port = options.port;
    this.procRoot = options.procRoot ?? '/proc';
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 1000;
    this.logger = options.logger ?? silentLogger();
  }

  /** A killer for the lambda-rie behind an invoke endpoint such as `http://localhost:8081`. */
  static forEndpoint(endpoint: string, options: Omit<RuntimeKillerOptions, 'port'> = {}): RuntimeKiller {
    return new RuntimeKiller({ ...options, port: endpointPort(endpoint) });
  }

  /** The slot's lambda-rie processes and every process below them, as /proc shows them now. */
  find(): { readonly riePids: readonly number[]; readonly runtime: readonly ProcessInfo[] } {
    const processes = listProcesses(this.procRoot);
    const riePids = processes
      .filter((p) => p.pid !== process.pid && rieAddressPort(p.cmdline) === this.port)
      .map((p) => p.pid);
    const runtime = descendantsOf(riePids, processes).filter((p) => p.pid !== process.pid && p.state !== 'Z');
    return { riePids, runtime };
  }

  /** SIGKILLs the slot's runtime processes and waits (up to `confirmTimeoutMs`) until they are dead. */
  async kill(): Promise<RuntimeKillOutcome> {
    const outcome = await this.tryKill();
    this.report(outcome);
    return outcome;
  }

  private async tryKill(): Promise<RuntimeKillOutcome> {
    if (!isDirectory(this.procRoot)) {
      return { kind: 'unsupported', message: `no process table at ${this.procRoot}: cannot stop the runtime` };
    }
    let found: ReturnType<RuntimeKiller['find']>;
    try {
      found = this.find();
    } catch (error) {
      return { kind: 'unsupported', message: `cannot read ${this.procRoot}: ${String(error)}` };
    }
    const { riePids, runtime } = found;
    if (riePids.length === 0) {
      return {
        kind: 'rie-not-found',
        message: `no process with ${RIE_ADDRESS_FLAG} <host>:${this.port} is visible in ${this.procRoot}: ${PID_MODE_HINT}`,
      };
    }
    if (runtime.length === 0) return { kind: 'no-runtime', riePids };
    const killedPids: number[] = [];
    const deniedPids: number[] = [];
    for (const p of runtime) {
      try {
        process.kill(p.pid, 'SIGKILL');
        killedPids.push(p.pid);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EPERM') deniedPids.push(p.pid);
        // ESRCH: it died meanwhile, which is what we wanted.
      }
    }
    if (deniedPids.length > 0) {
      return {
        kind: 'permission-denied',
        riePids,
        deniedPids,
        killedPids,
        message: `SIGKILL to pid ${deniedPids.join(', ')} was refused (EPERM): ${UID_HINT}`,
      };
    }
    const survivors = await this.awaitDeath(killedPids);
    return { kind: 'killed', riePids, killedPids, survivors };
  }

  private async awaitDeath(pids: readonly number[]): Promise<number[]> {
    const deadline = Date.now() + this.confirmTimeoutMs;
    let alive = pids.filter((pid) => isAlive(this.procRoot, pid));
    while (alive.length > 0 && Date.now() < deadline) {
      await sleep(10);
      alive = alive.filter((pid) => isAlive(this.procRoot, pid));
    }
    return alive;
  }

  private report(outcome: RuntimeKillOutcome): void {
    const port = this.port;
    switch (outcome.kind) {
      case 'killed':
        if (outcome.survivors.length > 0) {
          this.logger.warn({ port, ...outcome }, 'Lambda runtime got SIGKILL but some processes are still alive');
        } else {
          this.logger.info({ port, ...outcome }, 'Lambda runtime killed');
        }
        return;
      case 'no-runtime':
        this.logger.debug({ port, riePids: outcome.riePids }, 'no Lambda runtime running under lambda-rie');
        return;
      case 'rie-not-found':
      case 'unsupported':
        this.logger.warn({ port, kind: outcome.kind }, `cannot stop the Lambda runtime: ${outcome.message}`);
        return;
      case 'permission-denied':
        this.logger.error({ port, ...outcome }, `cannot stop the Lambda runtime: ${outcome.message}`);
        return;
    }
  }
}

/** The TCP port of an `http://host:port` endpoint (80/443 when it names none). */
export function endpointPort(endpoint: string): number {
  const url = new URL(endpoint);
  if (url.port) return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** The port lambda-rie listens on according to its command line, or `undefined` when it is not lambda-rie. */
export function rieAddressPort(cmdline: readonly string[]): number | undefined {
  for (let i = 0; i < cmdline.length; i++) {
    const arg = cmdline[i] ?? '';
    let address: string | undefined;
    if (arg === RIE_ADDRESS_FLAG) address = cmdline[i + 1];
    else if (arg.startsWith(`${RIE_ADDRESS_FLAG}=`)) address = arg.slice(RIE_ADDRESS_FLAG.length + 1);
    if (address === undefined) continue;
    const match = /:(\d+)$/.exec(address);
    if (match) return Number(match[1]);
  }
  return undefined;
}

/** Every process visible under `procRoot`; those that exit while being read are left out. */
export function listProcesses(procRoot = '/proc'): ProcessInfo[] {
  const processes: ProcessInfo[] = [];
  for (const entry of fs.readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProcess(procRoot, Number(entry));
    if (info) processes.push(info);
  }
  return processes;
}

/** The processes below `roots` (children, grandchildren, …), parents before children. */
export function descendantsOf(roots: readonly number[], processes: readonly ProcessInfo[]): ProcessInfo[] {
  const children = new Map<number, ProcessInfo[]>();
  for (const p of processes) {
    const siblings = children.get(p.ppid);
    if (siblings) siblings.push(p);
    else children.set(p.ppid, [p]);
  }
  const seen = new Set<number>(roots);
  const out: ProcessInfo[] = [];
  const queue = [...roots];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      if (seen.has(child.pid)) continue;
      seen.add(child.pid);
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

function readProcess(procRoot: string, pid: number): ProcessInfo | undefined {
  try {
    const stat = parseStat(fs.readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8'));
    if (!stat) return undefined;
    const raw = fs.readFileSync(path.join(procRoot, String(pid), 'cmdline'), 'utf8');
    const cmdline = raw.split('\0');
    if (cmdline[cmdline.length - 1] === '') cmdline.pop();
    return { pid, ppid: stat.ppid, state: stat.state, cmdline };
  } catch {
    return undefined;
  }
}

/** `pid (comm) S ppid …`: comm may hold spaces and parentheses, so the fields start after the last `)`. */
function parseStat(text: string): { state: string; ppid: number } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  if (state === undefined || !Number.isInteger(ppid)) return undefined;
  return { state, ppid };
}

/** Alive means present and not a zombie (a zombie is dead; its parent has yet to reap it). */
function isAlive(procRoot: string, pid: number): boolean {
  try {
    const stat = parseStat(fs.readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8'));
    return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
  } catch {
    return false;
  }
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}
