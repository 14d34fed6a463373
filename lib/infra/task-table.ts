// The task table: DynamoDB on demand, keyed by task id, with a session index and a sparse lease index.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { KEY_ATTRIBUTE_TYPES, TABLE_SCHEMA } from '../backends/aws/table-schema';

/** The table's schema: the DynamoDB adapter's own constants, so infra and runtime cannot drift apart. */
export const TASK_TABLE_SCHEMA = TABLE_SCHEMA;

/** The index's projection as the adapter declares it: keys only, or keys plus named attributes. */
function projection(index: {
  readonly projectionType: string;
  readonly projectedAttributes: readonly string[];
}): Pick<dynamodb.GlobalSecondaryIndexProps, 'projectionType' | 'nonKeyAttributes'> {
  if (index.projectionType === 'KEYS_ONLY' || index.projectedAttributes.length === 0) {
    return { projectionType: dynamodb.ProjectionType.KEYS_ONLY };
  }
  if (index.projectionType === 'ALL') return { projectionType: dynamodb.ProjectionType.ALL };
  return { projectionType: dynamodb.ProjectionType.INCLUDE, nonKeyAttributes: [...index.projectedAttributes] };
}

function attributeType(name: keyof typeof KEY_ATTRIBUTE_TYPES): dynamodb.AttributeType {
  return KEY_ATTRIBUTE_TYPES[name] === 'N' ? dynamodb.AttributeType.NUMBER : dynamodb.AttributeType.STRING;
}

export interface TaskTableProps {
  /**
   * What happens to the table when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Point-in-time recovery.
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;
  /**
   * Protect the table against deletion.
   * @default false
   */
  readonly deletionProtection?: boolean;
}

/** DynamoDB task table: on demand, `task_id` key, session and sparse lease indexes, TTL, PITR, AWS-managed encryption. */
export class TaskTable extends Construct {
  /** The table. */
  readonly table: dynamodb.ITable;
  /** Name of the session index (session → state). */
  readonly sessionIndexName: string = TASK_TABLE_SCHEMA.sessionIndex.name;
  /** Name of the sparse lease index (running tasks by lease expiry). */
  readonly leaseIndexName: string = TASK_TABLE_SCHEMA.leaseIndex.name;

  constructor(scope: Construct, id: string, props: TaskTableProps = {}) {
    super(scope, id);
    const s = TASK_TABLE_SCHEMA;
    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: s.partitionKey, type: attributeType(s.partitionKey) },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      timeToLiveAttribute: s.ttlAttribute,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    table.addGlobalSecondaryIndex({
      indexName: s.sessionIndex.name,
      partitionKey: { name: s.sessionIndex.partitionKey, type: attributeType(s.sessionIndex.partitionKey) },
      sortKey: { name: s.sessionIndex.sortKey, type: attributeType(s.sessionIndex.sortKey) },
      ...projection(s.sessionIndex),
    });
    table.addGlobalSecondaryIndex({
      indexName: s.leaseIndex.name,
      partitionKey: { name: s.leaseIndex.partitionKey, type: attributeType(s.leaseIndex.partitionKey) },
      sortKey: { name: s.leaseIndex.sortKey, type: attributeType(s.leaseIndex.sortKey) },
      ...projection(s.leaseIndex),
    });
    this.table = table;
  }

  /** Item reads and writes plus index queries: what agents, clients and the reaper need (no scans, no admin). */
  grantReadWriteData(grantee: iam.IGrantable): iam.Grant {
    return this.table.grant(
      grantee,
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:TransactWriteItems',
    );
  }

  /** Item reads and index queries only. */
  grantReadData(grantee: iam.IGrantable): iam.Grant {
    return this.table.grant(grantee, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query');
  }

  /** Throttled requests on the table. */
  metricThrottledRequests(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return this.table.metric('ThrottledRequests', { statistic: 'Sum', ...props });
  }
}
