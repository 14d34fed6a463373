// What a client gets back for each finished task.
import {
  isInline,
  parseResultJson,
  resultJsonForLine,
  ResultJsonError,
  type AttemptRecord,
  type FailureReason,
  type TaskError,
  type TaskRecord,
  taskTimings,
} from '../core';
import type { PayloadStore } from '../ports';

export interface TaskResult {
  readonly index: number;
  readonly taskId: string;
  readonly sessionId: string;
  readonly state: 'succeeded' | 'failed' | 'cancelled';
  /**
   * The handler's return value, for succeeded tasks, read exactly: NaN, Infinity and -Infinity (which Python's `json`
   * writes) as those numbers, -0.0 as -0, integers beyond ±(2^53 - 1) as `bigint`s, anything else as `JSON.parse`
   * gives it. A stored text that is not JSON at all (a custom runtime's) is given as that string.
   */
  readonly result?: unknown;
  /** The handler's return value as JSON text, exactly as the runtime serialised it (big integers' digits included). */
  readonly resultJson?: string;
  /** The last attempt's error, for failed tasks. */
  readonly error?: TaskError;
  readonly failureReason?: FailureReason;
  /** How many times the task was claimed (attempts handed back by a draining agent included). */
  readonly attempts: number;
  /** How many attempts failed (error, timeout, runtime-crash, lease-expired). */
  readonly failures: number;
  /**
   * From submission to the start of the handler's run in the last attempt, in ms (to its claim where the run was not
   * recorded: a task that never ran, or one recorded by an older agent).
   */
  readonly queuedMs?: number;
  /** The handler's own time in the last attempt, in ms, as the agent measured it (invocation start to end). */
  readonly runMs?: number;
  /** Duration of the last attempt, in ms: from its claim by an agent to its result (a wait in the agent included). */
  readonly durationMs?: number;
  readonly submittedAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  /** Every attempt that ended, oldest first: owner, start and end (epoch ms), outcome, and the error of a failure. */
  readonly history: readonly AttemptRecord[];
}

export async function toTaskResult(task: TaskRecord, store: PayloadStore): Promise<TaskResult> {
  let resultJson: string | undefined;
  if (task.result) {
    resultJson = isInline(task.result) ? task.result.inline : (await store.get(task.result.key)).toString('utf8');
  }
  const state = task.state === 'succeeded' || task.state === 'failed' ? task.state : 'cancelled';
  const { queuedMs, runMs, durationMs } = taskTimings(task);
  return {
    index: task.index,
    taskId: task.taskId,
    sessionId: task.sessionId,
    state,
    ...(resultJson !== undefined ? { resultJson, result: readResult(resultJson) } : {}),
    ...(task.error && state !== 'succeeded' ? { error: task.error } : {}),
    ...(task.failureReason && state === 'failed' ? { failureReason: task.failureReason } : {}),
    attempts: task.attempt,
    failures: task.failures,
    queuedMs: queuedMs ?? undefined,
    runMs: runMs ?? undefined,
    durationMs: durationMs ?? undefined,
    submittedAt: task.submittedAt,
    startedAt: task.startedAt,
    finishedAt: task.finishedAt,
    history: task.history,
  };
}

function readResult(text: string): unknown {
  try {
    return parseResultJson(text);
  } catch (err) {
    if (err instanceof ResultJsonError) return text;
    throw err;
  }
}

/**
 * One JSON line per task, the `htcgrid run --out` format. Result JSON is spliced in as the runtime wrote it, never
 * re-encoded, so Python's `json` reads back the very values the handler returned (NaN and big integers included).
 */
export function resultLine(r: TaskResult): string {
  const head = `{"index":${r.index},"taskId":${JSON.stringify(r.taskId)},"state":"${r.state}"`;
  const body =
    r.resultJson !== undefined
      ? `,"result":${resultJsonForLine(r.resultJson)}`
      : r.error
        ? `,"error":${JSON.stringify(r.error)}${r.failureReason ? `,"reason":"${r.failureReason}"` : ''}`
        : '';
  return (
    `${head}${body},"attempts":${r.attempts},"queuedMs":${r.queuedMs ?? null},"runMs":${r.runMs ?? null}` +
    `,"durationMs":${r.durationMs ?? null}` +
    `,"submittedAt":${r.submittedAt},"startedAt":${r.startedAt ?? null},"finishedAt":${r.finishedAt ?? null}}`
  );
}
