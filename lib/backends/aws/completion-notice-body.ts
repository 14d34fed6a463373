// What a completion notice says, as SQS message bodies: the tasks of one session that ended, and, where it fits, how
// each ended (so the client builds its results without reading them back). Pure: no I/O.
import { z } from 'zod';
import { FAILURE_REASONS } from '../../core/task-state';
import type { DataRef, TaskError } from '../../core/task';
import type { HistoryEntry, TaskItem } from './dynamodb-items';
import { sqsJsonText } from './sqs-message-text';
import { ATTR } from './table-schema';

/**
 * A task's terminal item as the completion write left it (the task table's attribute names, lease and TTL left out):
 * what `taskRecordOf` needs, plus its `session_sk`, the key the client's results cursor records.
 */
export type NoticeOutcome = Readonly<Record<string, unknown>>;

/** A task the agent just ended, with its item when the write returned it. */
export interface FinishedTask {
  readonly taskId: string;
  readonly outcome?: NoticeOutcome;
}

/** A task a notice named; `outcome` when the notice carried it (a valid terminal item of the notice's session). */
export interface NoticedTask {
  readonly taskId: string;
  readonly outcome?: NoticeOutcome;
}

/**
 * The largest body sent: SQS takes up to 256 KiB but bills each 64 KiB of a message as one request, so a notice is kept
 * to one billed request; more tasks go in more notices.
 */
export const MAX_NOTICE_BYTES = 64 * 1024;

/**
 * Outcomes are carried only in sends that name at most this many tasks of a session: a client reads a session with
 * more noticed tasks from its index anyway (see `CompletionNoticeQueue`), so their outcomes would be bytes for nothing.
 */
export const MAX_CARRIED_PER_SEND = 100;

/**
 * The attributes of a task item an outcome leaves out: the lease (a terminal task has none), the TTL and the index
 * partition (no reader of a task record needs them).
 */
type UncarriedAttribute = 'lease_owner' | 'lease_expires_at' | 'lease_shard' | 'ttl' | 'session_part';
/** Every other attribute of a task item: the compiler holds `CARRIED` and `outcomeSchema` to exactly these. */
type CarriedAttribute = Exclude<keyof TaskItem, UncarriedAttribute>;

/** The attributes an outcome carries (the payload too: a task record holds it, a deleted session's files need it). */
const CARRIED = {
  [ATTR.taskId]: true,
  [ATTR.sessionId]: true,
  [ATTR.sessionSk]: true,
  [ATTR.index]: true,
  [ATTR.state]: true,
  [ATTR.priority]: true,
  [ATTR.attempt]: true,
  [ATTR.failures]: true,
  [ATTR.maxAttempts]: true,
  [ATTR.timeoutMs]: true,
  [ATTR.payload]: true,
  [ATTR.result]: true,
  [ATTR.error]: true,
  [ATTR.failureReason]: true,
  [ATTR.submittedAt]: true,
  [ATTR.startedAt]: true,
  [ATTR.finishedAt]: true,
  [ATTR.history]: true,
} as const satisfies Record<CarriedAttribute, true>;
const CARRIED_ATTRIBUTES = Object.keys(CARRIED) as CarriedAttribute[];

/** The outcome a notice carries of a task's item (as the completion write returned it). */
export function noticeOutcomeOf(item: Readonly<Record<string, unknown>>): NoticeOutcome {
  const outcome: Record<string, unknown> = {};
  for (const name of CARRIED_ATTRIBUTES) if (item[name] !== undefined) outcome[name] = item[name];
  return outcome;
}

/**
 * The bodies of the notices telling `tasks` of `sessionId`: `{"s": session, "t": [every task id], "o": [outcomes]}`,
 * each at most `maxBytes` (UTF-8) and made of characters SQS accepts. Every task is named once, in order. Outcomes go
 * along in the first notice only, while they fit in it, and only when the send names at most `MAX_CARRIED_PER_SEND`
 * tasks: a send costs what it did when notices only named their tasks (one billed request, more only for thousands of
 * ids), and a task named without its outcome is read by key. Clients that predate outcomes read `t` only.
 */
export function noticeBodies(
  sessionId: string,
  tasks: readonly FinishedTask[],
  maxBytes: number = MAX_NOTICE_BYTES,
): string[] {
  let carrying = tasks.length <= MAX_CARRIED_PER_SEND;
  // Each piece as SQS takes it (see `sqsJsonText`) before its bytes count: an escape is longer than its character.
  const head = `{"s":${sqsJsonText(JSON.stringify(sessionId))},"t":[`;
  // `head` + ids + `],"o":[` + outcomes + `]}`, commas between items.
  const frame = Buffer.byteLength(head) + Buffer.byteLength('],"o":[]}');
  const bodies: string[] = [];
  let ids: string[] = [];
  let outcomes: string[] = [];
  let bytes = frame;
  const flush = (): void => {
    if (ids.length === 0) return;
    const carried = outcomes.length === 0 ? '' : `,"o":[${outcomes.join(',')}]`;
    bodies.push(`${head}${ids.join(',')}]${carried}}`);
    ids = [];
    outcomes = [];
    bytes = frame;
    carrying = false;
  };
  for (const task of tasks) {
    const id = sqsJsonText(JSON.stringify(task.taskId));
    const idBytes = Buffer.byteLength(id) + 1;
    if (bytes + idBytes > maxBytes) flush();
    let outcome = carrying && task.outcome !== undefined ? sqsJsonText(JSON.stringify(task.outcome)) : undefined;
    const outcomeBytes = outcome === undefined ? 0 : Buffer.byteLength(outcome) + 1;
    // No room left in this notice: named only.
    if (bytes + idBytes + outcomeBytes > maxBytes) outcome = undefined;
    ids.push(id);
    bytes += idBytes;
    if (outcome !== undefined) {
      outcomes.push(outcome);
      bytes += outcomeBytes;
    }
  }
  flush();
  return bodies;
}

/** The shape of a zod object for `T`, naming each of its keys (zod drops keys a shape does not name). */
type ShapeOf<T> = Record<keyof T, z.ZodType>;
const dataRef = z.union([
  z.object({ inline: z.string() } satisfies ShapeOf<Extract<DataRef, { inline: string }>>),
  z.object({ key: z.string(), bytes: z.number() } satisfies ShapeOf<Extract<DataRef, { key: string }>>),
]);
const taskError = z.object({
  type: z.string(),
  message: z.string(),
  stack: z.array(z.string()),
} satisfies ShapeOf<TaskError>);
const historyEntry = z.object({
  owner: z.string(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  outcome: z.enum(['succeeded', 'cancelled', 'released', ...FAILURE_REASONS]).optional(),
  error: taskError.optional(),
  runStartedAt: z.number().optional(),
  runMs: z.number().optional(),
} satisfies ShapeOf<HistoryEntry>);
/**
 * A carried outcome as a client accepts it: a terminal item with every attribute `taskRecordOf` reads. Typed so that
 * what it accepts is a task item's carried attributes, and its shape names each of them (zod drops keys it does not
 * name: an attribute added to `TaskItem` fails to compile here rather than vanish from notice-built results).
 */
const outcomeSchema: z.ZodType<Pick<TaskItem, CarriedAttribute>> = z.object({
  [ATTR.taskId]: z.string().min(1),
  [ATTR.sessionId]: z.string(),
  [ATTR.sessionSk]: z.string().startsWith('T#'),
  [ATTR.index]: z.number().int().nonnegative(),
  [ATTR.state]: z.enum(['succeeded', 'failed', 'cancelled']),
  [ATTR.priority]: z.number(),
  [ATTR.attempt]: z.number().int().nonnegative(),
  [ATTR.failures]: z.number().int().nonnegative(),
  [ATTR.maxAttempts]: z.number().int().positive(),
  [ATTR.timeoutMs]: z.number(),
  [ATTR.payload]: dataRef,
  [ATTR.result]: dataRef.optional(),
  [ATTR.error]: taskError.optional(),
  [ATTR.failureReason]: z.enum(FAILURE_REASONS).optional(),
  [ATTR.submittedAt]: z.number(),
  [ATTR.startedAt]: z.number().optional(),
  [ATTR.finishedAt]: z.number(),
  [ATTR.history]: z.record(z.string().regex(/^\d+$/), historyEntry),
} satisfies ShapeOf<Pick<TaskItem, CarriedAttribute>>);

/** What kind of JSON value `value` is: `null`, `a list`, `an object`, `a number`, `a boolean`. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** What a received notice says; `problems` names what was wrong with it (the rest of it still counts). */
export interface ParsedNotice {
  /** '' for a body that is not a notice at all (it still wakes the client's handles). */
  readonly sessionId: string;
  readonly tasks: readonly NoticedTask[];
  readonly problems: readonly string[];
}

/**
 * Reads a notice body of either shape (`{s, t}` from agents that predate outcomes, `{s, t, o}`). Never throws: a body
 * that is not a notice names no task; an outcome that is malformed, of another session or of a task the notice does
 * not name is dropped (its task, if named, is read by key).
 */
export function parseNotice(body: string | undefined): ParsedNotice {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return { sessionId: '', tasks: [], problems: ['the body is not JSON'] };
  }
  const notice = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as {
    s?: unknown;
    t?: unknown;
    o?: unknown;
  };
  if (typeof notice.s !== 'string' || !Array.isArray(notice.t)) {
    return { sessionId: '', tasks: [], problems: ['the body has no session id "s" and task list "t"'] };
  }
  const sessionId = notice.s;
  const problems: string[] = [];
  const named = new Map<string, NoticeOutcome | undefined>();
  for (const id of notice.t) {
    if (typeof id === 'string' && id.length > 0) named.set(id, undefined);
    // Its type only: the value may be anything (a deeply nested list would make JSON.stringify throw).
    else problems.push(`a task id is not a non-empty string but ${id === '' ? 'empty' : describe(id)}`);
  }
  if (notice.o !== undefined && !Array.isArray(notice.o)) problems.push('"o" is not a list');
  const outcomes: unknown[] = Array.isArray(notice.o) ? notice.o : [];
  for (const raw of outcomes) {
    const checked = outcomeSchema.safeParse(raw);
    if (!checked.success) {
      problems.push(
        `an outcome is malformed: ${checked.error.issues[0]?.path.join('.')} ${checked.error.issues[0]?.message}`,
      );
      continue;
    }
    const outcome = checked.data;
    const taskId = outcome[ATTR.taskId];
    if (outcome[ATTR.sessionId] !== sessionId) problems.push(`the outcome of ${taskId} is of another session`);
    else if (!named.has(taskId)) problems.push(`the outcome of ${taskId} is of a task the notice does not name`);
    else named.set(taskId, outcome);
  }
  const tasks = [...named].map(([taskId, outcome]): NoticedTask => (outcome ? { taskId, outcome } : { taskId }));
  return { sessionId, tasks, problems };
}
