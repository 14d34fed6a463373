// The OpenAPI document as a test oracle: responses are validated against it, and every operation must be exercised.
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { parse } from 'yaml';

export const DOCUMENT_PATH = path.resolve(__dirname, '..', '..', 'lib', 'http', 'openapi.yaml');

interface Operation {
  readonly responses: Record<string, { $ref?: string; content?: Record<string, { schema?: unknown }> }>;
}

type Doc = {
  paths: Record<string, Record<string, Operation>>;
  components: { responses: Record<string, { content?: Record<string, { schema?: unknown }> }> };
} & Record<string, unknown>;

export function loadDocument(): Doc {
  return parse(fs.readFileSync(DOCUMENT_PATH, 'utf8')) as Doc;
}

/** Validates responses against the document and remembers which operations were exercised. */
export class OpenApiContract {
  readonly doc = loadDocument();
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly exercised = new Set<string>();

  constructor() {
    this.ajv.addSchema(this.doc, 'openapi');
  }

  /** Every `METHOD /path/template` of the document. */
  operations(): string[] {
    return Object.entries(this.doc.paths).flatMap(([p, item]) =>
      Object.keys(item)
        .filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m))
        .map((m) => `${m.toUpperCase()} ${p}`),
    );
  }

  missing(): string[] {
    return this.operations().filter((op) => !this.exercised.has(op));
  }

  /** The template of a concrete path (`/v1/sessions/abc` → `/v1/sessions/{sessionId}`). */
  template(method: string, concrete: string): string {
    for (const [p, item] of Object.entries(this.doc.paths)) {
      if (!(method.toLowerCase() in item)) continue;
      const re = new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+').replace(/\./g, '\\.')}$`);
      if (re.test(concrete)) return p;
    }
    throw new Error(`${method} ${concrete} is not in the OpenAPI document`);
  }

  /** Checks a JSON response (or one NDJSON line against the line schemas); throws naming what does not match. */
  check(method: string, concretePath: string, status: number, contentType: string, body: unknown): void {
    let template: string;
    try {
      template = this.template(method, concretePath);
    } catch (err) {
      // A route the document does not have: the answer must still be a documented error.
      if (status < 400) throw err;
      const check = this.compiled({ $ref: '#/components/schemas/Error' });
      if (!check(body)) throw new Error(`${method} ${concretePath} ${status}: ${this.ajv.errorsText(check.errors)}`);
      return;
    }
    this.exercised.add(`${method.toUpperCase()} ${template}`);
    const op = this.doc.paths[template]![method.toLowerCase()]!;
    let response = op.responses[String(status)] ?? op.responses.default;
    if (!response) throw new Error(`${method} ${template}: status ${status} is not documented`);
    if (response.$ref) response = this.doc.components.responses[response.$ref.split('/').pop()!]!;
    const media = contentType.split(';')[0]!.trim();
    const content = response.content?.[media];
    if (!content) throw new Error(`${method} ${template} ${status}: content type ${media} is not documented`);
    const sseData = (content as { 'x-sse-data'?: unknown })['x-sse-data'];
    if (media === 'text/event-stream' && sseData && typeof body === 'string') {
      const check = this.compiled(sseData);
      for (const line of body.split('\n').filter((l) => l.startsWith('data: '))) {
        const data = JSON.parse(line.slice('data: '.length)) as unknown;
        if (!check(data)) {
          throw new Error(
            `${method} ${template} ${status}: event data does not match the document: ${this.ajv.errorsText(check.errors)}`,
          );
        }
      }
      return;
    }
    const lineSchema = (content as { 'x-ndjson-line'?: unknown })['x-ndjson-line'];
    const schema = media === 'application/x-ndjson' && lineSchema ? lineSchema : content.schema;
    const check = this.compiled(schema);
    if (!check(body)) {
      throw new Error(
        `${method} ${template} ${status}: response does not match the document: ${this.ajv.errorsText(check.errors)}\n${JSON.stringify(body).slice(0, 500)}`,
      );
    }
  }

  private readonly cache = new Map<string, ReturnType<Ajv2020['compile']>>();

  /** A validator of `schema`, whose local `$ref`s point into the document. */
  private compiled(schema: unknown): ReturnType<Ajv2020['compile']> {
    const text = JSON.stringify(schema ?? {}).replace(/"#\/components\//g, '"openapi#/components/');
    let check = this.cache.get(text);
    if (!check) {
      check = this.ajv.compile(JSON.parse(text) as object);
      this.cache.set(text, check);
    }
    return check;
  }
}
