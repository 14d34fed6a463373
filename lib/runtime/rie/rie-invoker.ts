// The agent's side of lambda-rie: invokes one task over the RIE HTTP API and classifies what comes back.
import http from 'node:http';
import net from 'node:net';
import { WorkerInitError } from '../../core/errors';
import { silentLogger, type Logger } from '../../logging';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../ports';
import { backoffDelay, sleep } from '../../timing';
import { abortReason, cancelledResult, timeoutResult } from '../invoke-results';
import {
  CLIENT_CONTEXT_HEADER,
  FUNCTION_ERROR_HEADER,
  RIE_INVOKE_PATH,
  classifyRieResponse,
  clientContextHeader,
} from './rie-protocol';
import { RuntimeKiller, type RuntimeKillOutcome } from './runtime-killer';

export interface RieInvokerOptions {
  /** Base URL of the invoke API, e.g. `http://127.0.0.1:8080` (the Lambda container in the same ECS task). */
  readonly endpoint: string;
  /**
   * How long to keep retrying while the runtime refuses connections (the Lambda container is still starting, or
   * restarting after a crash). Applies to `start()` and to each invocation (bounded by its deadline too).
   * @default 60000
   */
  readonly startTimeoutMs?: number;
  /** @default - a silent logger */
  readonly logger?: Logger;
  /**
   * Stop the Lambda runtime when an invocation is aborted (task cancelled, lease lost, drain grace over) or reaches
   * its deadline: SIGKILL the processes under the slot's lambda-rie (`RuntimeKiller`), then hold the next invocation
   * until lambda-rie has answered the killed one (it answers `502 Runtime.ExitError` once it has reset, and starts a
   * fresh runtime on the next invoke).
   *
   * The agent must see and may signal the Lambda container's processes: in ECS the task shares its PID namespace
   * (`pidMode: task`) and the agent runs under the Lambda containers' uid. When it cannot, the invocation is aborted
   * as without this option, and the reason is logged.
   * @default false (the handler runs on until it returns or lambda-rie's own `AWS_LAMBDA_FUNCTION_TIMEOUT`)
   */
  readonly killRuntimeOnAbort?: boolean;
  /**
   * What kills the runtime with `killRuntimeOnAbort`.
   * @default - `RuntimeKiller.forEndpoint(endpoint)`, reading /proc
   */
  readonly runtimeKiller?: { kill(): Promise<RuntimeKillOutcome> };
  /**
   * After a kill, how long to wait for lambda-rie's answer to the killed invocation before giving up on it (the
   * next invocation waits for that answer, as lambda-rie would answer it `400 busy` until then).
   * @default 10000
   */
  readonly recoveryTimeoutMs?: number;
}

/** After a kill, how long to wait for lambda-rie's answer before looking for a (restarted) runtime to kill again. */
const KILL_AGAIN_AFTER_MS = 1000;

/** Thrown inside the invoker when the connection was refused: nothing was sent, so retrying is safe. */
class ConnectionRefused extends Error {}

const REFUSED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/**
 * `WorkerInvoker` for a Lambda runtime behind lambda-rie (`POST /2015-03-31/functions/function/invocations`).
 *
 * - The task's identity travels in `X-Amz-Client-Context` (base64 JSON `{"custom": {session_id, task_id, attempt}}`);
 *   the RIE passes it to the runtime, which exposes it as `context.client_context.custom`.
 * - One keep-alive connection, one invocation at a time (the RIE serves one invocation at a time; a concurrent one
 *   gets 400, reported as `busy`).
 * - Connection refused (the runtime is starting or restarting) is retried with back-off until `startTimeoutMs` or
 *   the deadline; nothing reached the runtime, so it cannot run twice.
 * - At the deadline, or when `signal` aborts, the HTTP request is aborted and the result is `timeout` or
 *   `cancelled`. The RIE itself does not stop the handler when its client goes away: it keeps running until it
 *   returns or the RIE's own `AWS_LAMBDA_FUNCTION_TIMEOUT` resets the runtime, and meanwhile further invokes get
 *   400 (`busy`, which the agent releases back to the queue without counting a failure). So in AWS the Lambda
 *   container must run with `AWS_LAMBDA_FUNCTION_TIMEOUT` at the task timeout (the RIE then kills the runtime
 *   itself), and without `killRuntimeOnAbort` a cancelled task's runtime is freed only by that same reset.
 * - With `killRuntimeOnAbort`, an aborted or timed-out invocation's runtime is SIGKILLed instead (see the option):
 *   the handler stops at once and the slot takes the next task as soon as lambda-rie has reset.
 */
export class RieInvoker implements WorkerInvoker {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly startTimeoutMs: number;
  private readonly logger: Logger;
  private readonly killer: { kill(): Promise<RuntimeKillOutcome> } | undefined;
  private readonly recoveryTimeoutMs: number;
  /** Set while the runtime of an interrupted invocation is being killed and lambda-rie resets. */
  private recovery: Promise<void> | undefined;
  private closed = false;

  constructor(options: RieInvokerOptions) {
    this.url = new URL(RIE_INVOKE_PATH, options.endpoint);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
    this.logger = options.logger ?? silentLogger();
    this.killer = options.killRuntimeOnAbort
      ? (options.runtimeKiller ?? RuntimeKiller.forEndpoint(options.endpoint, { logger: this.logger }))
      : undefined;
    this.recoveryTimeoutMs = options.recoveryTimeoutMs ?? 10_000;
  }

  /** Waits until the runtime accepts connections. It does not invoke: the RIE would run the handler. */
  async start(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      if (await this.canConnect()) return;
      if (Date.now() >= deadline) {
        throw new WorkerInitError(
          `the Lambda runtime at ${this.url.origin} did not accept connections within ${this.startTimeoutMs} ms`,
          'Runtime.Unavailable',
          { hint: 'check that the Lambda container is running and listens on that port' },
        );
      }
      await sleep(retryDelay(attempt, deadline));
    }
  }

  async invoke(invocation: Invocation, signal?: AbortSignal): Promise<InvokeResult> {
    if (signal?.aborted) return cancelledResult('the invocation was aborted before it started');
    if (this.recovery !== undefined) {
      const aborted = await abortable(this.recovery, signal);
      if (aborted) return cancelledResult('the invocation was aborted while the previous runtime was being stopped');
    }
    const body = Buffer.from(invocation.eventJson, 'utf8');
    const headers = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      [CLIENT_CONTEXT_HEADER]: clientContextHeader(invocation),
    };
    const timeoutMs = invocation.deadline - Date.now();
    const retryUntil = Math.min(invocation.deadline, Date.now() + this.startTimeoutMs);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.post(body, headers, invocation, timeoutMs, signal);
      if (!(outcome instanceof ConnectionRefused)) return outcome;
      if (Date.now() >= retryUntil) {
        return {
          ok: false,
          reason: 'runtime-crash',
          error: { type: 'Runtime.Unavailable', message: outcome.message, stack: [] },
        };
      }
      this.logger.debug({ taskId: invocation.taskId, attempt }, 'Lambda runtime refused the connection, retrying');
      const aborted = await sleep(retryDelay(attempt, retryUntil), signal);
      if (aborted) return cancelledResult('the invocation was aborted while the runtime was starting');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
    await this.recovery;
  }

  private post(
    body: Buffer,
    headers: Record<string, string>,
    invocation: Invocation,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<InvokeResult | ConnectionRefused> {
    return new Promise((resolve) => {
      let settled = false;
      let sent = false;
      let markAnswered: () => void = () => undefined;
      // Settles when the exchange is over: answered, failed or destroyed.
      const answered = new Promise<void>((r) => (markAnswered = r));
      const finish = (result: InvokeResult | ConnectionRefused) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(result);
      };
      const req = http.request(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          markAnswered();
          const text = Buffer.concat(chunks).toString('utf8');
          const fnError = res.headers[FUNCTION_ERROR_HEADER];
          finish(classifyRieResponse(res.statusCode ?? 0, Array.isArray(fnError) ? fnError[0] : fnError, text));
        });
        res.on('error', (error) => {
          markAnswered();
          finish(connectionLost(error));
        });
      });
      req.on('close', () => markAnswered());
      /** The task is over for the agent; stop its runtime too when asked to, else just hang up as before. */
      const interrupt = (result: InvokeResult) => {
        finish(result);
        if (this.killer !== undefined && sent && !this.closed) {
          this.recovery = this.stopRuntime(this.killer, req, answered, invocation, result);
        } else {
          req.destroy();
        }
      };
      const onAbort = () => interrupt(cancelledResult(abortReason(signal)));
      const timer = setTimeout(
        () => interrupt(timeoutResult(timeoutMs)),
        Math.max(0, invocation.deadline - Date.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (!sent && REFUSED_CODES.has(error.code ?? '')) {
          finish(
            new ConnectionRefused(`the Lambda runtime at ${this.url.origin} refused the connection (${error.code})`),
          );
        } else {
          finish(connectionLost(error));
        }
      });
      req.on('finish', () => (sent = true));
      req.end(body);
    });
  }

  /**
   * Kills the runtime of an interrupted invocation and waits (bounded) for lambda-rie to answer it: lambda-rie
   * answers only after its reset, so from then on it takes the next invoke. When no answer comes within
   * `KILL_AGAIN_AFTER_MS` it kills again: a runtime killed during its init is restarted by lambda-rie for the same
   * invocation ("suppressed init", `rapidcore/server.go` `Invoke` → `FastInvoke`), and that one must go too.
   * Never rejects.
   */
  private async stopRuntime(
    killer: { kill(): Promise<RuntimeKillOutcome> },
    req: http.ClientRequest,
    answered: Promise<void>,
    invocation: Invocation,
    result: InvokeResult,
  ): Promise<void> {
    const ids = { taskId: invocation.taskId, sessionId: invocation.sessionId, why: result.ok ? 'ok' : result.reason };
    const giveUpAt = Date.now() + this.recoveryTimeoutMs;
    try {
      for (let round = 1; ; round++) {
        const outcome = await killer.kill();
        if (outcome.kind !== 'killed' && outcome.kind !== 'no-runtime') {
          this.logger.warn({ ...ids, outcome: outcome.kind }, 'the Lambda runtime could not be stopped; it runs on');
          return;
        }
        if (outcome.kind === 'killed') {
          this.logger.info({ ...ids, round }, 'killed the Lambda runtime of an interrupted invocation');
        }
        const waitMs = Math.min(KILL_AGAIN_AFTER_MS, giveUpAt - Date.now());
        if (waitMs > 0 && (await withinMs(answered, waitMs))) return;
        if (Date.now() >= giveUpAt) {
          this.logger.warn(
            { ...ids, recoveryTimeoutMs: this.recoveryTimeoutMs },
            'lambda-rie did not answer the interrupted invocation in time; the slot may answer busy for a while',
          );
          return;
        }
      }
    } catch (error) {
      this.logger.error({ ...ids, err: error }, 'stopping the Lambda runtime failed');
    } finally {
      req.destroy();
      this.recovery = undefined;
    }
  }

  private canConnect(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.url.hostname, port: Number(this.url.port || 80) });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        socket.destroy();
        resolve(false);
      });
    });
  }
}

function connectionLost(error: Error): InvokeResult {
  return {
    ok: false,
    reason: 'runtime-crash',
    error: {
      type: 'Runtime.ExitError',
      message: `the connection to the Lambda runtime was lost mid-invocation: ${error.message}`,
      stack: [],
    },
  };
}

/** 50 ms doubling to 1 s, never past `until`. */
function retryDelay(attempt: number, until: number): number {
  return Math.max(0, Math.min(backoffDelay(attempt - 1, RETRY_BACKOFF), until - Date.now()));
}

const RETRY_BACKOFF = { baseMs: 50, maxMs: 1000, jitter: 'none' } as const;

/** Waits for `promise`; resolves true early if `signal` aborts. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal === undefined) return promise.then(() => false);
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => resolve(true);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    });
  });
}

/** True when `promise` settles within `ms`. */
function withinMs(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
