// Runs the peers workload on our local grid (embedded: SQLite table and queue, pipe runtimes) and measures it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedGrid } from '../../lib/cli';
import { applyOverrides, compileConfig } from '../../lib/core';
import { loadAverage1m, percentile, type SystemFigures } from './figures';

export interface OurGridOptions {
  readonly tasks: number;
  readonly rounds: number;
  readonly slots: number;
  readonly pythonExecutable: string;
  /** Worker folder (bundled to a zip and unpacked, exactly as `htcgrid run` does). */
  readonly worker: string;
  readonly handlerFile: string;
  readonly handlerFunction: string;
}

export const OUR_GRID_NAME = 'htc-grid-cdk local grid';

const EVENT = { worker_arguments: [0] };

export async function runOurGrid(options: OurGridOptions): Promise<SystemFigures> {
  const loadBefore = loadAverage1m();
  const config = compileConfig(
    applyOverrides(
      { empty_task_queue_backoff_timeout_sec: 0.001 },
      {
        lambda_handler_file_name: options.handlerFile,
        lambda_handler_function_name: options.handlerFunction,
        slots: options.slots,
        python_executable: options.pythonExecutable,
        receive_batch_size: 100,
      },
    ),
    'bench',
  );
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-peers-'));
  const grid = await startEmbeddedGrid({ dataDir, config, worker: options.worker });
  try {
    // Warm up: runtimes started, SQLite pages cached, V8 code optimised, as the peers get.
    await drain(await grid.client.submit(events(200), { batchSize: 200 }), 5);

    const roundTrips: number[] = [];
    for (let i = 0; i < options.rounds; i++) {
      const t0 = process.hrtime.bigint();
      await drain(await grid.client.submit([EVENT], { batchSize: 1 }), 1);
      roundTrips.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }

    const started = process.hrtime.bigint();
    const handle = await grid.client.submit(events(options.tasks), { batchSize: 1000 });
    const latencies: number[] = [];
    let succeeded = 0;
    for await (const r of handle.results({ pollIntervalMs: 5, pageSize: 2000 })) {
      latencies.push(Date.now() - r.submittedAt);
      if (r.state === 'succeeded') succeeded++;
    }
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    latencies.sort((a, b) => a - b);
    roundTrips.sort((a, b) => a - b);
    return {
      system: OUR_GRID_NAME,
      tasks: options.tasks,
      succeeded,
      elapsedMs,
      tasksPerSec: (options.tasks / elapsedMs) * 1000,
      latencyP50Ms: percentile(latencies, 50),
      latencyP99Ms: percentile(latencies, 99),
      roundTrips: roundTrips.length,
      roundTripP50Ms: percentile(roundTrips, 50),
      roundTripP99Ms: percentile(roundTrips, 99),
      python: options.pythonExecutable,
      workers: options.slots,
      loadBefore,
      loadAfter: loadAverage1m(),
    };
  } finally {
    await grid.close(1000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function* events(n: number): Generator<unknown> {
  for (let i = 0; i < n; i++) yield EVENT;
}

async function drain(handle: { results(o: { pollIntervalMs: number }): AsyncGenerator<unknown> }, pollMs: number) {
  for await (const _ of handle.results({ pollIntervalMs: pollMs })) {
    // Results are only counted by the caller's timing.
  }
}
