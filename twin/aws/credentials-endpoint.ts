// The ECS task credentials endpoint (http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI): each task's
// containers fetch their task role's credentials here, through the SDK's and CLI's standard container provider.
import { randomUUID } from 'node:crypto';
import http from 'node:http';

export interface RoleCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly roleArn: string;
}

export class CredentialsEndpoint {
  private readonly grants = new Map<string, RoleCredentials>();

  private constructor(private readonly server: http.Server) {}

  static async start(host: string, port = 80): Promise<CredentialsEndpoint> {
    const server = http.createServer();
    const endpoint = new CredentialsEndpoint(server);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => endpoint.answer(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return endpoint;
  }

  /** Registers a role for one task; returns the relative URI ECS puts in `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`. */
  grant(credentials: RoleCredentials): string {
    const uri = `/v2/credentials/${randomUUID()}`;
    this.grants.set(uri, credentials);
    return uri;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const found = this.grants.get((req.url ?? '').split('?')[0] ?? '');
    if (!found) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'NotFound', message: 'no credentials for this URI' }));
      return;
    }
    const body = JSON.stringify({
      RoleArn: found.roleArn,
      AccessKeyId: found.accessKeyId,
      SecretAccessKey: found.secretAccessKey,
      Token: `twin-session-token-${found.accessKeyId}`,
      Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}
