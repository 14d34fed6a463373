// What one wake-up between two threads of a process costs, by signal: BroadcastChannel, MessagePort,
// Atomics.waitAsync / notify on shared memory, and fs.watch on a file the other thread rewrites (the local grid's
// cross-process signal). Ping-pong: the main thread signals, the worker thread answers by the same means.
// `--gap-ms G` pauses G ms before each measured round (the warm-up stays back to back): what a wake-up costs a thread
// that has slept, as the grid's threads have between an interactive user's tasks (bench/README.md, issue 16).
// Run: npm run build && node dist/bench/wake-hop.js [--rounds 2000] [--gap-ms 0] [--modes atomics,fs-watch]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BroadcastChannel, MessageChannel, Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

const MODES = ['broadcast-channel', 'message-port', 'atomics', 'fs-watch'] as const;
type Mode = (typeof MODES)[number];

interface ThreadData {
  readonly mode: Mode;
  readonly cells: SharedArrayBuffer;
  readonly dir: string;
  readonly port: MessagePort;
}

const ONE_BYTE = Buffer.from([1]);
const WARM_UP = 200;

/** `Atomics.waitAsync` (Node 16 and later), which the project's ES library types do not declare yet. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      this: void,
      cells: Int32Array,
      index: number,
      value: number,
    ): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(mode: Mode, rounds: number, gapMs: number, dir: string): Promise<string> {
  const cells = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
  const flags = new Int32Array(cells);
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(__filename, { workerData: { mode, cells, dir, port: port2 }, transferList: [port2] });
  await new Promise((resolve) => worker.once('message', resolve));
  const ping = new BroadcastChannel('wake-hop:ping');
  const pong = new BroadcastChannel('wake-hop:pong');
  const pingFile = fs.openSync(path.join(dir, 'ping'), 'w');
  let answered: () => void = () => undefined;
  const onPong = (): void => answered();
  pong.onmessage = onPong;
  port1.on('message', onPong);
  const watcher = mode === 'fs-watch' ? fs.watch(path.join(dir, 'pong'), onPong) : undefined;
  const times: number[] = [];
  let cpuBefore = process.cpuUsage();
  // The first WARM_UP rounds (compilation, first wake-ups) are not counted.
  for (let i = -WARM_UP; i < rounds; i++) {
    if (i === 0) {
      times.length = 0;
      cpuBefore = process.cpuUsage();
    }
    if (i >= 0 && gapMs > 0) await sleep(gapMs);
    const started = process.hrtime.bigint();
    const reply = new Promise<void>((resolve) => (answered = resolve));
    switch (mode) {
      case 'broadcast-channel':
        ping.postMessage(i);
        break;
      case 'message-port':
        port1.postMessage(i);
        break;
      case 'atomics': {
        Atomics.store(flags, 0, 1);
        Atomics.notify(flags, 0);
        const wait = waitAsync(flags, 1, 0);
        if (wait.async) await wait.value;
        Atomics.store(flags, 1, 0);
        answered();
        break;
      }
      case 'fs-watch':
        fs.writeSync(pingFile, ONE_BYTE, 0, 1, 0);
        break;
    }
    await reply;
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  const cpu = process.cpuUsage(cpuBefore);
  ping.close();
  pong.close();
  port1.close();
  watcher?.close();
  fs.closeSync(pingFile);
  await worker.terminate();
  times.sort((a, b) => a - b);
  const cpuUs = (cpu.user + cpu.system) / rounds;
  return `| ${mode} | ${percentile(times, 0.5).toFixed(1)} | ${percentile(times, 0.99).toFixed(1)} | ${cpuUs.toFixed(1)} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '2000' },
      'gap-ms': { type: 'string', default: '0' },
      modes: { type: 'string', default: MODES.join(',') },
    },
  });
  const rounds = Number(values.rounds);
  const gapMs = Number(values['gap-ms']);
  if (!Number.isFinite(gapMs) || gapMs < 0) throw new Error(`--gap-ms must be a number ≥ 0, got '${values['gap-ms']}'`);
  const modes = values.modes.split(',').map((m) => m.trim()) as Mode[];
  const unknown = modes.filter((m) => !MODES.includes(m));
  if (unknown.length > 0) throw new Error(`unknown --modes ${unknown.join(',')}; choose from ${MODES.join(',')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-wake-hop-'));
  try {
    const lines = [
      '| signal | round trip p50 µs | p99 µs | main thread CPU per round trip µs |',
      '|---|---:|---:|---:|',
    ];
    for (const mode of MODES.filter((m) => modes.includes(m))) {
      process.stderr.write(`wake-hop: ${mode} …\n`);
      lines.push(await measure(mode, rounds, gapMs, dir));
    }
    process.stdout.write(
      `${lines.join('\n')}\n(two wake-ups per round trip, ${gapMs} ms apart; load average ${os.loadavg()[0]!.toFixed(2)})\n`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function answerSignals(data: ThreadData): void {
  const flags = new Int32Array(data.cells);
  fs.writeFileSync(path.join(data.dir, 'ping'), '0');
  const pongFile = fs.openSync(path.join(data.dir, 'pong'), 'w');
  const ping = new BroadcastChannel('wake-hop:ping');
  const pong = new BroadcastChannel('wake-hop:pong');
  switch (data.mode) {
    case 'broadcast-channel':
      ping.onmessage = () => pong.postMessage(1);
      break;
    case 'message-port':
      data.port.on('message', () => data.port.postMessage(1));
      break;
    case 'atomics':
      void (async () => {
        for (;;) {
          const wait = waitAsync(flags, 0, 0);
          if (wait.async) await wait.value;
          Atomics.store(flags, 0, 0);
          Atomics.store(flags, 1, 1);
          Atomics.notify(flags, 1);
        }
      })();
      break;
    case 'fs-watch':
      fs.watch(path.join(data.dir, 'ping'), () => fs.writeSync(pongFile, ONE_BYTE, 0, 1, 0));
      break;
  }
  parentPort?.postMessage('ready');
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  answerSignals(workerData as ThreadData);
}
