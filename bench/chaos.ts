// Chaos run of the local grid: many tasks while runtimes are SIGKILLed at random and the agent process is SIGKILLed
// and replaced; prints lost, duplicated and non-terminal counts (all must be 0). Not part of `npm test`.
// Run: npm run build && node dist/bench/chaos.js [--tasks 20000] [--slots 2] [--kill-every-ms 500] [--restarts 2]
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { applyOverrides, compileConfig, type TaskRecord } from '../lib/core';
import { startEmbeddedGrid } from '../lib/cli';
import { executionCounts, FAULT_WORKER } from './fault-worker-log';

const ROOT = path.resolve(__dirname, '..', '..');
const HTCGRID = path.join(ROOT, 'dist', 'bin', 'htcgrid.js');

interface Agent {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '20000' },
      slots: { type: 'string', default: '2' },
      'kill-every-ms': { type: 'string', default: '500' },
      restarts: { type: 'string', default: '2' },
      'task-ms': { type: 'string', default: '2' },
      python: { type: 'string', default: 'python3' },
      'max-minutes': { type: 'string', default: '20' },
    },
  });
  const taskCount = Number(values.tasks);
  const restarts = Number(values.restarts);
  const killEveryMs = Number(values['kill-every-ms']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-chaos-'));
  const logDir = path.join(dir, 'executions');
  fs.mkdirSync(logDir);
  const config = compileConfig(
    applyOverrides(
      {
        slots: Number(values.slots),
        max_attempts: 10,
        task_ttl_expiration_offset_sec: 3,
        task_ttl_refresh_interval_sec: 1,
        lease_check_interval_sec: 0.5,
        reaper_interval_sec: 0.5,
        agent_task_visibility_timeout_sec: 5,
        empty_task_queue_backoff_timeout_sec: 0.005,
        receive_batch_size: 100,
      },
      { python_executable: values.python },
    ),
    'chaos',
  );
  const configFile = path.join(dir, 'chaos-config.json');
  fs.writeFileSync(configFile, JSON.stringify(config.document));
  console.error(`chaos: ${taskCount} tasks in ${dir}`);

  const started = Date.now();
  let agentNo = 0;
  let agent = await startAgent(dir, configFile, ++agentNo);
  const grid = await startEmbeddedGrid({ dataDir: dir, config });
  let runtimeKills = 0;
  let agentKills = 0;
  const chaos = setInterval(() => {
    const pids = childPids(agent.child.pid ?? -1);
    const victim = pids[Math.floor(Math.random() * pids.length)];
    if (victim === undefined) return;
    try {
      process.kill(victim, 'SIGKILL');
      runtimeKills++;
    } catch {
      // It ended on its own meanwhile.
    }
  }, killEveryMs);

  const taskSec = Number(values['task-ms']) / 1000;
  const handle = await grid.client.submit(
    (function* () {
      for (let i = 0; i < taskCount; i++) yield { log_dir: logDir, sleep: taskSec };
    })(),
    { batchSize: 1000 },
  );
  const submittedMs = Date.now() - started;

  const seen = new Map<string, number>();
  let resultCount = 0;
  const deadline = started + Number(values['max-minutes']) * 60_000;
  const watchdog = new AbortController();
  const timer = setTimeout(() => watchdog.abort(), deadline - Date.now());
  for await (const r of handle.results({ pollIntervalMs: 20, pageSize: 2000, signal: watchdog.signal })) {
    seen.set(r.taskId, (seen.get(r.taskId) ?? 0) + 1);
    resultCount++;
    // Replace the agent process at 1/3 and 2/3 of the way, mid-stream.
    if (agentKills < restarts && resultCount >= ((agentKills + 1) * taskCount) / (restarts + 1)) {
      agentKills++;
      agent.child.kill('SIGKILL');
      await agent.exited;
      console.error(`chaos: agent ${agentNo} SIGKILLed after ${resultCount} results; starting agent ${agentNo + 1}`);
      agent = await startAgent(dir, configFile, ++agentNo);
    }
  }
  clearTimeout(timer);
  clearInterval(chaos);
  const elapsedMs = Date.now() - started;
  agent.child.kill('SIGTERM');
  const lastExit = await agent.exited;

  const tasks: TaskRecord[] = [];
  let missing = 0;
  for (let i = 0; i < taskCount; i++) {
    const task = await grid.backends.table.getTask(`${handle.sessionId}_${i}`);
    if (task) tasks.push(task);
    else missing++;
  }
  const ran = executionCounts(logDir);
  const outcomesSeen: Record<string, number> = {};
  let recordedTwice = 0;
  let extraExecutions = 0;
  let attemptRunTwice = 0;
  let nonTerminal = 0;
  for (const task of tasks) {
    if (task.state === 'pending' || task.state === 'running') nonTerminal++;
    const successes = task.history.filter((h) => h.outcome === 'succeeded').length;
    if (successes > 1 || (seen.get(task.taskId) ?? 0) > 1) recordedTwice++;
    for (const h of task.history) outcomesSeen[h.outcome] = (outcomesSeen[h.outcome] ?? 0) + 1;
    const perAttempt = ran.get(task.taskId) ?? new Map<number, number>();
    const total = [...perAttempt.values()].reduce((a, b) => a + b, 0);
    extraExecutions += Math.max(0, total - task.attempt);
    for (const n of perAttempt.values()) if (n > 1) attemptRunTwice++;
  }
  // Lost: submitted but never reported by results(), or gone from the table.
  const lost =
    missing + tasks.filter((t) => !seen.has(t.taskId) && t.state !== 'pending' && t.state !== 'running').length;
  const counts = await grid.backends.table.countByState(handle.sessionId);
  await grid.close(0);
  const report = {
    tasks: taskCount,
    lost,
    duplicated: recordedTwice,
    nonTerminal,
    states: counts,
    executionsBeyondAttempts: extraExecutions,
    attemptsExecutedTwice: attemptRunTwice,
    attemptOutcomes: outcomesSeen,
    runtimeKills,
    agentRestarts: agentKills,
    lastAgentExitCode: lastExit,
    submitMs: submittedMs,
    elapsedMs,
    tasksPerSec: Math.round((taskCount / elapsedMs) * 1000),
  };
  console.log(JSON.stringify(report, null, 2));
  console.log(`lost ${lost}, duplicated ${recordedTwice}, non-terminal ${nonTerminal}`);
  const ok = lost + recordedTwice + nonTerminal === 0 && counts.succeeded === taskCount;
  // Keep the grid folder (database, agent logs) of a failed run for a post-mortem.
  if (ok) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`chaos: kept ${dir} for inspection`);
  process.exitCode = ok ? 0 : 1;
}

async function startAgent(dir: string, configFile: string, n: number): Promise<Agent> {
  const child = spawn(
    process.execPath,
    [
      HTCGRID,
      'local',
      'up',
      '--dir',
      dir,
      '--worker',
      FAULT_WORKER,
      '--config',
      configFile,
      '--log-file',
      path.join(dir, `agent-${n}.log`),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let text = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('local grid up')) resolve();
    });
    void exited.then((code) => reject(new Error(`agent ${n} exited with ${code} before it was up:\n${text}`)));
  });
  child.stderr.resume();
  return { child, exited };
}

/** Direct children of `pid` (an agent's runtime processes), from /proc. */
function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // The agent is gone or a thread ended while we looked.
  }
  return pids;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
