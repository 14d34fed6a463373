// The local grid's agent registry: one small JSON file per agent in `<grid>/agents`, rewritten at each heartbeat.
// Files keep registration out of the database's write lock; a reader on the same host also checks the process lives,
// so an agent killed with SIGKILL is gone at once rather than when its heartbeat expires.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentPresence, AgentRegistry } from '../../ports';

export class FileAgentRegistry implements AgentRegistry {
  constructor(private readonly dir: string) {}

  async heartbeat(presence: AgentPresence): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true });
    const file = this.fileOf(presence.agentId);
    // Written aside then renamed: a reader never sees half a file.
    const temp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(temp, JSON.stringify(presence));
    await fs.promises.rename(temp, file);
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

async function readPresence(file: string): Promise<AgentPresence | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(file, 'utf8')) as AgentPresence;
  } catch {
    return undefined; // removed meanwhile, or not one of ours
  }
}

/** Whether a process of this host exists (signal 0 checks without sending anything). */
function processLives(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
