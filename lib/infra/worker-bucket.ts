// The worker bucket: holds worker zips; its name reaches the compute plane as S3_LAMBDA_HTCGRID_BUCKET_NAME.
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { createSecureBucket, type SecureBucketProps } from './secure-bucket';

export type WorkerBucketProps = SecureBucketProps;

/** Versioned S3 bucket for worker zips (HTC-Grid's "lambda layer" bucket): SSE-S3, TLS only, no public access. */
export class WorkerBucket extends Construct {
  /** The bucket. */
  readonly bucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: WorkerBucketProps = {}) {
    super(scope, id);
    this.bucket = createSecureBucket(this, 'Bucket', props, { versioned: true });
  }

  /** Read access to the worker zips (for the init container that fetches them). */
  grantRead(grantee: iam.IGrantable, keyPattern = '*'): iam.Grant {
    return this.bucket.grantRead(grantee, keyPattern);
  }
}
