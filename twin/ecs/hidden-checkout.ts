// The twin's containers see this machine's directories, except where the task definition mounts a volume: a checkout
// (or node) under such a path is hidden inside them, so the agent cannot start and every ECS task stops. Refused up
// front, from the template's own mount points, instead of a run that hangs.
import path from 'node:path';
import { TwinUnsupportedError } from '../errors';
import type { TaskDefinition } from './task-definition';

/** A host path the containers read at that same path (the compiled agent in the checkout, this machine's node). */
export interface NeededHostPath {
  readonly what: string;
  readonly path: string;
}

export interface HidingMount {
  readonly container: string;
  readonly volume: string;
  /** The container path the volume is mounted at. */
  readonly at: string;
}

/** The mount points of `def` that hide `hostPath` inside the containers: mounted at it or at a folder above it. */
export function hidingMounts(def: TaskDefinition, hostPath: string): HidingMount[] {
  const target = path.posix.resolve('/', hostPath);
  const found: HidingMount[] = [];
  for (const container of def.containers) {
    for (const mount of container.mountPoints) {
      const at = path.posix.resolve('/', mount.containerPath);
      const relative = path.posix.relative(at, target);
      if (relative === '' || !relative.startsWith('..')) {
        found.push({ container: container.name, volume: mount.sourceVolume, at });
      }
    }
  }
  return found;
}

/**
 * Throws `TwinUnsupportedError` when a volume of the task definition would hide one of `needed` inside the
 * containers, naming the volumes and the fix (move the checkout, or node, out of that folder).
 */
export function refuseHiddenHostPaths(def: TaskDefinition, needed: readonly NeededHostPath[]): void {
  const problems: string[] = [];
  const folders = new Set<string>();
  for (const { what, path: hostPath } of needed) {
    const mounts = hidingMounts(def, hostPath);
    if (mounts.length === 0) continue;
    for (const mount of mounts) folders.add(mount.at);
    const where = mounts.map((m) => `container ${m.container} mounts volume ${m.volume} at ${m.at}`).join('; ');
    problems.push(`${what} ${hostPath} lies under a volume: ${where}`);
  }
  if (problems.length === 0) return;
  throw new TwinUnsupportedError(
    "the twin's containers would not see what they run (inside them a volume hides the host's folder at its path, " +
      `so the agent would not start and every ECS task would stop):\n  - ${problems.join('\n  - ')}`,
    {
      hint:
        `move the checkout (or node) out of ${[...folders].join(', ')}: clone the repository under $HOME or /work, ` +
        'and run the twin from there',
    },
  );
}
