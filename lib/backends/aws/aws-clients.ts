// The grid's AWS SDK clients: region and endpoints from the standard chain, and time limits on every request.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';

export interface AwsClients {
  readonly dynamodb?: DynamoDBClient;
  readonly sqs?: SQSClient;
  readonly s3?: S3Client;
}

export interface AwsClientOptions {
  readonly region?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Longest wait for a response once a request was sent. The SDK's default is none: one request whose answer never
   * comes would stall the agent's completion writes while its heartbeats keep the task's lease alive. Must exceed
   * SQS's 20 s long poll. @default 30000
   */
  readonly requestTimeoutMs?: number;
  /** Longest wait for a connection. @default 5000 */
  readonly connectionTimeoutMs?: number;
}

/**
 * SDK clients for the grid. Credentials and region come from the standard chain; endpoints from the SDK's own
 * service-specific variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_S3`, or
 * `AWS_ENDPOINT_URL` for all), which is how tests point the grid at emulators. With a custom S3 endpoint the S3
 * client uses path-style addressing and only sends checksums S3 requires (emulators reject the newer ones). A request
 * that times out fails like any transient error, and the adapters retry it with back-off.
 */
export function createAwsClients(options: AwsClientOptions = {}): Required<AwsClients> {
  return { dynamodb: newDynamoDbClient(options), sqs: newSqsClient(options), s3: newS3Client(options) };
}

export function newDynamoDbClient(options: AwsClientOptions = {}): DynamoDBClient {
  return new DynamoDBClient(commonConfig(options));
}

export function newSqsClient(options: AwsClientOptions = {}): SQSClient {
  return new SQSClient(commonConfig(options));
}

export function newS3Client(options: AwsClientOptions = {}): S3Client {
  const env = options.env ?? process.env;
  const customEndpoint = Boolean(env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL);
  return new S3Client({
    ...commonConfig(options),
    ...(customEndpoint ? { forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' as const } : {}),
  });
}

function commonConfig(options: AwsClientOptions) {
  const env = options.env ?? process.env;
  return {
    region: options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      // Without this the handler only logs a warning when the time is up, and the request waits on.
      throwOnRequestTimeout: true,
      connectionTimeout: options.connectionTimeoutMs ?? 5_000,
    },
  };
}
