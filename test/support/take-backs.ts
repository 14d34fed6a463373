// What the tests of the local Python runtime's take-backs share: queued invocations withdrawn while the running one
// still runs, checked against a worker handler that waits for the test (the fixture's `wait_for`).
import fs from 'node:fs';
import path from 'node:path';
import type { WorkerInvoker } from '../../lib/ports';
import { failure, invocation, waitFor } from '../runtime/local/helpers';

/**
 * Runs `long` (a `wait_for` handler, or one ending as it does), queues two more behind it, takes them back, and checks
 * that it happened while `long` still ran: the withdraw thread was up. (Were it down, the take-backs would wait for
 * `long`, which waits for them: the test would time out.) The `mark` file in `dir` has a line per invocation that
 * started: only `long`'s. Returns it, for the invocations the test sends next.
 */
export async function expectTakeBacksWhileRunning(invoker: WorkerInvoker, dir: string): Promise<{ mark: string }> {
  const [until, mark] = [path.join(dir, 'release'), path.join(dir, 'starts')];
  const long = invoker.invoke(invocation({ i: 0, until, mark }));
  const queued = [1, 2].map((i) => invoker.invoke(invocation({ i, mark })));
  // Both requests are in the runtime's pipe behind the running one (the mark file shows it started).
  await waitFor(() => fs.existsSync(mark));
  invoker.withdrawQueued?.();
  const taken = await Promise.all(queued);
  const longEndedFirst = fs.existsSync(until);
  fs.writeFileSync(until, '');

  expect(taken.map((r) => failure(r).error.type)).toEqual(['Runtime.Withdrawn', 'Runtime.Withdrawn']);
  expect(longEndedFirst).toBe(false);
  expect(await long).toEqual({ ok: true, resultJson: '{"i": 0}' });
  expect(fs.readFileSync(mark, 'utf8')).toBe('0\n');
  return { mark };
}
