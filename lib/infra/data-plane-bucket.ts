// The data plane: an S3 bucket for task payloads and results too big to travel inline.
import { Duration } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
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

  /** Read and write (put, get, delete) on the grid's prefix: what agents and clients need. */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    this.bucket.grantRead(grantee, `${this.prefix}*`);
    return this.bucket.grantWrite(grantee, `${this.prefix}*`);
  }

  /** Read only on the grid's prefix. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.bucket.grantRead(grantee, `${this.prefix}*`);
  }
}
