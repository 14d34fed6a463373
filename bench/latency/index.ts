// Single-task round trip (submit one task, wait for its result, idle grid) on our grid, embedded, behind `local up`
// and on the AWS backends over emulators with injected service latency, next to Celery + Redis; plus idle CPU.
// Run: npm run build && node dist/bench/latency/index.js [--rounds 200] [--warm-up 3000] [--gap-ms 0] [--settle-sec 40]
//      [--idle-sec 10] [--idle-threads] [--systems embedded,local-up,aws,celery] [--dynamodb-ms 5] [--sqs-ms 15] [--s3-ms 20]
//      [--sqs-delivery-ms 0]
//      [--aws-rounds 30] [--aws-notices on|off] [--aws-trace] [--python /usr/bin/python3] [--redis-server redis-server] [--json]
//      [--rounds-out rounds.jsonl] [--one-session]
// --warm-up applies to embedded, local-up and Celery; the AWS backends always warm up with 20 rounds.
// --one-session: our grids take every round's task into one session kept open (a notebook's way), Celery has no sessions.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { openAwsBackends } from '../../lib/backends/aws';
import { startEmbeddedGrid } from '../../lib/cli';
import { AWS_RESULT_POLLING } from '../../lib/cli/grid-target';
import { GridClient } from '../../lib/client';
import { applyOverrides, compileConfig, type GridConfig } from '../../lib/core';
import { silentLogger } from '../../lib/logging';
import { prepareTaskRoot } from '../../lib/packaging';
import { Agent } from '../../lib/runtime/agent';
import { createGridSlotInvoker } from '../../lib/runtime/local';
import {
  createGridResources,
  EMULATOR_CREDENTIALS,
  EMULATOR_REGION,
  startEmulators,
} from '../../test/support/emulators';
import { loadAverage1m, percentile } from '../peers/figures';
import { runPythonPeer } from '../peers/python-peer';
import { AwsTrace } from './aws-trace';
import { startDelayProxy, type DelayProxy, type DelayProxyTrace } from './delay-proxy';
import { sampleThreads, threadCpuRows } from './thread-cpu';

const SYSTEMS = ['embedded', 'local-up', 'aws', 'celery'] as const;
type SystemKey = (typeof SYSTEMS)[number];
const EVENT = { worker_arguments: [0] };
/**
 * Tasks run one at a time before the measured rounds of a local system (embedded, `local up`, Celery), unless
 * `--warm-up` says otherwise: V8 keeps compiling the grid's functions for the first few thousand tasks (TurboFan
 * compiles per 500 rounds, embedded grid: 36, 31, 35, 28, 16, 10, 8, 5, 5, 5), each 1–7 ms of CPU on a background
 * thread that, on 2 cores, the round's threads wait for. The figures are those of a grid that has run a while; a cold
 * grid is measured with `--warm-up 20` (bench/README.md, issue 16, seventh pass).
 */
const WARM_UP = 3_000;
/** The same on the AWS backends, whose rounds take ~90 ms of emulated service time, not CPU. */
const WARM_UP_AWS = 20;
const HANDLER = { file: 'mock_compute_engine', fn: 'lambda_handler' };

interface Row {
  readonly system: string;
  readonly rounds: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  /** CPU time of the grid's processes while idle (after the settle window), as a share of one core. */
  readonly idleCpuPct?: number | null;
  /** The same over the settle window right after the rounds (V8 shrinks the heaps the burst grew then). */
  readonly settleCpuPct?: number | null;
  /** With `--idle-threads`: the idle window's CPU per thread (`threadCpuRows`). */
  readonly idleThreads?: string[];
  /** The first round trip after the rest (settle and idle windows), ms. */
  readonly afterRestMs?: number;
  readonly note?: string;
  readonly error?: string;
}

interface Settings {
  readonly rounds: number;
  /** Single-task round trips before the measured ones (local systems). */
  readonly warmUp: number;
  readonly gapMs: number;
  readonly settleSec: number;
  readonly idleSec: number;
  readonly idleThreads: boolean;
  /**
   * Every round's task goes into one session left open (`openSession`, `addTasks`), its result read from one results
   * stream, as a notebook that keeps its session does; else each round submits a session of its own.
   */
  readonly oneSession: boolean;
  readonly python: string;
  readonly worker: string;
  readonly root: string;
}

function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'workers', 'python', 'mock-compute'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

function gridConfig(python: string, extra: Record<string, unknown> = {}): GridConfig {
  return compileConfig(
    applyOverrides(extra, {
      lambda_handler_file_name: HANDLER.file,
      lambda_handler_function_name: HANDLER.fn,
      slots: 2,
      python_executable: python,
    }),
    'latency bench',
  );
}

function summarize(system: string, samples: number[], extra: Partial<Row> = {}): Row {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    system,
    rounds: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? null,
    ...extra,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Where `--rounds-out` appends each measured round (`{"system","round","startedAt","ms"}`, `startedAt` in epoch ms):
 * to line up slow rounds with what else happened then (an `strace -f -tt` of the bench, GC traces).
 */
let roundsOut: string | undefined;

/**
 * Round trips of one task at a time through `client`, as a user's code does: submit, then iterate its results, after
 * `warmUp` unmeasured ones. Also gives each round's time beyond the handler's own (the round trip less its `runMs`).
 * With `oneSession`, every task goes into one open session and its result comes from that session's results stream.
 */
async function roundTrips(
  client: GridClient,
  s: Pick<Settings, 'gapMs' | 'oneSession'>,
  rounds: number,
  label: string,
  warmUp: number,
  trace?: AwsTrace,
): Promise<number[] & { beyondHandler: number[] }> {
  const task = s.oneSession ? await oneSessionTasks(client) : { next: () => oneTask(client), close: async () => {} };
  try {
    for (let i = 0; i < warmUp; i++) {
      await task.next(); // runtimes, caches, JIT
      if ((i + 1) % 1_000 === 0) console.error(`  ${label}: warm-up ${i + 1}/${warmUp}`);
    }
    const samples = Object.assign([] as number[], { beyondHandler: [] as number[] });
    for (let i = 0; i < rounds; i++) {
      if (s.gapMs > 0) await sleep(s.gapMs);
      const startedAt = performance.timeOrigin + performance.now();
      const t0 = process.hrtime.bigint();
      const traceStart = performance.now();
      const runMs = await task.next();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      trace?.round(traceStart, performance.now());
      samples.push(ms);
      if (roundsOut) fs.appendFileSync(roundsOut, `${JSON.stringify({ system: label, round: i, startedAt, ms })}\n`);
      samples.beyondHandler.push(ms - runMs);
      if ((i + 1) % 50 === 0) console.error(`  ${label}: ${i + 1}/${rounds}`);
    }
    return samples;
  } finally {
    await task.close();
  }
}

/** One task's round trip; resolves with the handler's own time (ms, 0 where the agent did not record it). */
async function oneTask(client: GridClient): Promise<number> {
  const handle = await client.submit([EVENT], { batchSize: 1 });
  let runMs = 0;
  for await (const result of handle.results()) {
    if (result.state !== 'succeeded') throw new Error(`task ended ${result.state}`);
    runMs += result.runMs ?? 0;
  }
  return runMs;
}

/**
 * Round trips through one session kept open: `next` adds one task and resolves with its handler's time once the
 * session's results stream brings it; `close` seals the session with the tasks added.
 */
async function oneSessionTasks(
  client: GridClient,
): Promise<{ next: () => Promise<number>; close: () => Promise<void> }> {
  const session = await client.openSession({ batchSize: 1 });
  const results = (await client.session(session.sessionId)).results()[Symbol.asyncIterator]();
  const eventJson = JSON.stringify(EVENT);
  let added = 0;
  return {
    next: async () => {
      await client.addTasks(session, added++, [eventJson]);
      const { value, done } = await results.next();
      if (done) throw new Error("the session's results stream ended before its last task");
      if (value.state !== 'succeeded') throw new Error(`task ended ${value.state}`);
      return value.runMs ?? 0;
    },
    close: async () => {
      await client.sealSession(session.sessionId, added);
      await results.return?.(undefined);
    },
  };
}

/** User + system CPU time (ms) of a process from /proc (Linux), or undefined elsewhere. */
function procCpuMs(pid: number): number | undefined {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Processes below `pid` (its runtimes), from /proc. */
function descendants(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === pid) children.push(Number(entry), ...descendants(Number(entry)));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

function treeCpuMs(pid: number): number {
  return [pid, ...descendants(pid)].reduce((sum, p) => sum + (procCpuMs(p) ?? 0), 0);
}

/** CPU share of one core over `sec` seconds of `cpuMs` (ms of CPU so far), or null for a window of 0 s. */
async function cpuPct(sec: number, cpuMs: () => number): Promise<number | null> {
  if (sec <= 0) return null;
  const before = cpuMs();
  await sleep(sec * 1000);
  return ((cpuMs() - before) / (sec * 1000)) * 100;
}

/**
 * CPU of a grid at rest: first the settle window right after the rounds, then the idle window. They are apart because
 * V8's memory reducer runs a few seconds after a burst of work ends (full GCs that shrink the heaps the burst grew,
 * 8-17 s after 220 rounds in `--trace-gc`; 70-90 ms of CPU in one second up to 30 s after 3,200 rounds, hence the
 * default settle window of 40 s), a one-off reaction to the burst, not work an idle grid keeps doing.
 */
async function restingCpu(
  s: Settings,
  rootPid: number,
  client: GridClient,
): Promise<Pick<Row, 'settleCpuPct' | 'idleCpuPct' | 'idleThreads' | 'afterRestMs'>> {
  const cpuMs = () => treeCpuMs(rootPid);
  const settleCpuPct = await cpuPct(s.settleSec, cpuMs);
  const threadsBefore = s.idleThreads ? sampleThreads([rootPid, ...descendants(rootPid)]) : undefined;
  const idleCpuPct = await cpuPct(s.idleSec, cpuMs);
  const idleThreads = threadsBefore
    ? threadCpuRows(threadsBefore, sampleThreads([rootPid, ...descendants(rootPid)]), s.idleSec)
    : undefined;
  // Whether rest costs the next task anything (caches, a runtime or thread the scheduler has to wake).
  const t0 = process.hrtime.bigint();
  await oneTask(client);
  const afterRestMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { settleCpuPct, idleCpuPct, idleThreads, afterRestMs };
}

function settleNote(r: Row, settleSec: number): string {
  const notes: string[] = [];
  if (r.settleCpuPct !== null && r.settleCpuPct !== undefined)
    notes.push(`CPU in the first ${settleSec} s after the rounds ${r.settleCpuPct.toFixed(2)} %`);
  if (r.afterRestMs !== undefined) notes.push(`first round trip after the rest ${r.afterRestMs.toFixed(2)} ms`);
  return notes.join('; ');
}

async function runEmbedded(s: Settings): Promise<Row> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-latency-'));
  const grid = await startEmbeddedGrid({ dataDir, config: gridConfig(s.python), worker: s.worker });
  try {
    const samples = await roundTrips(grid.client, s, s.rounds, 'embedded', s.warmUp);
    // The whole process (client, agent thread, reaper) plus its runtimes: a grid at rest.
    const resting = await restingCpu(s, process.pid, grid.client);
    return summarize('embedded (startEmbeddedGrid, one process)', samples, {
      ...resting,
      note: 'idle CPU includes the client',
    });
  } finally {
    await grid.close(1000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function runLocalUp(s: Settings): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-latency-up-'));
  const cli = path.join(s.root, 'dist', 'bin', 'htcgrid.js');
  const child = spawn(
    process.execPath,
    [cli, 'local', 'up', '--dir', dir, '--worker', s.worker, '--handler', `${HANDLER.file}.${HANDLER.fn}`].concat([
      '--slots',
      '2',
      '--python',
      s.python,
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
  );
  child.stdout.resume();
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  try {
    await waitForFile(path.join(dir, 'config.json'), exited, () => stderr);
    await sleep(500); // the agent registers after the config is written
    const config = compileConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), 'config.json');
    const client = await startEmbeddedGrid({ dataDir: dir, config }); // exactly what `htcgrid submit --dir` opens
    try {
      const samples = await roundTrips(client.client, s, s.rounds, 'local-up', s.warmUp);
      const resting = await restingCpu(s, child.pid!, client.client);
      return summarize('local up (client in another process)', samples, resting);
    } finally {
      await client.close();
    }
  } finally {
    child.kill('SIGINT');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function waitForFile(file: string, exited: Promise<number | null>, stderr: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(file)) return;
    if (gone) throw new Error(`local up exited: ${stderr().trim().split('\n').slice(-3).join(' | ')}`);
    await sleep(100);
  }
  throw new Error(`local up did not write ${file} within a minute`);
}

interface AwsLatency {
  readonly dynamodbMs: number;
  readonly sqsMs: number;
  readonly s3Ms: number;
  /** SQS's own delivery time: a waiting long poll sees a message this long after its send (see `startDelayProxy`). */
  readonly sqsDeliveryMs: number;
  /** The client receives completion notices (else it polls with back-off). */
  readonly notices: boolean;
  /** Time every request and invocation of the measured rounds and print where the round trip's time goes. */
  readonly trace: boolean;
}

async function runAws(s: Settings, latency: AwsLatency, rounds: number): Promise<Row> {
  const emulators = await startEmulators();
  const proxies: DelayProxy[] = [];
  const logger = silentLogger();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-latency-aws-'));
  try {
    const resources = await createGridResources(emulators);
    const tracer = latency.trace ? new AwsTrace() : undefined;
    const proxyTrace: DelayProxyTrace | undefined = tracer && {
      onTiming: (headers, timing) => tracer.proxied(headers, timing),
      onConnection: () => tracer.connections++,
    };
    const dynamodb = await startDelayProxy(emulators.endpoints.dynamodb!, latency.dynamodbMs, proxyTrace);
    const sqs = await startDelayProxy(emulators.endpoints.sqs!, latency.sqsMs, proxyTrace, latency.sqsDeliveryMs);
    const s3 = await startDelayProxy(emulators.endpoints.s3!, latency.s3Ms, proxyTrace);
    proxies.push(dynamodb, sqs, s3);
    // The queue URLs name the emulator's origin; the proxy's takes its place.
    const queueUrls = resources.queueUrls.map((url) => sqs.endpoint + new URL(url).pathname);
    const open = (side: string, receiveNotices = false) => {
      const common = { region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS };
      const clients = {
        dynamodb: new DynamoDBClient({ ...common, endpoint: dynamodb.endpoint }),
        sqs: new SQSClient({ ...common, endpoint: sqs.endpoint }),
        s3: new S3Client({ ...common, endpoint: s3.endpoint, forcePathStyle: true }),
      };
      for (const [service, client] of Object.entries(clients)) tracer?.instrument(side, service, client);
      return { clients, backends: openAwsBackends({ ...resources, queueUrls }, { clients, receiveNotices }) };
    };
    const agentSide = open('agent');
    // The client as `htcgrid submit --stack` opens it: completion notices on a queue of its own (`--aws-notices off`:
    // polling only, as before).
    const clientSide = open('client', latency.notices);
    const config = gridConfig(s.python);
    const { taskRoot } = await prepareTaskRoot(s.worker, workDir, { pythonExecutable: s.python, logger });
    // The agent as bin/agent.ts runs it in ECS (prefetch auto, 20 s long polls), on local pipe runtimes.
    const agent = new Agent({
      config,
      ...agentSide.backends,
      logger,
      prefetch: 'auto',
      receiveWaitMs: 20_000,
      createInvoker: (slot) => {
        const invoker = createGridSlotInvoker(config, { taskRoot, logger, slotIndex: slot });
        if (!tracer) return invoker;
        const invoke = invoker.invoke.bind(invoker);
        invoker.invoke = async (invocation, signal, onStarted) => {
          const start = performance.now();
          try {
            return await invoke(invocation, signal, onStarted);
          } finally {
            tracer.invoked(invocation.taskId, start, performance.now());
          }
        };
        return invoker;
      },
    });
    await agent.start();
    try {
      // The client as `htcgrid submit --stack` opens it.
      const client = new GridClient({ config, ...clientSide.backends, ...AWS_RESULT_POLLING });
      const before = proxies.map((p) => p.requests);
      const samples = await roundTrips(client, s, rounds, 'aws', WARM_UP_AWS, tracer);
      if (tracer) {
        console.log(`\nWhere the AWS round trip goes (medians of ${rounds} rounds, ms from submit):\n`);
        console.log(tracer.table({ dynamodb: latency.dynamodbMs, sqs: latency.sqsMs, s3: latency.s3Ms }));
      }
      const perTask = proxies.map((p, i) => (p.requests - before[i]!) / (rounds + WARM_UP_AWS));
      return summarize(
        `AWS backends on emulators (+${latency.dynamodbMs}/${latency.sqsMs}/${latency.s3Ms} ms` +
          `${latency.sqsDeliveryMs > 0 ? `, SQS delivery ${latency.sqsDeliveryMs} ms` : ''}, ` +
          `${latency.notices ? 'notices' : 'polling'})`,
        samples,
        {
          note:
            `beyond the handler p50 ${percentile(
              [...samples.beyondHandler].sort((a, b) => a - b),
              50,
            )?.toFixed(2)} ms; ` +
            `requests per task: DynamoDB ${perTask[0]!.toFixed(1)}, SQS ${perTask[1]!.toFixed(1)}, S3 ${perTask[2]!.toFixed(1)} (agent idle polls included)`,
        },
      );
    } finally {
      await agent.stop(1000);
      for (const side of [agentSide, clientSide]) {
        await side.backends.close();
        side.clients.dynamodb.destroy();
        side.clients.sqs.destroy();
        side.clients.s3.destroy();
      }
    }
  } finally {
    for (const p of proxies) await p.close();
    await emulators.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

async function runCelery(s: Settings, redisServer: string): Promise<Row> {
  const figures = await runPythonPeer({
    pythonExecutable: s.python,
    script: path.join(s.root, 'bench', 'peers', 'python', 'celery_bench.py'),
    args: [
      '--worker',
      s.worker,
      '--tasks',
      '200',
      '--rounds',
      String(s.rounds),
      '--warm-up-rounds',
      String(s.warmUp),
      '--gap-ms',
      String(s.gapMs),
      '--workers',
      '2',
      '--redis-server',
      redisServer,
    ],
    fallbackName: 'Celery + Redis',
    timeoutMs: 10 * 60_000,
  });
  return {
    system: `${figures.system} (prefork -c 2)`,
    rounds: figures.roundTrips,
    p50Ms: figures.roundTripP50Ms,
    p99Ms: figures.roundTripP99Ms,
    maxMs: null,
    error: figures.error,
  };
}

/** `value` of the option `name` as a whole number ≥ 0, or an error that names the option. */
function wholeNumber(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number ≥ 0, got '${value}'`);
  return n;
}

/** `value` of the option `name` as a number ≥ 0 (fractions allowed), or an error that names the option. */
function nonNegative(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a number ≥ 0, got '${value}'`);
  return n;
}

function fmt(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined ? '-' : value.toFixed(digits);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '200' },
      'warm-up': { type: 'string', default: String(WARM_UP) },
      'aws-rounds': { type: 'string', default: '30' },
      'gap-ms': { type: 'string', default: '0' },
      'settle-sec': { type: 'string', default: '40' },
      'idle-sec': { type: 'string', default: '10' },
      systems: { type: 'string', default: SYSTEMS.join(',') },
      'dynamodb-ms': { type: 'string', default: '5' },
      'sqs-ms': { type: 'string', default: '15' },
      's3-ms': { type: 'string', default: '20' },
      'sqs-delivery-ms': { type: 'string', default: '0' },
      'aws-notices': { type: 'string', default: 'on' },
      'aws-trace': { type: 'boolean', default: false },
      'idle-threads': { type: 'boolean', default: false },
      'one-session': { type: 'boolean', default: false },
      python: { type: 'string', default: '/usr/bin/python3' },
      'redis-server': { type: 'string', default: 'redis-server' },
      json: { type: 'boolean', default: false },
      'rounds-out': { type: 'string' },
    },
  });
  roundsOut = values['rounds-out'];
  const wanted = values.systems.split(',').map((x) => x.trim()) as SystemKey[];
  const unknown = wanted.filter((x) => !SYSTEMS.includes(x));
  if (unknown.length > 0) throw new Error(`unknown --systems ${unknown.join(',')}; choose from ${SYSTEMS.join(',')}`);
  if (values['one-session'] && wanted.includes('celery'))
    throw new Error('--one-session is for our grids only (Celery has no sessions): leave celery out of --systems');
  const root = repoRoot();
  const settings: Settings = {
    rounds: wholeNumber('--rounds', values.rounds),
    warmUp: wholeNumber('--warm-up', values['warm-up']),
    gapMs: nonNegative('--gap-ms', values['gap-ms']),
    settleSec: wholeNumber('--settle-sec', values['settle-sec']),
    idleSec: Number(values['idle-sec']),
    idleThreads: values['idle-threads'],
    oneSession: values['one-session'],
    python: values.python,
    worker: path.join(root, 'workers', 'python', 'mock-compute'),
    root,
  };
  console.log(
    `latency benchmark ${new Date().toISOString()}: ${settings.rounds} single-task round trips ` +
      `after ${settings.warmUp} (local) / ${WARM_UP_AWS} (AWS) unmeasured ones ` +
      `(${HANDLER.file}.${HANDLER.fn}, {"worker_arguments":[0]}), ${settings.gapMs} ms apart, 2 slots, ` +
      `${settings.oneSession ? 'all in one session kept open' : 'a session each'}; ` +
      `${os.cpus().length} CPUs, Node ${process.version}, load ${loadAverage1m()}`,
  );
  const rows: Row[] = [];
  for (const key of SYSTEMS.filter((x) => wanted.includes(x))) {
    console.error(`running ${key} …`);
    const fail = (err: unknown): Row => ({
      system: key,
      rounds: 0,
      p50Ms: null,
      p99Ms: null,
      maxMs: null,
      error: String(err),
    });
    switch (key) {
      case 'embedded':
        rows.push(await runEmbedded(settings).catch(fail));
        break;
      case 'local-up':
        rows.push(await runLocalUp(settings).catch(fail));
        break;
      case 'aws':
        rows.push(
          await runAws(
            settings,
            {
              dynamodbMs: Number(values['dynamodb-ms']),
              sqsMs: Number(values['sqs-ms']),
              s3Ms: Number(values['s3-ms']),
              sqsDeliveryMs: wholeNumber('--sqs-delivery-ms', values['sqs-delivery-ms']),
              notices: values['aws-notices'] !== 'off',
              trace: values['aws-trace'],
            },
            Number(values['aws-rounds']),
          ).catch(fail),
        );
        break;
      case 'celery':
        rows.push(await runCelery(settings, values['redis-server']).catch(fail));
        break;
    }
  }
  console.log('');
  console.log(`| system | rounds | rt p50 ms | rt p99 ms | rt max ms | idle CPU % of a core | note |`);
  console.log(`|---|---:|---:|---:|---:|---:|---|`);
  for (const r of rows) {
    console.log(
      `| ${r.system} | ${r.rounds} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${fmt(r.idleCpuPct)} | ${r.error ? `failed: ${r.error}` : [r.note, settleNote(r, settings.settleSec)].filter(Boolean).join('; ')} |`,
    );
  }
  for (const r of rows.filter((row) => row.idleThreads)) {
    console.log(`\n${r.system}: CPU per thread over the ${settings.idleSec} s idle window (schedstat)\n`);
    console.log('| process | thread | ms of CPU | % of a core | wake-ups |');
    console.log('|---|---|---:|---:|---:|');
    for (const line of r.idleThreads!) console.log(line);
  }
  if (values.json) console.log(JSON.stringify(rows));
  if (rows.some((r) => r.error !== undefined)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
