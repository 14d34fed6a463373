// End to end for packaging: each example worker is bundled, unpacked and run by the local Lambda runtime from its zip.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { resolveRuntime } from '../../lib/core';
import { prepareTaskRoot } from '../../lib/packaging';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../lib/ports';
import { createLocalInvoker } from '../../lib/runtime/local';
import { makeScratch, removeScratch, REPO_ROOT } from './packaging-helpers';

const WORKERS = path.join(REPO_ROOT, 'workers');
const SYSTEM_PYTHON = '/usr/bin/python3';
const hasQuantLib = spawnSync(SYSTEM_PYTHON, ['-c', 'import QuantLib'], { encoding: 'utf8' }).status === 0;

function invocation(event: unknown, taskId: string): Invocation {
  return {
    requestId: randomUUID(),
    taskId,
    sessionId: 'session-1',
    attempt: 1,
    eventJson: JSON.stringify(event),
    deadline: Date.now() + 30_000,
  };
}

function resultOf(result: InvokeResult): unknown {
  if (!result.ok) throw new Error(`expected a result, got ${result.reason}: ${result.error.message}`);
  return JSON.parse(result.resultJson);
}

describe('example workers on the local runtime, run from their bundled zips', () => {
  let scratch: string;
  const invokers: WorkerInvoker[] = [];
  beforeEach(() => {
    scratch = makeScratch();
  });
  afterEach(async () => {
    await Promise.all(invokers.splice(0).map((invoker) => invoker.close()));
    removeScratch(scratch);
  });

  async function start(
    worker: string,
    handler: string,
    runtime: string,
    pythonExecutable?: string,
  ): Promise<WorkerInvoker> {
    const prepared = await prepareTaskRoot(path.join(WORKERS, worker), path.join(scratch, 'work'), {
      ...(pythonExecutable ? { pythonExecutable } : {}),
      pipArgs: ['--no-index'],
    });
    const invoker = createLocalInvoker({
      taskRoot: prepared.taskRoot,
      handler,
      runtime: resolveRuntime(runtime),
      ...(pythonExecutable ? { pythonExecutable } : {}),
    });
    invokers.push(invoker);
    await invoker.start();
    return invoker;
  }

  it('runs the python mock-compute worker', async () => {
    const invoker = await start('python/mock-compute', 'mock_compute_engine.lambda_handler', 'python3.12');

    const result = await invoker.invoke(invocation({ worker_arguments: ['0'] }, 'session-1_1'));

    expect(resultOf(result)).toEqual({ duration_ms: 0, task_id: 'session-1_1' });
  });

  (hasQuantLib ? it : it.skip)(
    'runs the python portfolio-pricing worker with the system Python’s QuantLib',
    async () => {
      const invoker = await start(
        'python/portfolio-pricing',
        'portfolio_pricing_engine.lambda_handler',
        'python3.12',
        SYSTEM_PYTHON,
      );
      const portfolio = [
        {
          id: 'eu',
          type: 'call',
          exercise: 'european',
          strike: 100,
          spot: 100,
          volatility: 0.2,
          rate: 0.03,
          maturity_years: 1,
        },
        {
          id: 'am',
          type: 'put',
          exercise: 'american',
          strike: 100,
          spot: 100,
          volatility: 0.2,
          rate: 0.03,
          maturity_years: 1,
        },
      ];

      const result = resultOf(
        await invoker.invoke(invocation({ valuation_date: '2024-05-15', portfolio }, 'session-1_5')),
      ) as {
        priced: number;
        portfolio_value: number;
      };

      expect(result.priced).toBe(2);
      expect(result.portfolio_value).toBeGreaterThan(10);
    },
  );

  it('runs the typescript pi-estimator worker', async () => {
    const invoker = await start('typescript/pi-estimator', 'index.handler', 'nodejs22.x');

    const result = resultOf(await invoker.invoke(invocation({ samples: 20_000, seed: 3 }, 'session-1_2'))) as {
      estimate: number;
      taskId: string;
    };

    expect(Math.abs(result.estimate - Math.PI)).toBeLessThan(0.1);
    expect(result.taskId).toBe('session-1_2');
  });

  it('runs the provided echo worker, and reports the error it posts as a failed invocation', async () => {
    const invoker = await start('provided/echo', 'function.handler', 'provided.al2023');

    const echoed = await invoker.invoke(invocation({ hello: 'grid', n: [1, 2] }, 'session-1_3'));
    const failed = await invoker.invoke(invocation({ fail: true }, 'session-1_4'));

    expect(resultOf(echoed)).toEqual({ echo: { hello: 'grid', n: [1, 2] } });
    expect(failed).toMatchObject({
      ok: false,
      reason: 'error',
      error: { type: 'EchoError', message: 'the event asked to fail' },
    });
  });
});
