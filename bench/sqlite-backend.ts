// Benchmark of the local grid's SQLite backends: tasks/s through create+send, receive+claim, complete+ack, and the
// agent's intake path (receive+claim+ack in one transaction, then complete).
// Run: npm run build && node dist/bench/sqlite-backend.js [tasks]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openLocalBackends } from '../lib/backends/local';
import { newTask, type SessionRecord } from '../lib/core/task';
import type { Completion, ReceivedMessage } from '../lib/ports';

interface PhaseResult {
  phase: string;
  batch: number;
  tasks: number;
  seconds: number;
  /** CPU time of this process (user + system): steadier than wall time on a machine shared with other work. */
  cpuSeconds: number;
}

async function timed(phase: string, batch: number, tasks: number, fn: () => Promise<void>): Promise<PhaseResult> {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(cpu);
  return {
    phase,
    batch,
    tasks,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    cpuSeconds: (used.user + used.system) / 1e6,
  };
}

function succeeded(taskId: string, attempt: number): Completion {
  return {
    taskId,
    guard: { owner: 'bench-agent', attempt },
    outcome: { kind: 'succeeded', result: { inline: '{"ok":true}' } },
    at: Date.now(),
  };
}

/** `ports`: the `TaskQueue` and `TaskTable` calls one by one; `intake`: the local intake, as the agent uses it. */
type Mode = 'ports' | 'intake';

async function runOnce(total: number, batch: number, mode: Mode): Promise<PhaseResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bench-'));
  const backends = openLocalBackends(dir);
  const { table, queue } = backends;
  try {
    const session: SessionRecord = {
      sessionId: `bench-${batch}`,
      createdAt: Date.now(),
      priority: 0,
      maxAttempts: 3,
      timeoutMs: 60_000,
      nonRetryableErrorTypes: [],
    };
    await table.createSession(session);
    const results: PhaseResult[] = [];

    results.push(
      await timed('create+send', batch, total, async () => {
        for (let start = 0; start < total; start += batch) {
          const tasks = [];
          for (let i = start; i < Math.min(total, start + batch); i++) {
            tasks.push(newTask(session, i, { inline: `{"i":${i}}` }, Date.now()));
          }
          await table.createTasks(tasks);
          await queue.send(tasks.map((t) => ({ taskId: t.taskId, sessionId: t.sessionId, attempt: 0, priority: 0 })));
        }
      }),
    );

    if (mode === 'intake') {
      // The agent's path on these backends: receive + claim + ack in one transaction, then the completions.
      const claimed: Completion[][] = [];
      results.push(
        await timed('intake (receive+claim+ack)', batch, total, async () => {
          for (;;) {
            const tasks = await backends.intake.receiveAndClaim(batch, {
              waitMs: 0,
              visibilityMs: 600_000,
              owner: 'bench-agent',
              leaseMs: 60_000,
              busyDelayMs: 1_000,
            });
            if (tasks.length === 0) break;
            claimed.push(tasks.map((task) => succeeded(task.taskId, task.attempt)));
          }
        }),
      );
      results.push(
        await timed('complete', batch, total, async () => {
          for (const completions of claimed) await table.complete(completions);
        }),
      );
    }

    const running: { received: ReceivedMessage[]; completions: Completion[] }[] = [];
    if (mode === 'ports')
      results.push(
        await timed('receive+claim', batch, total, async () => {
          for (;;) {
            const received = await queue.receive(batch, { waitMs: 0, visibilityMs: 600_000 });
            if (received.length === 0) break;
            const now = Date.now();
            const claims = await table.claim(
              received.map((r) => ({ taskId: r.message.taskId, attempt: r.message.attempt })),
              { owner: 'bench-agent', expiresAt: now + 60_000 },
              now,
            );
            const completions: Completion[] = [];
            for (const claim of claims) {
              if (claim.status !== 'claimed') throw new Error(`unexpected claim outcome ${claim.status}`);
              completions.push(succeeded(claim.taskId, claim.task.attempt));
            }
            running.push({ received, completions });
          }
        }),
      );

    if (mode === 'ports')
      results.push(
        await timed('complete+ack', batch, total, async () => {
          for (const { received, completions } of running) {
            await table.complete(completions);
            await queue.ack(received.map((r) => r.receipt));
          }
        }),
      );

    results.push(
      await timed('listTerminal (pages of 1000)', 1000, total, async () => {
        let cursor: string | undefined;
        let seen = 0;
        for (;;) {
          const page = await table.listTerminal(session.sessionId, cursor, 1000);
          if (page.tasks.length === 0) break;
          seen += page.tasks.length;
          cursor = page.cursor;
        }
        if (seen !== total) throw new Error(`listed ${seen} of ${total} tasks`);
      }),
    );

    const counts = await table.countByState(session.sessionId);
    if (counts.succeeded !== total) throw new Error(`expected ${total} succeeded, got ${JSON.stringify(counts)}`);
    return results;
  } finally {
    await backends.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 100_000);
  console.log(`SQLite backends, ${total} tasks, node ${process.version}, ${os.cpus().length} CPUs`);
  console.log('phase                          batch   seconds    tasks/s   row-ops/s   cpu-s  tasks/cpu-s');
  for (const batch of [10, 100]) {
    for (const r of [...(await runOnce(total, batch, 'ports')), ...(await runOnce(total, batch, 'intake'))]) {
      // Each phase touches two rows per task (table + queue), except paging (one read per task).
      const rowOps = r.phase.startsWith('listTerminal') ? r.tasks : r.tasks * 2;
      console.log(
        `${r.phase.padEnd(30)} ${String(r.batch).padStart(5)} ${r.seconds.toFixed(3).padStart(9)} ${Math.round(
          r.tasks / r.seconds,
        )
          .toString()
          .padStart(10)} ${Math.round(rowOps / r.seconds)
          .toString()
          .padStart(11)} ${r.cpuSeconds.toFixed(3).padStart(7)} ${Math.round(r.tasks / r.cpuSeconds)
          .toString()
          .padStart(12)}`,
      );
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
