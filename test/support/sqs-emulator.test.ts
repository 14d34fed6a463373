// The SQS emulator layer against the SQS behaviours it exists for (documented in sqs-emulator.ts), checked directly
// on SQS calls, so the queue contract passes because the adapter is right, not because of the layer.
import http from 'node:http';
import { setTimeout as realDelay } from 'node:timers/promises';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  GetQueueAttributesCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from './emulators';
import { startFaithfulSqs, type FaithfulSqs } from './sqs-emulator';

let sqs: FaithfulSqs;
let client: SQSClient;
beforeAll(async () => {
  sqs = await startFaithfulSqs({ region: EMULATOR_REGION });
  client = new SQSClient({ endpoint: sqs.endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
});
afterAll(async () => {
  client?.destroy();
  await sqs?.close();
});

let counter = 0;
async function queue(): Promise<string> {
  const out = await client.send(
    new CreateQueueCommand({ QueueName: `layer-${process.pid}-${++counter}`, Attributes: { VisibilityTimeout: '30' } }),
  );
  return out.QueueUrl!;
}

async function receiveOne(queueUrl: string): Promise<Message> {
  const out = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 5,
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      // The deprecated name too, as the adapter sends it: the emulator knows only this one.
      AttributeNames: ['All'],
    }),
  );
  expect(out.Messages).toHaveLength(1);
  return out.Messages![0]!;
}

/** Makes a received message visible again at once (as a released task's message is). */
async function release(queueUrl: string, message: Message): Promise<void> {
  await client.send(
    new ChangeMessageVisibilityCommand({
      QueueUrl: queueUrl,
      ReceiptHandle: message.ReceiptHandle,
      VisibilityTimeout: 0,
    }),
  );
}

/** An SQS call over plain HTTP (the SDK sets timers of its own, which the tests below count); `abort` ends it. */
function rawCall(
  action: string,
  input: Record<string, unknown>,
): { answer: Promise<{ Messages?: Message[] }>; abort: () => void } {
  let abort = (): void => undefined;
  const answer = new Promise<{ Messages?: Message[] }>((resolve, reject) => {
    const req = http.request(
      sqs.endpoint,
      {
        method: 'POST',
        headers: { 'x-amz-target': `AmazonSQS.${action}`, 'content-type': 'application/x-amz-json-1.0' },
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(JSON.parse(body || '{}') as { Messages?: Message[] }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(input));
    abort = () => req.destroy();
  });
  return { answer, abort };
}

async function rawReceive(queueUrl: string, input: Record<string, unknown>): Promise<{ Messages?: Message[] }> {
  return rawCall('ReceiveMessage', { QueueUrl: queueUrl, ...input }).answer;
}

/** Runs `act` with the emulator's clock standing still but for the milliseconds it moves it; real timers after. */
async function withEmulatorClockStopped(act: () => Promise<void>): Promise<void> {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'Date', 'performance', 'hrtime'] });
  try {
    await act();
  } finally {
    jest.useRealTimers();
  }
}

/** The bodies of the messages a receive answered (or its error). */
function bodiesOf(answer: { Messages?: Message[] } | Error | undefined) {
  return answer instanceof Error ? answer : answer?.Messages?.map((m) => m.Body);
}

/** A queue holding one message with `body`, received once, then released and visible again. */
async function releasedMessage(body: string): Promise<{ url: string; delivered: Message }> {
  const url = await queue();
  await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
  const delivered = await receiveOne(url);
  await release(url, delivered);
  // Visible again on the emulator's next 0 ms timer.
  for (let i = 0; i < 200 && (await inFlight(url)) !== '0'; i++) await realDelay(5);
  expect(await inFlight(url)).toBe('0');
  return { url, delivered };
}

/** A count of the queue's (GetQueueAttributes), asked without the SDK's timers. */
async function countOf(queueUrl: string, attribute: string): Promise<string | undefined> {
  const out = (await rawCall('GetQueueAttributes', { QueueUrl: queueUrl, AttributeNames: [attribute] }).answer) as {
    Attributes?: Record<string, string>;
  };
  return out.Attributes?.[attribute];
}

/** The queue's messages in flight (received, not deleted, not yet visible again). */
async function inFlight(queueUrl: string): Promise<string | undefined> {
  return countOf(queueUrl, 'ApproximateNumberOfMessagesNotVisible');
}

/** Starts a long poll over plain HTTP and aborts it once the layer keeps a receive open in the emulator for it. */
async function abandonLongPoll(input: Record<string, unknown>): Promise<void> {
  const before = jest.getTimerCount();
  let layerSawClose = false;
  sqs.server.once('request', (_req: http.IncomingMessage, res: http.ServerResponse) =>
    res.once('close', () => (layerSawClose = true)),
  );
  const abandoned = rawCall('ReceiveMessage', { ...input, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 });
  abandoned.answer.catch(() => undefined);
  await until(() => jest.getTimerCount() > before);
  abandoned.abort();
  await until(() => layerSawClose);
}

/** Waits (on the real clock) until `check` holds, at most `ms`. */
async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) await realDelay(5);
}

/** A raw receive under way; `answer` is set when it is answered (or fails). */
interface PendingReceive {
  answer: { Messages?: Message[] } | Error | undefined;
}

/**
 * Starts a raw receive on the stopped clock and resolves once the emulator waits for it (its look interval and hold
 * are set), so the test then moves the clock from the receive's start.
 */
async function receiveWaiting(queueUrl: string, input: Record<string, unknown>): Promise<PendingReceive> {
  const before = jest.getTimerCount();
  const pending: PendingReceive = { answer: undefined };
  void rawReceive(queueUrl, input).then(
    (out) => (pending.answer = out),
    (err: Error) => (pending.answer = err),
  );
  await until(() => jest.getTimerCount() > before);
  return pending;
}

/** Moves the stopped clock `ms` and waits (on the real clock) for `pending`'s answer. */
async function answerAfter(pending: PendingReceive, ms: number): Promise<PendingReceive['answer']> {
  jest.advanceTimersByTime(ms);
  await until(() => pending.answer !== undefined);
  return pending.answer;
}

describe('the SQS emulator layer', () => {
  it("answers a receive asking for 10 messages with the one visible at the emulator's first look (10 ms), not after its 40 ms hold", async () => {
    const url = await queue();
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'one' }));
    // Sent messages become visible on the emulator's 0 ms timer.
    let visible = '0';
    for (let i = 0; visible !== '1' && i < 200; i++) {
      const out = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }),
      );
      visible = out.Attributes?.ApproximateNumberOfMessages ?? '0';
      if (visible !== '1') await realDelay(5);
    }
    expect(visible).toBe('1');
    // Its 40 ms hold never ends: only 10 ms pass.
    await withEmulatorClockStopped(async () => {
      // The emulator's receive has started (its look interval and its hold are set), then 10 ms pass.
      const pending = await receiveWaiting(url, { MaxNumberOfMessages: 10, WaitTimeSeconds: 0 });
      const answer = await answerAfter(pending, 10);
      expect(bodiesOf(answer)).toEqual(['one']);
    });
  }, 30_000);

  it('answers a long poll asking for 10 messages as soon as one is sent, long before its 20 s wait ends', async () => {
    const url = await queue();
    const receiving = client.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }),
    );
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'one' }));

    // The test's own timeout (10 s) is half the wait: only an early answer passes.
    expect((await receiving).Messages?.map((m) => m.Body)).toEqual(['one']);
  }, 10_000);

  it("takes a message sent to a waiting long poll as soon as the emulator made it visible, before the emulator's next look", async () => {
    const url = await queue();
    await withEmulatorClockStopped(async () => {
      // The long poll waits in the emulator (a receive's look interval and hold are set); 5 ms later a send.
      const pending = await receiveWaiting(url, { MaxNumberOfMessages: 10, WaitTimeSeconds: 5 });
      jest.advanceTimersByTime(5);
      await rawCall('SendMessage', { QueueUrl: url, MessageBody: 'sent' }).answer;
      // Visible on the emulator's 0 ms timer; the waiting receive's own next look is 10 ms after it began, 4 ms on.
      const answer = await answerAfter(pending, 1);
      expect(bodiesOf(answer)).toEqual(['sent']);
    });
  }, 30_000);

  it('takes a message released to a waiting long poll as soon as the emulator made it visible again', async () => {
    const url = await queue();
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'released' }));
    const first = await receiveOne(url);
    await withEmulatorClockStopped(async () => {
      const pending = await receiveWaiting(url, { MaxNumberOfMessages: 10, WaitTimeSeconds: 5 });
      jest.advanceTimersByTime(5);
      await rawCall('ChangeMessageVisibility', {
        QueueUrl: url,
        ReceiptHandle: first.ReceiptHandle,
        VisibilityTimeout: 0,
      }).answer;
      const answer = await answerAfter(pending, 1);
      expect(bodiesOf(answer)).toEqual(['released']);
    });
  }, 30_000);

  it('hands a message taken for a long poll whose client went away to the next receive, counted once', async () => {
    const url = await queue();
    await withEmulatorClockStopped(async () => {
      // Asking for the attributes receiveOne asks for: the message goes to a receive asking alike.
      await abandonLongPoll({
        QueueUrl: url,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        AttributeNames: ['All'],
      });
      await rawCall('SendMessage', { QueueUrl: url, MessageBody: 'unclaimed' }).answer;
      // The receive the layer kept open for it takes the message at its next look.
      jest.advanceTimersByTime(10);
      expect(await inFlight(url)).toBe('1');
    });
    const next = await receiveOne(url);
    expect(next.Body).toBe('unclaimed');
    expect(next.Attributes?.ApproximateReceiveCount).toBe('1');
  }, 30_000);

  it('counts a message taken for a long poll whose client went away nothing toward redrive: the DLQ gets it after maxReceiveCount deliveries', async () => {
    const dlq = await queue();
    const arn = await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ['QueueArn'] }));
    const created = await client.send(
      new CreateQueueCommand({
        QueueName: `layer-${process.pid}-${++counter}`,
        Attributes: {
          VisibilityTimeout: '30',
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn.Attributes?.QueueArn, maxReceiveCount: 2 }),
        },
      }),
    );
    const url = created.QueueUrl!;
    const receive = { QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 1, AttributeNames: ['All'] };
    const bodiesAndCounts = (out: { Messages?: Message[] } | Error | undefined) =>
      out instanceof Error ? out : out?.Messages?.map((m) => [m.Body, m.Attributes?.ApproximateReceiveCount]);
    await withEmulatorClockStopped(async () => {
      await abandonLongPoll(receive);
      await rawCall('SendMessage', { QueueUrl: url, MessageBody: 'unclaimed' }).answer;
      jest.advanceTimersByTime(10);
      expect(await inFlight(url)).toBe('1');
      jest.advanceTimersByTime(200);
      expect(await countOf(dlq, 'ApproximateNumberOfMessages')).toBe('0');

      // The next receive gets it, with the clock standing still: its first delivery.
      const first = await rawReceive(url, { ...receive, WaitTimeSeconds: 0 });
      expect(bodiesAndCounts(first)).toEqual([['unclaimed', '1']]);

      // Not deleted: visible again once the 1 s timeout of its take is over, and delivered a second time.
      jest.advanceTimersByTime(1000);
      const second = await answerAfter(await receiveWaiting(url, { ...receive, WaitTimeSeconds: 0 }), 10);
      expect(bodiesAndCounts(second)).toEqual([['unclaimed', '2']]);

      // Its second delivery was its maxReceiveCount-th: when that one's timeout is over, it goes to the DLQ.
      jest.advanceTimersByTime(1000);
      // The DLQ shows the message it got at its next 0 ms timer.
      jest.advanceTimersByTime(1);
      expect(await countOf(dlq, 'ApproximateNumberOfMessages')).toBe('1');
      expect(await countOf(url, 'ApproximateNumberOfMessages')).toBe('0');
    });
  }, 30_000);

  it('deletes a message taken for a long poll whose client went away by its latest delivered handle: no receive gets it after', async () => {
    const { url, delivered } = await releasedMessage('deleted');
    await withEmulatorClockStopped(async () => {
      // Its visible message is taken at the first look of the receive kept for a client that has gone.
      await abandonLongPoll({
        QueueUrl: url,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        AttributeNames: ['All'],
      });
      jest.advanceTimersByTime(10);
      expect(await inFlight(url)).toBe('1');
      // Never received again, so the handle delivered last is the latest (SQS deletes by it).
      await rawCall('DeleteMessage', { QueueUrl: url, ReceiptHandle: delivered.ReceiptHandle }).answer;
      const after = await rawReceive(url, {
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        AttributeNames: ['All'],
      });
      expect(after.Messages ?? []).toEqual([]);
    });
  }, 30_000);

  it('hands a message taken for a long poll whose client went away, then given a visibility by its latest delivered handle, to one receive only', async () => {
    const { url, delivered } = await releasedMessage('changed');
    const asked = {
      QueueUrl: url,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      AttributeNames: ['All'],
    };
    await withEmulatorClockStopped(async () => {
      await abandonLongPoll(asked);
      jest.advanceTimersByTime(10);
      expect(await inFlight(url)).toBe('1');
      // The emulator makes it visible again at its next 0 ms timer.
      await rawCall('ChangeMessageVisibility', {
        QueueUrl: url,
        ReceiptHandle: delivered.ReceiptHandle,
        VisibilityTimeout: 0,
      }).answer;
      jest.advanceTimersByTime(1);
      const answers: ({ Messages?: Message[] } | Error)[] = [];
      for (let i = 0; i < 2; i++) {
        const before = jest.getTimerCount();
        void rawReceive(url, { ...asked, WaitTimeSeconds: 0 }).then(
          (out) => answers.push(out),
          (err: Error) => answers.push(err),
        );
        // A receive the layer answers itself sets no timer; one it asks the emulator for is answered 10 ms on.
        await until(() => answers.length > i || jest.getTimerCount() > before);
        if (answers.length === i) jest.advanceTimersByTime(10);
        await until(() => answers.length > i);
      }
      expect(answers.map((a) => (a instanceof Error ? a : (a.Messages ?? []).map((m) => m.Body)))).toEqual([
        ['changed'],
        [],
      ]);
    });
  }, 30_000);

  it('counts receives only in ApproximateReceiveCount, not visibility changes', async () => {
    const url = await queue();
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'counted' }));

    const first = await receiveOne(url);
    await release(url, first);
    const second = await receiveOne(url);

    expect(first.Attributes?.ApproximateReceiveCount).toBe('1');
    expect(second.Attributes?.ApproximateReceiveCount).toBe('2');
  });

  it('succeeds on a delete with an old receipt handle but keeps the message; the latest handle deletes it', async () => {
    const url = await queue();
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'kept' }));
    const old = await receiveOne(url);
    await release(url, old);
    const latest = await receiveOne(url);

    await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: old.ReceiptHandle }));
    const batch = await client.send(
      new DeleteMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: 'old', ReceiptHandle: old.ReceiptHandle }] }),
    );
    expect(batch.Successful?.map((e) => e.Id)).toEqual(['old']);
    await release(url, latest);
    const again = await receiveOne(url);
    expect(again.MessageId).toBe(old.MessageId);

    await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: again.ReceiptHandle }));
    const empty = await client.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }));
    expect(empty.Messages ?? []).toEqual([]);
  });
});
