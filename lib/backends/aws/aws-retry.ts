// Back-off for AWS calls: throttling and 5xx are retried with exponential back-off and full jitter, never in a loop.
import { TransientServiceError } from '../../core/errors';
import { backoffDelay as backoff, sleep } from '../../timing';

export interface RetryPolicy {
  /** Tries in all, the first included. @default 8 */
  readonly maxAttempts?: number;
  /** First back-off ceiling. @default 50 */
  readonly baseDelayMs?: number;
  /** Largest back-off. @default 5000 */
  readonly maxDelayMs?: number;
  /** Injected for tests. @default setTimeout-based */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Injected for tests. @default Math.random */
  readonly random?: () => number;
}

const THROTTLING_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  'InternalServerError',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'KMSThrottlingException',
]);

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND']);

interface AwsLikeError {
  name?: string;
  code?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  CancellationReasons?: readonly { Code?: string }[];
}

/** Cancellation reasons of a transaction that wrote nothing and may go again as it is (after a back-off). */
const PASSING_CANCELLATIONS = new Set([
  'None',
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
]);

/**
 * A write refused, or a transaction cancelled, for a transaction under way on the same item or for throttling: nothing
 * was written, and the same request may go again (a claim that meets a session being created in one). A cancellation
 * with any other reason (a condition that failed, a validation error) is final.
 */
function isPassingRefusal(e: AwsLikeError): boolean {
  if (e.name === 'TransactionConflictException') return true;
  if (e.name !== 'TransactionCanceledException') return false;
  const reasons = e.CancellationReasons ?? [];
  return (
    reasons.some((r) => r.Code !== undefined && r.Code !== 'None') &&
    reasons.every((r) => r.Code === undefined || PASSING_CANCELLATIONS.has(r.Code))
  );
}

/**
 * True for errors worth retrying after a back-off: throttling, 5xx, dropped connections, transaction conflicts and
 * cancellations for throttling, and a transaction sent again under its client token while its first try is still
 * under way (`TransactionInProgressException`: that try may yet land, so the same token goes again).
 */
export function isRetryableAwsError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as AwsLikeError;
  if (e.name !== undefined && THROTTLING_NAMES.has(e.name)) return true;
  if (e.name === 'TransactionInProgressException' || isPassingRefusal(e)) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return e.$retryable !== undefined && e.$retryable !== null && e.name !== 'ConditionalCheckFailedException';
}

/**
 * Whether a failed write is known not to have been applied: the service answered it with a 4xx refusal (a failed
 * condition, a validation error, throttling, a cancelled transaction). Anything else (no answer, a dropped connection,
 * an abandoned request, a 5xx, a transaction still under way) leaves its outcome unknown: it may have landed, or may
 * yet land.
 */
export function isDefiniteRefusal(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as AwsLikeError;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500 && e.name !== 'TransactionInProgressException';
}

/** The back-off before retry `n` (1-based): uniform in [0, min(max, base * 2^(n-1))] ("full jitter"). */
export function backoffDelay(retry: number, policy: RetryPolicy = {}): number {
  const options = { baseMs: policy.baseDelayMs ?? 50, maxMs: policy.maxDelayMs ?? 5000, jitter: 'full' as const };
  return backoff(retry - 1, policy.random === undefined ? options : { ...options, random: policy.random });
}

/**
 * Runs `call`, retrying retryable failures with back-off. After the last try it throws `TransientServiceError`
 * (retryable, the cause kept), so callers up the stack can back off in turn.
 */
export async function withRetry<T>(what: string, call: () => Promise<T>, policy: RetryPolicy = {}): Promise<T> {
  const maxAttempts = policy.maxAttempts ?? 8;
  const wait = policy.sleep ?? sleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isRetryableAwsError(error)) throw error;
      if (attempt >= maxAttempts) {
        throw new TransientServiceError(`${what} still failing after ${attempt} tries: ${describe(error)}`, {
          cause: error,
          hint: 'the service is throttling or unavailable; the caller backs off and retries',
        });
      }
      await wait(backoffDelay(attempt, policy));
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** Runs `fn` over `items` with at most `concurrency` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Splits `items` into chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
