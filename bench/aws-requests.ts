// AWS requests and request cost per task: N small tasks end to end on the emulators, every SDK request counted.
// Run: npx tsx bench/aws-requests.ts (or node dist/bench/aws-requests.js after npm run build) [--tasks 1000] [--slots 2] [--prefetch auto|N] [--poll-ms 2000] [--min-poll-ms 50] [--payload-bytes 0]
//   [--inline-max 32768] [--notices on|off]
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { openAwsBackends, type AwsClients } from '../lib/backends/aws';
import { AWS_RESULT_POLLING } from '../lib/cli/grid-target';
import { GridClient } from '../lib/client';
import { compileConfig } from '../lib/core/config';
import { packageRoot } from '../lib/infra/repo-paths';
import { resolveRuntime } from '../lib/core/runtime-kind';
import { Agent } from '../lib/runtime/agent';
import { createLocalInvoker } from '../lib/runtime/local';
import { RieInvoker } from '../lib/runtime/rie';
import { RieServer } from '../twin/stand-ins/rie-server';
import { createGridResources, startEmulators } from '../test/support/emulators';

/**
 * Public us-east-1 list prices used (checked against the AWS pricing pages, November 2024 onwards):
 * - DynamoDB on demand: $0.625 per million write request units, $0.125 per million read request units
 *   (halved in November 2024 from $1.25 / $0.25).
 * - DynamoDB provisioned: $0.00065 per WCU-hour, $0.00013 per RCU-hour; a unit-hour serves 3,600 request units at
 *   full use, so at the auto-scaling target utilisation u a million WRU cost 0.00065 × 1e6 / 3600 / u (≈ $0.26 at 70%).
 * - SQS standard: $0.40 per million requests (each 64 KB chunk of a payload is one request).
 * - S3 Standard: PUT/COPY/POST/LIST $0.005 per 1,000, GET $0.0004 per 1,000; DELETE free.
 */
const PRICES = {
  dynamodbWru: 0.625 / 1e6,
  dynamodbRru: 0.125 / 1e6,
  dynamodbWcuHour: 0.00065,
  dynamodbRcuHour: 0.00013,
  sqsRequest: 0.4 / 1e6,
  s3Put: 0.005 / 1e3,
  s3Get: 0.0004 / 1e3,
};

interface Tally {
  requests: Map<string, number>;
  wru: number;
  rru: number;
  capacityReported: boolean;
}

const DOC_OPERATIONS: Record<string, string> = {
  Get: 'GetItem',
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  BatchGet: 'BatchGetItem',
  BatchWrite: 'BatchWriteItem',
  Query: 'Query',
  Scan: 'Scan',
};

function operationOf(commandName: string | undefined): string {
  const bare = (commandName ?? 'Unknown').replace(/Command$/, '');
  return DOC_OPERATIONS[bare] ?? bare;
}

/** The slice of an SDK client's middleware stack the bench uses, typed loosely enough for any client. */
interface Stack {
  add(
    middleware: (
      next: (args: { input: object }) => Promise<{ output: object }>,
      context: { commandName?: string },
    ) => (args: { input: object }) => Promise<{ output: object }>,
    options: { step: 'initialize' | 'deserialize'; name: string; priority: 'high' | 'low' },
  ): void;
}

const stackOf = (client: { middlewareStack: unknown }) => client.middlewareStack as Stack;

/** Counts every HTTP request (SDK retries included) of `client` under `service`. */
function countRequests(client: { middlewareStack: unknown }, service: string, tally: Tally) {
  stackOf(client).add(
    (next, context) => async (args) => {
      const key = `${service} ${operationOf(context.commandName)}`;
      tally.requests.set(key, (tally.requests.get(key) ?? 0) + 1);
      return next(args);
    },
    { step: 'deserialize', name: 'benchRequestCounter', priority: 'high' },
  );
}

interface CapacityShape {
  CapacityUnits?: number;
  ReadCapacityUnits?: number;
  WriteCapacityUnits?: number;
}

/** Asks DynamoDB for the capacity each request consumed (indexes included) and adds it up. */
function measureCapacity(client: DynamoDBClient, tally: Tally) {
  stackOf(client).add(
    (next, context) => async (args) => {
      const input = args.input as Record<string, unknown>;
      input.ReturnConsumedCapacity ??= 'INDEXES';
      const out = await next(args);
      const consumed = (out.output as { ConsumedCapacity?: CapacityShape | CapacityShape[] }).ConsumedCapacity;
      const write = /Put|Update|Delete|Write/.test(operationOf(context.commandName));
      for (const c of consumed === undefined ? [] : Array.isArray(consumed) ? consumed : [consumed]) {
        tally.capacityReported = true;
        const units = c.CapacityUnits ?? 0;
        if (write) tally.wru += c.WriteCapacityUnits ?? units;
        else tally.rru += c.ReadCapacityUnits ?? units;
      }
      return out;
    },
    { step: 'initialize', name: 'benchCapacity', priority: 'low' },
  );
}

function instrument(clients: Required<AwsClients>, tally: Tally): void {
  countRequests(clients.dynamodb, 'DynamoDB', tally);
  countRequests(clients.sqs, 'SQS', tally);
  countRequests(clients.s3, 'S3', tally);
  measureCapacity(clients.dynamodb, tally);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '1000' },
      slots: { type: 'string', default: '2' },
      // The deployed shape: the agent's `auto` prefetch and the CLI's 2 s polling in AWS mode.
      'poll-ms': { type: 'string', default: '2000' },
      // The CLI's AWS_RESULT_POLLING: the first wait for news, doubling up to --poll-ms.
      'min-poll-ms': { type: 'string', default: String(AWS_RESULT_POLLING.minPollIntervalMs) },
      prefetch: { type: 'string', default: 'auto' },
      'payload-bytes': { type: 'string', default: '0' },
      'inline-max': { type: 'string', default: String(32 * 1024) },
      python: { type: 'string', default: 'python3' },
      // The CLI's client receives completion notices (a queue of its own); off: it only polls.
      notices: { type: 'string', default: 'on' },
    },
  });
  const tasks = Number(values.tasks);
  const slots = Number(values.slots);
  // From the repository root: the same folder whether this runs with tsx or from dist/.
  const worker = path.join(packageRoot(), 'test', 'backends', 'aws', 'fixtures', 'worker');

  const emulators = await startEmulators();
  const tally: Tally = { requests: new Map(), wru: 0, rru: 0, capacityReported: false };
  const cleanups: (() => Promise<void>)[] = [async () => emulators.stop()];
  try {
    const resources = await createGridResources(emulators);
    const config = compileConfig({
      slots,
      python_executable: values.python,
      inline_payload_max_bytes: Number(values['inline-max']),
    });
    const padding = 'x'.repeat(Number(values['payload-bytes']));
    const agentClients = emulators.clients();
    const clientClients = emulators.clients();
    instrument(agentClients, tally);
    instrument(clientClients, tally);
    const agentSide = openAwsBackends(resources, { clients: agentClients });
    const clientSide = openAwsBackends(resources, { clients: clientClients, receiveNotices: values.notices !== 'off' });
    cleanups.unshift(async () => {
      await agentSide.close();
      await clientSide.close();
      for (const c of [agentClients, clientClients]) {
        c.dynamodb.destroy();
        c.sqs.destroy();
        c.s3.destroy();
      }
    });
    // One RIE per slot, as in AWS (one Lambda container per agent slot).
    const servers = await Promise.all(
      Array.from({ length: slots }, () =>
        RieServer.start({
          invoker: createLocalInvoker({
            taskRoot: worker,
            handler: 'lambda_function.lambda_handler',
            runtime: resolveRuntime('python3.12'),
            pythonExecutable: values.python,
          }),
        }),
      ),
    );
    cleanups.unshift(async () => {
      await Promise.all(servers.map((s) => s.close()));
    });
    const agent = new Agent({
      config,
      ...agentSide,
      createInvoker: (slot) => new RieInvoker({ endpoint: servers[slot]!.endpoint }),
      slots,
      prefetch: values.prefetch === 'auto' ? 'auto' : Number(values.prefetch),
    });
    await agent.start();
    cleanups.unshift(() => agent.stop(5_000));
    const client = new GridClient({
      config,
      ...clientSide,
      pollIntervalMs: Number(values['poll-ms']),
      minPollIntervalMs: Number(values['min-poll-ms']),
    });

    // Count from the submission to the last result only (an idle agent's polls are a per-agent, not per-task, cost).
    tally.requests.clear();
    tally.wru = 0;
    tally.rru = 0;
    const started = Date.now();
    const handle = await client.submit(Array.from({ length: tasks }, () => ({ op: 'noop', padding })));
    let done = 0;
    for await (const result of handle.results()) {
      if (result.state !== 'succeeded') throw new Error(`task ${result.taskId} ended ${result.state}`);
      done++;
    }
    const elapsed = (Date.now() - started) / 1000;
    report(
      tally,
      tasks,
      done,
      elapsed,
      `payload ${padding.length + 30} B, inline up to ${config.inlinePayloadMaxBytes} B, completion notices ${values.notices !== 'off' ? 'on' : 'off'}`,
    );
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
  }
}

function report(tally: Tally, tasks: number, done: number, elapsedSec: number, setup: string): void {
  const rows = [...tally.requests.entries()].sort(([a], [b]) => a.localeCompare(b));
  const total = rows.reduce((n, [, v]) => n + v, 0);
  const byService = (s: string) => rows.filter(([k]) => k.startsWith(`${s} `)).reduce((n, [, v]) => n + v, 0);
  const s3Puts = tally.requests.get('S3 PutObject') ?? 0;
  const s3Gets = tally.requests.get('S3 GetObject') ?? 0;
  const cost = {
    dynamodb: tally.wru * PRICES.dynamodbWru + tally.rru * PRICES.dynamodbRru,
    sqs: byService('SQS') * PRICES.sqsRequest,
    s3: s3Puts * PRICES.s3Put + s3Gets * PRICES.s3Get,
  };
  const perMillion = (usd: number) => (usd / tasks) * 1e6;
  // Provisioned capacity kept at the auto-scaling target utilisation (the TaskTable construct's default).
  const utilization = 0.7;
  const provisioned =
    ((tally.wru * PRICES.dynamodbWcuHour) / 3600 + (tally.rru * PRICES.dynamodbRcuHour) / 3600) / utilization;
  const lines = [
    `AWS requests for ${done}/${tasks} tasks end to end (client submit → SQS → agent → RIE → DynamoDB → client), ${elapsedSec.toFixed(1)} s`,
    `(${setup})`,
    '',
    `${'service operation'.padEnd(34)}${'requests'.padStart(10)}${'per task'.padStart(10)}`,
    ...rows.map(([k, v]) => `${k.padEnd(34)}${String(v).padStart(10)}${(v / tasks).toFixed(3).padStart(10)}`),
    `${'TOTAL'.padEnd(34)}${String(total).padStart(10)}${(total / tasks).toFixed(3).padStart(10)}`,
    '',
    tally.capacityReported
      ? `DynamoDB consumed capacity (reported by the emulator, indexes included): ${(tally.wru / tasks).toFixed(2)} WRU and ${(tally.rru / tasks).toFixed(2)} RRU per task`
      : 'DynamoDB consumed capacity: not reported by the emulator',
    '',
    'Request cost per million tasks (us-east-1 list prices: DynamoDB on demand $0.625/M WRU, $0.125/M RRU;',
    '  SQS $0.40/M requests; S3 PUT $0.005/1k, GET $0.0004/1k):',
    `  DynamoDB  $${perMillion(cost.dynamodb).toFixed(2)}`,
    `  SQS       $${perMillion(cost.sqs).toFixed(2)}`,
    `  S3        $${perMillion(cost.s3).toFixed(2)}`,
    `  total     $${perMillion(cost.dynamodb + cost.sqs + cost.s3).toFixed(2)}`,
    '',
    `With the task table on provisioned capacity (-c table_capacity=provisioned; $0.00065/WCU-h, $0.00013/RCU-h,`,
    `  used at the ${utilization * 100}% auto-scaling target: steady load; bursts wait for scaling):`,
    `  DynamoDB  $${perMillion(provisioned).toFixed(2)}`,
    `  total     $${perMillion(provisioned + cost.sqs + cost.s3).toFixed(2)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
