// The dashboard's client of the HTTP API: bearer token from the page's address, JSON calls, and the event stream.
import type { GridOverview } from '../../lib/core/api-views';

/** The token: from `#token=…` on first load (then kept for this tab only and taken out of the address bar). */
export function takeToken(): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]!);
    sessionStorage.setItem('htcgrid-token', token);
    history.replaceState(null, '', window.location.pathname + window.location.search);
    return token;
  }
  return sessionStorage.getItem('htcgrid-token');
}

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fix?: string,
  ) {
    super(message);
  }
}

/** Parses JSON that may hold NaN and ±Infinity (Python's json writes them in results), as strings. */
export function parseLenient(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : `"${m}"`)));
  }
}

export class Api {
  /** Requests sent since the page loaded (the event stream counts once per connection). */
  requests = 0;

  constructor(
    private readonly token: string,
    private readonly base = '',
  ) {}

  async get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    this.requests++;
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) {
      let message = `${method} ${path}: HTTP ${response.status}`;
      let fix: string | undefined;
      try {
        const error = (JSON.parse(text) as { error?: { message?: string; fix?: string } }).error;
        if (error?.message) message = error.message;
        fix = error?.fix;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiCallError(response.status, message, fix);
    }
    return parseLenient(text) as T;
  }

  /**
   * Follows `GET /v1/events`, reconnecting when the stream ends or breaks (after a pause that grows with failures).
   * Returns a function that stops it.
   */
  followEvents(
    onOverview: (overview: GridOverview) => void,
    onConnection: (state: 'live' | 'reconnecting' | 'unauthorized', detail?: string) => void,
    intervalMs = 1000,
  ): () => void {
    const stop = new AbortController();
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!stop.signal.aborted) {
        try {
          this.requests++;
          const response = await fetch(`${this.base}/v1/events?intervalMs=${intervalMs}`, {
            headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' },
            signal: stop.signal,
          });
          if (response.status === 401) {
            onConnection('unauthorized', 'the token is not this grid’s: open the address `htcgrid local up` printed');
            return;
          }
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          onConnection('live');
          failures = 0;
          await readEvents(response.body, (name, data) => {
            if (name === 'overview') onOverview(JSON.parse(data) as GridOverview);
          });
        } catch (err) {
          if (stop.signal.aborted) return;
          failures++;
          onConnection('reconnecting', (err as Error).message);
        }
        if (stop.signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 250 * 2 ** Math.min(failures, 6))));
      }
    };
    void run();
    return () => stop.abort();
  }
}

/** Reads a `text/event-stream` body, calling `onEvent` per event (its name and data). */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (name: string, data: string) => void) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) onEvent(name, data.join('\n'));
    }
  }
}
