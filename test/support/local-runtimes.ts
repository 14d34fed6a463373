// What the tests of the local Node.js and Python runtimes share: invokers of a fixture worker closed after each test,
// what the fixture's `probe` handler saw of its Lambda context, and a task run past its deadline then the next.
import type { Invocation, WorkerInvoker } from '../../lib/ports';
import { createLocalInvoker, type LocalRuntimeOptions } from '../../lib/runtime/local';
import { closeAfterEach, failure, invocation } from '../runtime/local/helpers';

/**
 * Makes invokers of a handler with `defaults` (the worker's folder, the runtime) and a test's `extra` options, each
 * closed after its test. Call it at the top of a test file (it registers an afterEach).
 */
export function invokersOf(
  defaults: Omit<LocalRuntimeOptions, 'handler'>,
): (handler: string, extra?: Partial<LocalRuntimeOptions>) => WorkerInvoker {
  const track = closeAfterEach();
  return (handler, extra = {}) => track(createLocalInvoker({ ...defaults, handler, ...extra }));
}

/** What a `probe` handler returned for `inv` (its context, working folder, environment): a test failure if it failed. */
export async function probed(invoker: WorkerInvoker, inv: Invocation): Promise<any> {
  const result = await invoker.invoke(inv);
  if (!result.ok) throw new Error(JSON.stringify(result.error));
  return JSON.parse(result.resultJson);
}

/**
 * Checks what a probe saw of its invocation's time: a log stream name as Lambda makes them, and the remaining time,
 * read twice, within `timeoutMs` and going down.
 */
export function expectLambdaStreamAndClock(logStreamName: string, remaining: unknown, timeoutMs: number): void {
  expect(logStreamName).toMatch(/^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
  const [first, second] = remaining as [number, number];
  expect(first).toBeLessThanOrEqual(timeoutMs);
  expect(second).toBeLessThan(first);
}

/**
 * Starts `invoker`, runs `slow` with `timeoutMs` to run (it runs longer), then `quick`: the timed-out task's failure,
 * and the next task's result.
 */
export async function timedOutThenNext(
  invoker: WorkerInvoker,
  slow: unknown,
  timeoutMs: number,
  quick: unknown,
): Promise<{ timedOut: ReturnType<typeof failure>; next: Awaited<ReturnType<WorkerInvoker['invoke']>> }> {
  await invoker.start();
  const timedOut = failure(await invoker.invoke(invocation(slow, timeoutMs)));
  const next = await invoker.invoke(invocation(quick));
  return { timedOut, next };
}
