// Shared helpers for the local runtime tests: fixture paths, invocations, output collection.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkerInitError } from '../../../lib/core/errors';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../../lib/ports';

export const FIXTURES = path.resolve(__dirname, '..', '..', 'fixtures', 'workers');

let counter = 0;

/** An invocation of `event` with `timeoutMs` to run. */
export function invocation(event: unknown, timeoutMs = 10_000, overrides: Partial<Invocation> = {}): Invocation {
  counter++;
  return {
    requestId: randomUUID(),
    taskId: `session-1_${counter}`,
    sessionId: 'session-1',
    attempt: 1,
    eventJson: JSON.stringify(event),
    deadline: Date.now() + timeoutMs,
    ...overrides,
  };
}

export interface CollectedOutput {
  readonly chunks: { taskId: string | undefined; stream: 'stdout' | 'stderr'; chunk: string }[];
  readonly listener: (taskId: string | undefined, stream: 'stdout' | 'stderr', chunk: string) => void;
  text(taskId: string | undefined, stream?: 'stdout' | 'stderr'): string;
}

export function collectOutput(): CollectedOutput {
  const chunks: CollectedOutput['chunks'] = [];
  return {
    chunks,
    listener: (taskId, stream, chunk) => chunks.push({ taskId, stream, chunk }),
    text: (taskId, stream) =>
      chunks
        .filter((c) => c.taskId === taskId && (stream === undefined || c.stream === stream))
        .map((c) => c.chunk)
        .join(''),
  };
}

/** Polls `condition` until it holds or `timeoutMs` passes. */
export async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Registers an afterEach that closes every invoker passed to the returned function during a test. */
export function closeAfterEach(): (invoker: WorkerInvoker) => WorkerInvoker {
  const open: WorkerInvoker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((i) => i.close()));
  });
  return (invoker) => {
    open.push(invoker);
    return invoker;
  };
}

/** The failed result, or a test failure saying what succeeded instead. */
export function failure(result: InvokeResult): Exclude<InvokeResult, { ok: true }> {
  if (result.ok) throw new Error(`expected a failure, got ${result.resultJson}`);
  return result;
}

/** The `WorkerInitError` that `start()` rejects with, or a test failure saying what happened instead. */
export async function initError(invoker: WorkerInvoker): Promise<WorkerInitError> {
  const error = await invoker.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof WorkerInitError) return error;
  const got = error === undefined ? 'a start' : error instanceof Error ? error.stack : JSON.stringify(error);
  throw new Error(`expected start() to reject with a WorkerInitError, got ${got}`);
}

/** Whether a process with this pid is alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a handler that starts a child process, writes its pid to the file `event(pidFile)` names and sleeps past a 1 s
 * deadline: the task must time out and the child must be gone with it.
 */
export async function expectChildKilledOnTimeout(
  invoker: WorkerInvoker,
  event: (pidFile: string) => unknown,
): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-rt-'));
  try {
    const pidFile = path.join(dir, 'child.pid');
    await invoker.start();

    const result = failure(await invoker.invoke(invocation(event(pidFile), 1_000)));

    expect(result.reason).toBe('timeout');
    const childPid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(() => !isAlive(childPid));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `start()` rejects with a `WorkerInitError` of `type` whose message matches `message` and names each of `names`. */
export async function expectInitError(
  invoker: WorkerInvoker,
  type: string,
  message: RegExp,
  names: readonly string[],
): Promise<void> {
  const error = await initError(invoker);
  expect(error.errorType).toBe(type);
  expect(error.message).toMatch(message);
  for (const name of names) expect(error.message).toContain(name);
}
