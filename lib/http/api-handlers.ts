// The HTTP API's handlers, apart from any server: a request in, a response out (JSON, or an NDJSON stream).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { mapLimit } from '../backends/aws/aws-retry';
import type { ChangeFeed, GridClient } from '../client';
import { InvalidBrowseCursorError } from '../backends/browse-cursor';
import {
  isTaskState,
  isTerminal,
  TERMINAL_STATES,
  taskIdOf,
  UnknownTaskError,
  type GridConfig,
  type SessionRecord,
  type SessionSummaryAnswer,
  type TaskRecord,
  type TaskSummaryView,
} from '../core';
import { silentLogger, type Logger } from '../logging';
import type { PayloadStore, RequestLedger, TaskTable } from '../ports';
import { sleep } from '../timing';
import { NO_AGENTS, type AgentDirectory } from './agents';
import { ApiError, toApiError } from './api-error';
import { OverviewTracker, overviewEvents } from './grid-events';
import { batchFormatOf, eventTexts, topLevelSpans } from './json-text';
import { API_LIMITS, type ApiLimits } from './limits';
import type { OutputTails } from './output-tails';
import { RateLimiter } from './rate-limiter';
import {
  decodeResultsCursor,
  encodeResultsCursor,
  MAX_SENT_SET_BYTES,
  packSentTasks,
  type ReRead,
  type ResultsCursor,
} from './results-cursor';
import {
  MISSING_RESULTS_CHECK_MS,
  MissingResultsCheck,
  validMissingResultsCheckMs,
} from '../client/missing-results-check';
import { DeliveredTasks, lackedBy } from '../client/delivered-tasks';
import { SessionSummary } from '../client/session-summary';
import { resultLine, sessionStatusView, taskDetailJson } from './task-views';

/** A request as any server hands it over: header names lower-case, the body read in full (within the limit). */
export interface ApiRequest {
  readonly method: string;
  /** The path, without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: string;
  /** Who calls (a token, an IAM principal, an address): rate limits are per caller. */
  readonly caller: string;
  /** Aborted when the client goes away: a results stream stops. */
  readonly signal?: AbortSignal;
  /** Epoch ms by which the response must end (a Lambda's deadline): a results stream ends in time. */
  readonly deadline?: number;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON text, or the chunks of an NDJSON stream. */
  readonly body: string | AsyncIterable<string>;
}

export interface ApiHandlersOptions {
  readonly config: GridConfig;
  /** Submits sessions (its table, queue and store are the ones below). */
  readonly client: GridClient;
  readonly table: TaskTable;
  readonly store: PayloadStore;
  /** Requests already applied, so a retried submit is answered from its record. */
  readonly ledger: RequestLedger;
  /** `local` or `aws`: shown by `GET /v1`. */
  readonly gridKind: 'local' | 'aws';
  /** @default - no agent is known */
  readonly agents?: AgentDirectory;
  /** What workers printed, when the agent runs in this process. @default - none */
  readonly outputs?: OutputTails;
  /** Why output is not available when `outputs` is absent. */
  readonly outputNote?: string;
  /**
   * How often a results stream looks for news when nothing finished (with `changes`: the longest wait between looks).
   * @default 50 ms
   */
  readonly pollIntervalMs?: number;
  /**
   * Changes of the task table as they happen (a local grid's `DatabaseChanges`): a waiting results stream looks again
   * at each instead of at its next poll.
   * @default - none: streams poll
   */
  readonly changes?: ChangeFeed;
  /**
   * What wakes the live overview (`GET /v1/events`) before its interval: a local grid's `DatabaseChanges` topics
   * (tasks that ended, tasks queued), so the dashboard shows a change within milliseconds; the interval stays the poll.
   * @default - none: an event every interval
   */
  readonly overviewChanges?: readonly ChangeFeed[];
  /**
   * Shortest time between two events of the live overview when changes wake it.
   * @default 100 ms
   */
  readonly eventsMinIntervalMs?: number;
  /**
   * While a results stream waits for results still missing and none came for this long (across the requests that
   * resume it: the time is in its cursor), it counts the session's ended tasks in the table; when the table counts
   * more than the stream delivered (a result its listing missed), the stream reads again from the session's first
   * result and sends the results it had not sent (see `resultChunks`). After a count that finds nothing missing, the
   * next waits twice as long, up to 5 minutes. `Infinity`: never.
   * @default 20000 (20 s)
   */
  readonly missingResultsCheckMs?: number;
  /**
   * The most bytes the set of tasks a results stream sent takes in its cursor, compressed; a larger set is left out
   * (see `resultChunks`).
   * @default MAX_SENT_SET_BYTES (4 KB)
   */
  readonly maxSentSetBytes?: number;
  /** @default API_LIMITS */
  readonly limits?: ApiLimits;
  readonly logger?: Logger;
  /** @default - Date.now */
  readonly clock?: () => number;
}

type Handler = (req: ApiRequest, params: readonly string[]) => Promise<ApiResponse>;

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handler: Handler;
}

/** Session ids: safe in table keys, payload-store paths and URLs. */
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const SessionCreateSchema = z.strictObject({
  sessionId: z
    .string()
    .regex(SESSION_ID, 'must be 1-128 letters, digits, ".", "_" or "-", not starting with . _ -')
    .optional(),
  priority: z.number().int().min(0).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  timeoutSec: z.number().positive().optional(),
  nonRetryableErrorTypes: z.array(z.string().min(1)).optional(),
  expectedTasks: z.number().int().min(0).optional(),
  tasks: z.array(z.unknown()).optional(),
});

const SealSchema = z.strictObject({ taskCount: z.number().int().min(0) });
const CancelSchema = z.strictObject({ taskIds: z.array(z.string().min(1)).min(1).optional() });

/**
 * How long a results request reads on over rows of tasks the client has (the stream sent them): its `waitSec`, within
 * these bounds. Those rows send nothing, so `limit` does not bound them (see `resultChunks`); the most stays well
 * below a client's socket timeout (the Python client's: 60 s).
 */
const SKIPPED_ROWS_READ_MS = { min: 1_000, max: 20_000 } as const;

/** How long a request holds its ledger key while it is applied (a holder that died frees it after this). */
const LEDGER_HOLD_MS = 120_000;

/**
 * Every route of the HTTP API (`openapi.yaml`). Servers (the local Node server, the Lambda adapter) authenticate,
 * read the body within the limit and write the response; everything else happens here, on the grid's ports.
 */
export class ApiHandlers {
  private readonly routes: Route[];
  private readonly limits: ApiLimits;
  private readonly rate: RateLimiter;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly pollMs: number;
  private readonly missingResultsCheckMs: number;
  private readonly maxSentSetBytes: number;
  private readonly summaries = new Map<string, SessionSummary>();
  /** Sets of sent tasks too large for a results cursor (see `chunkCursor`), while their streams' requests last. */
  private readonly uncarried = new WeakSet<DeliveredTasks>();

  constructor(private readonly options: ApiHandlersOptions) {
    this.limits = options.limits ?? API_LIMITS;
    this.clock = options.clock ?? Date.now;
    this.rate = new RateLimiter(this.limits.requestsPerSecond, this.limits.burst, this.clock);
    this.logger = options.logger ?? silentLogger();
    this.pollMs = options.pollIntervalMs ?? 50;
    this.missingResultsCheckMs = validMissingResultsCheckMs(options.missingResultsCheckMs ?? MISSING_RESULTS_CHECK_MS);
    this.maxSentSetBytes = options.maxSentSetBytes ?? MAX_SENT_SET_BYTES;
    const SID = '([^/]+)';
    this.routes = [
      { method: 'GET', pattern: /^\/v1\/?$/, handler: () => this.gridInfo() },
      { method: 'GET', pattern: /^\/v1\/openapi\.yaml$/, handler: () => this.document() },
      { method: 'GET', pattern: /^\/v1\/agents$/, handler: () => this.agents() },
      { method: 'GET', pattern: /^\/v1\/events$/, handler: (r) => this.events(r) },
      { method: 'POST', pattern: /^\/v1\/sessions$/, handler: (r) => this.createSession(r) },
      { method: 'GET', pattern: /^\/v1\/sessions$/, handler: (r) => this.listSessions(r) },
      { method: 'GET', pattern: new RegExp(`^/v1/sessions/${SID}$`), handler: (_r, p) => this.status(p[0]!) },
      {
        method: 'POST',
        pattern: new RegExp(`^/v1/sessions/${SID}/tasks$`),
        handler: (r, p) => this.addTasks(r, p[0]!),
      },
      {
        method: 'GET',
        pattern: new RegExp(`^/v1/sessions/${SID}/tasks$`),
        handler: (r, p) => this.listTasks(r, p[0]!),
      },
      { method: 'POST', pattern: new RegExp(`^/v1/sessions/${SID}/seal$`), handler: (r, p) => this.seal(r, p[0]!) },
      {
        method: 'GET',
        pattern: new RegExp(`^/v1/sessions/${SID}/results$`),
        handler: (r, p) => this.results(r, p[0]!),
      },
      { method: 'POST', pattern: new RegExp(`^/v1/sessions/${SID}/cancel$`), handler: (r, p) => this.cancel(r, p[0]!) },
      { method: 'GET', pattern: new RegExp(`^/v1/sessions/${SID}/summary$`), handler: (_r, p) => this.summary(p[0]!) },
      { method: 'GET', pattern: new RegExp(`^/v1/tasks/${SID}$`), handler: (_r, p) => this.task(p[0]!) },
      { method: 'POST', pattern: new RegExp(`^/v1/tasks/${SID}/cancel$`), handler: (_r, p) => this.cancelTask(p[0]!) },
    ];
  }

  /** Answers one request; never rejects (errors become JSON error responses). */
  async handle(req: ApiRequest): Promise<ApiResponse> {
    try {
      const wait = this.rate.take(req.caller);
      if (wait > 0) {
        throw new ApiError(
          429,
          'RateLimitedError',
          `more than ${this.limits.requestsPerSecond} requests per second (burst ${this.limits.burst})`,
          `wait ${wait} s (Retry-After) and send fewer, larger requests: batches of up to ${this.limits.maxTasksPerRequest} tasks, one results stream`,
          { retryAfterSec: wait },
          { 'retry-after': String(wait) },
        );
      }
      if (Buffer.byteLength(req.body) > this.limits.maxBodyBytes) throw tooLarge(this.limits);
      const { route, params } = this.match(req);
      return await route.handler(req, params);
    } catch (err) {
      const error = toApiError(err);
      if (error.status >= 500) this.logger.error({ err, method: req.method, path: req.path }, 'request failed');
      return errorResponse(error);
    }
  }

  private match(req: ApiRequest): { route: Route; params: string[] } {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(req.path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      return { route, params: m.slice(1).map((p) => decodeURIComponent(p)) };
    }
    if (pathMatched) {
      const allowed = this.routes.filter((r) => r.pattern.test(req.path)).map((r) => r.method);
      throw new ApiError(
        405,
        'MethodNotAllowedError',
        `${req.method} is not allowed on ${req.path}`,
        `use ${allowed.join(' or ')}`,
        {},
        { allow: allowed.join(', ') },
      );
    }
    throw ApiError.notFound(`no route ${req.method} ${req.path}`, 'the routes are listed in GET /v1/openapi.yaml');
  }

  // --- grid ------------------------------------------------------------------------------------------------------

  private async gridInfo(): Promise<ApiResponse> {
    const c = this.options.config;
    return json(200, {
      api: 'htcgrid',
      version: 1,
      grid: this.options.gridKind,
      limits: this.limits,
      defaults: {
        maxAttempts: c.maxAttempts,
        timeoutSec: c.taskTimeoutMs / 1000,
        priorityLevels: c.priorityLevels,
        maxPayloadBytes: c.maxPayloadBytes,
        nonRetryableErrorTypes: c.nonRetryableErrorTypes,
      },
    });
  }

  private async document(): Promise<ApiResponse> {
    return { status: 200, headers: { 'content-type': 'application/yaml' }, body: openApiDocument() };
  }

  private async agents(): Promise<ApiResponse> {
    return json(200, await (this.options.agents ?? NO_AGENTS).list());
  }

  /** Server-sent events: an overview of the recent sessions, backlog and agents at each change, or every `intervalMs`. */
  private async events(req: ApiRequest): Promise<ApiResponse> {
    const intervalMs = integerParam(req.query, 'intervalMs', 1000, 250, 60_000)!;
    const sessions = integerParam(req.query, 'sessions', 20, 1, 100)!;
    const waitSec = numberParam(req.query, 'waitSec', this.limits.maxWaitSec, 0, this.limits.maxWaitSec);
    let deadline = this.clock() + waitSec * 1000;
    if (req.deadline !== undefined) deadline = Math.min(deadline, req.deadline - 5_000);
    const tracker = new OverviewTracker(this.options.table, this.options.agents ?? NO_AGENTS, sessions, this.clock);
    return {
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
      body: overviewEvents(
        tracker,
        { intervalMs, minIntervalMs: this.options.eventsMinIntervalMs, changes: this.options.overviewChanges },
        deadline,
        this.clock,
        req.signal,
      ),
    };
  }

  // --- submitting ------------------------------------------------------------------------------------------------

  private async createSession(req: ApiRequest): Promise<ApiResponse> {
    const text = req.body.trim() === '' ? '{}' : req.body;
    const body = parse(SessionCreateSchema, parseJson(text), 'session');
    const idempotencyKey = req.headers['idempotency-key'];
    const apply = async (): Promise<ApiResponse> => {
      const texts = body.tasks ? tasksOf(text) : undefined;
      if (texts && texts.length > this.limits.maxTasksPerRequest) throw tooManyTasks(texts.length, this.limits);
      const session = await this.options.client.openSession({
        sessionId: body.sessionId,
        priority: body.priority,
        maxAttempts: body.maxAttempts,
        timeoutSec: body.timeoutSec,
        nonRetryableErrorTypes: body.nonRetryableErrorTypes,
        expectedTasks: body.expectedTasks ?? texts?.length,
      });
      if (texts) {
        try {
          await this.options.client.addTasks(session, 0, texts);
        } catch (err) {
          // Nothing was enqueued (every task is checked before any is written): the session goes, as if never made.
          await this.options.table.deleteSession(session.sessionId).catch(() => undefined);
          throw err;
        }
        await this.options.client.sealSession(session.sessionId, texts.length);
      }
      return this.statusOf(session.sessionId, 201);
    };
    if (idempotencyKey === undefined) return apply();
    if (idempotencyKey.length < 1 || idempotencyKey.length > 255) {
      throw ApiError.invalidRequest('Idempotency-Key must be 1 to 255 characters', 'use a random UUID per submission');
    }
    return this.once(`session:${idempotencyKey}`, fingerprint([text]), apply);
  }

  private async addTasks(req: ApiRequest, sessionId: string): Promise<ApiResponse> {
    const start = integerParam(req.query, 'start', undefined, 0);
    if (start === undefined) {
      throw ApiError.invalidRequest(
        'the start query parameter is missing',
        'pass the index of the batch’s first task: ?start=0 for the first batch, then where the previous batch ended',
      );
    }
    const texts = eventTexts(req.body, batchFormatOf(req.headers['content-type'], req.body), start);
    if (texts.length > this.limits.maxTasksPerRequest) throw tooManyTasks(texts.length, this.limits);
    if (texts.length === 0) {
      throw ApiError.invalidRequest('the batch holds no task', 'send at least one JSON event');
    }
    return this.once(`batch:${sessionId}:${start}`, fingerprint(texts), async () => {
      const session = await this.openSessionRecord(sessionId);
      // Batches follow each other: the one before must be written and this one's first task must not be, so two
      // batches can never write the same task (a rewrite would reset a task that may already run).
      const [previous, first] = await Promise.all([
        start > 0 ? this.options.table.getTask(taskIdOf(sessionId, start - 1)) : Promise.resolve(true),
        this.options.table.getTask(taskIdOf(sessionId, start)),
      ]);
      if (!previous) {
        throw ApiError.conflict(
          `task #${start - 1} of session '${sessionId}' is not written yet, so a batch cannot start at ${start}`,
          'send the batches in order, each starting where the previous one ended (wait for its answer first)',
          { start },
        );
      }
      if (first) {
        throw ApiError.conflict(
          `task #${start} of session '${sessionId}' was already written by another batch`,
          'send each batch once, starting where the previous one ended; a retry must carry the same tasks',
          { start },
        );
      }
      await this.options.client.addTasks(session, start, texts);
      return json(201, {
        sessionId,
        start,
        count: texts.length,
        firstTaskId: taskIdOf(sessionId, start),
        lastTaskId: taskIdOf(sessionId, start + texts.length - 1),
      });
    });
  }

  private async seal(req: ApiRequest, sessionId: string): Promise<ApiResponse> {
    const { taskCount } = parse(SealSchema, parseJson(req.body), 'seal');
    const session = await this.sessionRecord(sessionId);
    if (session.taskCount !== undefined) {
      if (session.taskCount === taskCount) return this.statusOf(sessionId, 200);
      throw ApiError.conflict(
        `session '${sessionId}' is already sealed with ${session.taskCount} tasks`,
        `seal it with the same count, or submit ${taskCount} tasks in a new session`,
      );
    }
    const [last, beyond] = await Promise.all([
      taskCount > 0 ? this.options.table.getTask(taskIdOf(sessionId, taskCount - 1)) : Promise.resolve(true),
      this.options.table.getTask(taskIdOf(sessionId, taskCount)),
    ]);
    if (!last || beyond) {
      throw ApiError.conflict(
        `session '${sessionId}' does not hold exactly ${taskCount} tasks (task #${taskCount - 1} ${last ? 'exists' : 'is missing'}, task #${taskCount} ${beyond ? 'exists' : 'does not'})`,
        'seal with the number of tasks sent in all batches, once every batch was answered',
      );
    }
    await this.options.client.sealSession(sessionId, taskCount);
    return this.statusOf(sessionId, 200);
  }

  /**
   * Applies a request once per ledger key: a retry of a request already applied gets the recorded answer (with
   * `Idempotent-Replayed: true`); another request reusing the key, or a retry while the first is still being
   * applied, gets a 409.
   */
  private async once(key: string, print: string, apply: () => Promise<ApiResponse>): Promise<ApiResponse> {
    const ledger = this.options.ledger;
    const entry = await ledger.begin(key, print, this.clock(), LEDGER_HOLD_MS);
    if (entry.status !== 'new' && entry.fingerprint !== print) {
      throw ApiError.conflict(
        'this idempotency key (or batch start) was already used for a different request',
        'use a new Idempotency-Key per submission, and send each batch with the same tasks when retrying',
      );
    }
    if (entry.status === 'done') {
      const recorded = JSON.parse(entry.response) as { status: number; body: string };
      return {
        status: recorded.status,
        headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' },
        body: recorded.body,
      };
    }
    if (entry.status === 'busy') {
      throw new ApiError(
        409,
        'RequestInProgressError',
        'the same request is being applied right now',
        'retry after the delay in Retry-After: the answer will then be the first request’s',
        {},
        { 'retry-after': '1' },
      );
    }
    let response: ApiResponse;
    try {
      response = await apply();
    } catch (err) {
      await ledger.release(key).catch(() => undefined);
      throw err;
    }
    await ledger.finish(key, JSON.stringify({ status: response.status, body: response.body }));
    return response;
  }

  // --- following -------------------------------------------------------------------------------------------------

  private async status(sessionId: string): Promise<ApiResponse> {
    return this.statusOf(sessionId, 200);
  }

  private async statusOf(sessionId: string, code: number): Promise<ApiResponse> {
    const session = await this.sessionRecord(sessionId);
    const counts = await this.options.table.countByState(sessionId);
    return json(code, sessionStatusView(session, counts));
  }

  private async results(req: ApiRequest, sessionId: string): Promise<ApiResponse> {
    const session = await this.sessionRecord(sessionId);
    const limit = integerParam(
      req.query,
      'limit',
      this.limits.maxResultsPerRequest,
      1,
      this.limits.maxResultsPerRequest,
    )!;
    const waitSec = numberParam(req.query, 'waitSec', this.limits.maxWaitSec, 0, this.limits.maxWaitSec);
    const cursor = decodeResultsCursor(req.query.get('cursor'));
    if (cursor.createdAt !== undefined && cursor.createdAt !== session.createdAt) {
      throw new ApiError(
        400,
        'InvalidCursorError',
        `the cursor is of an earlier session '${sessionId}' (created ${new Date(cursor.createdAt).toISOString()}), ` +
          `deleted since: this one was created ${new Date(session.createdAt).toISOString()}`,
        'follow this session from its first result (no cursor)',
      );
    }
    const now = this.clock();
    let deadline = now + waitSec * 1000;
    // Rows the client has are read on for a second at least (`waitSec=0` means no wait, not no read), and for 20 s at
    // most: they send nothing, and a client whose socket times out first would resume from the same cursor.
    let skipDeadline = now + Math.min(Math.max(waitSec * 1000, SKIPPED_ROWS_READ_MS.min), SKIPPED_ROWS_READ_MS.max);
    // End a little before the server's own deadline (a Lambda's), so the last line with its cursor gets out.
    if (req.deadline !== undefined) {
      deadline = Math.min(deadline, req.deadline - 5_000);
      skipDeadline = Math.min(skipDeadline, req.deadline - 5_000);
    }
    return {
      status: 200,
      headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' },
      body: this.resultChunks(session, cursor, limit, { wait: deadline, skip: skipDeadline }, req.signal),
    };
  }

  /**
   * The NDJSON chunks of a results stream: one line per terminal task in completion order, the last line of each
   * chunk carrying the cursor to resume after it, then one `{"end": ...}` line: `complete` when every task of a
   * sealed session was delivered, `paused` when `limit` or `waitSec` was reached first.
   *
   * A result the listing cannot bring (its listing key behind the cursor, say after a write applied late) would be
   * waited for forever. So while results are missing and none came for `missingResultsCheckMs` (counted across the
   * requests that resume the stream), the stream counts the session's ended tasks, reads what the listing has, and
   * if the table still counts more than it delivered, reads again from the session's first result, sending only the
   * results it had not sent: the cursor carries the task indexes the stream sent, one bit each, compressed (see
   * `MAX_SENT_SET_BYTES`; a set too large to carry is left out, and the lines of the next read from the first result
   * then all come again, clients skipping them by `index`, as the document says, until that read rebuilt the set; a
   * set left out during such a read makes the cursor restart it). Rows the client has do not count against `limit`,
   * so a read that passes them ends at its own deadline (`waitSec` within 1-20 s), `paused` with a cursor past them.
   * The server logs a warning (index lag on DynamoDB, a lost notice, or a defect). Like the SDK's stream, a count
   * that finds nothing missing doubles the wait before the next (up to `MISSING_RESULTS_CHECK_MAX_MS`), and a read
   * from the first result that leaves the table counting more than it brought is repeated only once the table counts
   * more missing, or once that cap passed while the gap lasts; all of it rides in the cursor.
   *
   * Where the table reads tasks by key (`readTerminalWanted`, DynamoDB) and the cursor carries the set, that read
   * reads the session's keys and only the items the set lacks, keeping the listing's place, rather than every item
   * from the first result (see `readLacking`).
   */
  // eslint-disable-next-line max-lines-per-function -- the stream's state (listing cursor, count, set, re-read, check) lives in these locals, which every step of the loop moves; the steps with a state of their own are methods (readLacking, chunkCursor, reReadStarts, reReadEnded)
  private async *resultChunks(
    initial: SessionRecord,
    from: ResultsCursor,
    limit: number,
    deadlines: { readonly wait: number; readonly skip: number },
    signal: AbortSignal | undefined,
  ): AsyncGenerator<string> {
    const deadline = deadlines.wait;
    let session = initial;
    let cursor = from.listing;
    let delivered = from.delivered;
    // The tasks the client had from this stream, when known: a task is sent once, whichever read finds it.
    let sentTasks = from.sent;
    let sent = 0;
    const check = MissingResultsCheck.resume(this.missingResultsCheckMs, this.clock(), from.check);
    // The table's count of ended tasks, taken before the reads since (what they should have brought), and `delivered`
    // then.
    let counted: { readonly ended: number; readonly delivered: number } | undefined;
    // While reading again from the first result: the count that made it, and what had been delivered before it.
    let reRead: ReRead | undefined = from.reRead;
    const readsByKey = this.options.table.readTerminalWanted !== undefined;
    // Whether the read by key under way had this request's whole time (resumed from the cursor), or started in it.
    let wholeRequest = reRead?.byKeys === true;
    // Whether a read by key sent tasks the listing has not passed (see `ResultsCursor.outOfOrder`).
    let outOfOrder = from.outOfOrder === true;
    const encode = (): string =>
      this.chunkCursor(session, sentTasks, { listing: cursor, delivered, reRead, check, outOfOrder });
    for (;;) {
      if (signal?.aborted) return;
      const room = limit - sent;
      if (room <= 0) break;
      if (reRead?.byKeys === true) {
        const budget = { room, until: deadlines.skip, wholeRequest };
        const read = yield* this.readLacking(session.sessionId, sentTasks, reRead, budget, signal, (tasks) => {
          delivered += tasks.length;
          sent += tasks.length;
          outOfOrder = true;
          check.progressed(this.clock());
          return encode();
        });
        if (read === 'aborted') return;
        if (read === 'paused') break;
        if (read === 'ended') {
          this.reReadEnded(session.sessionId, reRead, delivered, check);
          reRead = undefined;
          continue;
        }
        reRead = { counted: reRead.counted, before: reRead.before };
        cursor = undefined;
        if (sentTasks === undefined) {
          delivered = 0;
          sentTasks = new DeliveredTasks();
        }
        continue;
      }
      const since = this.options.changes?.version;
      const page = await this.options.table.listTerminal(session.sessionId, cursor, Math.min(1000, room));
      const ended = page.tasks.filter((t) => isTerminal(t.state));
      const tasks = sentTasks === undefined ? ended : ended.filter((t) => sentTasks!.add(t.index));
      if (page.tasks.length > 0) {
        cursor = page.cursor ?? cursor;
        // Rows the client has do not count against `limit`: a deadline bounds them; the `paused` cursor is past them.
        if (tasks.length === 0 && this.clock() < deadlines.skip) continue;
        if (tasks.length === 0) break;
        delivered += tasks.length;
        sent += tasks.length;
        // Lines sent again after a restart are no news; those past what was delivered before it are.
        if (reRead === undefined || delivered > reRead.before) check.progressed(this.clock());
        const last = tasks.length - 1;
        const lines = await mapLimit(tasks, 8, (task, i) =>
          resultLine(task, this.options.store, i === last ? encode() : undefined),
        );
        yield lines.join('');
        continue;
      }
      if (session.taskCount === undefined)
        session = (await this.options.table.getSession(session.sessionId)) ?? session;
      if (session.taskCount !== undefined && delivered >= session.taskCount) {
        yield `{"end":"complete","cursor":${JSON.stringify(encode())},"delivered":${delivered}}\n`;
        return;
      }
      if (reRead !== undefined) {
        this.reReadEnded(session.sessionId, reRead, delivered, check);
        reRead = undefined;
        continue;
      }
      if (counted !== undefined) {
        if (check.missing(counted.ended, delivered, this.clock())) {
          // With the set of sent tasks, a table that reads tasks by key reads only those the set lacks; the listing
          // keeps its place.
          // Only with a set the cursor carries: without it, what a read by key sent past the listing's place could
          // not be told from what the listing brings next.
          const byKeys = sentTasks !== undefined && readsByKey && !this.uncarried.has(sentTasks);
          this.reReadStarts(session.sessionId, counted.ended, delivered, sentTasks === undefined, byKeys);
          reRead = { counted: counted.ended, before: delivered, ...(byKeys ? { byKeys } : {}) };
          wholeRequest = false;
          if (!byKeys) cursor = undefined;
          if (sentTasks === undefined) {
            // No record of what the client had: every line comes again (it skips them by index), counted from 0,
            // and this read builds the record anew, so later reads from the first result send only what it lacks.
            delivered = 0;
            sentTasks = new DeliveredTasks();
          }
        } else if (delivered === counted.delivered) {
          check.checked(this.clock());
        }
        counted = undefined;
        continue;
      }
      if (check.due(this.clock())) {
        // Counted first, then read: a task ending between the two is brought by the read, not taken for missed.
        counted = { ended: await this.options.table.countTerminal(session.sessionId), delivered };
        continue;
      }
      if (this.clock() >= deadline) break;
      const waitMs = Math.min(this.pollMs, Math.max(0, deadline - this.clock()), check.untilDue(this.clock()));
      if (this.options.changes && since !== undefined)
        await this.options.changes.waitForChange(since, waitMs, signal, session.sessionId);
      else await sleep(waitMs, signal);
    }
    yield `{"end":"paused","cursor":${JSON.stringify(encode())},"delivered":${delivered}}\n`;
  }

  /**
   * The lines of a results stream's read by key of the ended tasks `sent` lacks (see `ReRead.byKeys`), at most
   * `budget.room`; `sending` records the tasks of each chunk sent and returns the chunk's cursor. The keys it reads
   * without sending are bounded as rows the client has are (`budget.until`, see `SKIPPED_ROWS_READ_MS`). Returns
   * `ended` once it read all, `paused` when `room` is full or its time ran out in a request it started in (the next
   * gives it its whole time), `listing` when it cannot be made here (no set, a table without such a read) or did not
   * end within a whole request (a session of many millions of keys, or a short `waitSec`): the listing from the first
   * result, whose cursor keeps its place from request to request, reads instead.
   */
  private async *readLacking(
    sessionId: string,
    sent: DeliveredTasks | undefined,
    reRead: ReRead,
    budget: { readonly room: number; readonly until: number; readonly wholeRequest: boolean },
    signal: AbortSignal | undefined,
    sending: (tasks: readonly TaskRecord[]) => string,
  ): AsyncGenerator<string, 'ended' | 'paused' | 'listing' | 'aborted'> {
    const table = this.options.table;
    if (sent === undefined || table.readTerminalWanted === undefined) return 'listing';
    let stopped = false;
    const stop = (): boolean => (stopped ||= signal?.aborted === true || this.clock() >= budget.until);
    let room = budget.room;
    for await (const page of table.readTerminalWanted(
      sessionId,
      lackedBy(sessionId, sent),
      Math.min(1000, room),
      stop,
    )) {
      const tasks: TaskRecord[] = [];
      for (const task of page) {
        // What the page holds past `room` stays out of the set: the next request's read brings it.
        if (tasks.length >= room) break;
        if (isTerminal(task.state) && sent.add(task.index)) tasks.push(task);
      }
      if (tasks.length > 0) {
        room -= tasks.length;
        const cursor = sending(tasks);
        const last = tasks.length - 1;
        const lines = await mapLimit(tasks, 8, (task, i) =>
          resultLine(task, this.options.store, i === last ? cursor : undefined),
        );
        yield lines.join('');
      }
      if (room <= 0) return 'paused';
    }
    if (signal?.aborted) return 'aborted';
    if (!stopped) return 'ended';
    if (!budget.wholeRequest) return 'paused';
    this.logger.warn(
      { sessionId, counted: reRead.counted, before: reRead.before },
      "a results stream's read by key of the tasks it had not sent did not end within a request: it reads again " +
        'from the first result through the listing instead, which resumes from request to request',
    );
    return 'listing';
  }

  /**
   * The cursor of a results stream's chunk. A set of sent tasks that packed past the cap once is not packed again (it
   * only grows; `uncarried` holds it): the request goes on with it all the same, sending and counting each task once,
   * and its cursors hold no set. One within a read from the first result restarts that read, as one that does not
   * know what it sent (every line again, counted from 0): its place and count mid-read are only right with the set,
   * `delivered` not counting the lines the read skipped.
   */
  private chunkCursor(
    { sessionId, createdAt }: SessionRecord,
    sent: DeliveredTasks | undefined,
    at: {
      listing: string | undefined;
      delivered: number;
      reRead: ReRead | undefined;
      check: MissingResultsCheck;
      outOfOrder: boolean;
    },
  ): string {
    const packed = sent !== undefined && !this.uncarried.has(sent) ? this.packSent(sessionId, sent) : undefined;
    const cursor = {
      createdAt,
      listing: at.listing,
      delivered: at.delivered,
      check: at.check.state,
      reRead: at.reRead,
      outOfOrder: at.outOfOrder,
    };
    if (packed === undefined && sent !== undefined) {
      this.uncarried.add(sent);
      // A listing place and a count without the set would send again what a re-read (or a read by key, past that
      // place) sent: the cursor restarts from the first result, counted from 0.
      if (at.reRead !== undefined || at.outOfOrder)
        return encodeResultsCursor({ ...cursor, listing: undefined, delivered: 0, outOfOrder: false }, undefined);
    }
    return encodeResultsCursor(cursor, packed);
  }

  /** The set of tasks a stream sent, packed for its cursor; undefined when unknown, or too large to carry (logged). */
  private packSent(sessionId: string, sent: DeliveredTasks | undefined): Buffer | undefined {
    if (sent === undefined) return undefined;
    const packed = packSentTasks(sent, this.maxSentSetBytes);
    if (packed === undefined) {
      this.logger.debug(
        { sessionId, delivered: sent.size },
        'the set of tasks a results stream sent is too large for its cursor: the stream goes on without it, and ' +
          'sends every line again at its next read from the first result',
      );
    }
    return packed;
  }

  private reReadStarts(
    sessionId: string,
    counted: number,
    delivered: number,
    sendsAgain: boolean,
    byKeys: boolean,
  ): void {
    this.logger.warn(
      { sessionId, counted, delivered, sendsAgain, byKeys },
      (byKeys
        ? 'a results stream reads again, by key, the ended tasks it had not sent'
        : 'a results stream reads again from the first result') +
        ': the table counted more ended tasks than the stream had delivered, and its listing did not bring them ' +
        '(index lag between the count and the listing, a lost notice, or a defect: please report it if it recurs)',
    );
  }

  /**
   * A results stream's read from the first result brought all the listing has: what the table counted beyond it, the
   * listing cannot bring, and is not read again for until the table counts more (logged once, here).
   */
  private reReadEnded(sessionId: string, reRead: ReRead, delivered: number, check: MissingResultsCheck): void {
    const unreachable = check.reReadEnded(reRead.counted, delivered, this.clock());
    if (unreachable > 0) {
      this.logger.warn(
        { sessionId, counted: reRead.counted, delivered, unreachable },
        'the table counts more ended tasks than a results stream read from the first result brought (a count ' +
          'and listing that disagree, or a read not consistent yet): it reads again once the table counts more, or ' +
          'after five minutes while the gap lasts',
      );
    }
    if (delivered <= reRead.before) check.checked(this.clock());
  }

  private async summary(sessionId: string): Promise<ApiResponse> {
    const session = await this.sessionRecord(sessionId);
    let summary = this.summaries.get(sessionId);
    if (summary) this.summaries.delete(sessionId);
    else summary = new SessionSummary(sessionId, this.clock);
    this.summaries.set(sessionId, summary);
    if (this.summaries.size > 64) this.summaries.delete(this.summaries.keys().next().value!);
    // Counted first, then read: the summary compares the two to catch up a task its listing passed.
    const counts = await this.options.table.countByState(sessionId);
    const ended = [...TERMINAL_STATES].reduce((n, state) => n + counts[state], 0);
    await summary.update(this.options.table, undefined, ended);
    return json(200, { ...summary.view(), status: sessionStatusView(session, counts) } satisfies SessionSummaryAnswer);
  }

  private async listSessions(req: ApiRequest): Promise<ApiResponse> {
    const limit = integerParam(req.query, 'limit', 20, 1, 100)!;
    const page = await withCursorErrors(this.options.table.listSessions(req.query.get('cursor') || undefined, limit));
    const sessions = await mapLimit(page.items, 8, async (session) =>
      sessionStatusView(session, await this.options.table.countByState(session.sessionId)),
    );
    return json(200, { sessions, cursor: page.cursor ?? null });
  }

  private async listTasks(req: ApiRequest, sessionId: string): Promise<ApiResponse> {
    await this.sessionRecord(sessionId);
    const state = req.query.get('state') ?? undefined;
    if (state !== undefined && !isTaskState(state)) {
      throw ApiError.invalidRequest(
        `state=${state.slice(0, 40)} is not a task state`,
        'filter by state=pending, running, succeeded, failed or cancelled',
      );
    }
    const errorType = req.query.get('errorType') ?? undefined;
    const limit = integerParam(req.query, 'limit', 100, 1, 1000)!;
    if (state === 'pending' || state === 'running') return this.listLiveTasks(req, sessionId, state, errorType, limit);
    let cursor = req.query.get('cursor') ?? undefined;
    const tasks: TaskRecord[] = [];
    let more = true;
    // Reads on past tasks that do not match, a bounded number of pages per call; a page never holds more tasks than
    // are still wanted, so every call ends on a page boundary and its cursor loses nothing.
    for (let pages = 0; tasks.length < limit && pages < 50; pages++) {
      const page = await this.options.table.listTerminal(sessionId, cursor, limit - tasks.length);
      if (page.tasks.length === 0) {
        more = false;
        break;
      }
      cursor = page.cursor ?? cursor;
      for (const t of page.tasks) {
        if ((state === undefined || t.state === state) && (errorType === undefined || t.error?.type === errorType)) {
          tasks.push(t);
        }
      }
    }
    return json(200, { tasks: tasks.map(summaryOf), cursor: cursor ?? null, more });
  }

  /** Live tasks: read a bounded number of pages, so a call answers quickly even when few tasks match. */
  private async listLiveTasks(
    req: ApiRequest,
    sessionId: string,
    state: 'pending' | 'running',
    errorType: string | undefined,
    limit: number,
  ): Promise<ApiResponse> {
    let cursor = req.query.get('cursor') || undefined;
    const tasks: TaskRecord[] = [];
    for (let pages = 0; tasks.length < limit && pages < 20; pages++) {
      const page = await withCursorErrors(this.options.table.listLive(sessionId, state, cursor, limit - tasks.length));
      cursor = page.cursor;
      for (const t of page.items) if (errorType === undefined || t.error?.type === errorType) tasks.push(t);
      if (cursor === undefined) break;
    }
    return json(200, { tasks: tasks.map(summaryOf), cursor: cursor ?? null, more: cursor !== undefined });
  }

  private async task(taskId: string): Promise<ApiResponse> {
    const task = await this.options.table.getTask(taskId);
    if (!task) throw toApiError(new UnknownTaskError(taskId));
    const outputs = this.options.outputs;
    const body = await taskDetailJson(
      task,
      this.options.store,
      outputs ? outputs.attemptsOf(task) : undefined,
      this.options.outputNote ?? 'worker output is not captured by this server',
    );
    return { status: 200, headers: { 'content-type': 'application/json' }, body };
  }

  // --- cancelling ------------------------------------------------------------------------------------------------

  private async cancel(req: ApiRequest, sessionId: string): Promise<ApiResponse> {
    const body = parse(CancelSchema, parseJson(req.body.trim() === '' ? '{}' : req.body), 'cancel');
    await this.sessionRecord(sessionId);
    const before = await this.options.table.countByState(sessionId);
    const cancelled = await this.options.table.cancel(sessionId, body.taskIds, this.clock());
    return json(200, { sessionId, cancelled, before: { pending: before.pending, running: before.running } });
  }

  private async cancelTask(taskId: string): Promise<ApiResponse> {
    const task = await this.options.table.getTask(taskId);
    if (!task) throw toApiError(new UnknownTaskError(taskId));
    const cancelled = await this.options.table.cancel(task.sessionId, [taskId], this.clock());
    const after = await this.options.table.getTask(taskId);
    return json(200, {
      taskId,
      sessionId: task.sessionId,
      cancelled: cancelled > 0,
      state: after?.state ?? task.state,
    });
  }

  // --- helpers ---------------------------------------------------------------------------------------------------

  private async sessionRecord(sessionId: string): Promise<SessionRecord> {
    if (!SESSION_ID.test(sessionId)) {
      throw ApiError.invalidRequest(
        `'${sessionId.slice(0, 140)}' is not a session id`,
        'use the sessionId the API returned',
      );
    }
    const session = await this.options.table.getSession(sessionId);
    if (!session) {
      throw ApiError.unknownSession(sessionId);
    }
    return session;
  }

  private async openSessionRecord(sessionId: string): Promise<SessionRecord> {
    const session = await this.sessionRecord(sessionId);
    if (session.taskCount !== undefined) {
      throw ApiError.conflict(
        `session '${sessionId}' is sealed with ${session.taskCount} tasks: no task can be added`,
        'submit more tasks in a new session',
      );
    }
    return session;
  }
}

function summaryOf(t: TaskRecord): TaskSummaryView {
  return {
    taskId: t.taskId,
    index: t.index,
    state: t.state,
    attempts: t.attempt,
    errorType: t.error?.type ?? null,
    errorMessage: t.error?.message ?? null,
    reason: t.failureReason ?? null,
    submittedAt: t.submittedAt,
    startedAt: t.startedAt ?? null,
    finishedAt: t.finishedAt ?? null,
  };
}

/** A browsing cursor the table refused becomes a 400 naming it. */
async function withCursorErrors<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if (!(err instanceof InvalidBrowseCursorError)) throw err;
    throw new ApiError(
      400,
      'InvalidCursorError',
      err.message.split('\n')[0]!,
      'pass back the cursor of a page unchanged',
    );
  }
}

function json(status: number, value: unknown): ApiResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}

export function errorResponse(error: ApiError): ApiResponse {
  return {
    status: error.status,
    headers: { 'content-type': 'application/json', ...error.headers },
    body: JSON.stringify(error.body()),
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw ApiError.invalidRequest(`the body is not valid JSON: ${(err as Error).message}`, 'send a JSON object');
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : what}: ${i.message}`);
  throw ApiError.invalidRequest(
    `invalid ${what} request: ${problems.join('; ')}`,
    'fix the fields named, as GET /v1/openapi.yaml describes them',
    { problems },
  );
}

/** The task texts of a session-create body's `tasks` array, exactly as sent. */
function tasksOf(text: string): string[] {
  const span = topLevelSpans(text).find((s) => s.key === 'tasks');
  if (!span) return [];
  const array = text.slice(span.start, span.end);
  return topLevelSpans(array).map((s) => array.slice(s.start, s.end));
}

function fingerprint(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\n');
  return hash.digest('base64url');
}

function integerParam(
  query: URLSearchParams,
  name: string,
  fallback: number | undefined,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw ApiError.invalidRequest(
      `${name}=${raw.slice(0, 40)} is not an integer from ${min} to ${max}`,
      `pass ${name} in that range`,
    );
  }
  return n;
}

function numberParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw ApiError.invalidRequest(
      `${name}=${raw.slice(0, 40)} is not a number from ${min} to ${max}`,
      `pass ${name} in that range`,
    );
  }
  return n;
}

function tooLarge(limits: ApiLimits): ApiError {
  return new ApiError(
    413,
    'RequestTooLargeError',
    `the request body is larger than ${limits.maxBodyBytes} bytes`,
    `send the tasks in several batches (POST /v1/sessions/{sessionId}/tasks), each under ${limits.maxBodyBytes} bytes`,
    { maxBodyBytes: limits.maxBodyBytes },
  );
}

function tooManyTasks(count: number, limits: ApiLimits): ApiError {
  return new ApiError(
    413,
    'RequestTooLargeError',
    `${count} tasks in one request, more than ${limits.maxTasksPerRequest}`,
    `send them in batches of at most ${limits.maxTasksPerRequest} (POST /v1/sessions/{sessionId}/tasks?start=N)`,
    { maxTasksPerRequest: limits.maxTasksPerRequest },
  );
}

let documentText: string | undefined;

/** The OpenAPI document this API implements (shipped next to this file, in the package and the Lambda bundle). */
export function openApiDocument(): string {
  documentText ??= fs.readFileSync(path.join(__dirname, 'openapi.yaml'), 'utf8');
  return documentText;
}
