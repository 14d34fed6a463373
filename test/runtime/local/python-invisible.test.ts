// The local Python runtime is as invisible to the worker as Lambda's: no thread of its own in threading's registry,
// fds 3-5 free, nothing inherited by what the worker starts or forks, and no fork DeprecationWarning (3.12+), with
// real python processes: python3, and the 3.12+ interpreters pyenv has when it is there.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../../lib/runtime/local';
import type { WorkerInvoker } from '../../../lib/ports';
import { closeAfterEach, failure, FIXTURES, invocation, waitFor } from './helpers';

const TASK_ROOT = path.join(FIXTURES, 'python');
const track = closeAfterEach();

interface Seen {
  python: [number, number, number];
  active_count: number;
  threads: string[];
  fds: number[];
  subprocess_fds: number[];
  child: { fds: number[]; threads: number };
  fds_in_child_pipe: [number, number];
  fork_warnings: string[];
}

/** python3, plus pyenv's 3.12+ interpreters (the versions that warn on fork) when pyenv is installed. */
function interpreters(): string[] {
  const found = ['python3'];
  const root = spawnSync('pyenv', ['root'], { encoding: 'utf8' });
  if (root.status !== 0) return found;
  const versions = path.join(root.stdout.trim(), 'versions');
  for (const version of fs.existsSync(versions) ? fs.readdirSync(versions) : []) {
    const [major, minor] = version.split('.').map(Number);
    const executable = path.join(versions, version, 'bin', 'python3');
    if (major === 3 && minor !== undefined && minor >= 12 && fs.existsSync(executable)) found.push(executable);
  }
  return found;
}

/** Descriptors every process started from here inherits (from whatever started the test run): not the runtime's. */
function inheritedFds(): number[] {
  const probe = [
    'import json, os',
    'def is_open(fd):',
    '    try:',
    '        os.fstat(fd)',
    '        return True',
    '    except OSError:',
    '        return False',
    'print(json.dumps([fd for fd in range(3, 1100) if is_open(fd)]))',
  ].join('\n');
  return JSON.parse(spawnSync('python3', ['-c', probe], { encoding: 'utf8' }).stdout) as number[];
}

const without = (fds: number[], others: number[]): number[] => fds.filter((fd) => !others.includes(fd));

async function python(handler: string, pythonExecutable = 'python3'): Promise<WorkerInvoker> {
  const invoker = track(
    createLocalInvoker({
      taskRoot: TASK_ROOT,
      handler,
      runtime: resolveRuntime('python3.12'),
      pythonExecutable,
      maxQueued: 2,
    }),
  );
  await invoker.start();
  return invoker;
}

describe('what a worker sees of the local Python runtime', () => {
  it.each(interpreters())(
    'with %s: only its own thread, fds 3-5 free, nothing inherited by a subprocess or a forked child, no fork warning',
    async (executable) => {
      const invoker = await python('worker.what_the_worker_sees', executable);

      const result = await invoker.invoke(invocation({}));

      if (!result.ok) throw new Error(`the worker failed: ${JSON.stringify(result.error)}`);
      const seen = JSON.parse(result.resultJson) as Seen;
      const inherited = inheritedFds();
      expect(seen.active_count).toBe(1);
      expect(seen.threads).toEqual(['MainThread']);
      // The transport lives on high descriptors, out of the way of the worker's own.
      expect(without(seen.fds, inherited).filter((fd) => fd < 100)).toEqual([]);
      expect(without(seen.subprocess_fds, inherited)).toEqual([]);
      // The forked child holds only the pipe it reports through: none of the runtime's.
      expect(without(seen.child.fds, inherited)).toEqual([seen.fds_in_child_pipe[1]]);
      expect(seen.child.threads).toBe(1);
      expect(seen.fork_warnings).toEqual([]);
    },
  );

  it('takes back queued invocations while a handler that forked runs', async () => {
    const invoker = await python('worker.fork_then_wait_for');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-invisible-'));
    const [until, mark] = [path.join(dir, 'release'), path.join(dir, 'starts')];

    const long = invoker.invoke(invocation({ i: 0, until, mark }));
    const queued = [1, 2].map((i) => invoker.invoke(invocation({ i, mark })));
    await waitFor(() => fs.existsSync(mark));
    invoker.withdrawQueued?.();
    const taken = await Promise.all(queued);
    const longEndedFirst = fs.existsSync(until);
    fs.writeFileSync(until, '');

    expect(taken.map((r) => failure(r).error.type)).toEqual(['Runtime.Withdrawn', 'Runtime.Withdrawn']);
    expect(longEndedFirst).toBe(false);
    expect(await long).toEqual({ ok: true, resultJson: '{"i": 0}' });
    expect(fs.readFileSync(mark, 'utf8')).toBe('0\n');
  });
});
