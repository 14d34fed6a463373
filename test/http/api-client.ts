// A test client of the HTTP API that checks every answer against the OpenAPI document.
import type { OpenApiContract } from './openapi-contract';

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The JSON body (undefined for NDJSON and YAML). */
  readonly json: any;
  /** The NDJSON lines, parsed with a reader that accepts NaN and Infinity as Python's json does. */
  readonly lines: any[];
}

export interface CallOptions {
  readonly body?: unknown;
  /** Sent as is (no JSON encoding). */
  readonly raw?: string;
  readonly headers?: Record<string, string>;
  /** @default the client's token; null sends none */
  readonly token?: string | null;
}

/** Parses JSON that may hold NaN, Infinity and -Infinity outside strings (what Python's json writes). */
export function parsePythonJson(text: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) =>
    m.startsWith('"') ? m : `{"__nonfinite__":"${m}"}`,
  );
  return JSON.parse(marked, (_k, v: unknown) => {
    if (v && typeof v === 'object' && '__nonfinite__' in v) {
      const t = (v as { __nonfinite__: string }).__nonfinite__;
      return t === 'NaN' ? NaN : t === 'Infinity' ? Infinity : -Infinity;
    }
    return v;
  });
}

export class ApiTestClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
    private readonly contract: OpenApiContract,
  ) {}

  async call(method: string, path: string, options: CallOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.token : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, { method, headers, body });
    const text = await response.text();
    const type = response.headers.get('content-type') ?? '';
    const concrete = path.split('?')[0]!;
    let json: unknown;
    let lines: unknown[] = [];
    if (type.startsWith('application/json')) {
      json = JSON.parse(text);
      this.contract.check(method, concrete, response.status, type, json);
    } else if (type.startsWith('application/x-ndjson')) {
      lines = text
        .split('\n')
        .filter((l) => l !== '')
        .map(parsePythonJson);
      // Lines are validated as parsed by a plain JSON reader where they can be (non-finite numbers cannot).
      for (const line of text.split('\n').filter((l) => l !== '')) {
        let plain: unknown;
        try {
          plain = JSON.parse(line);
        } catch {
          plain = JSON.parse(line.replace(/-?Infinity|NaN/g, 'null'));
        }
        this.contract.check(method, concrete, response.status, type, plain);
      }
    } else {
      this.contract.check(method, concrete, response.status, type, text);
    }
    return { status: response.status, headers: response.headers, text, json, lines };
  }
}
