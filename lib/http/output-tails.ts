// What workers printed, kept per task as a bounded tail in the process that runs the agent (a local grid).
import type { AttemptRecord, TaskRecord } from '../core';
import type { AttemptOutput } from './task-views';

export interface OutputTailsOptions {
  /** Bytes kept per task and stream (the latest ones). @default 8192 */
  readonly maxBytesPerStream?: number;
  /** Tasks whose output is kept; the ones written to longest ago are forgotten first. @default 4096 */
  readonly maxTasks?: number;
}

interface Chunk {
  readonly at: number;
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
}

interface TaskTail {
  chunks: Chunk[];
  bytes: Record<'stdout' | 'stderr', number>;
  dropped: boolean;
}

/**
 * Receives worker output as the local runtimes capture it (`onWorkerOutput`) and keeps the tail of each task's.
 * Output carries no attempt number: it is given to the attempt that had started when it arrived (output that arrives
 * after an attempt ended but before the next started is still the ended attempt's).
 */
export class OutputTails {
  private readonly tasks = new Map<string, TaskTail>();
  private readonly maxBytes: number;
  private readonly maxTasks: number;

  constructor(options: OutputTailsOptions = {}) {
    this.maxBytes = options.maxBytesPerStream ?? 8192;
    this.maxTasks = options.maxTasks ?? 4096;
  }

  /** The listener to hand to `startEmbeddedGrid({ onWorkerOutput })`. */
  readonly listener = (taskId: string | undefined, stream: 'stdout' | 'stderr', text: string): void => {
    if (taskId === undefined || text === '') return;
    let tail = this.tasks.get(taskId);
    if (tail) this.tasks.delete(taskId);
    else tail = { chunks: [], bytes: { stdout: 0, stderr: 0 }, dropped: false };
    this.tasks.set(taskId, tail); // most recently written last
    tail.chunks.push({ at: Date.now(), stream, text });
    tail.bytes[stream] += text.length;
    while (tail.bytes[stream] > this.maxBytes) {
      const first = tail.chunks.findIndex((c) => c.stream === stream);
      const chunk = tail.chunks[first]!;
      const excess = tail.bytes[stream] - this.maxBytes;
      if (chunk.text.length <= excess) {
        tail.chunks.splice(first, 1);
        tail.bytes[stream] -= chunk.text.length;
      } else {
        tail.chunks[first] = { ...chunk, text: chunk.text.slice(excess) };
        tail.bytes[stream] -= excess;
      }
      tail.dropped = true;
    }
    if (this.tasks.size > this.maxTasks) this.tasks.delete(this.tasks.keys().next().value!);
  };

  /** The tail of each attempt of `task` that printed anything, oldest attempt first. */
  attemptsOf(task: TaskRecord): AttemptOutput[] {
    const tail = this.tasks.get(task.taskId);
    if (!tail) return [];
    const starts: Pick<AttemptRecord, 'attempt' | 'startedAt'>[] = [...task.history];
    if (task.state === 'running' && task.startedAt !== undefined) {
      starts.push({ attempt: task.attempt, startedAt: task.startedAt });
    }
    const byAttempt = new Map<number, { stdout: string; stderr: string }>();
    for (const chunk of tail.chunks) {
      let attempt = starts[0]?.attempt ?? task.attempt;
      for (const s of starts) if (s.startedAt <= chunk.at) attempt = s.attempt;
      const out = byAttempt.get(attempt) ?? { stdout: '', stderr: '' };
      out[chunk.stream] += chunk.text;
      byAttempt.set(attempt, out);
    }
    const attempts = [...byAttempt].sort((a, b) => a[0] - b[0]);
    return attempts.map(([attempt, out], i) => ({ attempt, ...out, truncated: tail.dropped && i === 0 }));
  }
}
