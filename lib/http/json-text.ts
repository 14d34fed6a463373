// Request bodies read as JSON text, split into one text per task without re-encoding (big integers stay exact).
import { ApiError } from './api-error';

/**
 * Where the values of a valid JSON array or object's top level sit in `text`: each element's (or member's) start and
 * end offsets, with the member's key for objects. `text` must be valid JSON (checked by the caller with JSON.parse).
 */
export function topLevelSpans(text: string): { key?: string; start: number; end: number }[] {
  const spans: { key?: string; start: number; end: number }[] = [];
  let i = skipSpace(text, 0);
  const open = text[i];
  if (open !== '[' && open !== '{') return spans;
  const close = open === '[' ? ']' : '}';
  i = skipSpace(text, i + 1);
  if (text[i] === close) return spans;
  for (;;) {
    let key: string | undefined;
    if (open === '{') {
      const keyEnd = skipString(text, i);
      key = JSON.parse(text.slice(i, keyEnd)) as string;
      i = skipSpace(text, skipSpace(text, keyEnd) + 1); // past the colon
    }
    const start = i;
    const end = skipValue(text, i);
    spans.push(key === undefined ? { start, end } : { key, start, end });
    i = skipSpace(text, end);
    if (text[i] === close) return spans;
    i = skipSpace(text, i + 1); // past the comma
  }
}

/** The element texts of a JSON array, exactly as written. */
export function arrayElementTexts(text: string, spans = topLevelSpans(text)): string[] {
  return spans.map((s) => text.slice(s.start, s.end));
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '"') return i + 1;
  }
  return i;
}

/** The end of the value starting at `i` (strings, nested arrays and objects, numbers, literals). */
function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === '[' || c === '{') {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text[i];
      if (d === '"') i = skipString(text, i) - 1;
      else if (d === '[' || d === '{') depth++;
      else if (d === ']' || d === '}') {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return i;
  }
  while (i < text.length && !',]} \n\r\t'.includes(text[i]!)) i++;
  return i;
}

/** The media types of a task batch. */
export type BatchFormat = 'json' | 'ndjson';

/** Picks the format from the Content-Type, or from the body's first character when it says neither. */
export function batchFormatOf(contentType: string | undefined, body: string): BatchFormat {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/jsonlines') {
    return 'ndjson';
  }
  if (type === 'application/json') return 'json';
  return body.trimStart().startsWith('[') ? 'json' : 'ndjson';
}

/**
 * The event texts of a batch body: a JSON array, or one JSON value per line (blank lines skipped). Every event is
 * checked to be JSON; the first that is not is named with its position (`firstIndex` + its place in the batch).
 */
export function eventTexts(body: string, format: BatchFormat, firstIndex: number): string[] {
  if (format === 'json') {
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch (err) {
      throw ApiError.invalidRequest(
        `the body is not valid JSON: ${(err as Error).message}`,
        'send a JSON array of task events, or one JSON event per line with Content-Type: application/x-ndjson',
      );
    }
    if (!Array.isArray(doc)) {
      throw ApiError.invalidRequest(
        `the body is a JSON ${doc === null ? 'null' : typeof doc}, not an array of task events`,
        'send a JSON array of task events, e.g. [{"x": 1}, {"x": 2}]',
      );
    }
    return arrayElementTexts(body);
  }
  const texts: string[] = [];
  let line = 0;
  for (const raw of body.split('\n')) {
    line++;
    const text = raw.trim();
    if (text === '') continue;
    try {
      JSON.parse(text);
    } catch (err) {
      throw ApiError.invalidTask(
        firstIndex + texts.length,
        `line ${line} is not valid JSON: ${(err as Error).message}`,
        'send one JSON event per line (NaN and Infinity are not JSON: encode them as strings or null)',
      );
    }
    texts.push(text);
  }
  return texts;
}
