// Fault injection at the agent: its OS process SIGKILLed, SIGTERMed (drain), stopped past its lease, and replaced
// by another agent on the same grid database. Real `htcgrid local up` processes, real signals.
import type { EmbeddedGrid } from '../../lib/cli';
import { collect, startTestGrid, tempDir, waitFor } from '../support/local-grid';
import {
  FAULT_WORKER,
  childPids,
  executions,
  faultConfig,
  isAlive,
  openClient,
  outcomes,
  runtimePidOf,
  spawnAgent,
  tasksOf,
  type AgentProcess,
} from './fault-helpers';

const config = faultConfig();

describe('an agent process that dies or is stopped', () => {
  const agents: AgentProcess[] = [];
  const clients: EmbeddedGrid[] = [];
  let dir: string;
  let logDir: string;
  let pidDir: string;
  const start = async (options: { graceSec?: number } = {}): Promise<AgentProcess> => {
    const agent = await spawnAgent(dir, config, options);
    agents.push(agent);
    return agent;
  };
  const client = async (): Promise<EmbeddedGrid> => {
    const grid = await openClient(dir, config);
    clients.push(grid);
    return grid;
  };
  beforeEach(() => {
    dir = tempDir('htcgrid-faults-grid-');
    logDir = tempDir('htcgrid-faults-log-');
    pidDir = tempDir('htcgrid-faults-pid-');
  });
  afterEach(async () => {
    for (const agent of agents.splice(0)) {
      agent.kill('SIGCONT');
      agent.kill('SIGKILL');
      await agent.exited;
    }
    for (const grid of clients.splice(0)) await grid.close(0);
  });

  it('SIGKILLed mid-session: a new agent on the same database recovers every task through the reaper', async () => {
    const first = await start();
    const grid = await client();
    const count = 12;
    const handle = await grid.client.submit(
      Array.from({ length: count }, () => ({ sleep: 0.4, log_dir: logDir, pid_dir: pidDir })),
    );
    await waitFor(
      async () => (await grid.backends.table.countByState(handle.sessionId)).succeeded >= 2,
      15_000,
      'some tasks to finish',
    );
    const runtimes = childPids(first.pid);

    first.kill('SIGKILL');
    await first.exited;
    const orphaned = (await tasksOf(grid, handle.sessionId, count)).filter((t) => t.state === 'running');
    await start();
    const results = await collect(handle.results());

    expect(runtimes).toHaveLength(2);
    await waitFor(() => runtimes.every((pid) => !isAlive(pid)), 5_000, 'the dead agent’s runtimes to exit');
    expect(orphaned.length).toBeGreaterThan(0);
    expect(results.map((r) => r.state)).toEqual(Array(count).fill('succeeded'));
    for (const task of orphaned) {
      const after = results[task.index]!;
      expect(outcomes(after)).toEqual(['lease-expired', 'succeeded']);
      expect(after.history[0]).toMatchObject({ attempt: task.attempt, owner: task.lease!.owner });
      expect(after.history[0]!.error!.type).toBe('LeaseExpired');
      expect(after.attempts).toBe(task.attempt + 1);
    }
    // A result is recorded once per task, and no attempt ran twice.
    const ran = executions(logDir);
    for (const r of results) {
      expect(outcomes(r).filter((o) => o === 'succeeded')).toHaveLength(1);
      expect(ran.get(r.taskId) ?? 0).toBeLessThanOrEqual(r.attempts);
    }
  });

  it('SIGTERMed: finishes in-flight tasks, releases the rest at once, exits 0; a second agent completes them', async () => {
    const first = await start({ graceSec: 30 });
    const grid = await client();
    const count = 10;
    const handle = await grid.client.submit(
      Array.from({ length: count }, () => ({ sleep: 1.5, log_dir: logDir, pid_dir: pidDir })),
    );
    const inFlight = [`${handle.sessionId}_0`, `${handle.sessionId}_1`];
    await Promise.all(inFlight.map((taskId) => runtimePidOf(pidDir, taskId, 1)));

    first.kill('SIGTERM');
    const exit = await first.exited;
    const afterDrain = await grid.backends.table.countByState(handle.sessionId);
    await start();
    const results = await collect(handle.results());

    expect(exit).toEqual({ code: 0, signal: null });
    expect(afterDrain).toEqual({ pending: count - 2, running: 0, succeeded: 2, failed: 0, cancelled: 0 });
    expect(results.map((r) => r.state)).toEqual(Array(count).fill('succeeded'));
    for (const taskId of inFlight) {
      const r = results.find((x) => x.taskId === taskId)!;
      expect(outcomes(r)).toEqual(['succeeded']);
    }
    for (const r of results.filter((x) => !inFlight.includes(x.taskId))) {
      expect(outcomes(r)).not.toContain('lease-expired');
      expect(r.failures).toBe(0);
      expect(executions(logDir).get(r.taskId)).toBe(1);
    }
  });

  it('SIGTERMed twice: aborts the in-flight tasks at once, hands them back and exits 0 without orphans', async () => {
    const first = await start({ graceSec: 60 });
    const grid = await client();
    const handle = await grid.client.submit(Array.from({ length: 4 }, () => ({ sleep: 60, pid_dir: pidDir })));
    const pids = await Promise.all([0, 1].map((i) => runtimePidOf(pidDir, `${handle.sessionId}_${i}`, 1)));

    first.kill('SIGTERM');
    await waitFor(() => first.output().includes('draining'), 10_000, 'the drain to begin');
    first.kill('SIGTERM');
    const exit = await first.exited;
    const tasks = await tasksOf(grid, handle.sessionId, 4);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(tasks.map((t) => t.state)).toEqual(['pending', 'pending', 'pending', 'pending']);
    expect(outcomes(tasks[0]!)).toEqual(['released']);
    expect(outcomes(tasks[1]!)).toEqual(['released']);
    expect(tasks.every((t) => t.failures === 0)).toBe(true);
    await waitFor(() => pids.every((pid) => !isAlive(pid)), 5_000, 'the aborted runtimes to exit');
  });

  it('past its grace period: aborts what still runs, hands it back and exits 0', async () => {
    const first = await start({ graceSec: 0.5 });
    const grid = await client();
    const handle = await grid.client.submit(Array.from({ length: 3 }, () => ({ sleep: 60, pid_dir: pidDir })));
    await Promise.all([0, 1].map((i) => runtimePidOf(pidDir, `${handle.sessionId}_${i}`, 1)));

    first.kill('SIGTERM');
    const exit = await first.exited;
    const log = logEntries(first.log());
    const draining = log.find((e) => e.msg === 'agent draining');
    const interrupted = log.filter((e) => e.msg === 'interrupting task' && e.cause === 'drain');

    expect(exit).toEqual({ code: 0, signal: null });
    expect(await grid.backends.table.countByState(handle.sessionId)).toMatchObject({ pending: 3, running: 0 });
    // The running tasks were interrupted by the end of the grace, not at the signal: a timer never fires early, so
    // this lower bound holds however loaded the machine (an agent that ignored the grace would interrupt at once).
    expect(draining).toMatchObject({ graceMs: 500 });
    expect(interrupted.map((e) => e.taskId).sort()).toEqual([`${handle.sessionId}_0`, `${handle.sessionId}_1`]);
    for (const entry of interrupted) expect(entry.time - draining!.time).toBeGreaterThanOrEqual(500 - 1);
  });

  it('stopped past its lease: another agent takes the task over and the stale holder’s result is rejected', async () => {
    const first = await start();
    const grid = await client();
    const handle = await grid.client.submit([{ sleep_on: { '1': 3 }, log_dir: logDir, pid_dir: pidDir }]);
    const taskId = `${handle.sessionId}_0`;
    await runtimePidOf(pidDir, taskId, 1);

    first.kill('SIGSTOP');
    // A second agent (in this process) with its reaper: it finds the expired lease and runs attempt 2.
    const second = await startTestGrid(FAULT_WORKER, { ...config.document }, dir);
    clients.push(second);
    const [result] = await collect(handle.results());
    // The first agent wakes up with its (stale) attempt 1 finished by its runtime, and tries to record it.
    first.kill('SIGCONT');
    await waitFor(() => executions(logDir).get(taskId) === 2, 10_000, 'both attempts to have run');
    first.kill('SIGTERM');
    const exit = await first.exited;
    const task = await grid.backends.table.getTask(taskId);

    expect(exit.code).toBe(0);
    expect(outcomes(result!)).toEqual(['lease-expired', 'succeeded']);
    expect(result!.history[1]!.owner).toBe(second.agent!.owner);
    expect(task).toMatchObject({ state: 'succeeded', attempt: 2 });
    expect(task!.history).toHaveLength(2);
    expect(result!.result).toMatchObject({ attempt: 2 });
    // It noticed on waking that the task is no longer its own, and wrote nothing.
    expect(first.log()).toMatch(/"cause":"lost","msg":"interrupting task"|attempt outcome not recorded/);
  });
});

interface LogEntry {
  readonly msg?: string;
  readonly time: number;
  readonly [key: string]: unknown;
}

/** The JSON lines of an agent's log file. */
function logEntries(text: string): LogEntry[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogEntry);
}
