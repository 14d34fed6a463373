// The template's Lambda function URLs (the GridApi), served as the Lambda service serves them: a front that answers
// for the URL (AWS_IAM: a SigV4 request for the service `lambda`, from a caller whose identity policy allows
// `lambda:InvokeFunctionUrl` on the function; anything else 403, as AWS answers), then the function's own code from
// its asset, run by function-url-host.ts with the function's handler, timeout, environment and role credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { build } from 'esbuild';
import { TwinTemplateError } from '../errors';
import { s3CodeOf, unpackFunctionCode } from './function-code';
import type { AccessLedger } from '../iam/access-ledger';
import { accessKeyOf } from '../iam/request-actions';
import { resourcesOfType, text, type CfnTemplate } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';

export interface FunctionUrlResource {
  readonly urlId: string;
  readonly functionId: string;
  readonly authType: string;
  readonly invokeMode: string;
}

/** `AWS::Lambda::Url` resources of the template and the function each one fronts. */
export function functionUrlResources(template: CfnTemplate): FunctionUrlResource[] {
  return resourcesOfType(template, 'AWS::Lambda::Url').map(([urlId, url]) => {
    const target = url.Properties?.TargetFunctionArn as { 'Fn::GetAtt'?: [string, string] } | undefined;
    const functionId = target?.['Fn::GetAtt']?.[0];
    if (!functionId || template.Resources[functionId]?.Type !== 'AWS::Lambda::Function') {
      throw new TwinTemplateError(`${urlId}: the twin serves function URLs of a function of the template`);
    }
    return {
      urlId,
      functionId,
      authType: text(url.Properties?.AuthType ?? 'NONE'),
      invokeMode: text(url.Properties?.InvokeMode ?? 'BUFFERED'),
    };
  });
}

/** What the front forwards to once the function runs. */
interface Backend {
  readonly functionArn: string;
  readonly port: number;
}

export interface FunctionUrlStats {
  requests: number;
  forbidden: number;
  /** 5xx answers of the function (its errors and timeouts). */
  errors: number;
}

/**
 * The URL's address, up before the stack is named (its `FunctionUrl` attribute is this front's origin); requests
 * wait for `attach` until the function runs.
 */
export class FunctionUrlFront {
  readonly stats: FunctionUrlStats = { requests: 0, forbidden: 0, errors: 0 };
  private readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true });
  private backend: Backend | undefined;
  private origin = '';

  private constructor(
    readonly resource: FunctionUrlResource,
    private readonly ledger: AccessLedger,
  ) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.stats.errors++;
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Message: `twin function URL: ${String(error)}` }));
      });
    });
    this.server.requestTimeout = 0;
  }

  static async start(resource: FunctionUrlResource, host: string, ledger: AccessLedger): Promise<FunctionUrlFront> {
    const front = new FunctionUrlFront(resource, ledger);
    await new Promise<void>((resolve, reject) => {
      front.server.once('error', reject);
      front.server.listen(0, host, () => resolve());
    });
    const address = front.server.address();
    front.origin = `http://${host}:${typeof address === 'object' && address ? address.port : 0}`;
    return front;
  }

  /** The `FunctionUrl` attribute: the origin with a trailing slash, as Lambda gives it. */
  get url(): string {
    return `${this.origin}/`;
  }

  attach(backend: Backend): void {
    this.backend = backend;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    const backend = this.backend;
    if (!backend) return answer(res, 503, { Message: 'the function is not deployed yet' });
    const forwarded: Record<string, string> = {};
    if (this.resource.authType === 'AWS_IAM') {
      const who = this.authenticate(req, backend.functionArn);
      if ('refused' in who) {
        this.stats.forbidden++;
        return answer(res, 403, { Message: `Forbidden (twin: ${who.refused})` });
      }
      Object.assign(forwarded, who);
    }
    await new Promise<void>((resolve, reject) => {
      const upstream = http.request(
        {
          host: '127.0.0.1',
          port: backend.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, ...forwarded },
          agent: this.agent,
        },
        (answered) => {
          if ((answered.statusCode ?? 502) >= 500) this.stats.errors++;
          res.writeHead(answered.statusCode ?? 502, answered.headers);
          answered.pipe(res);
          answered.once('end', resolve);
          answered.once('error', reject);
        },
      );
      upstream.once('error', reject);
      // The caller hung up (a results stream it no longer reads): the function sees its stream close.
      res.once('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    });
  }

  /** AWS_IAM auth: a SigV4 signature for `lambda` by a known caller whose policy allows invoking through the URL. */
  private authenticate(req: IncomingMessage, functionArn: string): Record<string, string> | { refused: string } {
    const authorization = String(req.headers.authorization ?? '');
    const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(authorization);
    if (!scope) return { refused: 'the request is not signed with SigV4' };
    if (scope[2] !== 'lambda') return { refused: `signed for the service ${scope[2]}, not lambda` };
    const accessKeyId = accessKeyOf({ headers: req.headers, url: req.url ?? '/' });
    const caller = this.ledger.callerOf(accessKeyId);
    if (!caller?.role) return { refused: `unknown credentials ${accessKeyId ?? ''}` };
    const denial = this.ledger.authorize(accessKeyId, {
      operation: 'InvokeFunctionUrl',
      needs: [
        { action: 'lambda:InvokeFunctionUrl', resource: functionArn },
        { action: 'lambda:InvokeFunction', resource: functionArn },
      ],
      context: { 'lambda:FunctionUrlAuthType': 'AWS_IAM', 'lambda:InvokedViaFunctionUrl': 'true' },
    });
    if (denial) return { refused: `${caller.label} may not ${denial.action} (${denial.reason})` };
    return {
      'x-twin-access-key': accessKeyId ?? '',
      'x-twin-caller-arn': caller.role.arn,
      'x-twin-caller-id': caller.role.arn.split('/').pop() ?? '',
      'x-twin-account': caller.role.arn.split(':')[4] ?? '',
    };
  }
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Bundles the host once per twin run (esbuild, as the stand-ins are bundled). */
export async function buildFunctionUrlHost(repoRoot: string, outdir: string): Promise<string> {
  fs.mkdirSync(outdir, { recursive: true });
  const outfile = path.join(outdir, 'function-url-host.js');
  await build({
    entryPoints: [path.join(repoRoot, 'twin', 'lambda', 'function-url-host.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'warning',
  });
  return outfile;
}

/** The function behind a URL, running: its code unpacked from its asset, one host process. */
export class FunctionUrlRunner {
  private child: ChildProcess | undefined;
  private readonly stderrTail: string[] = [];

  constructor(
    private readonly front: FunctionUrlFront,
    private readonly options: {
      readonly stack: DeployedStack;
      readonly dir: string;
      readonly hostScript: string;
      readonly adminS3: S3Client;
      /** The function role's credentials and the twin's endpoints. */
      readonly roleEnv: (roleLogicalId: string) => Record<string, string>;
      readonly log: (line: string) => void;
    },
  ) {}

  /** The function's role, by logical id. */
  static roleOf(stack: DeployedStack, functionId: string): string {
    const role = (stack.template.Resources[functionId]?.Properties?.Role as { 'Fn::GetAtt'?: [string, string] })?.[
      'Fn::GetAtt'
    ]?.[0];
    if (!role) throw new TwinTemplateError(`${functionId}: the twin runs functions with a role of the template`);
    return role;
  }

  async start(): Promise<void> {
    const { stack } = this.options;
    const functionId = this.front.resource.functionId;
    const props = stack.properties(functionId);
    const code = s3CodeOf(functionId, props.Code);
    if (!String(props.Runtime).startsWith('nodejs')) {
      throw new TwinTemplateError(
        `${functionId}: the twin hosts Node.js function URLs only (got ${String(props.Runtime)})`,
      );
    }
    const taskRoot = await unpackFunctionCode(this.options.adminS3, code, this.options.dir, functionId);
    const functionName = String(stack.ref(functionId, functionId));
    const variables = (props.Environment as { Variables?: Record<string, string> } | undefined)?.Variables ?? {};
    const child = spawn(process.execPath, [this.options.hostScript], {
      cwd: taskRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        ...variables,
        ...this.options.roleEnv(FunctionUrlRunner.roleOf(stack, functionId)),
        LAMBDA_TASK_ROOT: taskRoot,
        _HANDLER: String(props.Handler),
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(Number(props.MemorySize ?? 128)),
        AWS_EXECUTION_ENV: `AWS_Lambda_${String(props.Runtime)}`,
        TWIN_FUNCTION_TIMEOUT_SEC: String(Number(props.Timeout ?? 3)),
      },
    });
    this.child = child;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter((l) => l.trim())) {
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        this.options.log(line);
      }
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
        for (const line of chunk.split('\n')) if (line.trim() && !line.startsWith('listening')) this.options.log(line);
      });
      child.once('exit', (code) =>
        reject(
          new TwinTemplateError(
            `${functionId} (function URL) did not start (exit ${code}): ${this.stderrTail.slice(-5).join(' | ')}`,
          ),
        ),
      );
    });
    this.front.attach({ functionArn: String(stack.getAtt(functionId, 'Arn', functionId)), port });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
  }
}
