// Names the calling thread as the OS shows it (top -H, ps -L, /proc/<pid>/task/*/comm), so a grid's own threads can be
// told apart from Node's and V8's when their CPU is taken apart (bench/latency --idle-threads). Linux only.
import fs from 'node:fs';

/** The names of the grid's own worker threads (the kernel keeps 15 bytes). */
export const THREAD_NAMES = { agent: 'htcgrid-agent', checkpoint: 'htcgrid-ckpt' } as const;

/**
 * Names this thread `name`. For worker threads only: on the main thread it would rename the process. Elsewhere than
 * Linux, or where /proc does not allow it, the thread keeps its name.
 */
export function nameThisThread(name: string): void {
  if (process.platform !== 'linux') return;
  try {
    fs.writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // no /proc/thread-self (kernel before 3.17, a sandbox): unnamed, nothing else changes
  }
}
