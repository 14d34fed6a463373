// Reading a result's JSON text as the worker's runtime wrote it: Python's `json` writes NaN, Infinity and -Infinity,
// and integers of any size, which JSON.parse rejects or rounds.
//
// No npm library reads both: json5 takes NaN/Infinity but rounds big integers (and takes comments and single quotes
// no runtime writes); lossless-json and json-bigint keep big integers but reject NaN (and lossless-json rejects the
// duplicate keys Python accepts). So the text is read by the native JSON.parse, and only a text it cannot read
// exactly goes through `rewriteSpecials`: a scan that copies strings untouched and swaps each NaN, Infinity,
// -Infinity and unsafe integer for a marker string, which a reviver turns back into the value.

/** Thrown when a stored result is not JSON even with NaN, Infinity and big integers allowed. */
export class ResultJsonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ResultJsonError';
  }
}

/**
 * The value of a result's JSON text, exactly: NaN, Infinity and -Infinity become those numbers, -0.0 stays -0, an
 * integer beyond ±(2^53 - 1) becomes a `bigint` (any other number is a `number`), and every string is as written.
 * Throws `ResultJsonError` when the text is not JSON even so.
 */
export function parseResultJson(text: string): unknown {
  // An integer beyond 2^53 has at least 16 digits, and NaN or Infinity spell themselves: texts with neither (nearly
  // all) take the native path alone; the others skip a native attempt whose failure would cost more than the scan.
  if (!LONG_DIGITS.test(text) && !SPECIAL_WORD.test(text)) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ResultJsonError(`the result is not JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  const rewritten = rewriteSpecials(text);
  try {
    if (rewritten.values.length === 0) return JSON.parse(text);
    const { marker, values } = rewritten;
    return JSON.parse(rewritten.text, (_key, value: unknown) =>
      typeof value === 'string' && value.charCodeAt(0) === marker ? values[Number(value.slice(1))] : value,
    );
  } catch (err) {
    throw new ResultJsonError(`the result is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether `text` is a result the grid can store and hand back: JSON, with NaN, Infinity and big integers allowed. */
export function isResultJson(text: string): boolean {
  try {
    parseResultJson(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The result's text as one line, to splice into a JSON Lines record: a valid text with its line breaks (only ever
 * whitespace between tokens, since JSON strings cannot hold raw ones) turned to spaces; a text that is not JSON at
 * all (written before results were checked) as a JSON string, so the line stays readable.
 */
export function resultJsonForLine(text: string): string {
  if (!isResultJson(text)) return JSON.stringify(text);
  return text.includes('\n') || text.includes('\r') ? text.replace(/[\r\n]/g, ' ') : text;
}

const LONG_DIGITS = /\d{16}/;
const SPECIAL_WORD = /NaN|Infinity/;

interface Rewritten {
  readonly text: string;
  /** The char code that starts every marker string; no string of the original text can contain it. */
  readonly marker: number;
  readonly values: readonly (number | bigint)[];
}

/** `text` with each NaN, ±Infinity and unsafe integer outside strings replaced by the marker string `"<marker><n>"`. */
function rewriteSpecials(text: string): Rewritten {
  const marker = freeMarker(text);
  const values: (number | bigint)[] = [];
  const parts: string[] = [];
  const swap = (from: number, to: number, value: number | bigint): void => {
    parts.push(text.slice(copied, from), JSON.stringify(`${String.fromCharCode(marker)}${values.length}`));
    values.push(value);
    copied = to;
  };
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
    } else if (text.startsWith('NaN', i)) {
      swap(i, i + 3, NaN);
      i += 3;
    } else if (text.startsWith('Infinity', i)) {
      swap(i, i + 8, Infinity);
      i += 8;
    } else if (text.startsWith('-Infinity', i)) {
      swap(i, i + 9, -Infinity);
      i += 9;
    } else if (c === MINUS || isDigit(c)) {
      const end = numberEnd(text, i);
      const literal = text.slice(i, end);
      if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(Number(literal))) swap(i, end, BigInt(literal));
      i = Math.max(end, i + 1);
    } else {
      i++;
    }
  }
  parts.push(text.slice(copied));
  return { text: parts.join(''), marker, values };
}

/** A private-use character that no string of `text` can hold: absent both raw and as a `\uXXXX` escape. */
function freeMarker(text: string): number {
  const lower = text.toLowerCase();
  for (let code = 0xe000; ; code++) {
    if (!text.includes(String.fromCharCode(code)) && !lower.includes(`\\u${code.toString(16)}`)) return code;
  }
}

/** The offset just past the string that opens at `i` (escapes skipped). */
function stringEnd(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return i;
}

function numberEnd(text: string, i: number): number {
  while (i < text.length && /[-+0-9.eE]/.test(text[i]!)) i++;
  return i;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
