// `htcgrid run` leaves nothing in the temporary directory, however it ends: success, an error, Ctrl-C or SIGTERM
// while tasks run, or a signal while the grid is still starting (its temporary grid folder and the bundling scratch).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, tempDir, waitFor } from '../support/local-grid';
import { htcgridBin } from '../support/fresh-dist';

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** `htcgrid run` as its own process with `tmp` as its temporary directory; `signal` is sent once `when` holds. */
async function run(tmp: string, args: string[], stop?: { signal: NodeJS.Signals; when: () => boolean }): Promise<Exit> {
  const child = spawn(process.execPath, [htcgridBin(), 'run', '--no-progress', ...args], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  if (stop) {
    await waitFor(() => child.exitCode !== null || stop.when(), 60_000, `the moment to send ${stop.signal}`);
    child.kill(stop.signal);
  }
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    return await exited;
  } finally {
    clearTimeout(killer);
  }
}

/** What `htcgrid run` left in the temporary directory. */
const leftIn = (tmp: string): string[] => fs.readdirSync(tmp).filter((f) => f.startsWith('htcgrid-'));

const taskFile = (events: unknown[]): string => {
  const file = path.join(tempDir(), 'tasks.jsonl');
  fs.writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n'));
  return file;
};

describe('htcgrid run removes its temporary folders on every exit path', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = tempDir('htcgrid-tmpdir-');
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('after a successful run', async () => {
    const exit = await run(tmp, [
      ...['--worker', path.join(FIXTURES, 'e2e', 'probe'), '--tasks', taskFile([{ a: 1 }, { a: 2 }])],
      ...['--out', path.join(tempDir(), 'out.jsonl')],
    ]);
    expect(exit).toMatchObject({ code: 0 });
    expect(leftIn(tmp)).toEqual([]);
  });

  it('after a failed start-up (the handler cannot be loaded)', async () => {
    const exit = await run(tmp, [
      ...['--worker', path.join(FIXTURES, 'e2e', 'probe'), '--handler', 'missing_module.handler'],
      ...['--tasks', taskFile([{ a: 1 }]), '--out', path.join(tempDir(), 'out.jsonl')],
    ]);
    expect(exit.code).toBe(2);
    expect(leftIn(tmp)).toEqual([]);
  });

  it('refuses a results file it cannot write before starting anything, with the fix and no stack', async () => {
    const out = path.join(tmp, 'no-such-folder', 'out.jsonl');
    const exit = await run(tmp, [
      ...['--worker', path.join(FIXTURES, 'e2e', 'probe'), '--tasks', taskFile([{ a: 1 }]), '--out', out],
    ]);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/cannot write the results file .*no-such-folder.* does not exist/);
    expect(exit.stderr).not.toMatch(/\n\s+at /);
    expect(leftIn(tmp)).toEqual([]);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('after %s while tasks run', async (signal) => {
    const markers = tempDir();
    const exit = await run(
      tmp,
      [
        ...['--worker', path.join(FIXTURES, 'e2e', 'slow'), '--slots', '1'],
        ...['--tasks', taskFile([{ sleep_sec: 60, marker_dir: markers }, { sleep_sec: 60 }])],
        ...['--out', path.join(tempDir(), 'out.jsonl')],
      ],
      { signal, when: () => fs.readdirSync(markers).length > 0 },
    );
    expect(exit.stderr).toMatch(/interrupted: cancelling the session/);
    expect(exit.code).not.toBe(0);
    expect(leftIn(tmp)).toEqual([]);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('after %s while the grid is still starting', async (signal) => {
    const exit = await run(
      tmp,
      [
        ...['--worker', path.join(FIXTURES, 'e2e', 'slow-init'), '--slots', '1'],
        ...['--tasks', taskFile([{ a: 1 }]), '--out', path.join(tempDir(), 'out.jsonl')],
      ],
      // The grid folder has its `workers` folder: the worker is being bundled, unpacked or imported (slow module).
      { signal, when: () => leftIn(tmp).some((f) => fs.existsSync(path.join(tmp, f, 'workers'))) },
    );
    expect(exit.stderr).toMatch(/interrupted while starting/);
    expect(exit.code).toBe(130);
    expect(leftIn(tmp)).toEqual([]);
  });
});
