// Stand-in for the Lambda base image's /var/runtime/bootstrap (the runtime interface client of python:3.12,
// nodejs:22, ...): it loads the handler named by its argument (or `_HANDLER`) from `LAMBDA_TASK_ROOT` in our real
// local runtime (lib/runtime/local, the same Python and Node bootstraps the local grid runs), then serves the Lambda
// Runtime API at `AWS_LAMBDA_RUNTIME_API`: next, response, error, init error.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { WorkerInitError } from '../../lib/core/errors';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../lib/runtime/local';
import type { TaskError } from '../../lib/core/task';

/** Baked in when the twin bundles this file, one bundle per base image runtime. */
declare const TWIN_LAMBDA_RUNTIME: string;
declare const TWIN_BOOTSTRAP_DIR: string;

const API = '2018-06-01/runtime';
const agent = new http.Agent({ keepAlive: true });

function call(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const [host, port] = (process.env.AWS_LAMBDA_RUNTIME_API ?? '127.0.0.1:9001').split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path: `/${API}/${path}`, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

function errorDocument(error: TaskError): string {
  return JSON.stringify({ errorMessage: error.message, errorType: error.type, stackTrace: error.stack });
}

async function main(): Promise<void> {
  const handler = process.argv[2] ?? process.env._HANDLER ?? '';
  const taskRoot = process.env.LAMBDA_TASK_ROOT ?? '/var/task';
  const invoker = createLocalInvoker({
    taskRoot,
    handler,
    runtime: resolveRuntime(TWIN_LAMBDA_RUNTIME),
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memorySizeMb: Number(process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? '3008'),
    pythonExecutable: 'python3',
    bootstrapDir: TWIN_BOOTSTRAP_DIR,
    onOutput: (_taskId, stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
  });
  try {
    await invoker.start();
  } catch (error) {
    const type = error instanceof WorkerInitError ? error.errorType : 'Runtime.Unknown';
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${message}\n`);
    await call('POST', 'init/error', errorDocument({ type, message, stack: [] }), {
      'Lambda-Runtime-Function-Error-Type': type,
    });
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', 'invocation/next');
    const requestId = String(next.headers['lambda-runtime-aws-request-id'] ?? randomUUID());
    const deadline = Number(next.headers['lambda-runtime-deadline-ms'] ?? Date.now() + 300_000);
    let custom: Record<string, unknown> = {};
    try {
      custom =
        (
          JSON.parse(String(next.headers['lambda-runtime-client-context'] ?? '{}')) as {
            custom?: Record<string, unknown>;
          }
        ).custom ?? {};
    } catch {
      custom = {};
    }
    const result = await invoker.invoke({
      requestId,
      taskId: typeof custom.task_id === 'string' ? custom.task_id : '',
      sessionId: typeof custom.session_id === 'string' ? custom.session_id : '',
      attempt: typeof custom.attempt === 'number' ? custom.attempt : 0,
      eventJson: next.body.length > 0 ? next.body : '{}',
      // rapid owns the deadline (it resets the runtime); this runtime only keeps its own clock a little longer.
      deadline: deadline + 1000,
    });
    if (result.ok) {
      await call('POST', `invocation/${requestId}/response`, result.resultJson);
    } else if (result.reason === 'runtime-crash') {
      // The real runtime process is the one that died: end as it would, so rapid sees the runtime exit.
      process.stderr.write(`${result.error.message}\n`);
      process.exit(1);
    } else {
      await call('POST', `invocation/${requestId}/error`, errorDocument(result.error), {
        'Lambda-Runtime-Function-Error-Type': result.error.type,
      });
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`runtime bootstrap failed: ${String(error)}\n`);
  process.exit(1);
});
