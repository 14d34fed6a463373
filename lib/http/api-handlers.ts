// The HTTP API's handlers, apart from any server: a request in, a response out (JSON, or an NDJSON stream).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { mapLimit } from '../backends/aws/aws-retry';
import type { ChangeFeed, GridClient } from '../client';
import { InvalidBrowseCursorError } from '../backends/browse-cursor';
import {
  InvalidCursorError,
  isTaskState,
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
import { NO_AGENTS, type AgentDirectory } from './agents';
import { ApiError, toApiError } from './api-error';
import { OverviewTracker, overviewEvents } from './grid-events';
import { batchFormatOf, eventTexts, topLevelSpans } from './json-text';
import { API_LIMITS, type ApiLimits } from './limits';
import type { OutputTails } from './output-tails';
import { RateLimiter } from './rate-limiter';
import { decodeResultsCursor, MAX_SENT_SET_BYTES } from './results-cursor';
import { resultChunks, type ResultsStreamContext } from './results-stream';
import { MISSING_RESULTS_CHECK_MS, validMissingResultsCheckMs } from '../client/missing-results-check';
import { SessionSummary } from '../client/session-summary';
import { sessionStatusView, taskDetailJson } from './task-views';

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
   * result and sends the results it had not sent (see `ResultsStream`). After a count that finds nothing missing, the
   * next waits twice as long, up to 5 minutes. `Infinity`: never.
   * @default 20000 (20 s)
   */
  readonly missingResultsCheckMs?: number;
  /**
   * The most bytes the set of tasks a results stream sent takes in its cursor, compressed; a larger set is left out
   * (see `ResultsStream`).
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
 * these bounds. Those rows send nothing, so `limit` does not bound them (see `ResultsStream`); the most stays well
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
    if (cursor.listing !== undefined) this.checkListingPart(req.query.get('cursor')!, cursor.listing);
    if (cursor.createdAt !== undefined && cursor.createdAt !== session.createdAt) {
      throw new ApiError(
        400,
        'InvalidCursorError',
        `the cursor is of another session '${sessionId}' (created ${new Date(cursor.createdAt).toISOString()}) ` +
          `than the session of this id now (created ${new Date(session.createdAt).toISOString()}): a session ` +
          'deleted and created again under its id is another',
        'follow this session from its first result (no cursor)',
        // A client tells this refusal (the session it followed is gone) from a cursor it cannot resume (an API
        // rolled back), which it restarts without a cursor.
        { sessionCreatedAt: session.createdAt, cursorCreatedAt: cursor.createdAt },
      );
    }
    const now = this.clock();
    let deadline = now + waitSec * 1000;
    // Rows the client has are read on for a second at least (`waitSec=0` means no wait, not no read), and for 20 s at
    // most: they send nothing, and a client whose socket times out first would resume from the same cursor.
    let skipDeadline = now + Math.min(Math.max(waitSec * 1000, SKIPPED_ROWS_READ_MS.min), SKIPPED_ROWS_READ_MS.max);
    // End a little before the server's own deadline (a Lambda's), so the last line with its cursor gets out: a
    // request that keeps sending is ended by it too.
    const endBy = req.deadline !== undefined ? req.deadline - 5_000 : Infinity;
    deadline = Math.min(deadline, endBy);
    skipDeadline = Math.min(skipDeadline, endBy);
    return {
      status: 200,
      headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' },
      body: resultChunks(this.resultsStreamContext(), session, cursor, {
        limit,
        waitUntil: deadline,
        skipUntil: skipDeadline,
        endBy,
        signal: req.signal,
      }),
    };
  }

  /**
   * A results cursor whose listing part the table would refuse is a 400 before the answer starts (the stream reads
   * the listing only after its first line could have been sent).
   */
  private checkListingPart(raw: string, listing: string): void {
    try {
      this.options.table.checkTerminalCursor(listing);
    } catch (err) {
      if (!(err instanceof InvalidCursorError)) throw err;
      throw new ApiError(
        400,
        'InvalidCursorError',
        `invalid results cursor '${raw.slice(0, 80)}': its listing part (c) is not a listing cursor of this grid ` +
          `(${err.message.split('\n')[0]!})`,
        'pass back a cursor of a result line unchanged',
      );
    }
  }

  private resultsStreamContext(): ResultsStreamContext {
    const { table, store, changes } = this.options;
    const { pollMs, missingResultsCheckMs, maxSentSetBytes, logger, clock } = this;
    return { table, store, changes, pollMs, missingResultsCheckMs, maxSentSetBytes, logger, clock };
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
