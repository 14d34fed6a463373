// Secure defaults shared by the grid's buckets: encryption, TLS only, no public access, owner-enforced objects.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';

/** Props every grid bucket accepts. */
export interface SecureBucketProps {
  /**
   * What happens to the bucket when the stack is deleted.
   *
   * `DESTROY` also empties the bucket first (an auto-delete custom resource is added).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Bucket that receives the server access logs.
   * @default - no access logs (suppressed in cdk-nag with a reason: CloudTrail data events cover audit needs)
   */
  readonly serverAccessLogsBucket?: s3.IBucket;
  /**
   * Prefix of the access log objects in `serverAccessLogsBucket`.
   * @default - the construct path
   */
  readonly serverAccessLogsPrefix?: string;
}

/** Creates a bucket with the grid's secure defaults; `extra` is merged last (it may add, not weaken, settings). */
export function createSecureBucket(
  scope: Construct,
  id: string,
  props: SecureBucketProps,
  extra: Partial<s3.BucketProps> = {},
): s3.Bucket {
  const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
  const bucket = new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy,
    autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    serverAccessLogsBucket: props.serverAccessLogsBucket,
    serverAccessLogsPrefix: props.serverAccessLogsBucket
      ? (props.serverAccessLogsPrefix ?? `${scope.node.path}/`)
      : undefined,
    ...extra,
  });
  if (!props.serverAccessLogsBucket) {
    NagSuppressions.addResourceSuppressions(bucket, [
      {
        id: 'AwsSolutions-S1',
        reason:
          'Access logs are opt-in (serverAccessLogsBucket): the grid writes millions of small objects and access logs would double the request bill; CloudTrail data events cover audit needs.',
      },
    ]);
  }
  return bucket;
}
