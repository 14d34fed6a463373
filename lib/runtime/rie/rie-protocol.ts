// lambda-rie's invoke API as it is on the wire: the path, the headers, and every response shape it produces.
import { escapeJsonChars } from '../../core/json-escape';
import { isResultJson } from '../../core/result-json';
import type { TaskError } from '../../core/task';
import type { Invocation, InvokeResult } from '../../ports';
import { clientContextOf } from '../client-context';

/**
 * What aws/aws-lambda-runtime-interface-emulator (`internal/lambda/rie/handlers.go`, `rapidcore/server.go`) does:
 * - It serves exactly this path, any method; other paths get Go's `404 page not found`.
 * - `X-Amz-Client-Context` is standard base64 of the client context JSON, decoded and handed to the runtime as
 *   `Lambda-Runtime-Client-Context` (Python: `context.client_context.custom`); bad base64 → 500, empty body.
 * - The response goes through a proxy whose `Header()` is a fresh map, so headers the runtime sets (content type,
 *   function error type) are dropped: there is never an `X-Amz-Function-Error` header. Go sniffs the content type
 *   (`text/plain; charset=utf-8` for JSON text).
 * - Success: 200, the handler's JSON result.
 * - Handler error: 200 too, the runtime's error document (`errorMessage`, `errorType`, `requestId`, `stackTrace`).
 * - Timeout (the RIE's own, `AWS_LAMBDA_FUNCTION_TIMEOUT`, default 300 s): 200, `Task timed out after N.00 seconds`
 *   (N the whole-second setting), then the runtime is reset.
 * - Concurrent invoke (already reserved): 400, empty body.
 * - Init failure or runtime crash during the invoke (`ErrInitDoneFailed`/`ErrInvokeDoneFailed`): 502 with rapid's
 *   error document, e.g. `{"errorMessage":"RequestId: … Error: Runtime exited with error: exit status 1",
 *   "errorType":"Runtime.ExitError"}`.
 * - Reservation lost (reset while reserving/invoking): 504, empty body.
 */
export const RIE_INVOKE_PATH = '/2015-03-31/functions/function/invocations';
export const CLIENT_CONTEXT_HEADER = 'x-amz-client-context';
/** Set by Lambda proper (not by the RIE); honoured when present. */
export const FUNCTION_ERROR_HEADER = 'x-amz-function-error';
/** The RIE's default function timeout (`AWS_LAMBDA_FUNCTION_TIMEOUT`). */
export const RIE_DEFAULT_TIMEOUT_SEC = 300;

const TIMEOUT_BODY = /^Task timed out after (\d+(?:\.\d+)?) seconds$/;

/** Error types that mean the worker could not be loaded or the runtime died: not the handler's own error. */
const RUNTIME_ERROR_TYPES = new Set([
  'Runtime.ImportModuleError',
  'Runtime.HandlerNotFound',
  'Runtime.UserCodeSyntaxError',
  'Runtime.MalformedHandlerName',
  'Runtime.ExitError',
  'Runtime.Unknown',
  'Runtime.InvalidResponseDataType',
]);

/** The grid's identity of a task, as the agent sends it in `X-Amz-Client-Context`. */
export function clientContextHeader(invocation: Pick<Invocation, 'sessionId' | 'taskId' | 'attempt'>): string {
  return Buffer.from(JSON.stringify(clientContextOf(invocation)), 'utf8').toString('base64');
}

/** Decodes `X-Amz-Client-Context` strictly, as Go's `base64.StdEncoding` does; `undefined` when it is not base64. */
export function decodeClientContext(header: string): string | undefined {
  if (header.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(header)) return undefined;
  return Buffer.from(header, 'base64').toString('utf8');
}

/** `Task timed out after 3.00 seconds`, as the RIE words it for its whole-second timeout. */
export function timeoutBody(timeoutSec: number): string {
  return `Task timed out after ${Math.floor(timeoutSec)}.00 seconds`;
}

/** A handler error as the Python runtime reports it (`json.dumps` separators, its key order). */
export function functionErrorBody(error: TaskError, requestId: string): string {
  return pythonJson({ errorMessage: error.message, errorType: error.type, requestId, stackTrace: [...error.stack] });
}

/** An init failure or crash as rapid reports it (Go's compact JSON). */
export function runtimeFailureBody(error: TaskError, requestId: string): string {
  const message =
    error.type === 'Runtime.ExitError' ? `RequestId: ${requestId} Error: ${error.message}` : error.message;
  return JSON.stringify({ errorMessage: message, errorType: error.type });
}

/** JSON text with Python's default separators (`", "`, `": "`) and ASCII escapes, like `json.dumps`. */
export function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
  }
  const text = JSON.stringify(value) ?? 'null';
  return escapeJsonChars(text, /[\u007f-\uffff]/g);
}

function errorDocument(body: string): { type: string; message: string; stack: string[] } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const doc = parsed as Record<string, unknown>;
  const allowed = new Set(['errorMessage', 'errorType', 'requestId', 'stackTrace', 'cause']);
  if (typeof doc.errorType !== 'string' || typeof doc.errorMessage !== 'string') return undefined;
  if (!Object.keys(doc).every((k) => allowed.has(k))) return undefined;
  const stack = Array.isArray(doc.stackTrace) ? doc.stackTrace.map((line) => stackLine(line)) : [];
  return { type: doc.errorType, message: doc.errorMessage, stack };
}

function stackLine(line: unknown): string {
  if (typeof line === 'string') return line;
  return JSON.stringify(line);
}

/**
 * Classifies an RIE (or Lambda) invoke response. On a 200 the RIE cannot tell a handler error from a result that
 * happens to look like one (it drops the function-error header): a result that is exactly an error document
 * (`errorType` and `errorMessage` strings, no keys besides the error document's) is taken as the handler's error.
 */
export function classifyRieResponse(
  status: number,
  functionErrorHeader: string | undefined,
  body: string,
): InvokeResult {
  if (status === 200) {
    if (TIMEOUT_BODY.test(body)) {
      return { ok: false, reason: 'timeout', error: { type: 'Sandbox.Timedout', message: body, stack: [] } };
    }
    const doc = errorDocument(body);
    if (doc !== undefined) {
      const reason = RUNTIME_ERROR_TYPES.has(doc.type) ? 'runtime-crash' : 'error';
      return { ok: false, reason, error: doc };
    }
    if (functionErrorHeader !== undefined) {
      return {
        ok: false,
        reason: 'error',
        error: { type: functionErrorHeader || 'Unhandled', message: body.slice(0, 4096), stack: [] },
      };
    }
    if (body.trim() === '') return { ok: true, resultJson: 'null' };
    // Stored results are JSON (NaN, Infinity and big integers allowed) so that every reader can read them back.
    if (!isResultJson(body)) {
      return {
        ok: false,
        reason: 'error',
        error: {
          type: 'Runtime.MarshalError',
          message: `Unable to marshal response: the runtime answered a body that is not JSON (${body.length} characters)`,
          stack: [],
        },
      };
    }
    return { ok: true, resultJson: body };
  }
  if (status === 400) {
    return {
      ok: false,
      reason: 'busy',
      error: { type: 'Runtime.Busy', message: 'the Lambda runtime is already running an invocation', stack: [] },
    };
  }
  const doc = errorDocument(body);
  const what =
    status === 502
      ? 'the Lambda runtime failed to initialise or crashed'
      : status === 504
        ? 'the Lambda runtime was reset during the invocation'
        : status === 404
          ? 'the endpoint is not a Lambda invoke API (404)'
          : `the Lambda runtime answered HTTP ${status}`;
  return {
    ok: false,
    reason: 'runtime-crash',
    error: doc ?? { type: status === 502 ? 'Runtime.ExitError' : 'Runtime.Unknown', message: what, stack: [] },
  };
}
