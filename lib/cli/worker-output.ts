// What workers print, shown per task where the user runs the grid: readable lines in a terminal, one JSON object per
// chunk otherwise (for a log collector), so a print() in a handler is never lost in the structured logs.
import * as output from './output';

export type WorkerOutputListener = (taskId: string | undefined, stream: 'stdout' | 'stderr', chunk: string) => void;

/** `<session prefix>…_<index>`: short enough to prefix every line, enough to find the task. */
function shortTaskId(taskId: string | undefined): string {
  if (taskId === undefined) return 'runtime';
  const cut = taskId.lastIndexOf('_');
  return cut > 8 ? `${taskId.slice(0, 8)}…${taskId.slice(cut)}` : taskId;
}

/** The listener printing worker output on stderr: `task 1a2b3c4d…_7 | line` in a terminal, JSON lines otherwise. */
export function workerOutputPrinter(tty = process.stderr.isTTY === true): WorkerOutputListener {
  return (taskId, stream, chunk) => {
    const text = chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk;
    if (!tty) {
      output.info(JSON.stringify({ taskId: taskId ?? null, stream, text }));
      return;
    }
    const prefix = `task ${shortTaskId(taskId)} ${stream === 'stderr' ? '!' : '|'}`;
    for (const line of text.split('\n')) output.info(`${prefix} ${line}`);
  };
}

/** Both listeners, for a grid whose output also feeds the HTTP API's tails. */
export function bothListeners(a: WorkerOutputListener, b: WorkerOutputListener | undefined): WorkerOutputListener {
  return b ? (taskId, stream, chunk) => (a(taskId, stream, chunk), b(taskId, stream, chunk)) : a;
}
