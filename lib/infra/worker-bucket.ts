// The worker bucket: holds worker zips; its name reaches the compute plane as S3_LAMBDA_HTCGRID_BUCKET_NAME.
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as iam from 'aws-cdk-lib/aws-iam';
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

  /** `s3:GetObject` on the worker zips matching `keyPattern` (for the init container that fetches them). */
  grantRead(grantee: iam.IGrantable, keyPattern = '*'): iam.Grant {
    return grantGetObject(this.bucket, grantee, keyPattern);
  }
}

/** `s3:GetObject` only, on the objects matching `keyPattern`: no listing, no bucket-level reads. */
export function grantGetObject(bucket: s3.IBucket, grantee: iam.IGrantable, keyPattern: string): iam.Grant {
  return iam.Grant.addToPrincipal({
    grantee,
    actions: ['s3:GetObject'],
    resourceArns: [bucket.arnForObjects(keyPattern)],
  });
}
