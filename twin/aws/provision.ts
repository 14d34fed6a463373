// Creates the template's tables, queues and buckets on the emulators from the template's own properties, as
// CloudFormation would create them in AWS; properties the emulators cannot model are listed, not dropped silently.
import {
  CreateTableCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { resourcesOfType, text } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';

export interface AdminClients {
  readonly dynamodb: DynamoDBClient;
  readonly sqs: SQSClient;
  readonly s3: S3Client;
}

export interface ProvisionReport {
  readonly tables: string[];
  readonly queues: string[];
  readonly buckets: string[];
  /** `<logicalId>.<property>: why` for properties the emulators do not model. */
  readonly notModelled: string[];
}

const TABLE_PROPS_NOT_MODELLED = [
  'PointInTimeRecoverySpecification',
  'SSESpecification',
  'WarmThroughput',
  'DeletionProtectionEnabled',
  'ContributorInsightsSpecification',
  'Tags',
];
const QUEUE_ATTRIBUTES = [
  'DelaySeconds',
  'MaximumMessageSize',
  'MessageRetentionPeriod',
  'ReceiveMessageWaitTimeSeconds',
  'VisibilityTimeout',
  'FifoQueue',
  'ContentBasedDeduplication',
  'SqsManagedSseEnabled',
];

export async function provisionServices(stack: DeployedStack, clients: AdminClients): Promise<ProvisionReport> {
  const report: ProvisionReport = { tables: [], queues: [], buckets: [], notModelled: [] };
  for (const [logicalId] of resourcesOfType(stack.template, 'AWS::DynamoDB::Table')) {
    const props = stack.properties(logicalId);
    const input = tableInput(String(stack.ref(logicalId, logicalId)), props);
    await clients.dynamodb.send(new CreateTableCommand(input));
    const ttl = props.TimeToLiveSpecification as { AttributeName?: string; Enabled?: boolean } | undefined;
    if (ttl?.Enabled && ttl.AttributeName) {
      await clients.dynamodb.send(
        new UpdateTimeToLiveCommand({
          TableName: input.TableName,
          TimeToLiveSpecification: { AttributeName: ttl.AttributeName, Enabled: true },
        }),
      );
    }
    for (const key of TABLE_PROPS_NOT_MODELLED) {
      if (key in props) report.notModelled.push(`${logicalId}.${key}: not modelled by DynamoDB Local`);
    }
    report.tables.push(input.TableName!);
  }
  // Dead-letter queues first: a queue's RedrivePolicy names its target, which must exist.
  const queues = resourcesOfType(stack.template, 'AWS::SQS::Queue').sort(
    ([, a], [, b]) =>
      Number(a.Properties?.RedrivePolicy !== undefined) - Number(b.Properties?.RedrivePolicy !== undefined),
  );
  for (const [logicalId] of queues) {
    const props = stack.properties(logicalId);
    const attributes: Record<string, string> = {};
    for (const key of QUEUE_ATTRIBUTES) if (props[key] !== undefined) attributes[key] = text(props[key]);
    if (props.RedrivePolicy !== undefined) {
      attributes.RedrivePolicy =
        typeof props.RedrivePolicy === 'string' ? props.RedrivePolicy : JSON.stringify(props.RedrivePolicy);
    }
    for (const key of ['KmsMasterKeyId', 'KmsDataKeyReusePeriodSeconds', 'RedriveAllowPolicy']) {
      if (key in props) report.notModelled.push(`${logicalId}.${key}: not modelled by the SQS emulator`);
    }
    const name = String(stack.getAtt(logicalId, 'QueueName', logicalId));
    await clients.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    report.queues.push(name);
  }
  for (const [logicalId] of resourcesOfType(stack.template, 'AWS::S3::Bucket')) {
    const props = stack.properties(logicalId);
    const name = String(stack.ref(logicalId, logicalId));
    await clients.s3.send(new CreateBucketCommand({ Bucket: name }));
    for (const key of [
      'VersioningConfiguration',
      'LifecycleConfiguration',
      'BucketEncryption',
      'PublicAccessBlockConfiguration',
      'OwnershipControls',
    ]) {
      if (key in props) report.notModelled.push(`${logicalId}.${key}: not modelled by s3rver`);
    }
    report.buckets.push(name);
  }
  return report;
}

/** CreateTable input from an AWS::DynamoDB::Table's properties. */
export function tableInput(tableName: string, props: Record<string, unknown>): CreateTableCommandInput {
  const billingMode = (props.BillingMode as string | undefined) ?? 'PROVISIONED';
  const throughput = (p: unknown) =>
    billingMode === 'PAY_PER_REQUEST'
      ? undefined
      : ((p as CreateTableCommandInput['ProvisionedThroughput']) ?? { ReadCapacityUnits: 5, WriteCapacityUnits: 5 });
  const indexes = (props.GlobalSecondaryIndexes ?? []) as Record<string, unknown>[];
  const locals = (props.LocalSecondaryIndexes ?? []) as Record<string, unknown>[];
  return {
    TableName: tableName,
    BillingMode: billingMode as CreateTableCommandInput['BillingMode'],
    KeySchema: props.KeySchema as CreateTableCommandInput['KeySchema'],
    AttributeDefinitions: props.AttributeDefinitions as CreateTableCommandInput['AttributeDefinitions'],
    ProvisionedThroughput: throughput(props.ProvisionedThroughput),
    GlobalSecondaryIndexes:
      indexes.length === 0
        ? undefined
        : indexes.map((i) => ({
            IndexName: i.IndexName as string,
            KeySchema: i.KeySchema as NonNullable<CreateTableCommandInput['KeySchema']>,
            Projection: i.Projection as NonNullable<
              CreateTableCommandInput['GlobalSecondaryIndexes']
            >[number]['Projection'],
            ProvisionedThroughput: throughput(i.ProvisionedThroughput),
          })),
    LocalSecondaryIndexes:
      locals.length === 0
        ? undefined
        : (locals as unknown as NonNullable<CreateTableCommandInput['LocalSecondaryIndexes']>),
  };
}
