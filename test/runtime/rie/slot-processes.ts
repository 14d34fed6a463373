// Test helpers: real process trees that look like one ECS slot (a lambda-rie stand-in with its runtime children).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { descendantsOf, listProcesses, RIE_ADDRESS_FLAG, type RuntimeKillOutcome } from '../../../lib/runtime/rie';
import { bundleFixture } from '../../support/bundle-fixture';

const REPO = path.resolve(__dirname, '..', '..', '..');

/** The fixtures bundled to plain JavaScript, so the slot's only children are the runtime's (no compiler service). */
export interface SlotFixtures {
  readonly dir: string;
  readonly standIn: string;
  readonly killSlot: string;
  remove(): void;
}

export function buildSlotFixtures(): SlotFixtures {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-rie-slot-'));
  const bundle = (name: string): string => {
    const outfile = bundleFixture(path.join(__dirname, 'fixtures', `${name}.ts`), dir);
    fs.chmodSync(outfile, 0o644);
    return outfile;
  };
  const fixtures = { dir, standIn: bundle('rie-stand-in'), killSlot: bundle('kill-slot') };
  // Readable by another uid (the permission test runs the killer as nobody).
  fs.chmodSync(dir, 0o755);
  return { ...fixtures, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A running stand-in: `pid` is the "lambda-rie", `childPid` its Python child in `--sleeper` mode (else 0). */
export interface SlotProcess {
  readonly pid: number;
  readonly childPid: number;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

const processEnv = () => ({
  ...process.env,
  NODE_PATH: path.join(REPO, 'node_modules'),
  RIE_STAND_IN_BOOTSTRAP_DIR: path.join(REPO, 'lib', 'runtime', 'bootstrap'),
});

/** Starts `rie-stand-in` on 127.0.0.1:`port` with `args` (`--sleeper`, or task root and handler). */
export async function startSlot(fixtures: SlotFixtures, port: number, args: readonly string[]): Promise<SlotProcess> {
  const child = spawn(process.execPath, [fixtures.standIn, RIE_ADDRESS_FLAG, `127.0.0.1:${port}`, ...args], {
    env: processEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const childPid = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`rie-stand-in did not start within 20 s: ${stderr}`)), 20_000);
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      const ready = /^ready (\d+)$/m.exec(stdout);
      if (ready) {
        clearTimeout(timer);
        resolve(Number(ready[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rie-stand-in exited (${code}) before it was ready: ${stderr}`));
    });
  });
  const pid = child.pid ?? 0;
  return {
    pid,
    childPid,
    port,
    child,
    async stop() {
      for (const p of [...descendantPids(pid), pid]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}

/** The pids below `pid` right now. */
export function descendantPids(pid: number): number[] {
  return descendantsOf([pid], listProcesses()).map((p) => p.pid);
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Runs the killer for `port` in its own process, as `uid`/`gid` when given, and returns its outcome. */
export async function runKillSlot(
  fixtures: SlotFixtures,
  port: number,
  ids: { uid?: number; gid?: number } = {},
): Promise<RuntimeKillOutcome> {
  const child = spawn(process.execPath, [fixtures.killSlot, String(port)], {
    env: processEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: fixtures.dir,
    ...ids,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  if (code !== 0) throw new Error(`kill-slot exited ${code}: ${stderr}`);
  return JSON.parse(stdout) as RuntimeKillOutcome;
}
