// A session followed by a handle, force-deleted and created again under the same id while the handle waits: the
// scenario of the local and the DynamoDB tests of `SessionHandle.results` (the handle is the same on both).
import type { GridClient } from '../../lib/client';
import type { TaskTable } from '../../lib/ports';
import { finishTask } from './missed-results';

/** Waits until the clock is past `at`: a session created again gets a later `createdAt`. */
async function clockPast(at: number): Promise<void> {
  while (Date.now() <= at) await new Promise((resolve) => setTimeout(resolve, 1));
}

/**
 * Session `sid` of 3 tasks; tasks 0 and 1 end and the handle yields them; the session is deleted (`--force`) and
 * created again with 3 new tasks, of which only task 2 ends. Returns what the handle yielded in all, what its stream
 * ended with (an error, or undefined when it returned, or was aborted after 10 s), and the two sessions' creation times.
 */
export async function followAcrossReplacement(
  client: GridClient,
  agent: TaskTable,
  sid: string,
): Promise<{ yielded: string[]; error: unknown; oldCreatedAt: number; newCreatedAt: number }> {
  const handle = await client.submit([{ n: 0 }, { n: 1 }, { n: 2 }], { sessionId: sid });
  await finishTask(agent, `${sid}_0`);
  await finishTask(agent, `${sid}_1`);
  const stop = AbortSignal.timeout(10_000);
  const results = handle.results({ pollIntervalMs: 20, signal: stop })[Symbol.asyncIterator]();
  const yielded: string[] = [];
  while (yielded.length < 2) {
    const next = await results.next();
    if (next.done) throw new Error('the stream ended before the old session had ended');
    yielded.push(next.value.taskId);
  }
  const oldCreatedAt = (await agent.getSession(sid))!.createdAt;
  await client.deleteSession(sid, { force: true });
  await clockPast(oldCreatedAt);
  await client.submit([{ n: 10 }, { n: 11 }, { n: 12 }], { sessionId: sid });
  const newCreatedAt = (await agent.getSession(sid))!.createdAt;
  await finishTask(agent, `${sid}_2`);
  let error: unknown;
  try {
    for (;;) {
      const next = await results.next();
      if (next.done) break;
      yielded.push(next.value.taskId);
    }
  } catch (err) {
    error = err;
  }
  return { yielded, error, oldCreatedAt, newCreatedAt };
}
