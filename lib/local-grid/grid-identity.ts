// A grid folder belongs to one grid: it records the worker (its zip's SHA-256), handler and runtime of the agents that
// run there, so a `local up` with another worker cannot join its queue while that grid runs.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GridFolderInUseError, type GridConfig } from '../core';
import type { AgentRegistry } from '../ports';

/** File of the identity inside a grid folder. */
export const GRID_IDENTITY_FILE = 'grid-identity.json';

export interface GridIdentity {
  /** SHA-256 of the worker zip (folders are bundled deterministically, so the same files give the same hash). */
  readonly workerSha256: string;
  /** The worker as given (folder or zip path), to name it in messages. */
  readonly worker: string;
  readonly handler: string;
  readonly runtime: string;
}

export async function gridIdentityOf(worker: string, zipPath: string, config: GridConfig): Promise<GridIdentity> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(zipPath)) hash.update(chunk as Buffer);
  return {
    workerSha256: hash.digest('hex'),
    worker: path.resolve(worker),
    handler: config.handler,
    runtime: config.runtime.name,
  };
}

/** What differs between two identities, as `what: recorded ≠ new` lines (empty when the same grid). */
export function identityDifferences(recorded: GridIdentity, wanted: GridIdentity): string[] {
  const differences: string[] = [];
  if (recorded.workerSha256 !== wanted.workerSha256) {
    differences.push(
      `worker: ${recorded.worker} (zip sha256 ${recorded.workerSha256.slice(0, 12)}) ≠ ${wanted.worker} (zip sha256 ${wanted.workerSha256.slice(0, 12)})`,
    );
  }
  if (recorded.handler !== wanted.handler) differences.push(`handler: ${recorded.handler} ≠ ${wanted.handler}`);
  if (recorded.runtime !== wanted.runtime) differences.push(`runtime: ${recorded.runtime} ≠ ${wanted.runtime}`);
  return differences;
}

/**
 * Makes `dir` the folder of the grid `wanted` describes. While agents of a different grid are alive there, throws
 * `GridFolderInUseError` naming each difference and the fix; an identical agent may join. With none alive, the
 * folder passes to the new grid, and the differences are returned so the caller can say so.
 */
export async function claimGridFolder(dir: string, wanted: GridIdentity, agents: AgentRegistry): Promise<string[]> {
  const file = path.join(dir, GRID_IDENTITY_FILE);
  const recorded = readIdentity(file);
  const differences = recorded ? identityDifferences(recorded, wanted) : [];
  if (differences.length > 0) {
    const alive = await agents.listAlive(Date.now());
    if (alive.length > 0) {
      const who = alive.map((a) => `pid ${a.pid} on ${a.host}`).join(', ');
      throw new GridFolderInUseError(
        `${dir} already runs another grid (${alive.length} agent(s) alive: ${who}), which this one would share a queue with:\n${differences.map((d) => `  - ${d}`).join('\n')}`,
        { hint: `use another folder (--dir), or stop the grid running in ${dir} first` },
      );
    }
  }
  if (!recorded || differences.length > 0) {
    fs.writeFileSync(file, `${JSON.stringify(wanted, null, 2)}\n`);
  }
  return differences;
}

function readIdentity(file: string): GridIdentity | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as GridIdentity;
  } catch {
    return undefined;
  }
}
