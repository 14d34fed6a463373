// Tests the example workers under workers/: each bundles into a Lambda zip whose handler runs from the unpacked task root.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { prepareTaskRoot } from '../../lib/packaging';
import { FAKE_CONTEXT_PY, makeScratch, removeScratch, REPO_ROOT, runPython } from './packaging-helpers';

const WORKERS = path.join(REPO_ROOT, 'workers');
const CALL_HANDLER_PY = (module: string): string => `${FAKE_CONTEXT_PY}
import ${module} as worker
print(json.dumps(worker.lambda_handler(json.loads(sys.argv[1]), context)))
`;

describe('the mock-compute worker', () => {
  let scratch: string;
  let taskRoot: string;
  beforeAll(async () => {
    scratch = makeScratch();
    ({ taskRoot } = await prepareTaskRoot(path.join(WORKERS, 'python', 'mock-compute'), scratch));
  });
  afterAll(() => {
    removeScratch(scratch);
  });

  const run = (event: unknown): unknown =>
    runPython('python3', taskRoot, CALL_HANDLER_PY('mock_compute_engine'), [JSON.stringify(event)]);

  it('returns at once with the grid’s task id when asked for 0 ms', () => {
    expect(run({ worker_arguments: [0] })).toEqual({ duration_ms: 0, task_id: 't-1' });
    expect(run({})).toEqual({ duration_ms: 0, task_id: 't-1' });
  });

  it('accepts HTC-Grid’s string arguments and returns a payload of the size asked', () => {
    expect(run({ worker_arguments: ['5', '2', '16'] })).toEqual({
      duration_ms: 5,
      task_id: 't-1',
      memory_mib: 2,
      output: 'x'.repeat(16),
    });
  });

  it('raises a ValueError for a negative or non-numeric argument', () => {
    expect(() => run({ worker_arguments: [-1] })).toThrow(
      /ValueError: worker_arguments\[0\] \(duration_ms\) must not be negative/,
    );
    expect(() => run({ worker_arguments: ['soon'] })).toThrow(/ValueError: .*must be a number, got 'soon'/);
  });
});

const SYSTEM_PYTHON = '/usr/bin/python3';
const hasQuantLib = spawnSync(SYSTEM_PYTHON, ['-c', 'import QuantLib'], { encoding: 'utf8' }).status === 0;
if (!hasQuantLib) {
  console.warn(
    `skipping the portfolio-pricing tests: ${SYSTEM_PYTHON} cannot import QuantLib (apt-get install quantlib-python)`,
  );
}

(hasQuantLib ? describe : describe.skip)('the portfolio-pricing worker', () => {
  let scratch: string;
  let taskRoot: string;
  beforeAll(async () => {
    scratch = makeScratch();
    // QuantLib is in requirements.txt for AWS; locally Debian's, imported by the Python that runs the worker.
    ({ taskRoot } = await prepareTaskRoot(path.join(WORKERS, 'python', 'portfolio-pricing'), scratch, {
      pythonExecutable: SYSTEM_PYTHON,
      pipArgs: ['--no-index'],
    }));
  });
  afterAll(() => {
    removeScratch(scratch);
  });

  interface Priced {
    results: Array<{ id: string; npv?: number; delta?: number; vega?: number; error?: string }>;
    portfolio_value: number;
    priced: number;
    failed: number;
  }
  const price = (event: unknown): Priced =>
    runPython(SYSTEM_PYTHON, taskRoot, CALL_HANDLER_PY('portfolio_pricing_engine'), [JSON.stringify(event)]) as Priced;
  const market = { strike: 100, spot: 100, volatility: 0.2, rate: 0.03, maturity: '2025-05-15' };

  it('ships its handler and sibling modules at the zip root', () => {
    expect(
      fs
        .readdirSync(taskRoot)
        .filter((f) => f.endsWith('.py'))
        .sort(),
    ).toEqual(['american_options.py', 'european_options.py', 'portfolio_pricing_engine.py', 'ql_common.py']);
  });

  it('prices a European call at the Black-Scholes value with its greeks', () => {
    const result = price({
      valuation_date: '2024-05-15',
      portfolio: [{ id: 'c', type: 'call', exercise: 'european', quantity: 2, ...market }],
    });

    const [call] = result.results;
    expect(call?.npv).toBeCloseTo(blackScholesCall(100, 100, 0.03, 0.2, 1), 4);
    expect(call?.delta).toBeCloseTo(0.598706, 5);
    expect(call?.vega).toBeGreaterThan(0);
    expect(result.portfolio_value).toBeCloseTo(2 * call!.npv!, 8);
  });

  it('prices an American put at least at its European value', () => {
    const result = price({
      valuation_date: '2024-05-15',
      portfolio: [
        { id: 'am', type: 'put', exercise: 'american', ...market },
        { id: 'eu', type: 'put', exercise: 'european', ...market },
      ],
    });

    const [american, european] = result.results;
    expect(american?.npv).toBeGreaterThan(european!.npv!);
    expect(american?.delta).toBeLessThan(0);
  });

  it('prices every sample task without a failed trade', () => {
    const lines = fs
      .readFileSync(path.join(WORKERS, 'python', 'portfolio-pricing', 'sample-tasks.jsonl'), 'utf8')
      .split('\n')
      .filter((line) => line.trim());

    const results = lines.map((line) => price(JSON.parse(line)));

    expect(results.length).toBeGreaterThanOrEqual(3);
    for (const result of results) {
      expect(result.failed).toBe(0);
      expect(result.results.every((r) => typeof r.npv === 'number' && Number.isFinite(r.npv))).toBe(true);
    }
  });

  it('reports a trade it cannot price as an error entry and prices the rest', () => {
    const result = price({
      valuation_date: '2024-05-15',
      portfolio: [
        { id: 'bad', type: 'straddle', exercise: 'european', ...market },
        { id: 'good', type: 'call', exercise: 'european', ...market },
      ],
    });

    expect(result.results[0]).toEqual({ id: 'bad', error: "ValueError: type must be 'call' or 'put', got 'straddle'" });
    expect(result.priced).toBe(1);
    expect(result.failed).toBe(1);
  });

  it('fails to load with a hint when the Python has no QuantLib', () => {
    const isolated = spawnSync(SYSTEM_PYTHON, ['-S', '-c', 'import portfolio_pricing_engine'], {
      cwd: taskRoot,
      encoding: 'utf8',
    });

    expect(isolated.status).not.toBe(0);
    expect(isolated.stderr).toMatch(
      /ImportError: the portfolio-pricing worker needs QuantLib[\s\S]*apt-get install quantlib-python/,
    );
  });
});

/** Black-Scholes price of a European call without dividends. */
function blackScholesCall(spot: number, strike: number, rate: number, vol: number, years: number): number {
  const d1 = (Math.log(spot / strike) + (rate + (vol * vol) / 2) * years) / (vol * Math.sqrt(years));
  const d2 = d1 - vol * Math.sqrt(years);
  return spot * normalCdf(d1) - strike * Math.exp(-rate * years) * normalCdf(d2);
}

/** Standard normal CDF via the complementary error function (Numerical Recipes erfc, |error| < 1.2e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}
