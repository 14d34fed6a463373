// Memory of a session-wide cancel and delete on DynamoDB Local: paged (sessionPageTasks) next to one page holding the
// whole session, as both were before pages. Prints the task ids held at once and the live heap's peak above its start
// (sampled after a full collection every 25 SDK requests).
// Run: node dist/bench/session-ops-aws.js (after npm run build) [--tasks 10000] [--page 1008]
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { parseArgs } from 'node:util';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbTaskTable } from '../lib/backends/aws';
import { newTask, type SessionRecord } from '../lib/core/task';
import { createGridResources, startEmulators } from '../test/support/emulators';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Task ids named by the manifests read and not yet written, and the heap, sampled at every SDK request. */
interface Probe {
  named: number;
  ended: number;
  mostHeld: number;
  heapStart: number;
  heapPeak: number;
  requests: number;
}

function instrument(client: DynamoDBClient, tableName: string, probe: Probe): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '?';
      const input = (args as { input: Record<string, unknown> }).input;
      const out = await next(args);
      if (command === 'BatchGetItemCommand') {
        const items = (out.output as { Responses?: Record<string, Record<string, unknown>[]> }).Responses?.[tableName];
        for (const item of items ?? []) {
          // Unmarshalled or not, depending on where the document client's middleware sits.
          const ids = item.task_ids as unknown[] | { L?: unknown[] } | undefined;
          probe.named += (Array.isArray(ids) ? ids.length : ids?.L?.length) ?? 0;
        }
      } else if (command === 'UpdateItemCommand') {
        probe.ended += 1;
      } else if (command === 'BatchWriteItemCommand') {
        const writes = (input.RequestItems as Record<string, { DeleteRequest?: { Key: { task_id?: unknown } } }[]>)[
          tableName
        ];
        for (const write of writes ?? []) {
          const key = write.DeleteRequest?.Key.task_id as string | { S?: string } | undefined;
          const id = typeof key === 'string' ? key : key?.S;
          if (id !== undefined && !id.startsWith('manifest#') && !id.startsWith('session#')) probe.ended += 1;
        }
      }
      probe.mostHeld = Math.max(probe.mostHeld, probe.named - probe.ended);
      // The live heap (after a full collection) every 25 requests: what the call holds, not its garbage.
      if (++probe.requests % 25 === 0) {
        gc();
        probe.heapPeak = Math.max(probe.heapPeak, process.memoryUsage().heapUsed);
      }
      return out;
    },
    { step: 'initialize', name: 'sessionOpsProbe' },
  );
}

function resetProbe(probe: Probe): void {
  gc();
  Object.assign(probe, {
    named: 0,
    ended: 0,
    mostHeld: 0,
    heapStart: process.memoryUsage().heapUsed,
    heapPeak: 0,
    requests: 0,
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tasks: { type: 'string', default: '10000' }, page: { type: 'string', default: '1008' } },
  });
  const tasks = Number(values.tasks);
  const emulators = await startEmulators({ dynamodb: true });
  const figures: Record<string, unknown>[] = [];
  try {
    const { tableName } = await createGridResources(emulators);
    const client = emulators.clients().dynamodb;
    const probe: Probe = { named: 0, ended: 0, mostHeld: 0, heapStart: 0, heapPeak: 0, requests: 0 };
    instrument(client, tableName, probe);
    // One page of the whole session is how both worked before pages.
    for (const [label, pageTasks] of [
      ['paged', Number(values.page)],
      ['one page', tasks + 24],
    ] as const) {
      const table = new DynamoDbTaskTable({ tableName, client, sessionPageTasks: pageTasks });
      const session: SessionRecord = {
        sessionId: `bench-${label.replace(' ', '-')}-${Date.now().toString(36)}`,
        createdAt: Date.now(),
        priority: 0,
        maxAttempts: 1,
        timeoutMs: 60_000,
        nonRetryableErrorTypes: [],
      };
      await table.createSession(session);
      process.stderr.write(`${label}: writing ${tasks} tasks...\n`);
      for (let i = 0; i < tasks; i += 1000) {
        const batch = Array.from({ length: Math.min(1000, tasks - i) }, (_, j) =>
          newTask(session, i + j, { inline: '{}' }, Date.now()),
        );
        await table.createTasks(batch);
      }
      for (const op of ['cancel', 'delete'] as const) {
        process.stderr.write(`${label}: ${op}...\n`);
        resetProbe(probe);
        const started = Date.now();
        const cancelled =
          op === 'cancel' ? await table.cancel(session.sessionId) : await table.deleteSession(session.sessionId);
        figures.push({
          mode: label,
          op,
          tasks,
          pageTasks,
          ...(op === 'cancel' ? { cancelled } : {}),
          mostIdsHeld: probe.mostHeld,
          liveHeapPeakAboveStartMiB: Math.round((Math.max(0, probe.heapPeak - probe.heapStart) / 2 ** 20) * 10) / 10,
          ms: Date.now() - started,
        });
      }
      await table.close();
    }
    client.destroy();
  } finally {
    await emulators.stop();
  }
  console.table(figures);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
