// The task queues: one SQS queue per priority level plus a dead-letter queue, encrypted and TLS only.
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ConfigError } from '../core/errors';
import { EARLY_MESSAGE_RECEIVES } from '../core/task-lifecycle';

export interface TaskQueuesProps {
  /**
   * Number of priority levels; one queue each. Priorities are `0..levels-1`, higher runs first.
   * @default 3
   */
  readonly priorityLevels?: number;
  /**
   * Visibility timeout a received message gets before the agent claims it (the agent extends it while a task runs).
   * @default Duration.seconds(60)
   */
  readonly visibilityTimeout?: Duration;
  /**
   * How long an unreceived message is kept.
   * @default Duration.days(14)
   */
  readonly retentionPeriod?: Duration;
  /**
   * Receives before a message goes to the dead-letter queue. Retries are decided by the task table,
   * so this only catches messages that can never be processed (malformed, poison): a leftover message of a task whose
   * attempt runs on under a live lease is deleted, not released again and again (see `SqsDynamoDbTaskIntake`). At
   * least `MIN_MAX_RECEIVE_COUNT` (6): a message sent beside its task's write is released up to
   * `EARLY_MESSAGE_RECEIVES` (4) times while that write lands, and each of those counts.
   * @default 10
   */
  readonly maxReceiveCount?: number;
  /**
   * What happens to the queues when the stack is deleted.
   * @default RemovalPolicy.DESTROY (queues hold only pointers to tasks in the table)
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The fewest receives `TaskQueues` lets a message have before the dead-letter queue: the early receives of a message
 * sent beside its task's write (`EARLY_MESSAGE_RECEIVES`), the one that claims its task, and one reappearance (its
 * agent died before extending the lease, and another reaps the attempt).
 */
export const MIN_MAX_RECEIVE_COUNT = EARLY_MESSAGE_RECEIVES + 2;

/** One SQS queue per priority level (SSE-SQS, TLS only) and a shared dead-letter queue. */
export class TaskQueues extends Construct {
  /** The queues, indexed by priority level (index 0 = lowest priority). */
  readonly queues: readonly sqs.IQueue[];
  /** The dead-letter queue of every priority queue. */
  readonly deadLetterQueue: sqs.IQueue;

  constructor(scope: Construct, id: string, props: TaskQueuesProps = {}) {
    super(scope, id);
    const levels = props.priorityLevels ?? 3;
    const maxReceiveCount = props.maxReceiveCount ?? 10;
    const issues: string[] = [];
    if (!Number.isInteger(levels) || levels < 1 || levels > 10) {
      issues.push(`TaskQueues priorityLevels: ${levels} must be a whole number from 1 to 10`);
    }
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < MIN_MAX_RECEIVE_COUNT || maxReceiveCount > 1000) {
      issues.push(
        `TaskQueues maxReceiveCount: ${maxReceiveCount} must be a whole number from ${MIN_MAX_RECEIVE_COUNT} to ` +
          `1000: a message sent beside its task's write may be received ${EARLY_MESSAGE_RECEIVES} times before the ` +
          'task exists (each release counts as a receive), then once to claim it and once more if its agent dies; ' +
          'leave it out for the default 10',
      );
    }
    const visibility = props.visibilityTimeout ?? Duration.seconds(60);
    if (visibility.toSeconds() > 43_200) {
      issues.push(`TaskQueues visibilityTimeout: ${visibility.toSeconds()}s exceeds SQS's 12 h maximum`);
    }
    if (issues.length > 0) throw new ConfigError(issues);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    const retentionPeriod = props.retentionPeriod ?? Duration.days(14);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    const queues: sqs.IQueue[] = [];
    for (let level = 0; level < levels; level++) {
      queues.push(
        new sqs.Queue(this, `Priority${level}`, {
          encryption: sqs.QueueEncryption.SQS_MANAGED,
          enforceSSL: true,
          visibilityTimeout: visibility,
          retentionPeriod,
          receiveMessageWaitTime: Duration.seconds(20),
          deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
          removalPolicy,
        }),
      );
    }
    this.queues = queues;
  }

  /** Queue URLs, lowest priority first (the order `HTCGRID_QUEUE_URLS` uses). */
  get queueUrls(): string[] {
    return this.queues.map((q) => q.queueUrl);
  }

  /** Send to every priority queue (clients submitting tasks; the reaper re-queueing them). */
  grantSend(grantee: iam.IGrantable): iam.Grant {
    return combineGrants(this.queues.map((q) => q.grantSendMessages(grantee)));
  }

  /** Receive, delete and change visibility on every priority queue (agents). */
  grantConsume(grantee: iam.IGrantable): iam.Grant {
    return combineGrants(this.queues.map((q) => q.grantConsumeMessages(grantee)));
  }

  /** Queued plus in-flight messages over all priority levels: the grid's backlog, as scaling reads it. */
  metricBacklog(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    const metrics: Record<string, cloudwatch.IMetric> = {};
    this.queues.forEach((q, i) => {
      metrics[`visible${i}`] = q.metric('ApproximateNumberOfMessagesVisible', { statistic: 'Maximum', ...props });
      metrics[`inflight${i}`] = q.metric('ApproximateNumberOfMessagesNotVisible', { statistic: 'Maximum', ...props });
    });
    return new cloudwatch.MathExpression({
      expression: Object.keys(metrics)
        .map((id) => `FILL(${id}, 0)`)
        .join(' + '),
      usingMetrics: metrics,
      label: 'Queued + in-flight tasks',
      period: props.period ?? Duration.minutes(1),
    });
  }

  /** Messages waiting, summed over all priority levels. */
  metricVisible(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return this.sumOver('ApproximateNumberOfMessagesVisible', 'visible', props);
  }

  /** Messages received and not yet deleted (running or being claimed), summed over all priority levels. */
  metricInFlight(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return this.sumOver('ApproximateNumberOfMessagesNotVisible', 'inflight', props);
  }

  /** Age of the oldest waiting message, the maximum over all priority levels. */
  metricOldestMessageAge(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    const metrics = Object.fromEntries(
      this.queues.map((q, i) => [`age${i}`, q.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', ...props })]),
    );
    return new cloudwatch.MathExpression({
      expression: `MAX([${Object.keys(metrics).join(',')}])`,
      usingMetrics: metrics,
      label: 'Oldest message age (s)',
      period: props.period ?? Duration.minutes(1),
    });
  }

  /** Messages sent, summed over all priority levels (submission throughput). */
  metricSent(props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    const metrics = Object.fromEntries(
      this.queues.map((q, i) => [`sent${i}`, q.metricNumberOfMessagesSent({ statistic: 'Sum', ...props })]),
    );
    return new cloudwatch.MathExpression({
      expression: Object.keys(metrics).join('+'),
      usingMetrics: metrics,
      label: 'Tasks enqueued',
      period: props.period ?? Duration.minutes(1),
    });
  }

  private sumOver(metricName: string, prefix: string, props: cloudwatch.MetricOptions): cloudwatch.IMetric {
    const metrics = Object.fromEntries(
      this.queues.map((q, i) => [`${prefix}${i}`, q.metric(metricName, { statistic: 'Maximum', ...props })]),
    );
    return new cloudwatch.MathExpression({
      expression: Object.keys(metrics).join('+'),
      usingMetrics: metrics,
      label: metricName,
      period: props.period ?? Duration.minutes(1),
    });
  }
}

/** One grant standing for several (each queue grants on its own). */
function combineGrants(grants: readonly iam.Grant[]): iam.Grant {
  return grants.slice(1).reduce((all, grant) => all.combine(grant), grants[0]!);
}
