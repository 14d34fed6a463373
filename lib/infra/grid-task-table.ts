// The grid's task table: DynamoDB (on demand, or provisioned with auto scaling), keyed by task id, with two sparse
// indexes, optionally pre-warmed for an expected peak.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { KEY_ATTRIBUTE_TYPES, TABLE_SCHEMA } from '../backends/aws/table-schema';
import { ConfigError } from '../core/errors';

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

/**
 * How the task table pays for throughput.
 *
 * - `on-demand`: per request; right for grids that sit idle or burst (the default).
 * - `provisioned`: per provisioned unit-hour, scaled by Application Auto Scaling between the bounds to keep the
 *   consumed share near `targetUtilizationPercent`; the table and both indexes scale alike. At the target
 *   utilisation a write costs ≈ $0.00065 / 3600 / 0.7 ≈ $0.26 per million instead of $0.625 on demand (us-east-1), so
 *   a grid that runs steadily pays well under half; a burst beyond the current capacity is throttled (the adapter
 *   backs off) until scaling catches up, within minutes.
 */
export type TaskTableCapacity =
  | { readonly mode: 'on-demand' }
  | {
      readonly mode: 'provisioned';
      /** Highest write capacity units of the table and of each index: at N tasks/s the table needs ≈ 3N. */
      readonly maxWriteUnits: number;
      /** @default 5 */
      readonly minWriteUnits?: number;
      /** @default maxWriteUnits / 2 */
      readonly maxReadUnits?: number;
      /** @default 5 */
      readonly minReadUnits?: number;
      /** Utilisation auto scaling aims at, 20–90. @default 70 */
      readonly targetUtilizationPercent?: number;
    };

/** Every problem with a capacity setting, phrased for the user (empty when it is valid). */
export function capacityIssues(capacity: TaskTableCapacity): string[] {
  if (capacity.mode === 'on-demand') return [];
  const issues: string[] = [];
  const units = (name: string, value: number | undefined) => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      issues.push(`task table capacity: ${name} must be a whole number of units, at least 1 (got ${value})`);
    }
  };
  units('maxWriteUnits', capacity.maxWriteUnits);
  units('minWriteUnits', capacity.minWriteUnits);
  units('maxReadUnits', capacity.maxReadUnits);
  units('minReadUnits', capacity.minReadUnits);
  if ((capacity.minWriteUnits ?? DEFAULT_MIN_UNITS) > capacity.maxWriteUnits) {
    issues.push(
      `task table capacity: minWriteUnits (${capacity.minWriteUnits ?? DEFAULT_MIN_UNITS}) exceeds maxWriteUnits (${capacity.maxWriteUnits}): raise maxWriteUnits`,
    );
  }
  const maxRead = capacity.maxReadUnits ?? defaultMaxRead(capacity.maxWriteUnits);
  if ((capacity.minReadUnits ?? DEFAULT_MIN_UNITS) > maxRead) {
    issues.push(
      `task table capacity: minReadUnits (${capacity.minReadUnits ?? DEFAULT_MIN_UNITS}) exceeds maxReadUnits (${maxRead}): raise maxReadUnits`,
    );
  }
  const target = capacity.targetUtilizationPercent;
  if (target !== undefined && !(target >= 20 && target <= 90)) {
    issues.push(`task table capacity: targetUtilizationPercent must be between 20 and 90 (got ${target})`);
  }
  return issues;
}

const DEFAULT_MIN_UNITS = 5;
const DEFAULT_TARGET_PERCENT = 70;

/**
 * Write units a small task costs, measured on the emulators (`bench/aws-requests.ts`: 4.13 per task): on the table
 * its create, claim and completion (3); on the session index its completion entry plus a share of the per-24-tasks
 * manifests (1.13); on the lease index an entry and an exit for a task that outlives its first heartbeat (2; tasks
 * shorter than the 5 s heartbeat never enter it).
 */
export const WRITE_UNITS_PER_TASK = { table: 3, sessionIndex: 1.13, leaseIndex: 2 } as const;
/** Read units a small task costs on the table (same measurement). */
export const READ_UNITS_PER_TASK = 0.63;
/** What a new on-demand table and each of its indexes serve at once without pre-warming (AWS documentation). */
export const FRESH_TABLE_THROUGHPUT = { writeUnitsPerSecond: 4_000, readUnitsPerSecond: 12_000 } as const;

/**
 * Warm throughput for an expected peak of tasks per second: for the table and each index, the write (and read) units
 * that peak needs, where it exceeds what a fresh table serves anyway (`undefined` there: nothing to pre-warm).
 */
export function warmThroughputFor(peakTasksPerSecond: number): {
  table?: dynamodb.WarmThroughput;
  sessionIndex?: dynamodb.WarmThroughput;
  leaseIndex?: dynamodb.WarmThroughput;
} {
  const warm = (writesPerTask: number, readsPerTask = 0): dynamodb.WarmThroughput | undefined => {
    const writes = Math.ceil(peakTasksPerSecond * writesPerTask);
    const reads = Math.ceil(peakTasksPerSecond * readsPerTask);
    const value = {
      ...(writes > FRESH_TABLE_THROUGHPUT.writeUnitsPerSecond ? { writeUnitsPerSecond: writes } : {}),
      ...(reads > FRESH_TABLE_THROUGHPUT.readUnitsPerSecond ? { readUnitsPerSecond: reads } : {}),
    };
    return Object.keys(value).length > 0 ? value : undefined;
  };
  return {
    table: warm(WRITE_UNITS_PER_TASK.table, READ_UNITS_PER_TASK),
    sessionIndex: warm(WRITE_UNITS_PER_TASK.sessionIndex),
    leaseIndex: warm(WRITE_UNITS_PER_TASK.leaseIndex),
  };
}

function defaultMaxRead(maxWriteUnits: number): number {
  return Math.max(DEFAULT_MIN_UNITS, Math.ceil(maxWriteUnits / 2));
}

export interface GridTaskTableProps {
  /**
   * How the table pays for throughput (see `TaskTableCapacity`).
   * @default { mode: 'on-demand' }
   */
  readonly capacity?: TaskTableCapacity;
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
  /**
   * Tasks per second the grid should sustain from its first minute. A new on-demand table serves 4,000 write units
   * per second (about 1,000 tasks/s at 4 write units a task) until DynamoDB has seen a higher peak, doubling at most
   * every 30 minutes; this pre-warms the table and its indexes for the given peak instead (a one-time charge, see
   * the README). Ignored where the peak needs no more than a fresh table serves.
   * @default - not pre-warmed
   */
  readonly peakTasksPerSecond?: number;
}

/**
 * DynamoDB task table: `task_id` key, sparse session and lease indexes, TTL, PITR, AWS-managed encryption; on demand
 * unless `capacity` says otherwise.
 */
export class GridTaskTable extends Construct {
  /** The table. */
  readonly table: dynamodb.ITable;
  /** Name of the session index (session → state). */
  readonly sessionIndexName: string = TASK_TABLE_SCHEMA.sessionIndex.name;
  /** Name of the sparse lease index (running tasks by lease expiry). */
  readonly leaseIndexName: string = TASK_TABLE_SCHEMA.leaseIndex.name;

  constructor(scope: Construct, id: string, props: GridTaskTableProps = {}) {
    super(scope, id);
    const s = TASK_TABLE_SCHEMA;
    const capacity = props.capacity ?? { mode: 'on-demand' };
    const issues = capacityIssues(capacity);
    const peak = props.peakTasksPerSecond;
    if (peak !== undefined && !(peak > 0 && Number.isFinite(peak))) {
      issues.push(`peak_tasks_per_sec: ${peak} must be a positive number of tasks per second`);
    }
    if (issues.length > 0) throw new ConfigError(issues);
    const warm = peak === undefined ? {} : warmThroughputFor(peak);
    const provisioned = capacity.mode === 'provisioned' ? capacity : undefined;
    const min = {
      write: provisioned?.minWriteUnits ?? DEFAULT_MIN_UNITS,
      read: provisioned?.minReadUnits ?? DEFAULT_MIN_UNITS,
    };
    // Provisioned tables start at their minimum; auto scaling raises them from there.
    const units = provisioned ? { readCapacity: min.read, writeCapacity: min.write } : {};
    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: s.partitionKey, type: attributeType(s.partitionKey) },
      billingMode: provisioned ? dynamodb.BillingMode.PROVISIONED : dynamodb.BillingMode.PAY_PER_REQUEST,
      ...units,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      timeToLiveAttribute: s.ttlAttribute,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      ...(warm.table ? { warmThroughput: warm.table } : {}),
    });
    for (const [index, indexWarm] of [
      [s.sessionIndex, warm.sessionIndex],
      [s.leaseIndex, warm.leaseIndex],
    ] as const) {
      table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: attributeType(index.partitionKey) },
        sortKey: { name: index.sortKey, type: attributeType(index.sortKey) },
        ...projection(index),
        ...units,
        ...(indexWarm ? { warmThroughput: indexWarm } : {}),
      });
    }
    if (provisioned) {
      const utilization = {
        targetUtilizationPercent: provisioned.targetUtilizationPercent ?? DEFAULT_TARGET_PERCENT,
      };
      const write = { minCapacity: min.write, maxCapacity: provisioned.maxWriteUnits };
      const read = {
        minCapacity: min.read,
        maxCapacity: provisioned.maxReadUnits ?? defaultMaxRead(provisioned.maxWriteUnits),
      };
      table.autoScaleWriteCapacity(write).scaleOnUtilization(utilization);
      table.autoScaleReadCapacity(read).scaleOnUtilization(utilization);
      for (const index of [s.sessionIndex.name, s.leaseIndex.name]) {
        table.autoScaleGlobalSecondaryIndexWriteCapacity(index, write).scaleOnUtilization(utilization);
        table.autoScaleGlobalSecondaryIndexReadCapacity(index, read).scaleOnUtilization(utilization);
      }
    }
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
