// CPU of each thread of a process tree over a window, from /proc (Linux): what a grid at rest spends, thread by thread.
import fs from 'node:fs';

/** One thread's CPU so far: `schedstat`'s time on a CPU (ns, exact) and the times it was scheduled in (its wake-ups). */
interface ThreadSample {
  readonly process: string;
  readonly name: string;
  readonly cpuNs: number;
  readonly runs: number;
}

/** Samples of every thread of `pids`, keyed by pid/tid; threads gone meanwhile are left out. */
export function sampleThreads(pids: readonly number[]): Map<string, ThreadSample> {
  const samples = new Map<string, ThreadSample>();
  for (const pid of pids) {
    let tids: string[];
    let processName: string;
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
      processName = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const [cpuNs, , runs] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
        samples.set(`${pid}/${tid}`, {
          process: processName,
          name: tid === String(pid) ? `${name} (main thread)` : name,
          cpuNs: cpuNs ?? 0,
          runs: runs ?? 0,
        });
      } catch {
        // gone meanwhile
      }
    }
  }
  return samples;
}

/**
 * The CPU between two samples per process and thread name (threads of one name summed: V8's and libuv's pools are
 * all "node"), most first, as markdown table rows: `| process | thread (count) | ms of CPU | % of a core | wake-ups |`.
 */
export function threadCpuRows(
  before: Map<string, ThreadSample>,
  after: Map<string, ThreadSample>,
  windowSec: number,
): string[] {
  const groups = new Map<string, { threads: number; cpuNs: number; runs: number }>();
  for (const [key, a] of after) {
    const b = before.get(key);
    const group = `${a.process} | ${a.name}`;
    const g = groups.get(group) ?? { threads: 0, cpuNs: 0, runs: 0 };
    g.threads++;
    g.cpuNs += a.cpuNs - (b?.cpuNs ?? 0);
    g.runs += a.runs - (b?.runs ?? 0);
    groups.set(group, g);
  }
  return [...groups]
    .filter(([, g]) => g.runs > 0)
    .sort(([, x], [, y]) => y.cpuNs - x.cpuNs)
    .map(([group, g]) => {
      const ms = g.cpuNs / 1e6;
      const [process, name] = group.split(' | ');
      const pct = (ms / (windowSec * 1000)) * 100;
      return `| ${process} | ${name}${g.threads > 1 ? ` (${g.threads})` : ''} | ${ms.toFixed(1)} | ${pct.toFixed(3)} | ${g.runs} |`;
    });
}
