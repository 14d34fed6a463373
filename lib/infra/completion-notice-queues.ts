// The clients' completion notice queues: each client creates its own; the stack fixes their name prefix and grants.
import { Names, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * Not a resource but a name space: a client of the grid creates one SQS queue named `<namePrefix><24 characters>`
 * at its first session, receives on it the notices agents send as its tasks finish, and deletes it when it closes
 * (`CompletionNoticeQueue` in the AWS backends). Per client rather than one per grid: SQS cannot filter a shared
 * queue by receiver, and a queue costs nothing while unused (SQS bills requests; it deletes queues idle for 30 days,
 * such as those of clients that crashed).
 */
export class CompletionNoticeQueues extends Construct {
  /** The prefix of every notice queue's name (stack output `NoticeQueuePrefix`). */
  readonly namePrefix: string;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    // SQS names hold up to 80 of [A-Za-z0-9_-]; the client adds 24.
    this.namePrefix = `${Names.uniqueResourceName(this, { maxLength: 48, separator: '-' })}-`;
  }

  /** ARN matching every notice queue of this grid. */
  get queueArnPattern(): string {
    return Stack.of(this).formatArn({ service: 'sqs', resource: `${this.namePrefix}*` });
  }

  /** Agents and the reaper: send notices to the clients' queues. */
  grantSend(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: ['sqs:SendMessage'], resourceArns: [this.queueArnPattern] });
  }

  /** Clients: create their queue (with its attributes), long-poll it, delete it. */
  grantReceive(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['sqs:CreateQueue', 'sqs:SetQueueAttributes', 'sqs:ReceiveMessage', 'sqs:DeleteQueue'],
      resourceArns: [this.queueArnPattern],
    });
  }
}
