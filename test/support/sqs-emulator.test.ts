// The SQS emulator layer against the SQS behaviours it exists for (documented in sqs-emulator.ts), checked directly
// on SQS calls, so the queue contract passes because the adapter is right, not because of the layer.
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
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

describe('the SQS emulator layer', () => {
  it('answers a long poll asking for 10 messages as soon as one is sent, long before its 20 s wait ends', async () => {
    const url = await queue();
    const receiving = client.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }),
    );
    await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'one' }));

    // The test's own timeout (10 s) is half the wait: only an early answer passes.
    expect((await receiving).Messages?.map((m) => m.Body)).toEqual(['one']);
  }, 10_000);

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
