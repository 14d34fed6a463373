// What the CLI says while a grid starts: a warning when the slots far exceed the CPUs, and a line every few seconds
// while the runtimes start, so a long start-up (hundreds of slots) is never silent.
import os from 'node:os';
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
