// The data plane: an S3 bucket for task payloads and results too big to travel inline.
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ConfigError } from '../core/errors';
import { createSecureBucket, type SecureBucketProps } from './secure-bucket';

export interface DataPlaneBucketProps extends SecureBucketProps {
  /**
   * Days after which payload and result objects are deleted.
   *
   * Results are meant to be collected by the client soon after the session ends.
   * @default 30
   */
  readonly expiryDays?: number;
  /**
   * Key prefix under which the grid stores payloads and results; IAM grants are scoped to it.
   * @default 'data/'
   */
  readonly prefix?: string;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * Whole days of a retention period (at least 1): S3 lifecycle rules count in days, from each object's creation. A
 * result object is written when its task finishes, as the table's TTL counts; a payload object when the task is
 * submitted, so a task must start within that many days of its submission.
 */
export function expiryDaysOf(retentionMs: number): number {
  return Math.max(1, Math.ceil(retentionMs / DAY_MS));
}

/** S3 bucket for large payloads and results: SSE-S3, TLS only, no public access, lifecycle expiry. */
export class DataPlaneBucket extends Construct {
  /** The bucket. */
  readonly bucket: s3.IBucket;
  /** Key prefix of the grid's objects (ends with `/`). */
  readonly prefix: string;
  /** Days after which objects expire. */
  readonly expiryDays: number;

  constructor(scope: Construct, id: string, props: DataPlaneBucketProps = {}) {
    super(scope, id);
    this.expiryDays = props.expiryDays ?? 30;
    if (!Number.isInteger(this.expiryDays) || this.expiryDays < 1) {
      throw new ConfigError([`DataPlaneBucket expiryDays: ${this.expiryDays} is not a whole number of days >= 1`]);
    }
    this.prefix = props.prefix ?? 'data/';
    if (this.prefix !== '' && !this.prefix.endsWith('/')) {
      throw new ConfigError([`DataPlaneBucket prefix: "${this.prefix}" must end with "/" (e.g. "data/")`]);
    }
    this.bucket = createSecureBucket(this, 'Bucket', props, {
      lifecycleRules: [
        { id: 'ExpireResults', expiration: Duration.days(this.expiryDays) },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }

  /** Read and write (get, put, delete, list) on the grid's prefix: what agents and clients need. */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return grantDataPrefix(this.bucket, grantee, this.prefix, true);
  }

  /** Read only (get, list) on the grid's prefix. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return grantDataPrefix(this.bucket, grantee, this.prefix, false);
  }
}

/**
 * Object actions on `prefix*` only, plus listing restricted to that prefix (so a missing object reads as
 * "not found", not "access denied"). Narrower than `IBucket.grantReadWrite`: no ACL, retention or tagging actions.
 */
export function grantDataPrefix(
  bucket: s3.IBucket,
  grantee: iam.IGrantable,
  prefix: string,
  write: boolean,
): iam.Grant {
  const objectActions = write ? ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'] : ['s3:GetObject'];
  const grant = iam.Grant.addToPrincipal({
    grantee,
    actions: objectActions,
    resourceArns: [bucket.arnForObjects(`${prefix}*`)],
  });
  const list = iam.Grant.addToPrincipal({
    grantee,
    actions: ['s3:ListBucket'],
    resourceArns: [bucket.bucketArn],
    conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
  });
  return grant.combine(list);
}
