// The worker bucket: holds worker zips; its name reaches the compute plane as S3_LAMBDA_HTCGRID_BUCKET_NAME.
import { Duration } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ConfigError } from '../core/errors';
import { createSecureBucket, type SecureBucketProps } from './secure-bucket';

export interface WorkerBucketProps extends SecureBucketProps {
  /**
   * How long a superseded version of a zip (overwritten or deleted) is kept before it expires. Each deployed zip has
   * a key of its own that stays, so the current zip and the previous ones a rollback needs are never expired.
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiry?: Duration;
}

/** Versioned S3 bucket for worker zips (HTC-Grid's "lambda layer" bucket): SSE-S3, TLS only, no public access. */
export class WorkerBucket extends Construct {
  /** The bucket. */
  readonly bucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: WorkerBucketProps = {}) {
    super(scope, id);
    const expiry = props.noncurrentVersionExpiry ?? Duration.days(30);
    if (expiry.toDays({ integral: false }) < 1 || !Number.isInteger(expiry.toDays({ integral: false }))) {
      throw new ConfigError([`WorkerBucket noncurrentVersionExpiry: use a whole number of days, at least 1`]);
    }
    this.bucket = createSecureBucket(this, 'Bucket', props, {
      versioned: true,
      lifecycleRules: [
        { id: 'ExpireSupersededZips', noncurrentVersionExpiration: expiry, expiredObjectDeleteMarker: true },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
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
