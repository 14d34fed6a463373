// An HTTP proxy in front of one emulator that reads each AWS call (caller from the SigV4 access key, action and
// resource from the request), refuses what the template's policies do not allow exactly as AWS answers a denial, and
// forwards the rest. It also smooths two emulator gaps: S3 `aws-chunked` bodies (s3rver stores them verbatim) and
// the host of SQS queue URLs (the emulator names its own port).
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AccessLedger, Denial } from '../iam/access-ledger';
import { accessKeyOf, requestActions, type ArnParts, type AwsService, type WireRequest } from '../iam/request-actions';

export interface RecordingProxyOptions {
  readonly service: AwsService;
  /** Address to listen on. */
  readonly host: string;
  /** The emulator behind it (`http://127.0.0.1:port`); none for STS, which the proxy answers itself. */
  readonly upstream?: string;
  readonly ledger: AccessLedger;
  readonly arn: ArnParts;
  /** S3: the access key the emulator accepts (s3rver checks the key id, not V4 signatures). */
  readonly upstreamAccessKeyId?: string;
  /** A request the proxy itself could not handle (answered 502). */
  readonly onError?: (error: unknown, request: string) => void;
  /** STS: answers for GetCallerIdentity / AssumeRole. */
  readonly sts?: (action: string, accessKeyId: string | undefined, params: URLSearchParams) => string;
}

export class RecordingProxy {
  private readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  private origin = '';

  private constructor(private readonly options: RecordingProxyOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        // A caller that hung up (an aborted long poll) is no proxy failure.
        if (!res.destroyed) options.onError?.(error, `${options.service} ${req.method ?? ''} ${req.url ?? ''}`);
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`twin proxy: ${String(error)}`);
      });
    });
    this.server.keepAliveTimeout = 65_000;
    this.server.requestTimeout = 0;
  }

  static async start(options: RecordingProxyOptions): Promise<RecordingProxy> {
    const proxy = new RecordingProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, options.host, () => resolve());
    });
    const address = proxy.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    proxy.origin = `http://${options.host}:${port}`;
    return proxy;
  }

  /** `http://<host>:<port>`: the endpoint callers get (`AWS_ENDPOINT_URL_<SERVICE>`). */
  get endpoint(): string {
    return this.origin;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = await readAll(req);
    const headers = { ...req.headers };
    if (this.options.service === 's3' && String(headers['content-encoding'] ?? '').includes('aws-chunked')) {
      body = decodeAwsChunked(body);
      dechunkHeaders(headers, body.length);
    }
    const wire: WireRequest = {
      service: this.options.service,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers,
      body,
    };
    const actions = requestActions(wire, this.options.arn);
    const accessKeyId = accessKeyOf(wire);
    const denial = this.options.ledger.authorize(accessKeyId, actions);
    if (denial) return denied(res, this.options.service, denial, this.options.arn);
    if (this.options.service === 'sts') {
      const params = new URLSearchParams(body.toString('utf8'));
      const xml = this.options.sts?.(actions.operation, accessKeyId, params) ?? '';
      res.writeHead(200, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
      return;
    }
    await this.forward(req, res, headers, body);
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    headers: http.IncomingHttpHeaders,
    body: Buffer,
  ): Promise<void> {
    const upstream = new URL(this.options.upstream ?? '');
    const out: http.OutgoingHttpHeaders = { ...headers, host: upstream.host, 'content-length': body.length };
    if (this.options.service === 's3' && this.options.upstreamAccessKeyId && typeof out.authorization === 'string') {
      out.authorization = out.authorization.replace(
        /Credential=[^/]+\//,
        `Credential=${this.options.upstreamAccessKeyId}/`,
      );
    }
    return new Promise<void>((resolve, reject) => {
      const upstreamReq = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: out,
          agent: this.agent,
        },
        (upstreamRes) => {
          void readAll(upstreamRes).then((answer) => {
            let payload = answer;
            if (this.options.service === 'sqs') {
              payload = Buffer.from(
                answer
                  .toString('utf8')
                  .split(this.options.upstream ?? '')
                  .join(this.origin),
              );
            }
            const replyHeaders = { ...upstreamRes.headers, 'content-length': String(payload.length) };
            delete replyHeaders['transfer-encoding'];
            res.writeHead(upstreamRes.statusCode ?? 502, replyHeaders);
            res.end(payload);
            resolve();
          }, reject);
        },
      );
      upstreamReq.on('error', reject);
      // The caller gave up (an aborted long poll): stop waiting upstream too.
      res.once('close', () => {
        if (!res.writableFinished) upstreamReq.destroy();
      });
      upstreamReq.end(body);
    });
  }
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** Decodes an `aws-chunked` body (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n<trailers>\r\n\r\n`). */
export function decodeAwsChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) break;
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

function dechunkHeaders(headers: http.IncomingHttpHeaders, length: number): void {
  const encodings = String(headers['content-encoding'] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e && e !== 'aws-chunked');
  if (encodings.length > 0) headers['content-encoding'] = encodings.join(',');
  else delete headers['content-encoding'];
  delete headers['x-amz-decoded-content-length'];
  delete headers['x-amz-trailer'];
  delete headers['transfer-encoding'];
  headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  headers['content-length'] = String(length);
}

/** The error each service answers a request no policy allows, in its own protocol. */
function denied(res: ServerResponse, service: AwsService, denial: Denial, arn: ArnParts): void {
  const why =
    denial.reason === 'explicit-deny'
      ? `with an explicit deny in ${denial.statement ?? 'a policy'}`
      : 'because no identity-based policy allows the action';
  const message = `User: arn:${arn.partition}:sts::${arn.account}:assumed-role/${denial.caller.replace(/\s+/g, '-')}/twin is not authorized to perform: ${denial.action} on resource: ${denial.resource} ${why}`;
  if (service === 's3') {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${escapeXml(message)}</Message></Error>`;
    res.writeHead(403, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
    res.end(xml);
    return;
  }
  const json = JSON.stringify({ __type: 'com.amazon.coral.service#AccessDeniedException', message, Message: message });
  const headers: http.OutgoingHttpHeaders = {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': Buffer.byteLength(json),
  };
  if (service === 'sqs') headers['x-amzn-query-error'] = 'AccessDenied;Sender';
  res.writeHead(400, headers);
  res.end(json);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
