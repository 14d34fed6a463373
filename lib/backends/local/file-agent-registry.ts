// The local grid's agent registry: one small JSON file per agent in `<grid>/agents`, rewritten at each heartbeat.
// Files keep registration out of the database's write lock; a reader on the same host also checks the process lives,
// so an agent killed with SIGKILL is gone at once rather than when its heartbeat expires.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentPresence, AgentRegistry } from '../../ports';

export class FileAgentRegistry implements AgentRegistry {
  constructor(private readonly dir: string) {}

  /**
   * Written synchronously, like the database beside it: a few small file operations every heartbeat, where promises
   * cost six hops through libuv's thread pool and back, most of an idle grid's wake-ups (bench/README.md).
   */
  async heartbeat(presence: AgentPresence): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const file = this.fileOf(presence.agentId);
    // Written aside then renamed: a reader never sees half a file.
    const temp = `${file}.${process.pid}.tmp`;
    const text = JSON.stringify(presence);
    try {
      fs.writeFileSync(temp, text);
      fs.renameSync(temp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
      fs.rmSync(temp, { force: true });
      // A full disk: the file is rewritten in place, within the block it has, so the agent stays visible (and
      // clients do not say "no agent alive") while the grid waits for space.
      try {
        overwriteInPlace(file, text);
      } catch {
        throw err;
      }
    }
  }

  async remove(agentId: string): Promise<void> {
    await fs.promises.rm(this.fileOf(agentId), { force: true });
  }

  async listAlive(now: number): Promise<AgentPresence[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const alive: AgentPresence[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const presence = await readPresence(path.join(this.dir, name));
      if (!presence || presence.expiresAt <= now) continue;
      if (presence.host === os.hostname() && !processLives(presence.pid)) continue;
      alive.push(presence);
    }
    return alive.sort((a, b) => a.startedAt - b.startedAt);
  }

  private fileOf(agentId: string): string {
    return path.join(this.dir, `${agentId.replace(/[^\w.-]/g, '_')}.json`);
  }
}

/** Writes `text` over the start of an existing file, padded with spaces (valid JSON) to the file's old length. */
function overwriteInPlace(file: string, text: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, text.padEnd(fs.fstatSync(fd).size, ' '), 0, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

async function readPresence(file: string): Promise<AgentPresence | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(file, 'utf8')) as AgentPresence;
  } catch {
    return undefined; // removed meanwhile, or not one of ours
  }
}

/** Whether a process of this host exists (signal 0 checks without sending anything). */
export function processLives(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
