// Where an agent of a grid folder unpacks its worker: `<grid>/workers/<pid>-<id>`, one folder per agent process.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { processLives } from '../backends/local';

/** A new folder name for this process's agent (several agents may share a grid folder). */
export function newWorkerFolder(dataDir: string): string {
  return path.join(dataDir, 'workers', `${process.pid}-${randomUUID().slice(0, 8)}`);
}

/**
 * Removes the worker folders of agents whose process is gone: each agent removes its own when it stops, but one
 * killed, or stopped by a signal while it was starting, leaves a zip and its unpacked copy behind. The next agent on
 * the folder clears them. Returns the folders removed.
 */
export function removeStaleWorkerFolders(dataDir: string, lives: (pid: number) => boolean = processLives): string[] {
  const root = path.join(dataDir, 'workers');
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(/^(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || lives(pid)) continue;
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
