// The client's side of completion notices on a fake SQS client: the outcomes it keeps for its readers are bounded by
// their bytes, as received; a wait for one session's results ends on that session's notices only.
import type { SQSClient } from '@aws-sdk/client-sqs';
import { CompletionNoticeQueue, noticeBodies, noticeOutcomeOf } from '../../../lib/backends/aws';
import { waitFor } from '../../support/local-grid';
import { terminalTaskItem } from './notice-fixtures';

/** An SQS client with one queue that holds `bodies` for the first receive; later receives wait until aborted. */
function fakeSqs(bodies: readonly string[]): SQSClient {
  let received = false;
  return {
    send: (command: { constructor: { name: string } }, options?: { abortSignal?: AbortSignal }) => {
      switch (command.constructor.name) {
        case 'CreateQueueCommand':
          return Promise.resolve({ QueueUrl: 'https://sqs/q' });
        case 'ReceiveMessageCommand':
          if (!received) {
            received = true;
            return Promise.resolve({ Messages: bodies.map((Body, i) => ({ Body, MessageId: String(i) })) });
          }
          return new Promise((_, reject) => options?.abortSignal?.addEventListener('abort', () => reject(new Error())));
        default:
          return Promise.resolve({});
      }
    },
  } as unknown as SQSClient;
}

/** An SQS client whose receives answer, one call each in order, with the bodies given to `deliver`; counts them. */
function scriptedSqs() {
  const answers: string[][] = [];
  let receives = 0;
  let waiting: ((bodies: string[]) => void) | undefined;
  const client = {
    send: (command: { constructor: { name: string } }, options?: { abortSignal?: AbortSignal }) => {
      switch (command.constructor.name) {
        case 'CreateQueueCommand':
          return Promise.resolve({ QueueUrl: 'https://sqs/q' });
        case 'ReceiveMessageCommand':
          receives++;
          return new Promise((resolve, reject) => {
            const answer = (bodies: string[]) =>
              resolve({ Messages: bodies.map((Body, i) => ({ Body, MessageId: String(i) })) });
            const next = answers.shift();
            if (next) answer(next);
            else waiting = answer;
            options?.abortSignal?.addEventListener('abort', () => reject(new Error('aborted')));
          });
        default:
          return Promise.resolve({});
      }
    },
  } as unknown as SQSClient;
  const deliver = (...bodies: string[]) => {
    const answer = waiting;
    waiting = undefined;
    if (answer) answer(bodies);
    else answers.push(bodies);
  };
  return { client, deliver, receives: () => receives };
}

/** A notice naming task `<sessionId>_0` (no outcome). */
function named(sessionId: string): string {
  return noticeBodies(sessionId, [{ taskId: `${sessionId}_0` }])[0]!;
}

/** The notice of task `s_0`, succeeded with a result of `text`. */
function notice(text: string): string {
  const outcome = noticeOutcomeOf(terminalTaskItem('s_0', 2, { result: { inline: JSON.stringify(text) } }));
  const [body] = noticeBodies('s', [{ taskId: 's_0', outcome }]);
  return body!;
}

/** What a client kept of the notice `body` with at most `maxCarriedBytes` of outcomes. */
async function keptOf(body: string, maxCarriedBytes: number) {
  const queue = new CompletionNoticeQueue({ client: fakeSqs([body]), namePrefix: 'p-', maxCarriedBytes });
  try {
    expect(await queue.waitForChange(queue.version, 10_000)).toBe(true);
    return queue.takeNoticed('s').map((t) => [t.taskId, t.outcome !== undefined]);
  } finally {
    await queue.close();
  }
}

describe('CompletionNoticeQueue', () => {
  it('keeps the outcomes notices carried while their UTF-8 bytes fit its bound, else the tasks by name only', async () => {
    // 3 bytes in UTF-8 each, one UTF-16 character: a count of characters would take a third of the bytes.
    const body = notice('€'.repeat(2000));
    const bytes = Buffer.byteLength(body);
    expect(body.length).toBeLessThan(bytes / 2);

    expect(await keptOf(body, bytes)).toEqual([['s_0', true]]);
    expect(await keptOf(body, bytes - 1)).toEqual([['s_0', false]]);
  });

  it("ends a wait for one session's results on that session's notice, not on another session's", async () => {
    const sqs = scriptedSqs();
    const queue = new CompletionNoticeQueue({ client: sqs.client, namePrefix: 'p-' });
    try {
      let ended: boolean | undefined;
      const since = queue.version;
      const wait = queue.waitForChange(since, 60_000, undefined, 'a').then((woken) => (ended = woken));
      const anyChange = queue.waitForChange(since, 60_000);

      sqs.deliver(named('b'));
      await waitFor(() => queue.version > since, 10_000, "b's notice received");
      expect(await anyChange).toBe(true);
      expect(ended).toBeUndefined();
      // Kept for b's reader all the same.
      expect(queue.takeNoticed('b')).toEqual([{ taskId: 'b_0' }]);

      sqs.deliver(named('a'));
      await wait;
      expect(ended).toBe(true);
      expect(queue.takeNoticed('a')).toEqual([{ taskId: 'a_0' }]);
      // Long-polled on for a's notice after b's, and no more once nobody waits.
      expect(sqs.receives()).toBe(2);
    } finally {
      await queue.close();
    }
  });

  it("a wait for a session whose notice came after the reader read the version ends at once; another session's does not end it", async () => {
    const sqs = scriptedSqs();
    const queue = new CompletionNoticeQueue({ client: sqs.client, namePrefix: 'p-' });
    // A reader of a session that hears nothing keeps the queue long-polled meanwhile.
    const stop = new AbortController();
    const background = queue.waitForChange(queue.version, 60_000, stop.signal, 'z');
    try {
      const beforeA = queue.version;
      sqs.deliver(named('a'));
      await waitFor(() => queue.version > beforeA, 10_000, "a's notice received");
      const beforeB = queue.version;
      sqs.deliver(named('b'));
      await waitFor(() => queue.version > beforeB, 10_000, "b's notice received");

      expect(await queue.waitForChange(beforeA, 60_000, undefined, 'a')).toBe(true);
      expect(await queue.waitForChange(beforeB, 0, undefined, 'a')).toBe(false);
      expect(await queue.waitForChange(beforeB, 0)).toBe(true);

      // Past the sessions it remembers, a session's wait since before its notice still ends at once.
      const beforeMany = queue.version;
      sqs.deliver(...Array.from({ length: 1100 }, (_, i) => named(`s${i}`)));
      await waitFor(() => queue.version > beforeMany, 10_000, 'the many notices received');
      expect(await queue.waitForChange(beforeA, 60_000, undefined, 'a')).toBe(true);
      expect(await queue.waitForChange(queue.version, 0, undefined, 'a')).toBe(false);
    } finally {
      stop.abort();
      expect(await background).toBe(false);
      await queue.close();
    }
  });
});
