// The task table: DynamoDB on demand, keyed by task id, with a session index and a sparse lease index.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * The table's schema. The DynamoDB adapter (`lib/backends/aws`) must use the same names; when it exports its own
 * constants (`lib/backends/aws/table-schema.ts`), this object should be replaced by an import of them.
 */
export const TASK_TABLE_SCHEMA = {
  partitionKey: 'task_id',
  sessionIndex: { name: 'session-index', partitionKey: 'session_id', sortKey: 'task_state' },
  leaseIndex: { name: 'lease-index', partitionKey: 'lease_shard', sortKey: 'lease_expires_at' },
  ttlAttribute: 'expires_at',
} as const;

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

/** DynamoDB task table: on demand, `task_id` key, session and lease indexes, TTL, PITR, AWS-owned encryption. */
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
      partitionKey: { name: s.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      timeToLiveAttribute: s.ttlAttribute,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    table.addGlobalSecondaryIndex({
      indexName: s.sessionIndex.name,
      partitionKey: { name: s.sessionIndex.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: s.sessionIndex.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    table.addGlobalSecondaryIndex({
      indexName: s.leaseIndex.name,
      partitionKey: { name: s.leaseIndex.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: s.leaseIndex.sortKey, type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.ALL,
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
