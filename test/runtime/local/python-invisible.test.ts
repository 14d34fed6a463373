// The local Python runtime is as invisible to the worker as Lambda's: no thread of its own in threading's registry,
// fds 3-5 free, nothing inherited by what the worker starts or forks, and no fork DeprecationWarning (3.12+), with
// real python processes: every interpreter found (python3, the system's, pyenv's), named in the test names.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../../lib/runtime/local';
import type { WorkerInvoker } from '../../../lib/ports';
import { expectTakeBacksWhileRunning } from '../../support/take-backs';
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

interface Interpreter {
  /** What the test names say, e.g. `Python 3.13.0 (pyenv)`. */
  label: string;
  executable: string;
  version: [number, number, number];
  /** How the fork warning check reads in a test name: there is none to check before 3.12. */
  warning: string;
}

/**
 * Every Python this machine has that the runtime can run on (3.8+: `_thread.get_native_id`), once per version:
 * `python3`, the system's `/usr/bin/python3` (Debian's, with its own patches), and each of pyenv's when pyenv is
 * installed (the only way most machines have 3.12 and 3.13 side by side). CI may have just the first two; the test
 * names say which ran.
 */
function interpreters(): Interpreter[] {
  const candidates: Array<[string, string]> = [
    ['python3', 'python3'],
    ['/usr/bin/python3', 'system'],
  ];
  const root = spawnSync('pyenv', ['root'], { encoding: 'utf8' });
  const versions = root.status === 0 ? path.join(root.stdout.trim(), 'versions') : undefined;
  for (const version of versions && fs.existsSync(versions) ? fs.readdirSync(versions).sort() : []) {
    candidates.push([path.join(versions!, version, 'bin', 'python3'), 'pyenv']);
  }
  const found = new Map<string, Interpreter>();
  for (const [executable, source] of candidates) {
    const probe = spawnSync(executable, ['-c', 'import sys; print(".".join(map(str, sys.version_info[:3])))'], {
      encoding: 'utf8',
    });
    if (probe.status !== 0) continue; // not there
    const text = probe.stdout.trim();
    const version = text.split('.').map(Number) as [number, number, number];
    if (version[0] !== 3 || version[1] < 8 || found.has(text)) continue;
    const warning = version[1] >= 12 ? 'no fork warning' : 'no fork warning to check before 3.12';
    found.set(text, { label: `Python ${text} (${source})`, executable, version, warning });
  }
  return [...found.values()];
}

const INTERPRETERS = interpreters();

/** Whether the runtime restarts its withdraw thread from the fork hook (see _RESTART_IN_FORK_HOOK in bootstrap.py). */
function restartsInForkHook([, minor, micro]: [number, number, number]): boolean {
  return minor < 13 || (minor === 13 && micro >= 10) || (minor === 14 && micro >= 1) || minor > 14;
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
  it.each(INTERPRETERS)(
    'with $label: only its own thread, fds 3-5 free, nothing inherited by a subprocess or a forked child, $warning',
    async ({ executable, version }) => {
      const invoker = await python('worker.what_the_worker_sees', executable);

      const result = await invoker.invoke(invocation({}));

      if (!result.ok) throw new Error(`the worker failed: ${JSON.stringify(result.error)}`);
      const seen = JSON.parse(result.resultJson) as Seen;
      const inherited = inheritedFds();
      expect(seen.python).toEqual(version);
      expect(seen.active_count).toBe(1);
      expect(seen.threads).toEqual(['MainThread']);
      // The transport lives on high descriptors, out of the way of the worker's own.
      expect(without(seen.fds, inherited).filter((fd) => fd < 100)).toEqual([]);
      expect(without(seen.subprocess_fds, inherited)).toEqual([]);
      // The forked child holds only the pipe it reports through: none of the runtime's.
      expect(without(seen.child.fds, inherited)).toEqual([seen.fds_in_child_pipe[1]]);
      expect(seen.child.threads).toBe(1);
      if (version[1] >= 12) expect(seen.fork_warnings).toEqual([]);
    },
  );

  /** As expectTakeBacksWhileRunning, but `long` is let go right after the take-backs are asked for. */
  async function expectTakeBacksOnceReturned(invoker: WorkerInvoker, dir: string): Promise<void> {
    const [until, mark] = [path.join(dir, 'release'), path.join(dir, 'starts')];
    const long = invoker.invoke(invocation({ i: 0, until, mark }));
    const queued = [1, 2].map((i) => invoker.invoke(invocation({ i, mark })));
    await waitFor(() => fs.existsSync(mark));
    invoker.withdrawQueued?.(); // written to the withdraw pipe at once (libuv writes to an idle pipe synchronously)
    fs.writeFileSync(until, '');

    expect((await Promise.all(queued)).map((r) => failure(r).error.type)).toEqual([
      'Runtime.Withdrawn',
      'Runtime.Withdrawn',
    ]);
    expect(await long).toEqual({ ok: true, resultJson: '{"i": 0}' });
    expect(fs.readFileSync(mark, 'utf8')).toBe('0\n');
  }

  const tempDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-invisible-'));

  // Where the runtime cannot restart its thread from the fork hook (3.13 before 3.13.10, 3.14.0), take-backs asked
  // while a handler that forked runs are answered when it returns, before the requests they name start.
  it.each(
    INTERPRETERS.map((i) => ({ ...i, when: restartsInForkHook(i.version) ? 'while it runs' : 'once it returns' })),
  )(
    'with $label: takes back the invocations queued behind a handler that forked $when',
    async ({ executable, version }) => {
      const invoker = await python('worker.fork_then_wait_for', executable);
      const dir = tempDir();
      try {
        if (restartsInForkHook(version)) await expectTakeBacksWhileRunning(invoker, dir);
        else await expectTakeBacksOnceReturned(invoker, dir);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  // 3.13 before 3.13.10 and 3.14.0 restart the thread from the main loop, not the fork hook: a fork between requests
  // must not leave the next request running with take-backs stopped (a multiprocessing Pool replacing a process).
  it.each(INTERPRETERS)(
    'with $label: takes back queued invocations after a thread of the worker forked between requests',
    async ({ executable }) => {
      const invoker = await python('worker.fork_later_or_wait_for', executable);
      const dir = tempDir();
      const [when, forked] = [path.join(dir, 'fork'), path.join(dir, 'forked')];
      try {
        expect(await invoker.invoke(invocation({ when, forked }))).toEqual({
          ok: true,
          resultJson: '{"started": true}',
        });
        // The handler has returned: the runtime waits for its next request while the worker's thread forks.
        fs.writeFileSync(when, '');
        await waitFor(() => fs.existsSync(forked));

        await expectTakeBacksWhileRunning(invoker, dir);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
