// Side-by-side benchmark: the same N no-op Python Lambda-handler tasks on our local grid, Dask, Celery and a plain loop.
// Run: npm run build && node dist/bench/peers/index.js [--tasks 10000] [--rounds 200] [--python /usr/bin/python3]
//      [--slots 2] [--redis-server redis-server] [--systems floor,ours,dask,celery] [--json]
// Needs (Debian): python3-distributed python3-celery python3-redis redis-server. See bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { formatTable, loadAverage1m, type SystemFigures } from './figures';
import { OUR_GRID_NAME, runOurGrid } from './our-grid';
import { failed, runPythonPeer } from './python-peer';

const SYSTEMS = ['floor', 'ours', 'dask', 'celery'] as const;
type SystemKey = (typeof SYSTEMS)[number];

/** The repository root: the nearest folder above this file holding the worker examples (works from dist/ and bundles). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'workers', 'python', 'mock-compute'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

function pythonVersion(python: string): string {
  try {
    return execFileSync(python, ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unavailable';
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '200' },
      slots: { type: 'string', default: '2' },
      python: { type: 'string', default: '/usr/bin/python3' },
      'redis-server': { type: 'string', default: 'redis-server' },
      systems: { type: 'string', default: SYSTEMS.join(',') },
      json: { type: 'boolean', default: false },
    },
  });
  const tasks = Number(values.tasks);
  const rounds = Number(values.rounds);
  const slots = Number(values.slots);
  const python = values.python;
  const wanted = values.systems.split(',').map((s) => s.trim()) as SystemKey[];
  const unknown = wanted.filter((s) => !SYSTEMS.includes(s));
  if (unknown.length > 0) throw new Error(`unknown --systems ${unknown.join(',')}; choose from ${SYSTEMS.join(',')}`);

  const root = repoRoot();
  const worker = path.join(root, 'workers', 'python', 'mock-compute');
  const scripts = path.join(root, 'bench', 'peers', 'python');
  const common = ['--worker', worker, '--tasks', String(tasks), '--rounds', String(rounds)];
  const timeoutMs = 30 * 60_000;

  console.log(
    `peers benchmark ${new Date().toISOString()}: ${tasks} no-op tasks (mock_compute_engine.lambda_handler, ` +
      `{"worker_arguments":[0]}), ${rounds} single-task round trips; ${os.cpus().length} CPUs ` +
      `(${os.cpus()[0]?.model ?? '?'}), Node ${process.version}, Python ${pythonVersion(python)} (${python}), ` +
      `load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );

  const rows: SystemFigures[] = [];
  for (const key of SYSTEMS.filter((s) => wanted.includes(s))) {
    console.error(`running ${key} …`);
    let row: SystemFigures;
    switch (key) {
      case 'floor':
        row = await runPythonPeer({
          pythonExecutable: python,
          script: path.join(scripts, 'floor_bench.py'),
          args: common,
          fallbackName: 'floor (in-process loop)',
          timeoutMs,
        });
        break;
      case 'ours':
        row = await runOurGrid({
          tasks,
          rounds,
          slots,
          pythonExecutable: python,
          worker,
          handlerFile: 'mock_compute_engine',
          handlerFunction: 'lambda_handler',
        }).catch((err: unknown) => failed(OUR_GRID_NAME, String(err), loadAverage1m()));
        break;
      case 'dask':
        row = await runPythonPeer({
          pythonExecutable: python,
          script: path.join(scripts, 'dask_bench.py'),
          args: [...common, '--workers', String(slots)],
          fallbackName: 'Dask distributed',
          timeoutMs,
        });
        break;
      case 'celery':
        row = await runPythonPeer({
          pythonExecutable: python,
          script: path.join(scripts, 'celery_bench.py'),
          args: [...common, '--workers', String(slots), '--redis-server', values['redis-server']],
          fallbackName: 'Celery + Redis',
          timeoutMs,
        });
        break;
    }
    if (row.error) console.error(`${key} failed: ${row.error}`);
    rows.push(row);
  }

  console.log('');
  console.log(formatTable(rows, OUR_GRID_NAME));
  console.log('');
  console.log(
    `tasks/s: N tasks submitted at once, until the last result is in the client. p50/p99: per task, submit → result ` +
      `in the client, with all N in flight. rt: one task at a time on an idle system (submit → result). ` +
      `ours ÷ it: our tasks/s over that system's. load: 1-min load average before→after (shared machine: noisy).`,
  );
  if (values.json) console.log(JSON.stringify(rows));
  if (rows.some((r) => r.error !== undefined)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
