// Micro-benchmark: no-op tasks per second through the local runtime's pipe transport, N tasks over S slots.
// Run from the repository root:
//   npx esbuild bench/runtime-pipe.ts --bundle --platform=node --outfile=/tmp/rp.js
//   node /tmp/rp.js [tasks=50000] [slots=2] [python|node]
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { resolveRuntime } from '../lib/core/runtime-kind';
import type { WorkerInvoker } from '../lib/ports';
import { createLocalInvoker } from '../lib/runtime/local';

async function main(): Promise<void> {
  const tasks = Number(process.argv[2] ?? 50_000);
  const slots = Number(process.argv[3] ?? 2);
  const family = process.argv[4] === 'node' ? 'node' : 'python';
  const root = process.cwd();
  const invokers: WorkerInvoker[] = Array.from({ length: slots }, (_, slotIndex) =>
    createLocalInvoker({
      taskRoot: path.join(root, 'test/fixtures/workers', family),
      handler: family === 'python' ? 'worker.noop' : 'handlers.noop',
      runtime: resolveRuntime(family === 'python' ? 'python3.12' : 'nodejs22.x'),
      pythonExecutable: process.env.PYTHON ?? 'python3',
      bootstrapDir: path.join(root, 'lib/runtime/bootstrap'),
      slotIndex,
    }),
  );
  await Promise.all(invokers.map((i) => i.start()));
  const eventJson = JSON.stringify({ x: 1 });
  let next = 0;
  let failed = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    invokers.map(async (invoker) => {
      while (next < tasks) {
        const index = next++;
        const result = await invoker.invoke({
          requestId: randomUUID(),
          taskId: `bench_${index}`,
          sessionId: 'bench',
          attempt: 1,
          eventJson,
          deadline: Date.now() + 60_000,
        });
        if (!result.ok) failed++;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all(invokers.map((i) => i.close()));
  console.log(
    JSON.stringify({
      bench: 'runtime-pipe',
      runtime: family,
      tasks,
      slots,
      failed,
      seconds: Number(seconds.toFixed(3)),
      tasksPerSecond: Math.round(tasks / seconds),
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
