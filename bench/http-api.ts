// Submitting through the HTTP API from Python next to the TypeScript SDK, on one `htcgrid local up --http` grid.
// Run: npm run build && node dist/bench/http-api.js [--tasks 100000] [--slots 2] [--batch 5000] [--python python3]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedGrid } from '../lib/cli';
import { applyOverrides, compileConfig } from '../lib/core';

interface PythonFigures {
  readonly tasks: number;
  readonly submitSec: number;
  readonly untilDoneSec: number;
  readonly resultsSec: number;
  readonly results: number;
  readonly succeeded: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tasks: { type: 'string', default: '100000' },
      slots: { type: 'string', default: '2' },
      batch: { type: 'string', default: '5000' },
      python: { type: 'string', default: 'python3' },
    },
  });
  const tasks = Number(values.tasks);
  const root = path.resolve(__dirname, '..', '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-bench-http-'));
  const configFile = path.join(dir, 'bench-config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify(
      applyOverrides(
        { empty_task_queue_backoff_timeout_sec: 0.001 },
        {
          lambda_handler_file_name: 'mock_compute_engine',
          lambda_handler_function_name: 'lambda_handler',
          receive_batch_size: 100,
        },
      ),
    ),
  );
  // The grid as a user starts it: its own process, the agent in a worker thread, the API on loopback.
  const grid = spawn(
    process.execPath,
    [
      path.join(root, 'dist', 'bin', 'htcgrid.js'),
      'local',
      'up',
      '--dir',
      dir,
      '--worker',
      path.join(root, 'workers', 'python', 'mock-compute'),
      '--config',
      configFile,
      '--slots',
      values.slots,
      '--http',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let gridOutput = '';
  await new Promise<void>((resolve, reject) => {
    grid.stderr.on('data', (chunk: Buffer) => {
      gridOutput += chunk.toString();
      if (gridOutput.includes('HTTP API on')) resolve();
    });
    grid.on('exit', () => reject(new Error(`htcgrid local up exited:\n${gridOutput}`)));
  });
  try {
    const py = await runPython(values.python, [
      path.join(root, 'bench', 'http', 'python_client.py'),
      path.join(dir, 'client.json'),
      String(tasks),
      values.batch,
    ]);
    // The TypeScript SDK on the same grid folder (its own connection, as `htcgrid submit` opens it).
    const config = compileConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), 'bench');
    const client = await startEmbeddedGrid({ dataDir: dir, config });
    let sdk;
    try {
      const started = process.hrtime.bigint();
      const handle = await client.client.submit(
        (function* () {
          for (let i = 0; i < tasks; i++) yield { worker_arguments: [0] };
        })(),
        { batchSize: 1000, expectedTasks: tasks },
      );
      const submitted = process.hrtime.bigint();
      await handle.wait({ pollIntervalMs: 200 });
      const done = process.hrtime.bigint();
      let results = 0;
      for await (const r of handle.results({ pageSize: 2000 })) if (r.state === 'succeeded') results++;
      const streamed = process.hrtime.bigint();
      sdk = {
        submitSec: Number(submitted - started) / 1e9,
        untilDoneSec: Number(done - started) / 1e9,
        resultsSec: Number(streamed - done) / 1e9,
        results,
      };
    } finally {
      await client.close();
    }
    const rate = (n: number, sec: number): number => Math.round(n / sec);
    console.log(
      JSON.stringify({
        tasks,
        slots: Number(values.slots),
        batch: Number(values.batch),
        pythonHttp: {
          submitTasksPerSec: rate(tasks, py.submitSec),
          endToEndTasksPerSec: rate(tasks, py.untilDoneSec),
          resultsStreamedPerSec: rate(py.results, py.resultsSec),
          ...py,
        },
        typescriptSdk: {
          submitTasksPerSec: rate(tasks, sdk.submitSec),
          endToEndTasksPerSec: rate(tasks, sdk.untilDoneSec),
          resultsReadPerSec: rate(sdk.results, sdk.resultsSec),
          submitSec: Number(sdk.submitSec.toFixed(3)),
          resultsSec: Number(sdk.resultsSec.toFixed(3)),
        },
      }),
    );
  } finally {
    grid.kill('SIGTERM');
    await new Promise((resolve) => grid.once('exit', resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runPython(python: string, args: string[]): Promise<PythonFigures> {
  const root = path.resolve(__dirname, '..', '..');
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, {
      env: { ...process.env, PYTHONPATH: path.join(root, 'clients', 'python') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`python exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as PythonFigures);
    });
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
