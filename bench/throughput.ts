// Throughput of the local grid end to end (submit → result) for no-op Python tasks; prints tasks/s and latency.
// Run: npm run build && node dist/bench/throughput.js [--tasks N] [--slots S] [--python PATH] [--agent-threads T]
import path from 'node:path';
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import { applyOverrides, compileConfig } from '../lib/core';
import { startEmbeddedGrid } from '../lib/cli';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '20000' },
      slots: { type: 'string', default: '2' },
      python: { type: 'string', default: 'python3' },
      batch: { type: 'string', default: '100' },
      'agent-threads': { type: 'string' },
    },
  });
  const tasks = Number(values.tasks);
  const slots = Number(values.slots);
  const root = path.resolve(__dirname, '..', '..');
  const worker = path.join(root, 'workers', 'python', 'mock-compute');
  const config = compileConfig(
    applyOverrides(
      { empty_task_queue_backoff_timeout_sec: 0.001 },
      {
        lambda_handler_file_name: 'mock_compute_engine',
        lambda_handler_function_name: 'lambda_handler',
        slots,
        python_executable: values.python,
        receive_batch_size: Number(values.batch),
      },
    ),
    'bench',
  );
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bench-'));
  const agentThreads = values['agent-threads'] === undefined ? undefined : Number(values['agent-threads']);
  const grid = await startEmbeddedGrid({ dataDir, config, worker, agentThreads });
  try {
    const threadsBefore = threadCpuMs();
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    const handle = await grid.client.submit(
      (function* () {
        for (let i = 0; i < tasks; i++) yield { worker_arguments: [0] };
      })(),
      { batchSize: 1000 },
    );
    const submittedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const latencies: number[] = [];
    let ok = 0;
    for await (const r of handle.results({ pollIntervalMs: 5, pageSize: 2000 })) {
      if (r.state === 'succeeded') ok++;
      if (r.finishedAt !== undefined && r.startedAt !== undefined) latencies.push(r.finishedAt - r.startedAt);
    }
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const cpu = process.cpuUsage(cpuBefore);
    const threadsAfter = threadCpuMs();
    // Busiest threads of this process (main thread first when it is among them), in CPU µs per task.
    const threadCpuUsPerTask = [...threadsAfter]
      .map(([tid, ms]) => Math.round(((ms - (threadsBefore.get(tid) ?? 0)) * 1000) / tasks))
      .filter((us) => us > 0)
      .sort((a, b) => b - a)
      .slice(0, 3);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
    const rss = process.memoryUsage().rss / 2 ** 20;
    console.log(
      JSON.stringify({
        tasks,
        slots,
        agentThreads: agentThreads ?? 'default',
        succeeded: ok,
        submitMs: Math.round(submittedMs),
        elapsedMs: Math.round(elapsedMs),
        tasksPerSec: Math.round((tasks / elapsedMs) * 1000),
        claimToFinishP50Ms: pct(50),
        claimToFinishP99Ms: pct(99),
        agentAndClientRssMiB: Math.round(rss),
        nodeCpuUsPerTask: Math.round((cpu.user + cpu.system) / tasks),
        threadCpuUsPerTask,
      }),
    );
  } finally {
    await grid.close(1000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** CPU time (ms) of each thread of this process, from /proc on Linux (empty elsewhere). */
function threadCpuMs(): Map<string, number> {
  const times = new Map<string, number>();
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) {
      // Fields after the command name: state is field 3, utime and stime are fields 14 and 15 (clock ticks, 100/s).
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      times.set(tid, (Number(fields[11]) + Number(fields[12])) * 10);
    }
  } catch {
    // not Linux: no per-thread figures
  }
  return times;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
