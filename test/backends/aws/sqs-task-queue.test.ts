// SQS queue behaviour beyond the port contract, on local-aws-sqs: priority polling cost, poison messages, DLQ.
import { SendMessageCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { SqsTaskQueue } from '../../../lib/backends/aws';
import { createGridResources, deadLetterQueueUrl, startEmulators, type Emulators } from '../../support/emulators';

let emulators: Emulators;
let sqs: SQSClient;
const calls: string[] = [];

beforeAll(async () => {
  emulators = await startEmulators({ sqs: true });
  sqs = emulators.clients().sqs;
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { QueueUrl?: string };
      calls.push(`${context.commandName ?? '?'} ${input.QueueUrl?.split('-').pop() ?? ''}`);
      return next(args);
    },
    { step: 'initialize', name: 'recordCalls' },
  );
}, 60_000);

afterAll(async () => {
  sqs?.destroy();
  await emulators?.stop();
});

beforeEach(() => {
  calls.length = 0;
});

const message = (taskId: string, priority = 0) => ({ taskId, sessionId: 's', attempt: 0, priority });

describe('SqsTaskQueue on local-aws-sqs', () => {
  it('an empty higher level is polled again only after the recheck interval', async () => {
    const resources = await createGridResources(emulators, { priorityLevels: 3 });
    let now = 1_000_000;
    const queue = new SqsTaskQueue({ queueUrls: resources.queueUrls, client: sqs, now: () => now });
    await queue.send([message('a'), message('b'), message('c')]);
    calls.length = 0;

    await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });
    const first = [...calls];
    calls.length = 0;
    await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });
    const second = [...calls];
    calls.length = 0;
    now += 1_001;
    await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });
    const third = [...calls];

    expect(first).toEqual(['ReceiveMessageCommand p2', 'ReceiveMessageCommand p1', 'ReceiveMessageCommand p0']);
    expect(second).toEqual(['ReceiveMessageCommand p0']);
    expect(third).toEqual(['ReceiveMessageCommand p2', 'ReceiveMessageCommand p1', 'ReceiveMessageCommand p0']);
  });

  it('sending to a level makes this queue poll it again at once', async () => {
    const resources = await createGridResources(emulators, { priorityLevels: 2 });
    const queue = new SqsTaskQueue({ queueUrls: resources.queueUrls, client: sqs, emptyLevelRecheckMs: 60_000 });
    await queue.send([message('low', 0)]);
    await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });

    await queue.send([message('high', 1)]);
    const [got] = await queue.receive(1, { waitMs: 0, visibilityMs: 60_000 });

    expect(got?.message.taskId).toBe('high');
  });

  it('a body that is not a grid message is skipped and, after maxReceiveCount receives, lands in the DLQ', async () => {
    const resources = await createGridResources(emulators, { priorityLevels: 1, maxReceiveCount: 2 });
    const queue = new SqsTaskQueue({ queueUrls: resources.queueUrls, client: sqs });
    await sqs.send(new SendMessageCommand({ QueueUrl: resources.queueUrls[0], MessageBody: 'not json' }));

    const seen: number[] = [];
    for (let i = 0; i < 3; i++) seen.push((await queue.receive(10, { waitMs: 1000, visibilityMs: 1000 })).length);
    let dead: string | undefined;
    for (let i = 0; i < 20 && dead === undefined; i++) {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl(resources), WaitTimeSeconds: 1 }),
      );
      dead = out.Messages?.[0]?.Body;
    }

    expect(seen).toEqual([0, 0, 0]);
    expect(dead).toBe('not json');
  });
});
