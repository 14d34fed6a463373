// Partial failures of AWS batch calls: a batch that succeeds as a call but reports some entries `Failed`. No
// emulator produces these, so a scripted client stands in for exactly that fault (the team rule: mock only faults
// no emulator produces); everything else about the adapters is tested against the emulators.
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { S3PayloadStore, SqsTaskQueue } from '../../../lib/backends/aws';
import type { QueueMessage } from '../../../lib/ports';

type Input = { QueueUrl?: string; Entries?: Array<{ Id: string; MessageBody?: string; ReceiptHandle?: string }> };

/** An SQS client that answers each call with the next scripted output and records what it was asked. */
function scriptedSqs(outputs: unknown[]): { client: SQSClient; calls: Array<{ name: string; input: Input }> } {
  const calls: Array<{ name: string; input: Input }> = [];
  const client = {
    send: async (command: { constructor: { name: string }; input: Input }) => {
      calls.push({ name: command.constructor.name, input: command.input });
      if (outputs.length === 0) throw new Error(`unexpected ${command.constructor.name}`);
      return outputs.shift();
    },
    destroy: () => undefined,
  };
  return { client: client as unknown as SQSClient, calls };
}

const noWait = { sleep: async () => undefined };
const URL = 'https://sqs.us-east-1.amazonaws.com/000000000000/q';

function message(i: number): QueueMessage {
  return { taskId: `s_${i}`, sessionId: 's', attempt: 0, priority: 0 };
}

describe('SqsTaskQueue on partial batch failures', () => {
  it('SendMessageBatch: sends again exactly the entries reported Failed by a server fault', async () => {
    const { client, calls } = scriptedSqs([
      { Successful: [{ Id: '0' }, { Id: '2' }], Failed: [{ Id: '1', SenderFault: false, Code: 'InternalError' }] },
      { Successful: [{ Id: '1' }], Failed: [] },
    ]);
    const queue = new SqsTaskQueue({ queueUrls: [URL], client, retry: noWait });

    await queue.send([message(0), message(1), message(2)]);

    expect(calls.map((c) => c.name)).toEqual(['SendMessageBatchCommand', 'SendMessageBatchCommand']);
    expect(calls[0]!.input.Entries).toHaveLength(3);
    expect(calls[1]!.input.Entries!.map((e) => JSON.parse(e.MessageBody!).taskId)).toEqual(['s_1']);
  });

  it('SendMessageBatch: an entry still failing after maxAttempts rounds is an error, not a silent loss', async () => {
    const failing = { Failed: [{ Id: '0', SenderFault: false, Code: 'InternalError' }] };
    const { client, calls } = scriptedSqs([failing, failing, failing]);
    const queue = new SqsTaskQueue({ queueUrls: [URL], client, retry: { ...noWait, maxAttempts: 3 } });

    await expect(queue.send([message(0)])).rejects.toThrow(/SendMessageBatch: 1 entries still failing after 3 tries/);
    expect(calls).toHaveLength(3);
  });

  it('DeleteMessageBatch: retries a server fault, drops a receipt already gone, and fails on another sender fault', async () => {
    const { client, calls } = scriptedSqs([
      {
        Successful: [{ Id: '0' }],
        Failed: [
          { Id: '1', SenderFault: false, Code: 'InternalError' },
          { Id: '2', SenderFault: true, Code: 'ReceiptHandleIsInvalid' },
        ],
      },
      { Successful: [{ Id: '0' }], Failed: [] },
      { Failed: [{ Id: '0', SenderFault: true, Code: 'AccessDenied', Message: 'not allowed' }] },
    ]);
    const queue = new SqsTaskQueue({ queueUrls: [URL], client, retry: noWait });

    await queue.ack(['0:a', '0:b', '0:c']);
    const denied = queue.ack(['0:d']);

    await expect(denied).rejects.toThrow(/DeleteMessageBatch rejected an entry: AccessDenied: not allowed/);
    expect(calls.map((c) => c.input.Entries!.map((e) => e.ReceiptHandle))).toEqual([['a', 'b', 'c'], ['b'], ['d']]);
  });
});

describe('S3PayloadStore on DeleteObjects errors', () => {
  it('ignores keys already gone, and fails naming a key S3 could not delete', async () => {
    const asked: Array<{ Delete?: { Objects?: Array<{ Key?: string }> } }> = [];
    const outputs: unknown[] = [
      { Deleted: [{ Key: 'p/a' }], Errors: [{ Key: 'p/b', Code: 'NoSuchKey' }] },
      { Deleted: [{ Key: 'p/c' }], Errors: [{ Key: 'p/d', Code: 'AccessDenied', Message: 'denied' }] },
    ];
    const client = {
      send: async (command: { input: (typeof asked)[number] }) => {
        asked.push(command.input);
        return outputs.shift();
      },
      destroy: () => undefined,
    } as unknown as S3Client;
    const store = new S3PayloadStore({ bucket: 'b', prefix: 'p/', client, retry: noWait });

    await store.delete(['a', 'b']);
    const denied = store.delete(['c', 'd']);

    await expect(denied).rejects.toThrow("S3 DeleteObjects failed for 1 keys, e.g. 'p/d': AccessDenied");
    expect(asked.map((input) => input.Delete?.Objects?.map((o) => o.Key))).toEqual([
      ['p/a', 'p/b'],
      ['p/c', 'p/d'],
    ]);
  });
});
