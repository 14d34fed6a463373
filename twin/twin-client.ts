// The twin's client: the `htcgrid` CLI a user runs against a deployed grid (`--outputs` from `cdk deploy
// --outputs-file`), as a separate process acting as the client role, its results read back from the file it writes.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface ResultLine {
  readonly index: number;
  readonly taskId: string;
  readonly state: string;
  readonly attempts?: number;
  readonly error?: { readonly type: string; readonly message: string };
  readonly reason?: string;
}

export interface ClientRun {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** `node dist/bin/htcgrid.js <args> --outputs <file>` with the client role's environment. */
export function runHtcgrid(
  repoRoot: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): ClientRun {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'bin', 'htcgrid.js'), ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.once('error', (error) => resolve({ code: 1, stdout, stderr: String(error) }));
  });
  return { child, done };
}

export function writeTasksFile(file: string, count: number, event: (i: number) => unknown): void {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(JSON.stringify(event(i)));
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

export interface ResultCheck {
  readonly succeeded: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Submitted tasks with no terminal result. */
  readonly lost: number;
  /** Tasks reported more than once. */
  readonly duplicated: number;
  readonly firstFailures: readonly string[];
}

export function checkResults(file: string, submitted: number): ResultCheck {
  const seen = new Map<number, number>();
  let succeeded = 0;
  let failed = 0;
  let cancelled = 0;
  const firstFailures: string[] = [];
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as ResultLine;
    seen.set(r.index, (seen.get(r.index) ?? 0) + 1);
    if (r.state === 'succeeded') succeeded++;
    else if (r.state === 'cancelled') cancelled++;
    else {
      failed++;
      if (firstFailures.length < 5)
        firstFailures.push(
          `task #${r.index} ${r.state}${r.reason ? ` [${r.reason}]` : ''}: ${r.error ? `${r.error.type}: ${r.error.message}` : ''}`,
        );
    }
  }
  let lost = 0;
  let duplicated = 0;
  for (let i = 0; i < submitted; i++) {
    const n = seen.get(i) ?? 0;
    if (n === 0) lost++;
    if (n > 1) duplicated++;
  }
  return { succeeded, failed, cancelled, lost, duplicated, firstFailures };
}
