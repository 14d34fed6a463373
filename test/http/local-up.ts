// `htcgrid local up --http` as its own process, as a Python user starts it; stopped with SIGTERM after the test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor } from '../support/local-grid';
import { htcgridBin } from '../support/fresh-dist';

export const ROOT = path.resolve(__dirname, '..', '..');
/** Debian's Python: it has python3-pytest, python3-botocore and quantlib-python. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface LocalUp {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly clientConfig: string;
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `htcgrid local up --http 127.0.0.1:0` on `dir` and resolves once the API is up. */
export async function startLocalUp(dir: string, args: readonly string[]): Promise<LocalUp> {
  const child = spawn(
    process.execPath,
    [htcgridBin(), 'local', 'up', '--dir', dir, '--http', '127.0.0.1:0', '--log-level', 'warn', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HTCGRID_API_TOKEN: '' } },
  );
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  let exited = false;
  const done = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  await waitFor(
    () => {
      if (exited) throw new Error(`htcgrid local up exited before its API was up:\n${text}`);
      return /HTTP API on (\S+)/.test(text);
    },
    60_000,
    'the HTTP API of htcgrid local up',
  );
  const url = /HTTP API on (\S+)/.exec(text)![1]!;
  return {
    child,
    dir,
    url,
    clientConfig: path.join(dir, 'client.json'),
    output: () => text,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await done;
    },
  };
}

/** Whether Debian's Python can import `module`. */
export function systemPythonHas(module: string): boolean {
  return spawnSync(SYSTEM_PYTHON, ['-c', `import ${module}`]).status === 0;
}

/** Runs `python` with the client package on its path; resolves with its exit status and output. */
export function runPython(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; python?: string } = {},
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(options.python ?? SYSTEM_PYTHON, args, {
      cwd: options.cwd ?? ROOT,
      env: {
        ...process.env,
        PYTHONPATH: path.join(ROOT, 'clients', 'python'),
        PYTHONDONTWRITEBYTECODE: '1',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}
