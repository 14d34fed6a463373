// Payloads and results too big to inline, in the grid's S3 data bucket (SSE on every put, optional key prefix).
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { HtcGridError } from '../../core/errors';
import { silentLogger, type Logger } from '../../logging';
import type { PayloadStore } from '../../ports';
import { chunk, mapLimit, withRetry, type RetryPolicy } from './aws-retry';
import { newS3Client } from './aws-clients';

/**
 * Where the grid's payloads and results live in the data bucket unless told otherwise; the stack's IAM grants are
 * scoped to this prefix (`DataPlaneBucket`'s default), so both must agree.
 */
export const DEFAULT_PAYLOAD_PREFIX = 'data/';

/** `get` of a key that is not in the bucket. */
export class PayloadNotFoundError extends HtcGridError {
  constructor(
    readonly bucket: string,
    readonly key: string,
    options: { cause?: unknown } = {},
  ) {
    super(`payload 's3://${bucket}/${key}' does not exist`, {
      ...options,
      hint: 'it expired (bucket lifecycle), was deleted with its session, or was never written',
    });
  }
}

export interface S3PayloadStoreOptions {
  readonly bucket: string;
  /** Prefix of every key (ends with `/`). @default DEFAULT_PAYLOAD_PREFIX ('data/') */
  readonly prefix?: string;
  /** @default - a new client from env; destroyed in `close()` only then */
  readonly client?: S3Client;
  /** Server-side encryption on put: `AES256` (S3-managed) or `aws:kms` (with `kmsKeyId` or the bucket's key). @default 'AES256' */
  readonly serverSideEncryption?: ServerSideEncryption;
  readonly kmsKeyId?: string;
  readonly logger?: Logger;
  readonly retry?: RetryPolicy;
}

/** `PayloadStore` on one S3 bucket. Keys are the grid's (`payloadKeys`) under `prefix`. */
export class S3PayloadStore implements PayloadStore {
  private readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly sse: ServerSideEncryption;
  private readonly kmsKeyId?: string;
  private readonly logger: Logger;
  private readonly retryPolicy: RetryPolicy;
  private closed = false;

  constructor(options: S3PayloadStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? DEFAULT_PAYLOAD_PREFIX;
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? newS3Client();
    this.sse = options.serverSideEncryption ?? 'AES256';
    this.kmsKeyId = options.kmsKeyId;
    this.logger = options.logger ?? silentLogger();
    this.retryPolicy = options.retry ?? {};
  }

  async put(key: string, data: string | Buffer): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await withRetry(
      `S3 PutObject ${key}`,
      () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.prefix + key,
            Body: body,
            ContentLength: body.length,
            ContentType: 'application/json',
            ServerSideEncryption: this.sse,
            SSEKMSKeyId: this.sse === 'aws:kms' ? this.kmsKeyId : undefined,
          }),
        ),
      this.retryPolicy,
    );
  }

  async get(key: string): Promise<Buffer> {
    try {
      const out = await withRetry(
        `S3 GetObject ${key}`,
        async () => {
          const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
          if (res.Body === undefined) return Buffer.alloc(0);
          return Buffer.from(await res.Body.transformToByteArray());
        },
        this.retryPolicy,
      );
      return out;
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
        throw new PayloadNotFoundError(this.bucket, this.prefix + key, { cause: error });
      }
      throw error;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await mapLimit(chunk([...new Set(keys)], 1000), 4, async (group) => {
      const out = await withRetry(
        'S3 DeleteObjects',
        () =>
          this.client.send(
            new DeleteObjectsCommand({
              Bucket: this.bucket,
              Delete: { Objects: group.map((k) => ({ Key: this.prefix + k })), Quiet: true },
            }),
          ),
        this.retryPolicy,
      );
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        this.logger.warn({ errors: errors.slice(0, 10) }, 'some payloads could not be deleted');
        throw new HtcGridError(
          `S3 DeleteObjects failed for ${errors.length} keys, e.g. '${errors[0]?.Key ?? '?'}': ${errors[0]?.Code ?? ''}`,
        );
      }
    });
  }

  /**
   * Removes every object under `prefix` (a session's `sessions/<id>/`), a listed page (up to 1,000 keys) at a time:
   * what a session's tasks no longer name goes too (a result whose finish was refused, a payload of a task the
   * session index did not show yet). Needs `s3:ListBucket` on the grid's prefix, which `DataPlaneBucket` grants.
   */
  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix.endsWith('/')) throw new HtcGridError(`payload prefix '${prefix}' must end with '/'`);
    let token: string | undefined;
    do {
      const page = await withRetry(
        'S3 ListObjectsV2',
        () =>
          this.client.send(
            new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
          ),
        this.retryPolicy,
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key.slice(this.prefix.length)] : []));
      await this.delete(keys);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.destroy();
  }
}
