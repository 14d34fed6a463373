// The CI skip guard: an unexpected skip fails the run on CI, an allowed one does not, and nothing fails off CI.
import path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const SkipGuard = require('./skip-guard.js') as new (config: { rootDir: string }) => {
  onRunComplete(contexts: unknown, results: unknown): void;
  getLastError(): Error | undefined;
};

const ROOT = path.resolve(__dirname, '..', '..');

function results(file: string, fullName: string, status: string) {
  return { testResults: [{ testFilePath: path.join(ROOT, file), testResults: [{ fullName, status }] }] };
}

function run(env: string | undefined, file: string, fullName: string, status = 'pending'): Error | undefined {
  const saved = process.env.CI;
  if (env === undefined) delete process.env.CI;
  else process.env.CI = env;
  try {
    const guard = new SkipGuard({ rootDir: ROOT });
    guard.onRunComplete(new Set(), results(file, fullName, status));
    return guard.getLastError();
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
}

describe('the CI skip guard', () => {
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  afterAll(() => stderr.mockRestore());

  it('fails a CI run in which a test outside the allowlist was skipped, naming it and the fix', () => {
    const error = run('true', 'test/packaging/example-workers.test.ts', 'the portfolio-pricing worker prices');
    expect(error?.message).toMatch(/test\/packaging\/example-workers.test.ts: the portfolio-pricing worker prices/);
    expect(error?.message).toMatch(/fix: install what they need in .ci\/run/);
  });

  it('lets a CI run skip what the allowlist names, by file and title', () => {
    expect(run('true', 'test/twin/twin-deployment.test.ts', 'the twin runs a session')).toBeUndefined();
    expect(run('true', 'test/runtime/rie/runtime-killer.test.ts', 'kills as nobody')).toBeUndefined();
    expect(run('true', 'test/runtime/rie/runtime-killer.test.ts', 'another test')).toBeInstanceOf(Error);
  });

  it('ignores tests that ran, and every skip off CI', () => {
    expect(run('true', 'test/packaging/example-workers.test.ts', 'prices', 'passed')).toBeUndefined();
    expect(run(undefined, 'test/packaging/example-workers.test.ts', 'prices')).toBeUndefined();
  });
});
