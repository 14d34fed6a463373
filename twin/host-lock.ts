// One twin at a time per machine: each binds the ECS credentials address (169.254.170.2:80) on the host, as ECS does,
// so a second twin (another test file, another shell) waits for the first to close instead of failing on the address.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sleep } from '../lib/timing';

/** The machine's twin lock (tests pass a folder of their own). */
export const TWIN_LOCK_DIR = path.join(os.tmpdir(), 'htcgrid-twin.lock');
const OWNER = 'owner.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid holding the lock, if a live process does (a dead owner's lock is removed). */
function liveOwner(lockDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(lockDir, OWNER), 'utf8'));
  } catch {
    // Being written right now (ask again), or left without an owner by a twin killed in between.
    const stat = fs.statSync(lockDir, { throwIfNoEntry: false });
    if (stat && Date.now() - stat.mtimeMs > 10_000) fs.rmSync(lockDir, { recursive: true, force: true });
    return stat ? Number.NaN : undefined;
  }
  if (pid > 0 && alive(pid)) return pid;
  fs.rmSync(lockDir, { recursive: true, force: true });
  return undefined;
}

/**
 * Takes the machine's twin lock (an atomic mkdir holding the owner's pid), waiting while another live twin holds
 * it; returns its release.
 */
export async function acquireTwinLock(
  progress: (line: string) => void,
  lockDir: string = TWIN_LOCK_DIR,
): Promise<() => void> {
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, OWNER), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = liveOwner(lockDir);
    if (owner === undefined) continue;
    if (!told && !Number.isNaN(owner)) {
      progress(`waiting for another deployment twin (pid ${owner}) to finish: one twin per machine`);
      told = true;
    }
    await sleep(500);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    fs.rmSync(lockDir, { recursive: true, force: true });
  };
  process.on('exit', release);
  return release;
}
