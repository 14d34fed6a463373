// Signs HTTP requests with SigV4 and the caller's usual AWS credentials (env, profile, SSO, instance role...).
import { createHash, createHmac } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Provider, SourceData } from '@smithy/types';

/** SHA-256 (or its HMAC with a key) on node:crypto, in the shape the signer takes. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

function bytes(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

export interface RequestToSign {
  readonly method: string;
  readonly url: URL;
  /** Lower-case names. `host` is set from the URL. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface RequestSignerOptions {
  readonly region: string;
  /** @default 'lambda' (a function URL with AWS_IAM auth) */
  readonly service?: string;
  /** @default - the default credential chain of the AWS SDK */
  readonly credentials?: AwsCredentialIdentity | Provider<AwsCredentialIdentity>;
}

/** Returns a function giving the headers to send: the request's own plus `authorization`, `x-amz-date`, ... */
export function requestSigner(
  options: RequestSignerOptions,
): (request: RequestToSign) => Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: options.service ?? 'lambda',
    region: options.region,
    credentials: options.credentials ?? defaultProvider(),
    sha256: NodeSha256,
  });
  return async (request) => {
    const query: Record<string, string | string[]> = {};
    for (const [key, value] of request.url.searchParams) {
      const seen = query[key];
      query[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
    }
    const signed = await signer.sign({
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      port: request.url.port === '' ? undefined : Number(request.url.port),
      path: request.url.pathname,
      query,
      headers: { ...request.headers, host: request.url.host },
      body: request.body,
    });
    return signed.headers;
  };
}
