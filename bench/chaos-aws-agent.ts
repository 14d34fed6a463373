// One agent process of bench/chaos-aws.ts: AWS backends on the emulators (from the environment), one RieServer over
// the local Python runtime per slot, the fault worker; drains on SIGTERM. The bench SIGKILLs it at random.
// Run by the bench: node dist/bench/chaos-aws-agent.js --worker DIR [--slots 2] [--python python3] [--log-file F]
//   [--report-claims]  (environment: HTCGRID_CONFIG, HTCGRID_TABLE_NAME/QUEUE_URLS/DATA_BUCKET, AWS_ENDPOINT_URL_*)
import { parseArgs } from 'node:util';
import pino from 'pino';
import { openAwsBackends } from '../lib/backends/aws';
import { compileConfig, GRID_ENV, resourcesFromEnv } from '../lib/core';
import { resolveRuntime } from '../lib/core/runtime-kind';
import { Agent } from '../lib/runtime/agent';
import { createLocalInvoker } from '../lib/runtime/local';
import { RieInvoker } from '../lib/runtime/rie';
import { RieServer } from '../twin/stand-ins/rie-server';

/** The line the bench waits for before it counts this agent as up (bench/chaos-aws.ts matches it). */
const AGENT_UP_LINE = 'chaos-aws agent up';
/** Written (synchronously: stdout is a pipe) as soon as a claim returned claimed tasks, with `--report-claims`. */
const CLAIMED_LINE_PREFIX = 'claimed ';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      slots: { type: 'string', default: '2' },
      python: { type: 'string', default: 'python3' },
      'log-file': { type: 'string' },
      'report-claims': { type: 'boolean', default: false },
    },
  });
  if (values.worker === undefined) throw new Error('--worker DIR is required');
  const slots = Number(values.slots);
  // Synchronous writes: the bench SIGKILLs this process, and the log is what a post-mortem has.
  const logger = pino(
    { level: process.env.HTCGRID_LOG_LEVEL ?? 'info', name: 'chaos-aws-agent', base: { pid: process.pid } },
    pino.destination({ dest: values['log-file'] ?? 2, sync: true }),
  );
  const config = compileConfig(JSON.parse(process.env[GRID_ENV.config] ?? '{}') as unknown, GRID_ENV.config);
  // Clients from the SDK's own AWS_ENDPOINT_URL_* variables, as the agent container gets them.
  const backends = openAwsBackends(resourcesFromEnv(process.env), { logger });
  if (values['report-claims']) {
    // The agent's intake claims through the DynamoDB table's message claims (see SqsDynamoDbTaskIntake).
    const table = backends.table;
    const claim = table.claimMessages.bind(table);
    table.claimMessages = async (requests, lease, now) => {
      const outcomes = await claim(requests, lease, now);
      const claimed = outcomes.filter((o) => o.status === 'claimed').length;
      if (claimed > 0) process.stdout.write(`${CLAIMED_LINE_PREFIX}${claimed}\n`);
      return outcomes;
    };
  }
  // One lambda-rie stand-in per slot, as in AWS (one Lambda container per agent slot).
  const servers = await Promise.all(
    Array.from({ length: slots }, () =>
      RieServer.start({
        invoker: createLocalInvoker({
          taskRoot: values.worker!,
          handler: 'lambda_function.lambda_handler',
          runtime: resolveRuntime('python3.12'),
          pythonExecutable: values.python,
        }),
        logger,
      }),
    ),
  );
  const agent = new Agent({
    config,
    ...backends,
    logger,
    slots,
    prefetch: 'auto',
    receiveWaitMs: 1_000,
    createInvoker: (slot) => new RieInvoker({ endpoint: servers[slot]!.endpoint, logger }),
  });
  process.once('SIGTERM', () => void agent.stop(10_000));
  await agent.start();
  process.stdout.write(`${AGENT_UP_LINE}\n`);
  await agent.done;
  await Promise.all(servers.map((s) => s.close()));
  await backends.close();
  logger.info({ stats: agent.stats }, 'chaos-aws agent exiting');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
