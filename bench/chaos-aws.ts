// Chaos run of the AWS backends on the emulators: agent processes SIGKILLed at random (one right after a claim) and
// replaced, the reaper on a timer; prints lost, duplicated and non-terminal counts (all must be 0). Not in `npm test`.
// Kills happen during the first --chaos-sec seconds; then every task must still end within --max-minutes.
// Run: npm run build && node dist/bench/chaos-aws.js [--tasks 3000] [--long-tasks 30] [--kill-every-ms 3000]
//   [--chaos-sec 120] [--agents 2] [--slots 2] [--reap-every-ms 2000] [--claim-kill-every 4] [--max-minutes 15]
//   [--python python3]
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { openAwsBackends } from '../lib/backends/aws';
import { GridClient } from '../lib/client';
import { compileConfig, GRID_ENV, resourcesToEnv, taskIdOf, type TaskRecord } from '../lib/core';
import { reapExpiredLeases } from '../lib/runtime/reaper';
import { createGridResources, deadLetterQueueUrl, startEmulators } from '../test/support/emulators';
import { executionCounts, FAULT_WORKER } from './fault-worker-log';

const ROOT = path.resolve(__dirname, '..', '..');
const AGENT_ENTRY = path.join(ROOT, 'dist', 'bench', 'chaos-aws-agent.js');
/** Lines bench/chaos-aws-agent.ts writes on stdout. */
const AGENT_UP_LINE = 'chaos-aws agent up';
const CLAIMED_LINE_PREFIX = 'claimed ';

interface AgentProcess {
  readonly n: number;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** SIGKILLed by the bench (so its exit is expected). */
  killed: boolean;
  /** Started to be SIGKILLed right after its first claim. */
  readonly killOnClaim: boolean;
  killedAfterClaim: boolean;
}

async function main(): Promise<void> {
  // Its paths (the agent's entry, the fault worker) are those of the compiled bench: under tsx they miss.
  if (!__filename.endsWith('.js') || !fs.existsSync(AGENT_ENTRY)) {
    throw new Error('chaos-aws runs compiled: `npm run build && node dist/bench/chaos-aws.js` (not with tsx)');
  }
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '3000' },
      'long-tasks': { type: 'string', default: '30' },
      'task-ms': { type: 'string', default: '5' },
      agents: { type: 'string', default: '2' },
      slots: { type: 'string', default: '2' },
      'kill-every-ms': { type: 'string', default: '3000' },
      'reap-every-ms': { type: 'string', default: '2000' },
      'claim-kill-every': { type: 'string', default: '4' },
      'max-attempts': { type: 'string', default: '30' },
      'chaos-sec': { type: 'string', default: '120' },
      'max-minutes': { type: 'string', default: '15' },
      python: { type: 'string', default: 'python3' },
    },
  });
  const taskCount = Number(values.tasks);
  const longTasks = Math.min(taskCount, Number(values['long-tasks']));
  const agentCount = Number(values.agents);
  const claimKillEvery = Number(values['claim-kill-every']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-chaos-aws-'));
  const logDir = path.join(dir, 'executions');
  fs.mkdirSync(logDir);
  // Short lease timings so a dead agent's tasks come back within seconds. The message reappears (4 s) before the
  // unextended lease expires (6 s): such a receive claims `busy` first, then `expired` (reaped by that agent).
  const configDoc = {
    slots: Number(values.slots),
    max_attempts: Number(values['max-attempts']),
    task_timeout_sec: 60,
    task_ttl_expiration_offset_sec: 6,
    task_ttl_refresh_interval_sec: 2,
    lease_check_interval_sec: 0.5,
    agent_task_visibility_timeout_sec: 4,
    empty_task_queue_backoff_timeout_sec: 0.05,
    receive_batch_size: 10,
  };
  const config = compileConfig(configDoc, 'chaos-aws');

  const emulators = await startEmulators();
  const cleanups: (() => Promise<void>)[] = [() => emulators.stop()];
  let ok = false;
  try {
    // The stack's dead-letter redrive (TaskQueues' default maxReceiveCount).
    const resources = await createGridResources(emulators, { maxReceiveCount: 10 });
    const clients = emulators.clients();
    const backends = openAwsBackends(resources, { clients });
    cleanups.unshift(async () => {
      await backends.close();
      clients.dynamodb.destroy();
      clients.sqs.destroy();
      clients.s3.destroy();
    });
    const agentEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...emulators.env(),
      ...resourcesToEnv(resources),
      [GRID_ENV.config]: JSON.stringify(configDoc),
    };
    console.error(`chaos-aws: ${taskCount} tasks (${longTasks} of 6-8 s) in ${dir}`);

    let agentNo = 0;
    let running = true;
    let startedAt = Date.now();
    let lastKillAtMs = 0;
    const chaosMs = Number(values['chaos-sec']) * 1000;
    const inChaosWindow = () => running && Date.now() - startedAt <= chaosMs;
    const agents: AgentProcess[] = [];
    const everyAgent: AgentProcess[] = [];
    const spawnAgent = async (killOnClaim: boolean): Promise<AgentProcess> => {
      const onClaim = () => {
        if (!inChaosWindow()) return false;
        lastKillAtMs = Date.now() - startedAt;
        return true;
      };
      const agent = await startAgent(++agentNo, dir, agentEnv, values.python, killOnClaim ? onClaim : undefined);
      agents.push(agent);
      everyAgent.push(agent);
      void agent.exited.then((code) => {
        if (agents.includes(agent)) agents.splice(agents.indexOf(agent), 1);
        if (!agent.killed && running) console.error(`chaos-aws: agent ${agent.n} exited on its own (${code})`);
      });
      return agent;
    };
    for (let i = 0; i < agentCount; i++) await spawnAgent(false);

    startedAt = Date.now();
    // The reaper Lambda's sweep, on a timer in this process.
    const reaped = { requeued: 0, failed: 0, skipped: 0, sweeps: 0, errors: 0 };
    let reaping = Promise.resolve();
    const reaper = setInterval(() => {
      reaping = reaping.then(async () => {
        try {
          const r = await reapExpiredLeases({ table: backends.table, queue: backends.queue });
          reaped.requeued += r.requeued;
          reaped.failed += r.failed;
          reaped.skipped += r.skipped;
          reaped.sweeps++;
        } catch (err) {
          reaped.errors++;
          console.error(`chaos-aws: reaper sweep failed: ${String(err)}`);
        }
      });
    }, Number(values['reap-every-ms']));

    // Chaos: every tick SIGKILL a random agent (its whole process group: agent, RIE servers, Python runtimes) and
    // start a replacement. Every `claim-kill-every`-th tick also starts an extra agent that is SIGKILLed as soon as
    // its first claim returns (before any heartbeat: only the in-flight messages guard what it claimed).
    const kills = {
      random: 0,
      get afterClaim() {
        return everyAgent.filter((a) => a.killedAfterClaim).length;
      },
    };
    let replacing = Promise.resolve();
    let ticks = 0;
    const chaos = setInterval(() => {
      replacing = replacing.then(async () => {
        if (!inChaosWindow()) return;
        const alive = agents.filter((a) => !a.killed && !a.killOnClaim);
        const victim = alive[Math.floor(Math.random() * alive.length)];
        if (victim === undefined) return;
        killGroup(victim);
        kills.random++;
        lastKillAtMs = Date.now() - startedAt;
        await victim.exited;
        ticks++;
        if (running) await spawnAgent(false);
        // One such agent at a time: near the end, when it has nothing to claim, it would only add to the fleet.
        const waitingVictim = agents.some((a) => a.killOnClaim && !a.killed);
        if (running && claimKillEvery > 0 && ticks % claimKillEvery === 1 && !waitingVictim) await spawnAgent(true);
      });
    }, Number(values['kill-every-ms']));

    const client = new GridClient({ config, ...backends, pollIntervalMs: 500 });
    // Long tasks spread evenly through the session; they outlive their first heartbeat (2 s).
    const step = longTasks > 0 ? Math.floor(taskCount / longTasks) : 0;
    const sleepFor = (i: number) =>
      step > 0 && i % step === 0 && i / step < longTasks ? 6 + Math.random() * 2 : Number(values['task-ms']) / 1000;
    const handle = await client.submit(
      (function* () {
        for (let i = 0; i < taskCount; i++) yield { log_dir: logDir, sleep: sleepFor(i) };
      })(),
      { batchSize: 500, expectedTasks: taskCount },
    );
    const submitMs = Date.now() - startedAt;
    console.error(`chaos-aws: submitted in ${submitMs} ms`);

    const seen = new Map<string, number>();
    const watchdog = new AbortController();
    const timer = setTimeout(() => watchdog.abort(), Number(values['max-minutes']) * 60_000);
    const progress = setInterval(
      () =>
        console.error(
          `chaos-aws: ${seen.size} results, kills ${kills.random}+${kills.afterClaim}, ` +
            `reaper ${JSON.stringify(reaped)}, agents ${agents.map((a) => a.n).join(',')}`,
        ),
      10_000,
    );
    for await (const r of handle.results({ pollIntervalMs: 500, pageSize: 1000, signal: watchdog.signal })) {
      seen.set(r.taskId, (seen.get(r.taskId) ?? 0) + 1);
    }
    const elapsedMs = Date.now() - startedAt;
    clearTimeout(timer);
    clearInterval(progress);
    clearInterval(chaos);
    running = false;
    // Before the agents stop: how every task without a result looks now, and whether its lease holder still lives.
    const unreported = Array.from({ length: taskCount }, (_, i) => taskIdOf(handle.sessionId, i)).filter(
      (id) => !seen.has(id),
    );
    for (const taskId of unreported.slice(0, 20)) {
      const item = await clients.dynamodb.send(
        new GetItemCommand({ TableName: resources.tableName, Key: { task_id: { S: taskId } } }),
      );
      const raw = item.Item ? unmarshall(item.Item) : undefined;
      const holderPid = Number(String(raw?.lease_owner ?? '').split(':')[1]);
      const holder = everyAgent.find((a) => a.child.pid === holderPid);
      const alive = holder !== undefined && agents.includes(holder);
      const { payload: _payload, ...rest } = raw ?? {};
      console.error(
        `chaos-aws: no result at ${Date.now()} (holder agent ${holder?.n ?? '?'}, ${alive ? 'alive' : 'gone'}): ` +
          JSON.stringify(rest),
      );
    }
    // SIGTERM (drain) every agent; a claim victim that never claimed ends too, which frees the chaos chain.
    const terminated = new Set<AgentProcess>();
    const terminateAll = () =>
      agents
        .filter((a) => !terminated.has(a))
        .map((a) => {
          terminated.add(a);
          a.child.kill('SIGTERM');
          return withTimeout(a.exited, 20_000, () => killGroup(a));
        });
    const exiting = terminateAll();
    await replacing;
    const exits = await Promise.all([...exiting, ...terminateAll()]);
    clearInterval(reaper);
    await reaping;

    const tasks: TaskRecord[] = [];
    let missing = 0;
    const ids = Array.from({ length: taskCount }, (_, i) => taskIdOf(handle.sessionId, i));
    for (let i = 0; i < ids.length; i += 25) {
      const page = await Promise.all(ids.slice(i, i + 25).map((id) => backends.table.getTask(id)));
      for (const task of page) {
        if (task) tasks.push(task);
        else missing++;
      }
    }
    const ran = executionCounts(logDir);
    const outcomes: Record<string, number> = {};
    let recordedTwice = 0;
    let attemptsRunTwice = 0;
    let duplicated = 0;
    let beyond = 0;
    let nonTerminal = 0;
    for (const task of tasks) {
      if (task.state === 'pending' || task.state === 'running') nonTerminal++;
      for (const h of task.history) outcomes[h.outcome] = (outcomes[h.outcome] ?? 0) + 1;
      const twice =
        task.history.filter((h) => h.outcome === 'succeeded').length > 1 || (seen.get(task.taskId) ?? 0) > 1;
      const perAttempt = ran.get(task.taskId) ?? new Map<number, number>();
      const runTwice = [...perAttempt.values()].filter((n) => n > 1).length;
      if (twice) recordedTwice++;
      attemptsRunTwice += runTwice;
      if (twice || runTwice > 0) duplicated++;
      const executions = [...perAttempt.values()].reduce((a, b) => a + b, 0);
      beyond += Math.max(0, executions - task.attempt);
    }
    // Lost: gone from the table, or terminal in the table but never reported by results().
    const lost =
      missing + tasks.filter((t) => !seen.has(t.taskId) && t.state !== 'pending' && t.state !== 'running').length;
    const states = await backends.table.countByState(handle.sessionId);
    const dlq = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: deadLetterQueueUrl(resources),
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    const leaseExpired = outcomes['lease-expired'] ?? 0;
    const report = {
      tasks: taskCount,
      longTasks,
      lost,
      duplicated,
      nonTerminal,
      states,
      attemptOutcomes: outcomes,
      recordedTwice,
      attemptsExecutedTwice: attemptsRunTwice,
      executionsBeyondAttempts: beyond,
      agentKills: kills.random + kills.afterClaim,
      agentKillsRandom: kills.random,
      agentKillsRightAfterClaim: kills.afterClaim,
      agentsStarted: everyAgent.length,
      lastAgentExitCodes: exits,
      reaper: reaped,
      // Lease-expired attempts the reaper did not record: reaped by the agent that received their message again.
      leaseExpiredReapedByAgents: leaseExpired - reaped.requeued - reaped.failed,
      deadLetterMessages: Number(dlq.Attributes?.ApproximateNumberOfMessages ?? 0),
      submitMs,
      chaosSec: chaosMs / 1000,
      lastKillMs: lastKillAtMs,
      // From the last kill to the last result: how long the grid took to recover every task.
      recoveryMs: elapsedMs - lastKillAtMs,
      elapsedMs,
      tasksPerSec: Math.round((taskCount / elapsedMs) * 1000),
      load: os.loadavg().map((l) => Number(l.toFixed(1))),
    };
    ok = lost + duplicated + nonTerminal === 0;
    console.log(JSON.stringify(report, null, 2));
    console.log(
      `${ok ? 'PASS' : 'FAIL'}: lost ${lost}, duplicated ${duplicated}, non-terminal ${nonTerminal} of ${taskCount} ` +
        `tasks (${states.succeeded} succeeded, ${states.failed} failed) through ${report.agentKills} agent kills ` +
        `(${kills.afterClaim} right after a claim), ${leaseExpired} lease-expired attempts`,
    );
  } finally {
    for (const c of cleanups) await c().catch((err: unknown) => console.error(`chaos-aws: cleanup: ${String(err)}`));
  }
  // Keep the folder (agent logs, execution log) of a failed run for a post-mortem.
  if (ok) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`chaos-aws: kept ${dir} for inspection`);
  process.exitCode = ok ? 0 : 1;
}

/** Starts an agent in its own process group; resolves once it is up. */
async function startAgent(
  n: number,
  dir: string,
  env: NodeJS.ProcessEnv,
  python: string,
  /** Starts the agent to be SIGKILLed right after its first claim, if this says yes then. */
  killOnClaim: (() => boolean) | undefined,
): Promise<AgentProcess> {
  const args = [
    AGENT_ENTRY,
    '--worker',
    FAULT_WORKER,
    '--python',
    python,
    '--log-file',
    path.join(dir, `agent-${n}.log`),
    ...(killOnClaim ? ['--report-claims'] : []),
  ];
  const child = spawn(process.execPath, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const agent: AgentProcess = {
    n,
    child,
    exited,
    killed: false,
    killOnClaim: killOnClaim !== undefined,
    killedAfterClaim: false,
  };
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-4000);
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(AGENT_UP_LINE)) resolve();
      if (killOnClaim && !agent.killed && !agent.killedAfterClaim && out.includes(CLAIMED_LINE_PREFIX)) {
        agent.killedAfterClaim = killOnClaim();
        if (!agent.killedAfterClaim) return;
        killGroup(agent);
        console.error(`chaos-aws: agent ${n} SIGKILLed right after it claimed`);
      }
      out = out.slice(-200);
    });
    void exited.then((code) => reject(new Error(`agent ${n} exited with ${code} before it was up:\n${err}`)));
  });
  return agent;
}

/** SIGKILLs the agent's whole process group, as when its container dies. */
function killGroup(agent: AgentProcess): void {
  agent.killed = true;
  const pid = agent.child.pid;
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  const timer = setTimeout(onTimeout, ms);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
