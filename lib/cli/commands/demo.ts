// `htcgrid demo` (what `npm start` runs): the mock-compute worker over 1,000 tasks on the embedded grid.
import path from 'node:path';
import { compileConfig, applyOverrides } from '../../core';
import { packageRoot } from '../../infra/repo-paths';
import { runBatch } from './run';

export interface DemoFlags {
  readonly tasks: number;
  readonly slots?: number;
  readonly python?: string;
}

export async function demoCommand(flags: DemoFlags): Promise<number> {
  const worker = path.join(packageRoot(), 'workers', 'python', 'mock-compute');
  const config = compileConfig(
    applyOverrides(
      {},
      {
        lambda_handler_file_name: 'mock_compute_engine',
        lambda_handler_function_name: 'lambda_handler',
        slots: flags.slots,
        python_executable: flags.python,
      },
    ),
    'demo',
  );
  // A seeded spread of short tasks (1-20 ms of compute each), like a small Monte Carlo batch.
  function* events(): Generator<unknown> {
    let seed = 42;
    for (let i = 0; i < flags.tasks; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      yield { worker_arguments: [1 + (seed % 20)], scenario: i };
    }
  }
  return runBatch({ config, worker, events: events(), label: 'demo' });
}
