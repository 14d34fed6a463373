// The port contract suites, unchanged, against the AWS adapters on DynamoDB Local, local-aws-sqs and s3rver.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDbTaskTable, S3PayloadStore, SqsDynamoDbTaskIntake, SqsTaskQueue } from '../../../lib/backends/aws';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import { EARLY_MESSAGE_GRACE_MS, EARLY_MESSAGE_RECEIVES } from '../../../lib/core/task-lifecycle';
import type { TaskQueue } from '../../../lib/ports';
import { describePayloadStoreContract } from '../../contract/payload-store.contract';
import { describeTaskIntakeContract } from '../../contract/task-intake.contract';
import { describeTaskQueueContract } from '../../contract/task-queue.contract';
import { describeTaskBrowserContract } from '../../contract/task-browser.contract';
import { describeTaskTableContract } from '../../contract/task-table.contract';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';

let emulators: Emulators;
let resources: AwsGridResources;
let clients: { dynamodb: DynamoDBClient; sqs: SQSClient; s3: S3Client };

beforeAll(async () => {
  emulators = await startEmulators();
  resources = await createGridResources(emulators);
  clients = emulators.clients();
}, 120_000);

afterAll(async () => {
  clients?.dynamodb.destroy();
  clients?.sqs.destroy();
  clients?.s3.destroy();
  await emulators?.stop();
});

describeTaskTableContract(
  'DynamoDbTaskTable on DynamoDB Local',
  async () => {
    const table = new DynamoDbTaskTable({ tableName: resources.tableName, client: clients.dynamodb });
    return { table, cleanup: () => table.close() };
  },
  // Its lease index holds a task from the first extension on (a write saved per short task).
  { reaperSeesLeasesFrom: 'extension', readsTerminalWanted: true },
);

describeTaskBrowserContract('DynamoDbTaskTable on DynamoDB Local', async () => {
  const table = new DynamoDbTaskTable({ tableName: resources.tableName, client: clients.dynamodb });
  return { table, cleanup: () => table.close() };
});

describeTaskQueueContract('SqsTaskQueue on local-aws-sqs', async () => {
  // A fresh set of queues per test: the contract wants an empty queue.
  const own = await createGridResources({ ...emulators, endpoints: { sqs: emulators.endpoints.sqs } });
  const queue = new SqsTaskQueue({ queueUrls: own.queueUrls, client: clients.sqs });
  return { queue, cleanup: () => queue.close() };
});

/**
 * An intake that sees every message as past the early-message grace: its clock `EARLY_MESSAGE_GRACE_MS` ahead, and
 * each message offered `EARLY_MESSAGE_RECEIVES` times at least (SQS's releases of 1, 2 and 4 s, not waited for here).
 */
function pastEarlyGrace(queue: SqsTaskQueue, table: DynamoDbTaskTable): SqsDynamoDbTaskIntake {
  const offeredOften: TaskQueue = Object.create(queue) as SqsTaskQueue;
  offeredOften.receive = async (max, options) =>
    (await queue.receive(max, options)).map((m) => ({
      ...m,
      receiveCount: Math.max(m.receiveCount, EARLY_MESSAGE_RECEIVES),
    }));
  return new SqsDynamoDbTaskIntake({ queue: offeredOften, table, now: () => Date.now() + EARLY_MESSAGE_GRACE_MS });
}

describeTaskIntakeContract('SqsDynamoDbTaskIntake on local-aws-sqs and DynamoDB Local', async () => {
  // Fresh queues per test (the contract counts what is left in them), the shared table.
  const own = await createGridResources({ ...emulators, endpoints: { sqs: emulators.endpoints.sqs } });
  const queue = new SqsTaskQueue({ queueUrls: own.queueUrls, client: clients.sqs });
  const table = new DynamoDbTaskTable({ tableName: resources.tableName, client: clients.dynamodb });
  return {
    table,
    queue,
    openIntake: (options) =>
      options?.pastEarlyGrace ? pastEarlyGrace(queue, table) : new SqsDynamoDbTaskIntake({ queue, table }),
    messagesLeft: async () => {
      let left = 0;
      for (const url of own.queueUrls) {
        const out = await clients.sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: [
              'ApproximateNumberOfMessages',
              'ApproximateNumberOfMessagesNotVisible',
              'ApproximateNumberOfMessagesDelayed',
            ],
          }),
        );
        for (const value of Object.values(out.Attributes ?? {})) left += Number(value);
      }
      return left;
    },
    cleanup: async () => {
      await queue.close();
      await table.close();
    },
  };
});

describePayloadStoreContract(
  'S3PayloadStore on s3rver',
  async () => {
    const store = new S3PayloadStore({ bucket: resources.dataBucket, prefix: 'contract/', client: clients.s3 });
    return { store, cleanup: () => store.close() };
  },
  // s3rver streams a PUT into the object file in place, so racing PUTs can interleave; S3 itself is atomic.
  { atomicConcurrentPuts: false },
);
