// Runs one of the Python peer scripts (bench/peers/python/*.py) and reads the one JSON line of figures it prints.
import { spawn } from 'node:child_process';
import { loadAverage1m, type SystemFigures } from './figures';

export interface PythonPeerOptions {
  readonly pythonExecutable: string;
  readonly script: string;
  readonly args: readonly string[];
  /** Shown in the table when the script fails before it names itself. */
  readonly fallbackName: string;
  readonly timeoutMs: number;
}

export async function runPythonPeer(options: PythonPeerOptions): Promise<SystemFigures> {
  const loadBefore = loadAverage1m();
  const child = spawn(options.pythonExecutable, [options.script, ...options.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
  let spawnError: Error | undefined;
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      resolve(null);
    });
    child.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  if (spawnError) return failed(options.fallbackName, spawnError.message, loadBefore);
  const line = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'))
    .pop();
  if (code !== 0 || line === undefined) {
    return failed(options.fallbackName, `exit ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`, loadBefore);
  }
  return { ...(JSON.parse(line) as SystemFigures), loadBefore, loadAfter: loadAverage1m() };
}

export function failed(system: string, error: string, loadBefore?: number): SystemFigures {
  return {
    system,
    tasks: 0,
    succeeded: 0,
    elapsedMs: 0,
    tasksPerSec: null,
    latencyP50Ms: null,
    latencyP99Ms: null,
    roundTrips: 0,
    roundTripP50Ms: null,
    roundTripP99Ms: null,
    loadBefore,
    error,
  };
}
