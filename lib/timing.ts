// Timing shared by every room: one abortable sleep and one exponential back-off whose jitter is named.

/**
 * Resolves after `ms`, or early (without error) when `signal` aborts; the answer says which (`true`: aborted).
 * `unref`: the timer does not keep the process alive.
 */
export function sleep(ms: number, signal?: AbortSignal, options: { readonly unref?: boolean } = {}): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const timer = setTimeout(() => finish(false), ms);
    if (options.unref === true) timer.unref();
    function finish(aborted: boolean): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(aborted);
    }
    function onAbort(): void {
      finish(true);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * How a back-off spreads callers apart (see the AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * - `none`: exactly the ceiling;
 * - `full`: uniform in [0, ceiling);
 * - `equal`: half the ceiling plus a uniform share of the other half.
 */
export type Jitter = 'none' | 'full' | 'equal';

export interface BackoffOptions {
  /** The ceiling of step 0. */
  readonly baseMs: number;
  /** The largest ceiling. */
  readonly maxMs: number;
  readonly jitter: Jitter;
  /** @default Math.random */
  readonly random?: () => number;
}

/** The back-off of step `step` (0 for the first wait): ceiling `min(maxMs, baseMs * 2^step)`, spread by `jitter`. */
export function backoffDelay(step: number, options: BackoffOptions): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(0, step), 30));
  const random = options.random ?? Math.random;
  switch (options.jitter) {
    case 'none':
      return ceiling;
    case 'full':
      return Math.floor(random() * ceiling);
    case 'equal':
      return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }
}

/** The agent's back-off after a failed call to its services (receive, batched writes): 100 ms doubling to 10 s. */
export const SERVICE_RETRY_BACKOFF: BackoffOptions = { baseMs: 100, maxMs: 10_000, jitter: 'equal' };

/**
 * Waits until one of `waiters` is called (true), `timeoutMs` passes or `signal` aborts (false). The waiter is in the
 * set when this returns and leaves it whichever way the wait ends.
 */
export function waitForWake(waiters: Set<() => void>, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (woken: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      waiters.delete(onWake);
      resolve(woken);
    };
    const onWake = (): void => done(true);
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
    signal?.addEventListener('abort', onAbort, { once: true });
    waiters.add(onWake);
  });
}
