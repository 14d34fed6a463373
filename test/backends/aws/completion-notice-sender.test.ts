// The agent's completion notices: a task finishing alone is told at once; a busy session is told once per window,
// the window doubling up to its maximum, so notices cost less than the client's polling (fake SQS client and clock).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { SQSClient } from '@aws-sdk/client-sqs';
import {
  CompletionNoticeSender,
  MAX_CARRIED_PER_SEND,
  NOTICE_SENDS_AT_ONCE,
  type FinishedTask,
} from '../../../lib/backends/aws';

interface Sent {
  readonly at: number;
  readonly url: string;
  readonly body: { s: string; t: string[]; o?: unknown[] };
}

/** A full garbage collection, once the current turn's WeakRef targets are no longer kept alive. */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  await new Promise((resolve) => setImmediate(resolve));
  gc();
}

function fakeSqs(sent: Sent[]): SQSClient {
  return {
    send: (command: { input: { QueueUrl: string; MessageBody: string } }) => {
      sent.push({ at: Date.now(), url: command.input.QueueUrl, body: JSON.parse(command.input.MessageBody) });
      return Promise.resolve({});
    },
  } as unknown as SQSClient;
}

/** An SQS client whose SendMessage calls are answered only when the test says (`answer`), recording those under way. */
function heldSqs() {
  const held: { url: string; body: { s: string; t: string[] }; answer: () => void }[] = [];
  let most = 0;
  const client = {
    send: (command: { input: { QueueUrl: string; MessageBody: string } }) =>
      new Promise<object>((resolve) => {
        held.push({
          url: command.input.QueueUrl,
          body: JSON.parse(command.input.MessageBody) as { s: string; t: string[] },
          answer: () => resolve({}),
        });
        most = Math.max(most, held.length);
      }),
  } as unknown as SQSClient;
  /** Answers the held calls `which` picks (all by default), taking them off the list. */
  const answer = (which: (h: (typeof held)[number]) => boolean = () => true): void => {
    for (const h of held.filter(which)) {
      held.splice(held.indexOf(h), 1);
      h.answer();
    }
  };
  return { client, held, answer, mostAtOnce: () => most };
}

/** Tasks ended without their items (a notice names them only). */
function named(...taskIds: string[]): FinishedTask[] {
  return taskIds.map((taskId) => ({ taskId }));
}

/** A sender whose notices to session `sessionId`'s queue are recorded: windows of 50 ms up to `maxWindowMs`. */
function senderOfSession(sessionId: string, maxWindowMs: number): { sent: Sent[]; sender: CompletionNoticeSender } {
  const sent: Sent[] = [];
  const sender = new CompletionNoticeSender({
    client: fakeSqs(sent),
    lookup: () => Promise.resolve('https://sqs/q-1'),
    windowMs: 50,
    maxWindowMs,
  });
  sender.remember(sessionId, 'https://sqs/q-1');
  return { sent, sender };
}

beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
afterEach(() => jest.useRealTimers());

describe('CompletionNoticeSender', () => {
  it("tells a session's client at once, then gathers its tasks in windows of 50, 100, 200 ms (the maximum)", async () => {
    const { sent, sender } = senderOfSession('s', 200);
    sender.finished(named('s_0'));
    expect(sent.map((n) => n.body)).toEqual([{ s: 's', t: ['s_0'] }]);
    // A task every 10 ms for a second: notices 50 ms after the first, then 100 ms, then every 200 ms (the maximum).
    for (let i = 1; i <= 100; i++) {
      jest.advanceTimersByTime(10);
      sender.finished(named(`s_${i}`));
    }
    await jest.advanceTimersByTimeAsync(1000);
    const times = sent.map((n) => n.at - 1_000_000);
    expect(times).toEqual([0, 50, 150, 350, 550, 750, 950, 1150]);
    expect(sent.flatMap((n) => n.body.t)).toEqual(Array.from({ length: 101 }, (_, i) => `s_${i}`));
    // Quiet for longer than the maximum: the next lone task is told at once again.
    jest.advanceTimersByTime(500);
    sender.finished(named('s_101'));
    expect(sent.at(-1)).toEqual({ at: 1_000_000 + 2500, url: 'https://sqs/q-1', body: { s: 's', t: ['s_101'] } });
    await sender.close();
  });

  it('tells at once each task of a session that runs one task at a time, and again soon after a busy spell', async () => {
    const { sent, sender } = senderOfSession('s', 5000);
    /** Ends task `i` `afterMs` after the last one; returns how long its notice waited. */
    const end = async (i: number, afterMs: number): Promise<number> => {
      await jest.advanceTimersByTimeAsync(afterMs);
      const endedAt = Date.now();
      const before = sent.length;
      sender.finished(named(`s_${i}`));
      while (sent.length === before) await jest.advanceTimersByTimeAsync(1);
      return sent.at(-1)!.at - endedAt;
    };
    // A notebook's session: a task every 100 ms, each ending alone.
    const lone: number[] = [];
    for (let i = 0; i < 12; i++) lone.push(await end(i, 100));
    expect(lone).toEqual(Array.from({ length: 12 }, () => 0));

    // A busy spell (a task every 10 ms for 20 s) takes the window to 5 s; then one task a second is told later at
    // first, each lone notice halving the window, and at once again after a few.
    for (let i = 0; i < 2000; i++) {
      jest.advanceTimersByTime(10);
      sender.finished(named(`s_${100 + i}`));
    }
    // Up to the spell's last notice.
    while (jest.getTimerCount() > 0) await jest.advanceTimersByTimeAsync(1);
    const after: number[] = [];
    for (let i = 3000; i < 3006; i++) after.push(await end(i, 1000));
    expect(after).toEqual([4000, 1500, 250, 0, 0, 0]);
    await sender.close();
  });

  it('looks up a session it does not know once, and sends nothing for a session without a notice queue', async () => {
    const sent: Sent[] = [];
    const lookups: string[] = [];
    const sender = new CompletionNoticeSender({
      client: fakeSqs(sent),
      lookup: (sessionId) => {
        lookups.push(sessionId);
        return Promise.resolve(sessionId === 'a' ? 'https://sqs/q-a' : undefined);
      },
    });
    sender.claimed(['a_0', 'b_0']);
    sender.finished(named('a_0', 'b_0', 'b_1'));
    await jest.advanceTimersByTimeAsync(0);
    sender.finished(named('b_2'));
    await sender.close();
    expect(lookups.sort()).toEqual(['a', 'b']);
    expect(sent.map((n) => [n.url, n.body])).toEqual([['https://sqs/q-a', { s: 'a', t: ['a_0'] }]]);
  });
  it("flush sends a session's waiting notice now, without its window, even while its queue is still being looked up", async () => {
    const sent: Sent[] = [];
    let answerLookup: (url: string) => void = () => undefined;
    const sender = new CompletionNoticeSender({
      client: fakeSqs(sent),
      lookup: () => new Promise<string>((resolve) => (answerLookup = resolve)),
      windowMs: 50,
    });
    sender.remember('s', 'https://sqs/q-s');
    sender.finished(named('s_0')); // sent at once; the window starts
    sender.finished(named('s_1')); // waits for the window
    sender.finished(named('u_0')); // its queue is not known yet: a lookup
    expect(sent.map((n) => n.body.t)).toEqual([['s_0']]);
    let flushed = false;
    const flushing = sender.flush(['s', 'u']).then(() => (flushed = true));
    expect(sent.map((n) => n.body.t)).toEqual([['s_0'], ['s_1']]); // no timer ran: the clock stands still
    await Promise.resolve();
    expect(flushed).toBe(false); // u's lookup is still under way
    answerLookup('https://sqs/q-u');
    await flushing;
    expect(sent.map((n) => [n.url, n.body.t])).toEqual([
      ['https://sqs/q-s', ['s_0']],
      ['https://sqs/q-s', ['s_1']],
      ['https://sqs/q-u', ['u_0']],
    ]);
    expect(Date.now()).toBe(1_000_000);
    await sender.close();
  });

  it('flush leaves sessions it was not asked for in their window', async () => {
    const sent: Sent[] = [];
    const sender = new CompletionNoticeSender({ client: fakeSqs(sent), lookup: () => Promise.resolve(undefined) });
    sender.remember('a', 'https://sqs/q-a');
    sender.remember('b', 'https://sqs/q-b');
    sender.finished(named('a_0', 'b_0'));
    sender.finished(named('a_1', 'b_1'));
    await sender.flush(['a']);
    expect(sent.map((n) => n.body.t)).toEqual([['a_0'], ['b_0'], ['a_1']]);
    await jest.advanceTimersByTimeAsync(50);
    expect(sent.map((n) => n.body.t)).toEqual([['a_0'], ['b_0'], ['a_1'], ['b_1']]);
    await sender.close();
  });

  it(`lets go of the items of a session's waiting tasks once more than ${MAX_CARRIED_PER_SEND} wait (named only then)`, async () => {
    jest.useRealTimers();
    const sent: Sent[] = [];
    const sender = new CompletionNoticeSender({
      client: fakeSqs(sent),
      lookup: () => Promise.resolve(undefined),
      windowMs: 60_000,
    });
    sender.remember('s', 'https://sqs/q-s');
    sender.finished(named('s_0')); // sent at once: the next ones wait for the window
    const refs: WeakRef<object>[] = [];
    const ended = (from: number, count: number): FinishedTask[] =>
      Array.from({ length: count }, (_, i) => {
        const outcome = { task_id: `s_${from + i}`, result: { inline: '"x"' } };
        refs.push(new WeakRef(outcome));
        return { taskId: `s_${from + i}`, outcome };
      });

    sender.finished(ended(1, MAX_CARRIED_PER_SEND));
    await collectGarbage();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(MAX_CARRIED_PER_SEND); // a notice carries them

    sender.finished(ended(MAX_CARRIED_PER_SEND + 1, 1));
    await collectGarbage();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);

    await sender.flush(['s']);
    expect(sent.map((n) => [n.body.t.length, n.body.o?.length])).toEqual([
      [1, undefined],
      [MAX_CARRIED_PER_SEND + 1, undefined],
    ]);
    // The window starts afresh: a few tasks carry their outcomes again.
    sender.finished(ended(MAX_CARRIED_PER_SEND + 2, 1));
    await sender.flush(['s']);
    expect(sent.at(-1)?.body.o).toHaveLength(1);
    await sender.close();
  });

  it('takes the hundreds of thousands of tasks one cancellation ends in a single call', async () => {
    const sent: Sent[] = [];
    const sender = new CompletionNoticeSender({ client: fakeSqs(sent), lookup: () => Promise.resolve(undefined) });
    sender.remember('s', 'https://sqs/q-s');
    const tasks = Array.from({ length: 200_000 }, (_, i) => `s_${i}`);

    sender.finished(named(tasks[0]!)); // sent at once: the rest wait for the window
    sender.finished(tasks.slice(1).map((taskId) => ({ taskId })));
    await sender.flush(['s']);

    expect(sent.flatMap((n) => n.body.t)).toEqual(tasks);
    await sender.close();
  });

  it("flush of a session waits for that session's sends only, not for another session's still under way", async () => {
    const sqs = heldSqs();
    const sender = new CompletionNoticeSender({ client: sqs.client, lookup: () => Promise.resolve(undefined) });
    sender.remember('a', 'https://sqs/q-a');
    sender.remember('b', 'https://sqs/q-b');
    sender.finished(named('b_0')); // under way, unanswered
    sender.finished(named('a_0'));
    let flushed = false;
    const flushing = sender.flush(['a']).then(() => (flushed = true));

    sqs.answer((h) => h.url === 'https://sqs/q-a');
    await jest.advanceTimersByTimeAsync(0);

    expect(flushed).toBe(true);
    expect(sqs.held.map((h) => h.body.t)).toEqual([['b_0']]);
    sqs.answer();
    await flushing;
    await sender.close();
  });

  it(`a send of many notices has at most ${NOTICE_SENDS_AT_ONCE} SendMessage calls under way, and sends them all`, async () => {
    const sqs = heldSqs();
    const sender = new CompletionNoticeSender({ client: sqs.client, lookup: () => Promise.resolve(undefined) });
    const session = 's'.repeat(200); // ids of ~200 bytes: ~300 a notice
    sender.remember(session, 'https://sqs/q-s');
    const tasks = Array.from({ length: 10_000 }, (_, i) => `${session}_${i}`);

    sender.finished(tasks.map((taskId) => ({ taskId })));
    const flushing = sender.flush([session]);
    const sent: string[] = [];
    while (sqs.held.length > 0) {
      for (const h of sqs.held) sent.push(...h.body.t);
      sqs.answer();
      await jest.advanceTimersByTimeAsync(0);
    }
    await flushing;

    expect(sqs.mostAtOnce()).toBe(NOTICE_SENDS_AT_ONCE);
    expect(sent).toEqual(tasks);
    await sender.close();
  });
});
