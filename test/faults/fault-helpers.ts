// Helpers of the fault-injection tests: agent processes to kill, runtime pids to find, executions to count.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  applyOverrides,
  compileConfig,
  type GridConfig,
  type GridConfigDocument,
  type TaskRecord,
} from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import { FIXTURES, waitFor } from '../support/local-grid';
import { htcgridBin } from '../support/fresh-dist';

/** The worker that misbehaves on request (see its docstring for the event fields). */
export const FAULT_WORKER = path.join(FIXTURES, 'faults', 'worker');

/** The built CLI; `npm test` builds before it runs jest. */

/** Short lease timings so a dead agent is noticed in seconds. */
export const FAST_LEASES: GridConfigDocument = {
  slots: 2,
  task_ttl_expiration_offset_sec: 2,
  task_ttl_refresh_interval_sec: 0.5,
  lease_check_interval_sec: 0.25,
  reaper_interval_sec: 0.5,
  agent_task_visibility_timeout_sec: 3,
  empty_task_queue_backoff_timeout_sec: 0.02,
};

export function faultConfig(overrides: Record<string, unknown> = {}): GridConfig {
  return compileConfig(applyOverrides(FAST_LEASES, overrides), 'fault test');
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** An agent running as its own OS process (`htcgrid local up`), so it can be killed for real. */
export interface AgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** What it printed on stdout and stderr so far. */
  output(): string;
  /** Its structured log so far. */
  log(): string;
  kill(signal: NodeJS.Signals): void;
}

let agentCount = 0;

/** Starts `htcgrid local up` on `dir` with `config` and resolves once it reports the grid up. */
export async function spawnAgent(
  dir: string,
  config: GridConfig,
  options: { graceSec?: number; worker?: string } = {},
): Promise<AgentProcess> {
  const n = ++agentCount;
  const configFile = path.join(dir, `agent-${n}-config.json`);
  const logFile = path.join(dir, `agent-${n}.log`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(configFile, JSON.stringify(config.document));
  const child = spawn(
    process.execPath,
    [
      htcgridBin(),
      'local',
      'up',
      '--dir',
      dir,
      '--worker',
      options.worker ?? FAULT_WORKER,
      '--config',
      configFile,
      '--grace-sec',
      String(options.graceSec ?? 30),
      '--log-file',
      logFile,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<ExitInfo>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exit: ExitInfo | undefined;
  void exited.then((e) => (exit = e));
  const agent: AgentProcess = {
    child,
    pid: child.pid ?? -1,
    exited,
    output: () => text,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    kill: (signal) => {
      if (exit === undefined) child.kill(signal);
    },
  };
  try {
    await waitFor(
      () => {
        if (exit !== undefined) throw new Error(`agent exited (${JSON.stringify(exit)}) before it was up:\n${text}`);
        return text.includes('local grid up');
      },
      30_000,
      'the agent process to start',
    );
  } catch (err) {
    agent.kill('SIGKILL');
    throw err;
  }
  return agent;
}

/** A client on the grid folder `dir` (no agent in this process). */
export function openClient(dir: string, config: GridConfig): Promise<EmbeddedGrid> {
  return startEmbeddedGrid({ dataDir: dir, config });
}

/** Pids of the direct children of `pid` (the runtime processes of an agent), read from /proc. */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  let threads: string[];
  try {
    threads = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return pids;
  }
  for (const tid of threads) {
    try {
      const children = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (children) pids.push(...children.split(/\s+/).map(Number));
    } catch {
      // The thread ended while we looked.
    }
  }
  return pids;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (dead, not yet reaped by its parent) counts as dead.
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Waits for the worker to write the pid of the process running `taskId`'s `attempt`. */
export async function runtimePidOf(pidDir: string, taskId: string, attempt = 1): Promise<number> {
  const file = path.join(pidDir, `${taskId}.${attempt}.pid`);
  await waitFor(() => fs.existsSync(file), 15_000, `${taskId} attempt ${attempt} to start`);
  return Number(fs.readFileSync(file, 'utf8'));
}

/** How many times each task's handler started, from the worker's executions log. */
export function executions(logDir: string): Map<string, number> {
  const counts = new Map<string, number>();
  const file = path.join(logDir, 'executions.log');
  if (!fs.existsSync(file)) return counts;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const taskId = line.split(' ')[0];
    if (taskId) counts.set(taskId, (counts.get(taskId) ?? 0) + 1);
  }
  return counts;
}

/** Every task of a session, read straight from the table. */
export async function tasksOf(grid: EmbeddedGrid, sessionId: string, count: number): Promise<TaskRecord[]> {
  const tasks: TaskRecord[] = [];
  for (let i = 0; i < count; i++) {
    const task = await grid.backends.table.getTask(`${sessionId}_${i}`);
    if (!task) throw new Error(`task ${sessionId}_${i} is missing from the table`);
    tasks.push(task);
  }
  return tasks;
}

export function outcomes(task: Pick<TaskRecord, 'history'>): string[] {
  return task.history.map((h) => h.outcome);
}
