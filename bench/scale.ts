// Throughput and memory of the local grid as the queue grows: 10k, 100k and 1M no-op Python tasks, peak RSS of each.
// Run: npm run build && node dist/bench/scale.js [--sizes 10000,100000,1000000] [--slots 2] [--python /usr/bin/python3]
//      [--mode stream|queued]
// stream: the agent runs while the client submits (results followed as they come);
// queued: every task is submitted before the agent starts, then the agent drains the queue.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedGrid } from '../lib/cli';
import { applyOverrides, compileConfig, type GridConfig } from '../lib/core';

const MIB = 2 ** 20;
const EVENT = { worker_arguments: [0] };

/** Resident set size, in bytes, of every descendant process of `rootPid` (the Python runtimes), read from /proc. */
function descendantsRss(rootPid: number): { count: number; bytes: number } {
  if (process.platform !== 'linux') return { count: 0, bytes: 0 };
  const parentOf = new Map<number, number>();
  const rssOf = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) in parentheses: state ppid ... rss is field 24.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
      rssOf.set(Number(entry), Number(fields[21]) * 4096);
    } catch {
      // The process ended while we looked.
    }
  }
  let count = 0;
  let bytes = 0;
  for (const [pid, rss] of rssOf) {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p)) {
      if (p === rootPid) {
        count++;
        bytes += rss;
        break;
      }
    }
  }
  return { count, bytes };
}

/** This process's anonymous and file-backed (mmap'd SQLite pages, code) resident bytes, from /proc/self/status. */
function selfRssSplit(): { anon: number; file: number } {
  if (process.platform !== 'linux') return { anon: 0, file: 0 };
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { anon: kib('RssAnon'), file: kib('RssFile') + kib('RssShmem') };
}

/** Samples this process's RSS and its children's on an interval and keeps the peaks. */
class RssSampler {
  peakSelf = 0;
  peakHeapUsed = 0;
  peakAnon = 0;
  peakFile = 0;
  peakChildren = 0;
  children = 0;
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;

  constructor(intervalMs: number, childEvery: number) {
    this.sample(true);
    this.timer = setInterval(() => this.sample(++this.ticks % childEvery === 0), intervalMs);
  }

  sample(withChildren: boolean): void {
    this.peakSelf = Math.max(this.peakSelf, process.memoryUsage.rss());
    if (withChildren) {
      this.peakHeapUsed = Math.max(this.peakHeapUsed, process.memoryUsage().heapUsed);
      const split = selfRssSplit();
      this.peakAnon = Math.max(this.peakAnon, split.anon);
      this.peakFile = Math.max(this.peakFile, split.file);
      const c = descendantsRss(process.pid);
      this.peakChildren = Math.max(this.peakChildren, c.bytes);
      this.children = Math.max(this.children, c.count);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample(true);
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

interface ScaleRow {
  readonly tasks: number;
  readonly mode: string;
  readonly succeeded: number;
  /** Tasks that needed more than one attempt (a sign of a stall: a lease expired and the reaper re-queued). */
  readonly retried: number;
  readonly submitS: number;
  readonly totalS: number;
  readonly tasksPerSec: number;
  readonly peakRssMiB: number;
  /** Peak V8 heap in use (sampled with the runtimes): JavaScript objects only, SQLite's page cache is outside it. */
  readonly peakHeapMiB: number;
  /** Peak anonymous RSS (heap, SQLite cache, buffers) and file-backed RSS (the database mmap'd, up to mmap_size). */
  readonly peakAnonMiB: number;
  readonly peakFileMiB: number;
  readonly peakRuntimesRssMiB: number;
  readonly runtimes: number;
  readonly dataDirMiB: number;
  readonly load: string;
}

async function runSize(tasks: number, mode: 'stream' | 'queued', config: GridConfig, worker: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-scale-'));
  const loadBefore = os.loadavg()[0] ?? 0;
  global.gc?.();
  const sampler = new RssSampler(100, 10);
  // Queued: a client-only grid submits everything; a grid with the worker opened afterwards finds it all queued.
  const grid = await startEmbeddedGrid({ dataDir, config, worker: mode === 'stream' ? worker : undefined });
  try {
    const started = process.hrtime.bigint();
    const handle = await grid.client.submit(
      (function* () {
        for (let i = 0; i < tasks; i++) yield EVENT;
      })(),
      { batchSize: 1000 },
    );
    const submitS = Number(process.hrtime.bigint() - started) / 1e9;
    let runStart = started;
    let runner = grid;
    if (mode === 'queued') {
      runStart = process.hrtime.bigint();
      runner = await startEmbeddedGrid({ dataDir, config, worker });
    }
    let succeeded = 0;
    let retried = 0;
    const follow = await runner.client.session(handle.sessionId);
    for await (const r of follow.results({ pollIntervalMs: 5, pageSize: 2000 })) {
      if (r.state === 'succeeded') succeeded++;
      if (r.attempts > 1) retried++;
    }
    const totalS = Number(process.hrtime.bigint() - started) / 1e9;
    const runS = Number(process.hrtime.bigint() - runStart) / 1e9;
    sampler.stop();
    const dataDirMiB = dirBytes(dataDir) / MIB;
    if (runner !== grid) await runner.close(1000);
    const row: ScaleRow = {
      tasks,
      mode,
      succeeded,
      retried,
      submitS,
      totalS,
      tasksPerSec: tasks / (mode === 'queued' ? runS : totalS),
      peakRssMiB: sampler.peakSelf / MIB,
      peakHeapMiB: sampler.peakHeapUsed / MIB,
      peakAnonMiB: sampler.peakAnon / MIB,
      peakFileMiB: sampler.peakFile / MIB,
      peakRuntimesRssMiB: sampler.peakChildren / MIB,
      runtimes: sampler.children,
      dataDirMiB,
      load: `${loadBefore.toFixed(1)}→${(os.loadavg()[0] ?? 0).toFixed(1)}`,
    };
    return row;
  } finally {
    sampler.stop();
    await grid.close(1000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function table(rows: readonly ScaleRow[]): string {
  const header = [
    'tasks',
    'mode',
    'ok',
    'retried',
    'submit s',
    'total s',
    'tasks/s',
    'peak RSS MiB (agent+client)',
    'anon MiB',
    'file MiB',
    'heap MiB',
    'peak RSS MiB (runtimes)',
    'data MiB',
    'load',
  ];
  const body = rows.map((r) => [
    String(r.tasks),
    r.mode,
    String(r.succeeded),
    String(r.retried),
    r.submitS.toFixed(1),
    r.totalS.toFixed(1),
    r.tasksPerSec.toFixed(0),
    r.peakRssMiB.toFixed(0),
    r.peakAnonMiB.toFixed(0),
    r.peakFileMiB.toFixed(0),
    r.peakHeapMiB.toFixed(0),
    `${r.peakRuntimesRssMiB.toFixed(0)} (${r.runtimes} procs)`,
    r.dataDirMiB.toFixed(0),
    r.load,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000,100000,1000000' },
      slots: { type: 'string', default: '2' },
      python: { type: 'string', default: '/usr/bin/python3' },
      mode: { type: 'string', default: 'stream' },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const mode = values.mode === 'queued' ? 'queued' : 'stream';
  let root = __dirname;
  while (!fs.existsSync(path.join(root, 'workers', 'python', 'mock-compute')) && path.dirname(root) !== root) {
    root = path.dirname(root);
  }
  const worker = path.join(root, 'workers', 'python', 'mock-compute');
  const config = compileConfig(
    applyOverrides(
      { empty_task_queue_backoff_timeout_sec: 0.001 },
      {
        lambda_handler_file_name: 'mock_compute_engine',
        lambda_handler_function_name: 'lambda_handler',
        slots: Number(values.slots),
        python_executable: values.python,
        receive_batch_size: 100,
      },
    ),
    'bench',
  );
  console.log(
    `scale benchmark ${new Date().toISOString()}: no-op tasks, ${values.slots} slots, mode ${mode}; ` +
      `${os.cpus().length} CPUs, Node ${process.version}, ${values.python}; load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const rows: ScaleRow[] = [];
  for (const tasks of sizes) {
    console.error(`running ${tasks} …`);
    rows.push(await runSize(tasks, mode, config, worker));
    console.error(JSON.stringify(rows[rows.length - 1]));
  }
  console.log('');
  console.log(table(rows));
  console.log('');
  console.log(
    'tasks/s: stream = tasks / total (submit and run overlap); queued = tasks / run time after all were queued. ' +
      'Peak RSS sampled every 100 ms; anon (heap, SQLite cache) / file (the mmap-ed database, capped by mmap_size) / ' +
      'V8 heap and the runtimes every 1 s, from /proc. load: 1-min load average before→after (noisy).',
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
