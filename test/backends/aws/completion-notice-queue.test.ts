// The client's side of completion notices on a fake SQS client: the outcomes it keeps for its readers are bounded by
// their bytes, as received.
import type { SQSClient } from '@aws-sdk/client-sqs';
import { CompletionNoticeQueue, noticeBodies, noticeOutcomeOf } from '../../../lib/backends/aws';
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
});
