// A stand-in for the grid's Lambda function URL (AWS_IAM auth), for the tests of `htcgrid ui`'s proxy: an HTTP server
// that answers with the API handlers as the GridApi Lambda does, and botocore checking SigV4 signatures as AWS would.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import readline from 'node:readline';
import type { ApiHandlers } from '../../lib/http';
import type { FunctionUrlEvent } from '../../lib/http/lambda-adapter';
import { SYSTEM_PYTHON, systemPythonHas } from '../http/local-up';

/** A request as it reached the function URL. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface FunctionUrl {
  /** Its base URL, ending in `/`. */
  readonly url: string;
  readonly server: http.Server;
  /** Every request, in the order it arrived. */
  readonly seen: SeenRequest[];
  /** The path and status of every answer, refusals (403) included. */
  readonly answered: { path: string; status: number }[];
  close(): Promise<void>;
}

/**
 * Starts the stand-in on a free loopback port. A request `admit` refuses gets AWS's 403; the others are answered by
 * `api` as an IAM caller, and a stream ends when its caller goes (as the Lambda's does when the connection closes).
 */
export async function startFunctionUrl(
  api: ApiHandlers,
  admit: (request: SeenRequest) => Promise<boolean> = async () => true,
): Promise<FunctionUrl> {
  const seen: SeenRequest[] = [];
  const answered: { path: string; status: number }[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const url = new URL(req.url!, `http://${req.headers.host}`);
      const request = { method: req.method!, url: url.href, headers, body };
      seen.push(request);
      if (!(await admit(request))) {
        answered.push({ path: url.pathname, status: 403 });
        res.writeHead(403, { 'content-type': 'application/json' }).end('{"Message":"Forbidden"}');
        return;
      }
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const answer = await api.handle({
        method: req.method!,
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
        caller: 'iam',
        signal: gone.signal,
      });
      answered.push({ path: url.pathname, status: answer.status });
      res.writeHead(answer.status, answer.headers);
      if (typeof answer.body === 'string') res.end(answer.body);
      else {
        for await (const chunk of answer.body) res.write(chunk);
        res.end();
      }
    })();
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    server,
    seen,
    answered,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * botocore, in one long-lived process, checks each request's SigV4 signature as AWS would for lambda in `region`:
 * signed by `credentials`, within five minutes, the host header signed. Throws at once where Debian's Python has no
 * botocore.
 */
export class SignatureChecker {
  private readonly process: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<(valid: boolean) => void> = [];

  constructor(credentials: { accessKeyId: string; secretAccessKey: string }, region: string) {
    if (!systemPythonHas('botocore'))
      throw new Error(`${SYSTEM_PYTHON} has no botocore: apt-get install python3-botocore`);
    const script = `
import datetime, json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
creds = Credentials(sys.argv[1], sys.argv[2])
for line in sys.stdin:
    r = json.loads(line)
    try:
        header = r["headers"]["authorization"]
        signed = header.split("SignedHeaders=")[1].split(",")[0].split(";")
        stamp = r["headers"]["x-amz-date"]
        age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        req = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode() or None,
                         headers={k: v for k, v in r["headers"].items() if k in signed})
        req.context["timestamp"] = stamp
        auth = SigV4Auth(creds, "lambda", sys.argv[3])
        ok = (header.startswith("AWS4-HMAC-SHA256 Credential=%s/" % sys.argv[1]) and abs(age.total_seconds()) < 300
              and "host" in signed and auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req) == header.split("Signature=")[1])
    except Exception:
        ok = False
    print(json.dumps(ok), flush=True)
`;
    this.process = spawn(SYSTEM_PYTHON, ['-c', script, credentials.accessKeyId, credentials.secretAccessKey, region]);
    readline
      .createInterface({ input: this.process.stdout })
      .on('line', (line) => this.waiting.shift()?.(line === 'true'));
  }

  /** Whether AWS would accept the request's signature. */
  check(request: SeenRequest): Promise<boolean> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.process.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }

  close(): void {
    this.process.stdin.end();
  }
}

/**
 * The event the function URL hands the GridApi Lambda for `method target` (`target`: path and query), from an IAM
 * caller, its body base64-encoded as the service sends it.
 */
export function functionUrlEvent(
  method: string,
  target: string,
  body?: string,
  headers: Record<string, string> = {},
): FunctionUrlEvent {
  const [rawPath, rawQueryString] = target.split('?') as [string, string | undefined];
  return {
    rawPath,
    ...(rawQueryString === undefined ? {} : { rawQueryString }),
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : Buffer.from(body).toString('base64'),
    isBase64Encoded: true,
    requestContext: {
      http: { method, sourceIp: '127.0.0.1' },
      authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:role/client' } },
    },
  };
}
