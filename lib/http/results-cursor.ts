// The cursor of an HTTP API results stream: where its listing is, its missing-results check, and which tasks it sent.
import zlib from 'node:zlib';
import { DeliveredTasks } from '../client/delivered-tasks';
import type { MissingResultsCheckState } from '../client/missing-results-check';
import { ApiError } from './api-error';

/**
 * The most bytes the set of sent tasks takes in a cursor, compressed (about 5,500 characters in the URL): one task
 * missing among a million takes about 170 (10 million: 1,600), a hundred scattered about 500, a thousand in flight
 * above the tasks all sent about 600, a thousand scattered across a million about 2,900. A set that compresses to more is left out: the
 * cursor stays small enough for any URL, and the stream, not knowing what it sent, sends every line again at its
 * next read from the first result (see `ResultsCursor.sent`).
 */
export const MAX_SENT_SET_BYTES = 4096;

/** The largest set a cursor may unpack to (bytes: 128 million tasks); a larger one is refused as not ours. */
const MAX_SENT_SET_INFLATED_BYTES = 16 * 1024 * 1024;

/**
 * A results stream reading again what it lacks: the count that made it, and `delivered` before it. It reads from the
 * first result through the listing, or, `byKeys`, only the tasks its set of sent tasks lacks, by key (the table's
 * `readTerminalWanted`): its listing's place is kept then, and each request that resumes it reads again what the set
 * still lacks.
 */
export interface ReRead {
  readonly counted: number;
  readonly before: number;
  readonly byKeys?: boolean;
}

/** What a results cursor holds, decoded. */
export interface ResultsCursor {
  /** When the session was created (undefined: a cursor of an earlier version): a session of the same id is another. */
  readonly createdAt: number | undefined;
  /** The table's listing cursor (undefined: from the first result). */
  readonly listing: string | undefined;
  /** How many tasks the stream sent (since its last read from the first result, when `sent` is undefined). */
  readonly delivered: number;
  /** The state of the stream's missing-results check (fields a cursor of an earlier version lacks are absent). */
  readonly check: Partial<MissingResultsCheckState>;
  /** While the stream reads again from the first result. */
  readonly reRead: ReRead | undefined;
  /**
   * The task indexes the stream sent, one bit each: a read from the first result sends only those it lacks.
   * Undefined when unknown (a cursor of an earlier version, or a set too large to carry, see `MAX_SENT_SET_BYTES`).
   */
  readonly sent: DeliveredTasks | undefined;
  /**
   * A read by key sent tasks the listing has not passed yet (only with `sent`): should the set stop fitting in the
   * cursor, a listing place and a count without it would send those again and count them twice, so the cursor
   * restarts from the first result instead.
   */
  readonly outOfOrder?: boolean;
}

/**
 * The cursor's JSON (base64url): the table's cursor and how many tasks were delivered before it, then the state of
 * its missing-results check and when the session was created (all optional: a cursor of an earlier version resumes
 * as it did; a server of an earlier version ignores the JSON fields it does not know). The set of sent tasks follows
 * after a `.`, deflated (base64url too): a server of a version before the set refuses such a cursor (400
 * InvalidCursorError), so streams resumed across a rollback to one start again without a cursor. Kept out of the
 * JSON, the set takes 4/3 fewer characters than it would inside (base64 of base64).
 *
 * The marks a server of an earlier version must not ignore follow the set after a second `.` (see `CursorMarks`):
 * every version since the set refuses a cursor of three segments (400), where it would ignore them as JSON fields
 * and misread the cursor (a task counted twice, a stream ended complete early).
 */
interface CursorJson {
  readonly c: string | null;
  readonly n: number;
  /** Since when (server clock, epoch ms) the stream delivered no result and counted nothing. */
  readonly q?: number;
  /** How long after `q` the next count is due (ms): the check period, doubled after each count that found nothing. */
  readonly w?: number;
  /** How many ended tasks the table counts that the last read from the first result could not bring. */
  readonly g?: number;
  /** When (server clock, epoch ms) that read ended: it is repeated for the same `g` once the cap passed since. */
  readonly u?: number;
  /** While the stream reads again from the first result: the count that started it, and `n` before it. */
  readonly k?: number;
  readonly b?: number;
  /** Read from cursors of the versions that wrote the marks here, never written (see `CursorMarks`). */
  readonly r?: 1;
  /** When the session was created (its record's `createdAt`, epoch ms). */
  readonly t?: number;
  /** Read from cursors of the versions that wrote the marks here, never written (see `CursorMarks`). */
  readonly o?: 1;
}

/**
 * The cursor's third segment, after its set (only with it): letters, each a mark that changes how the cursor is read.
 * `r`: the read from the first result reads by key the tasks the set lacks (with `k`/`b`), not the listing. `o`: a
 * read by key sent tasks past the listing's place (see `ResultsCursor.outOfOrder`). Out of the JSON, so a server of
 * an earlier version refuses the cursor instead of ignoring them.
 */
const CURSOR_MARKS = /^(?=.)(r?)(o?)$/;

/**
 * The set of sent tasks as a cursor carries it (deflated bytes), or undefined when it compresses to more than
 * `maxBytes`.
 */
export function packSentTasks(sent: DeliveredTasks, maxBytes = MAX_SENT_SET_BYTES): Buffer | undefined {
  const bytes = sent.toBytes();
  let blocks = packedBlocks.get(sent);
  if (blocks === undefined) packedBlocks.set(sent, (blocks = []));
  const parts: Buffer[] = [];
  let total = LAST_BLOCK.length;
  for (let start = 0, i = 0; start < bytes.length; start += PACKED_BLOCK_BYTES, i++) {
    const block = bytes.subarray(start, start + PACKED_BLOCK_BYTES);
    let cached = blocks[i];
    if (cached === undefined || Buffer.compare(cached.bytes, block) !== 0) {
      cached = {
        bytes: Buffer.from(block),
        packed: zlib.deflateRawSync(block, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
      };
      blocks[i] = cached;
    }
    total += cached.packed.length;
    if (total > maxBytes) return undefined;
    parts.push(cached.packed);
  }
  parts.push(LAST_BLOCK);
  return Buffer.concat(parts, total);
}

/**
 * The set is deflated in blocks of 64 KB (half a million tasks), each ended by a sync flush, then an empty last block:
 * one deflated stream, as one deflated whole would be, but a block that did not change since the set was last packed
 * is not deflated again (`packedBlocks`). A stream sends a cursor with each chunk: only the blocks of tasks that ended
 * since are deflated again, not the whole set (at 10 million tasks, 1.25 MB).
 */
const PACKED_BLOCK_BYTES = 64 * 1024;
/** A deflated stream's last block, empty (fixed codes: the final bit, then the end of the block). */
const LAST_BLOCK = Buffer.from([0x03, 0x00]);
/** The blocks of each set as last packed, and their deflated bytes. */
const packedBlocks = new WeakMap<DeliveredTasks, { bytes: Buffer; packed: Buffer }[]>();

export function encodeResultsCursor(cursor: Omit<ResultsCursor, 'sent'>, sent: Buffer | undefined): string {
  const { check, reRead } = cursor;
  const value: CursorJson = {
    c: cursor.listing ?? null,
    n: cursor.delivered,
    ...(check.since !== undefined ? { q: check.since } : {}),
    ...(check.waitMs !== undefined && Number.isFinite(check.waitMs) ? { w: check.waitMs } : {}),
    ...(check.unreachable !== undefined ? { g: check.unreachable } : {}),
    ...(check.unreachableAt !== undefined ? { u: check.unreachableAt } : {}),
    ...(reRead ? { k: reRead.counted, b: reRead.before } : {}),
    ...(cursor.createdAt !== undefined ? { t: cursor.createdAt } : {}),
  };
  const head = Buffer.from(JSON.stringify(value)).toString('base64url');
  if (sent === undefined) return head;
  const marks = `${reRead?.byKeys === true ? 'r' : ''}${cursor.outOfOrder === true ? 'o' : ''}`;
  return `${head}.${sent.toString('base64url')}${marks === '' ? '' : `.${marks}`}`;
}

/** The cursor a client passed back (none: a stream from the first result); a cursor not ours is a 400. */
export function decodeResultsCursor(raw: string | null): ResultsCursor {
  if (raw === null || raw === '') {
    return {
      createdAt: undefined,
      listing: undefined,
      delivered: 0,
      check: {},
      reRead: undefined,
      sent: new DeliveredTasks(),
    };
  }
  const [head, packed, marksText, ...rest] = raw.split('.');
  const refuse = (why: string): never => {
    throw new ApiError(
      400,
      'InvalidCursorError',
      `invalid results cursor '${raw.slice(0, 80)}': ${why}`,
      'pass back a cursor of a result line unchanged',
    );
  };
  if (rest.length > 0) refuse(`it has ${rest.length + 3} '.'-separated parts, at most 3`);
  let value: Partial<CursorJson>;
  try {
    value = JSON.parse(Buffer.from(head!, 'base64url').toString('utf8')) as Partial<CursorJson>;
  } catch {
    return refuse('its first part is not base64url JSON');
  }
  if (typeof value !== 'object' || value === null) return refuse('its first part is not a JSON object');
  const marks = marksText === undefined ? undefined : CURSOR_MARKS.exec(marksText);
  if (marks === null) refuse(`its third part '${marksText!.slice(0, 10)}' is not its marks (r, o, ro)`);
  // Marks in the JSON: a cursor of the versions that wrote them there (they resume as they did).
  const byKeys = marks?.[1] === 'r' || value.r === 1;
  const outOfOrder = marks?.[2] === 'o' || value.o === 1;
  const problem = jsonProblem(value, { byKeys, outOfOrder, withSet: packed !== undefined });
  if (problem !== undefined) refuse(problem);
  let sent: DeliveredTasks | undefined;
  if (packed !== undefined) {
    try {
      const bytes = zlib.inflateRawSync(Buffer.from(packed, 'base64url'), {
        maxOutputLength: MAX_SENT_SET_INFLATED_BYTES,
      });
      sent = DeliveredTasks.fromBytes(bytes);
    } catch {
      return refuse('its second part (the set of sent tasks) is not a deflated set');
    }
    // The set and the count are written together: one that disagrees was not.
    if (sent.size !== value.n) refuse(`its set holds ${sent.size} tasks where its count n says ${value.n}`);
  }
  const { c, n, q, w, g, u, k, b, t } = value as CursorJson;
  return {
    createdAt: t,
    listing: c ?? undefined,
    delivered: n,
    check: {
      ...(q !== undefined ? { since: q } : {}),
      ...(w !== undefined ? { waitMs: w } : {}),
      ...(g !== undefined ? { unreachable: g } : {}),
      ...(u !== undefined ? { unreachableAt: u } : {}),
    },
    reRead:
      k !== undefined && b !== undefined ? { counted: k, before: b, ...(byKeys ? { byKeys: true } : {}) } : undefined,
    sent,
    ...(outOfOrder ? { outOfOrder: true } : {}),
  };
}

/**
 * What is wrong with a cursor's JSON, named by field (undefined: nothing). Fields a cursor of an earlier version lacks
 * are optional: such a cursor resumes as it did.
 */
function jsonProblem(
  value: Partial<CursorJson>,
  marks: { readonly byKeys: boolean; readonly outOfOrder: boolean; readonly withSet: boolean },
): string | undefined {
  const count = (x: unknown): boolean => x === undefined || (Number.isSafeInteger(x) && (x as number) >= 0);
  const time = (x: unknown): boolean => x === undefined || Number.isFinite(x);
  const checks: [boolean, string][] = [
    [value.c === null || typeof value.c === 'string', 'c (the listing part) is neither text nor null'],
    [value.n !== undefined && count(value.n), 'n (results delivered) is not a whole number from 0'],
    [time(value.q), 'q (quiet since) is not a time'],
    [value.w === undefined || (Number.isFinite(value.w) && value.w > 0), 'w (the wait) is not a positive number'],
    [count(value.g), 'g (the gap) is not a whole number from 0'],
    [time(value.u), 'u (the gap read at) is not a time'],
    [count(value.k) && count(value.b), 'k or b (the read again) is not a whole number from 0'],
    [count(value.t), 't (session created at) is not a time'],
    [(value.r === undefined || value.r === 1) && (value.o === undefined || value.o === 1), 'r or o is not 1'],
    [!marks.byKeys || value.k !== undefined, 'its read by key (r) names no read again (k)'],
    [!(marks.byKeys || marks.outOfOrder) || marks.withSet, 'its marks (r, o) come without the set of sent tasks'],
  ];
  return checks.find(([ok]) => !ok)?.[1];
}
