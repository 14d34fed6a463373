// Which IAM actions on which resource ARNs an AWS API request needs, read from the request as the service receives
// it (DynamoDB and SQS JSON protocol targets, SQS query actions, S3 REST method and path).

export type AwsService = 'dynamodb' | 'sqs' | 's3' | 'sts';

export interface WireRequest {
  readonly service: AwsService;
  readonly method: string;
  /** Path and query, as on the request line. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** One action on one resource the request needs permission for. */
export interface ActionOnResource {
  readonly action: string;
  readonly resource: string;
}

export interface RequestActions {
  /** The API operation, e.g. `BatchWriteItem`, `DeleteMessageBatch`, `GetObject`. */
  readonly operation: string;
  readonly needs: readonly ActionOnResource[];
  /** Request-specific condition keys (`s3:prefix`, ...). */
  readonly context: Readonly<Record<string, string>>;
}

export interface ArnParts {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}

/** SQS batch operations are authorised by their single-message action. */
const SQS_ACTION_OF: Readonly<Record<string, string>> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

/** Item operations inside DynamoDB transactions, authorised one by one. */
const TRANSACT_ACTION_OF: Readonly<Record<string, string>> = {
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  ConditionCheck: 'ConditionCheckItem',
  Get: 'GetItem',
};

export function requestActions(request: WireRequest, arn: ArnParts): RequestActions {
  switch (request.service) {
    case 'dynamodb':
      return dynamoDbActions(request, arn);
    case 'sqs':
      return sqsActions(request, arn);
    case 's3':
      return s3Actions(request, arn);
    case 'sts':
      return { operation: queryParams(request).get('Action') ?? 'Unknown', needs: [], context: {} };
  }
}

function header(request: WireRequest, name: string): string | undefined {
  const v = request.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function jsonBody(request: WireRequest): Record<string, unknown> {
  try {
    return JSON.parse(request.body.toString('utf8') || '{}') as Record<string, unknown>;
  } catch {
    return {};
  }
}

function queryParams(request: WireRequest): URLSearchParams {
  const url = new URL(request.url, 'http://twin');
  const params = new URLSearchParams(url.search);
  const contentType = header(request, 'content-type') ?? '';
  if (contentType.includes('x-www-form-urlencoded')) {
    for (const [k, v] of new URLSearchParams(request.body.toString('utf8'))) params.set(k, v);
  }
  return params;
}

function dynamoDbActions(request: WireRequest, arn: ArnParts): RequestActions {
  const operation = (header(request, 'x-amz-target') ?? '').split('.')[1] ?? 'Unknown';
  const body = jsonBody(request);
  const table = (name: unknown, index?: unknown) =>
    `arn:${arn.partition}:dynamodb:${arn.region}:${arn.account}:table/${nameOf(name)}${index ? `/index/${nameOf(index)}` : ''}`;
  const needs: ActionOnResource[] = [];
  switch (operation) {
    case 'BatchGetItem':
    case 'BatchWriteItem':
      for (const name of Object.keys(body.RequestItems ?? {})) {
        needs.push({ action: `dynamodb:${operation}`, resource: table(name) });
      }
      break;
    case 'TransactWriteItems':
    case 'TransactGetItems':
      for (const item of (body.TransactItems ?? []) as Record<string, { TableName?: string }>[]) {
        for (const [kind, spec] of Object.entries(item)) {
          needs.push({ action: `dynamodb:${TRANSACT_ACTION_OF[kind] ?? kind}`, resource: table(spec.TableName) });
        }
      }
      break;
    case 'ListTables':
      needs.push({ action: 'dynamodb:ListTables', resource: '*' });
      break;
    default:
      needs.push({ action: `dynamodb:${operation}`, resource: table(body.TableName, body.IndexName) });
  }
  return { operation, needs, context: {} };
}

function sqsActions(request: WireRequest, arn: ArnParts): RequestActions {
  const target = header(request, 'x-amz-target');
  let operation: string;
  let queueUrl: string | undefined;
  let queueName: string | undefined;
  if (target) {
    operation = target.split('.')[1] ?? 'Unknown';
    const body = jsonBody(request);
    queueUrl = typeof body.QueueUrl === 'string' ? body.QueueUrl : undefined;
    queueName = typeof body.QueueName === 'string' ? body.QueueName : undefined;
  } else {
    const params = queryParams(request);
    operation = params.get('Action') ?? 'Unknown';
    queueUrl = params.get('QueueUrl') ?? undefined;
    queueName = params.get('QueueName') ?? undefined;
  }
  let account = arn.account;
  if (queueUrl) {
    const parts = new URL(queueUrl).pathname.split('/').filter(Boolean);
    queueName = parts[parts.length - 1];
    account = parts[parts.length - 2] ?? account;
  }
  const resource = queueName ? `arn:${arn.partition}:sqs:${arn.region}:${account}:${queueName}` : '*';
  return { operation, needs: [{ action: `sqs:${SQS_ACTION_OF[operation] ?? operation}`, resource }], context: {} };
}

function s3Actions(request: WireRequest, arn: ArnParts): RequestActions {
  const url = new URL(request.url, 'http://twin');
  const [bucket = '', ...rest] = url.pathname.replace(/^\//, '').split('/');
  const key = decodeURIComponent(rest.join('/'));
  const q = url.searchParams;
  const method = request.method.toUpperCase();
  const bucketArn = `arn:${arn.partition}:s3:::${decodeURIComponent(bucket)}`;
  const objectArn = `${bucketArn}/${key}`;
  const on = (action: string, resource: string) => ({ action: `s3:${action}`, resource });
  if (!bucket) return { operation: 'ListBuckets', needs: [on('ListAllMyBuckets', '*')], context: {} };
  if (!key) {
    if (method === 'GET' || method === 'HEAD') {
      if (q.has('location'))
        return { operation: 'GetBucketLocation', needs: [on('GetBucketLocation', bucketArn)], context: {} };
      if (q.has('versioning'))
        return { operation: 'GetBucketVersioning', needs: [on('GetBucketVersioning', bucketArn)], context: {} };
      if (q.has('encryption'))
        return { operation: 'GetBucketEncryption', needs: [on('GetEncryptionConfiguration', bucketArn)], context: {} };
      if (q.has('versions'))
        return {
          operation: 'ListObjectVersions',
          needs: [on('ListBucketVersions', bucketArn)],
          context: { 's3:prefix': q.get('prefix') ?? '' },
        };
      if (q.has('uploads'))
        return { operation: 'ListMultipartUploads', needs: [on('ListBucketMultipartUploads', bucketArn)], context: {} };
      const operation = method === 'HEAD' ? 'HeadBucket' : q.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
      return { operation, needs: [on('ListBucket', bucketArn)], context: { 's3:prefix': q.get('prefix') ?? '' } };
    }
    if (method === 'POST' && q.has('delete')) {
      const keys = [...request.body.toString('utf8').matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) =>
        unescapeXml(m[1] ?? ''),
      );
      return {
        operation: 'DeleteObjects',
        needs: keys.map((k) => on('DeleteObject', `${bucketArn}/${k}`)),
        context: {},
      };
    }
    if (method === 'PUT') return { operation: 'CreateBucket', needs: [on('CreateBucket', bucketArn)], context: {} };
    if (method === 'DELETE') return { operation: 'DeleteBucket', needs: [on('DeleteBucket', bucketArn)], context: {} };
  }
  switch (method) {
    case 'GET':
    case 'HEAD': {
      if (q.has('tagging'))
        return { operation: 'GetObjectTagging', needs: [on('GetObjectTagging', objectArn)], context: {} };
      const versioned = q.has('versionId');
      return {
        operation: method === 'HEAD' ? 'HeadObject' : 'GetObject',
        needs: [on(versioned ? 'GetObjectVersion' : 'GetObject', objectArn)],
        context: {},
      };
    }
    case 'PUT': {
      if (q.has('tagging'))
        return { operation: 'PutObjectTagging', needs: [on('PutObjectTagging', objectArn)], context: {} };
      const copySource = header(request, 'x-amz-copy-source');
      const needs = [on('PutObject', objectArn)];
      if (copySource) {
        const source = decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? '');
        needs.push(on('GetObject', `arn:${arn.partition}:s3:::${source}`));
      }
      const operation = q.has('uploadId') ? 'UploadPart' : copySource ? 'CopyObject' : 'PutObject';
      return { operation, needs, context: {} };
    }
    case 'POST':
      return {
        operation: q.has('uploads') ? 'CreateMultipartUpload' : 'CompleteMultipartUpload',
        needs: [on('PutObject', objectArn)],
        context: {},
      };
    case 'DELETE':
      return {
        operation: q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject',
        needs: [on(q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject', objectArn)],
        context: {},
      };
    default:
      return { operation: method, needs: [on(method, objectArn)], context: {} };
  }
}

function unescapeXml(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** The access key id of a SigV4-signed request (header or presigned query), if any. */
export function accessKeyOf(request: Pick<WireRequest, 'headers' | 'url'>): string | undefined {
  const auth = request.headers.authorization;
  const value = Array.isArray(auth) ? auth[0] : auth;
  const fromHeader = value ? /Credential=([^/,\s]+)\//.exec(value)?.[1] : undefined;
  if (fromHeader) return fromHeader;
  const credential = new URL(request.url, 'http://twin').searchParams.get('X-Amz-Credential');
  return credential?.split('/')[0];
}

/** A table or index name from a request body (a string, or absent). */
function nameOf(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
