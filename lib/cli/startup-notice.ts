// What the CLI says while a grid starts: a warning when the slots far exceed the CPUs, and a line every few seconds
// while the runtimes start, so a long start-up (hundreds of slots) is never silent.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import type { GridConfig } from '../core';
import * as output from './output';

/** Slots per CPU beyond which the user is warned. */
const SLOTS_PER_CPU_WARNING = 4;

/** The warning for `slots` runtime processes on `cpus` CPUs, when they are far beyond them. */
export function slotsWarning(slots: number, cpus = os.availableParallelism()): string | undefined {
  if (slots <= cpus * SLOTS_PER_CPU_WARNING) return undefined;
  return (
    `warning: ${slots} slots on ${cpus} CPU(s): each slot is a runtime process of its own, so they take a while to ` +
    `start and tasks beyond the CPUs only wait their turn; --slots ${cpus} suits CPU-bound tasks`
  );
}

/** Awaits `starting`, printing `what (N s)` every `everyMs` until it settles. */
export async function withStartupProgress<T>(what: string, starting: Promise<T>, everyMs = 5_000): Promise<T> {
  const began = Date.now();
  const timer = setInterval(() => output.info(`${what} (${Math.round((Date.now() - began) / 1000)} s)`), everyMs);
  try {
    return await starting;
  } finally {
    clearInterval(timer);
  }
}

/**
 * The interpreter that actually runs a Python worker (`python3 (Python 3.11.9)`), and a warning when its version is
 * not the configured Lambda runtime's (python3.12 in AWS runs 3.12; the local grid runs what `--python` names).
 */
export function pythonVersionNote(config: Pick<GridConfig, 'pythonExecutable' | 'runtime'>): {
  line: string;
  warning?: string;
} {
  const run = spawnSync(config.pythonExecutable, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const version = run.status === 0 ? run.stdout.trim() : undefined;
  if (version === undefined) return { line: config.pythonExecutable };
  const line = `${config.pythonExecutable} (Python ${version})`;
  const wanted = /^python(\d+\.\d+)$/.exec(config.runtime.name)?.[1];
  if (wanted === undefined || version === wanted || version.startsWith(`${wanted}.`)) return { line };
  return {
    line,
    warning:
      `warning: the worker runs on Python ${version} here, while its Lambda runtime ${config.runtime.name} runs ` +
      `Python ${wanted} in AWS: pass --python python${wanted} to test on the same version`,
  };
}
