// The client SDK: submit a session of tasks streamed from any iterable, then follow it through its handle.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  InvalidTaskError,
  RESEND_EARLY_MESSAGES_AFTER_MS,
  SessionExistsError,
  SessionRunningError,
  SessionWriteUnknownError,
  UnknownSessionError,
  newTask,
  taskIdOf,
  type DataRef,
  type GridConfig,
  type SessionRecord,
  type TaskRecord,
} from '../core';
import {
  payloadKeys,
  queueMessageOf,
  type AgentPresence,
  type AgentRegistry,
  type PayloadStore,
  type QueueMessage,
  type SubmissionWriter,
  type TaskQueue,
  type TaskTable,
} from '../ports';
import { silentLogger } from '../logging';
import { validMissingResultsCheckMs } from './missing-results-check';
import { SessionHandle, type ChangeFeed, type SessionHandleOptions } from './session-handle';
import { SessionSummary, type SessionSummaryView } from './session-summary';

export interface GridClientOptions {
  readonly config: GridConfig;
  readonly table: TaskTable;
  readonly queue: TaskQueue;
  readonly store: PayloadStore;
  /**
   * Writes `submit`'s session, tasks, messages and seal together where the table and queue share one store (a local
   * grid's `SqliteSubmissionWriter`): a session that fits one batch is one transaction, and a failed batch leaves
   * nothing of itself behind.
   * @default - none: the session, each batch's tasks and messages, and the seal are written one after the other
   */
  readonly submissions?: SubmissionWriter;
  /**
   * Where the grid's agents heartbeat, so `aliveAgents()` can tell whether any will run the tasks.
   * @default - unknown: `aliveAgents()` answers undefined
   */
  readonly agents?: AgentRegistry;
  /**
   * How often handles poll for results when nothing is ready (with `changes`: the longest wait between looks).
   * @default 50 ms
   */
  readonly pollIntervalMs?: number;
  /**
   * Changes of the task table as they happen (a local grid's `DatabaseChanges`): a waiting handle looks again at
   * each instead of at its next poll.
   * @default - none: handles poll
   */
  readonly changes?: ChangeFeed;
  /**
   * Without `changes`: a handle that found nothing new waits this long first, doubling up to `pollIntervalMs`, so a
   * result that comes soon after its submit is seen soon too (see `pollBackoff`).
   * @default - always `pollIntervalMs`
   */
  readonly minPollIntervalMs?: number;
  /**
   * While a handle's results stream waits for results still missing and none came for this long, it counts the
   * session's ended tasks in the table (one cheap count), and again later while none comes; when the table
   * counts more than the stream delivered (a result whose notice was lost and that the listing passed), it reads them
   * all again and delivers the missed ones, with a warning. Nothing is counted while results flow. After a count that
   * finds nothing missing, the next waits twice as long, up to 5 minutes (`MISSING_RESULTS_CHECK_MAX_MS`); a new
   * result brings the period back. `Infinity`: never.
   * @default 20000 (20 s)
   */
  readonly missingResultsCheckMs?: number;
  readonly logger?: Logger;
  /**
   * The clock (epoch ms) results streams time their missing-results checks by, and a submission its writes (see
   * `writeSealed`): tests pass one they move themselves.
   * @default Date.now (a submission's writes: performance.now, which no wall-clock change moves)
   */
  readonly clock?: () => number;
}

/** Settings of one task that differ from its session's. */
export interface TaskOptions {
  /** Attempts before the task fails. @default the session's `maxAttempts` */
  readonly maxAttempts?: number;
  /** Deadline of each attempt, in seconds. @default the session's `timeoutSec` */
  readonly timeoutSec?: number;
  /** 0 (lowest) to `priority_levels - 1`. @default the session's `priority` */
  readonly priority?: number;
}

export interface SubmitOptions {
  /** @default - a random UUID */
  readonly sessionId?: string;
  /** @default config `max_attempts` */
  readonly maxAttempts?: number;
  /** @default config `task_timeout_sec` */
  readonly timeoutSec?: number;
  /** 0 (lowest) to `priority_levels - 1`. @default 0 */
  readonly priority?: number;
  /**
   * Handler exception class names (Lambda's `errorType`) never retried: a task raising one fails after that attempt.
   * Agents also honour their grid's `non_retryable_error_types`.
   * @default config `non_retryable_error_types`
   */
  readonly nonRetryableErrorTypes?: readonly string[];
  /**
   * Per-task overrides of `maxAttempts`, `timeoutSec` and `priority`, called once per event as it is submitted.
   * Invalid values reject the submission with an `InvalidTaskError` naming the task.
   * @default - every task takes the session's settings
   */
  readonly taskOptions?: (event: unknown, index: number) => TaskOptions | undefined;
  /**
   * How many events there are, when `events` is not an array but the number is known (the AWS task table sizes the
   * session's result index by it). @default - the array's length, else unknown
   */
  readonly expectedTasks?: number;
  /** Tasks written per batch. @default 500 */
  readonly batchSize?: number;
  /** Called after each batch with the number of tasks submitted so far. */
  readonly onProgress?: (submitted: number) => void;
}

/** The schema's bound on `max_attempts`, applied to per-session and per-task values too. */
const MAX_ATTEMPTS_LIMIT = 100;

export class GridClient {
  private readonly config: GridConfig;
  private readonly table: TaskTable;
  private readonly queue: TaskQueue;
  private readonly store: PayloadStore;
  private readonly submissions: SubmissionWriter | undefined;
  private readonly agents: AgentRegistry | undefined;
  private readonly logger: Logger;
  private readonly pollMs: number;
  private readonly changes: ChangeFeed | undefined;
  private readonly minPollMs: number | undefined;
  private readonly missingResultsCheckMs: number | undefined;
  private readonly clock: (() => number) | undefined;

  constructor(options: GridClientOptions) {
    this.config = options.config;
    this.table = options.table;
    this.queue = options.queue;
    this.store = options.store;
    this.submissions = options.submissions;
    this.agents = options.agents;
    this.logger = options.logger ?? silentLogger();
    this.pollMs = options.pollIntervalMs ?? 50;
    this.changes = options.changes;
    this.minPollMs = options.minPollIntervalMs;
    this.missingResultsCheckMs =
      options.missingResultsCheckMs === undefined
        ? undefined
        : validMissingResultsCheckMs(options.missingResultsCheckMs);
    this.clock = options.clock;
  }

  /**
   * Submits one task per event. Events are streamed: a million tasks never sit in memory. If any event is invalid
   * (not JSON-serialisable, too large), the whole session is removed and an `InvalidTaskError` names the task.
   */
  async submit(
    events: Iterable<unknown> | AsyncIterable<unknown>,
    options: SubmitOptions = {},
  ): Promise<SessionHandle> {
    const expected = options.expectedTasks ?? (Array.isArray(events) ? events.length : undefined);
    if (expected !== undefined && !(Number.isInteger(expected) && expected >= 0)) {
      throw new InvalidTaskError(0, `expectedTasks must be a whole number of tasks (got ${String(expected)})`);
    }
    const session = {
      ...this.sessionRecord(options),
      ...(expected !== undefined ? { expectedTaskCount: expected } : {}),
    };
    // Read before the session is written: a handle that sees it unchanged knows none of its tasks ended yet.
    const writtenAtVersion = this.changes?.version;
    const count = this.submissions
      ? await this.writeTogether(this.submissions, session, events, options)
      : await this.writeInSteps(session, events, options);
    this.logger.info({ sessionId: session.sessionId, tasks: count }, 'session submitted');
    return new SessionHandle({ ...session, taskCount: count }, { ...this.handleOptions(), writtenAtVersion });
  }

  /**
   * `submit`'s writes through a `SubmissionWriter` (the local grid): the session is created with the first batch and
   * sealed with the last, each batch with its messages in one write, so a session of one batch is one transaction.
   * Returns the number of tasks. On error removes what earlier batches wrote and what was stored, and rethrows.
   */
  private async writeTogether(
    writer: SubmissionWriter,
    session: SessionRecord,
    events: Iterable<unknown> | AsyncIterable<unknown>,
    options: SubmitOptions,
  ): Promise<number> {
    const sessionId = session.sessionId;
    // Only a session this submission created is removed on error: a taken id stays its owner's. A named id may be
    // taken, so it is created before anything is stored: its inputs' keys (session and index) are the owner's too.
    let created = false;
    if (options.sessionId !== undefined) {
      await this.table.createSession(session);
      created = true;
    }
    const write = async (tasks: readonly TaskRecord[], seal?: number): Promise<void> => {
      await writer.writeSubmission({ sessionId, ...(created ? {} : { session }), tasks, seal });
      created = true;
    };
    const storedKeys: string[] = [];
    let count = 0;
    try {
      for await (const batch of this.taskBatches(session, events, options, storedKeys)) {
        count = batch.count;
        await write(batch.tasks, batch.last ? count : undefined);
      }
    } catch (err) {
      await this.discardSubmission(err, sessionId, created, storedKeys);
      throw err;
    }
    return count;
  }

  /**
   * The submission's tasks in batches of `options.batchSize`, built (and large inputs stored, their keys added to
   * `storedKeys`) as the events stream in; `count` is the number of tasks up to and including the batch. The last
   * batch has `last` set and may be empty; the last batch of an array is held back even when full, so it goes with
   * the seal (a session of one batch is one write). Between batches, the agents and timers of this process run.
   */
  private async *taskBatches(
    session: SessionRecord,
    events: Iterable<unknown> | AsyncIterable<unknown>,
    options: SubmitOptions,
    storedKeys: string[],
  ): AsyncGenerator<{ readonly tasks: readonly TaskRecord[]; readonly count: number; readonly last: boolean }> {
    const batchSize = options.batchSize ?? 500;
    const known = Array.isArray(events) ? events.length : undefined;
    let batch: TaskRecord[] = [];
    let count = 0;
    for await (const event of events) {
      const overrides = options.taskOptions ? this.taskOverrides(count, options.taskOptions(event, count)) : {};
      batch.push(await this.task(session, count, event, storedKeys, overrides));
      count++;
      if (batch.length >= batchSize && count !== known) {
        yield { tasks: batch, count, last: false };
        batch = [];
        options.onProgress?.(count);
        await yieldToOthers();
      }
    }
    yield { tasks: batch, count, last: true };
    options.onProgress?.(count);
  }

  /**
   * After a failed submission: removes the session when this submission created it, and the inputs it stored. A
   * clean-up that fails too is logged with the session id and the command that finishes it.
   */
  private async discardSubmission(
    err: unknown,
    sessionId: string,
    created: boolean,
    storedKeys: readonly string[],
  ): Promise<void> {
    this.logger.warn({ err, sessionId }, created ? 'submission failed; removing the session' : 'submission failed');
    try {
      if (created) await this.table.deleteSession(sessionId);
      if (storedKeys.length > 0) await this.store.delete([...storedKeys]);
    } catch (cleanupError) {
      this.logger.error(
        { err: cleanupError, sessionId },
        `could not remove the failed submission's session or inputs: run htcgrid delete ${sessionId} --force (with the --dir or --stack you submit with)`,
      );
    }
  }

  /**
   * `submit`'s writes, one request after the other where they depend on each other (the AWS backends): returns the
   * number of tasks. On error removes what was written and stored, and rethrows.
   */
  private async writeInSteps(
    session: SessionRecord,
    events: Iterable<unknown> | AsyncIterable<unknown>,
    options: SubmitOptions,
  ): Promise<number> {
    if (options.sessionId === undefined && Array.isArray(events) && this.fitsSealedSession(events.length, options)) {
      return this.writeSealed(session, events, options);
    }
    // A session id this client drew cannot be taken: its item is written beside the first batch of tasks (one
    // request time less for an interactive task). A named one may be: it is created first, so the tasks of a session
    // that exists are never overwritten. No message is sent before both the session and the tasks are written.
    let creating: Promise<void> | undefined = this.table.createSession(session);
    if (options.sessionId !== undefined) {
      await creating;
      creating = undefined;
    } else {
      // A drawn id is new: "exists" can only be this client's own write, applied but its answer lost and the request
      // retried. Awaited before any message is sent or the submission ends; a failure meanwhile is handled there.
      creating = creating.catch((error: unknown) => {
        if (!(error instanceof SessionExistsError)) throw error;
      });
      creating.catch(() => undefined);
    }
    const created = async (): Promise<void> => {
      const pending = creating;
      creating = undefined;
      await pending;
    };
    const storedKeys: string[] = [];
    let count = 0;
    try {
      for await (const batch of this.taskBatches(session, events, options, storedKeys)) {
        count = batch.count;
        // The last batch's messages and the seal go together: its tasks are written, so either order is the same.
        const seal = batch.last ? () => this.table.sealSession(session.sessionId, batch.count) : undefined;
        if (batch.tasks.length > 0) {
          await this.write(batch.tasks, created, seal);
        } else {
          await created();
          await seal?.();
        }
      }
    } catch (err) {
      // Whatever was started has ended (see `settled`): nothing is written after the clean-up.
      await creating?.catch(() => undefined);
      await this.discardSubmission(err, session.sessionId, true, storedKeys);
      throw err;
    }
    return count;
  }

  /**
   * Whether a session of `count` tasks goes through the table's `createSealedSession`: it takes that many, and their
   * inline payloads (each at most `inlinePayloadMaxBytes`, larger ones go to the store) fit whatever they hold.
   */
  private fitsSealedSession(count: number, options: SubmitOptions): boolean {
    const limits = this.table.createSealedSession ? this.table.sealedSessionLimits : undefined;
    return (
      limits !== undefined &&
      count > 0 &&
      count <= Math.min(limits.tasks, options.batchSize ?? 500) &&
      count * this.config.inlinePayloadMaxBytes <= limits.inlineBytes
    );
  }

  /**
   * A small session under an id this client drew (the AWS backends): the session, sealed, and its tasks in one write
   * that never overwrites a task (`createSealedSession`), and their messages sent beside it rather than after it, one
   * request time less for an interactive task. A message that reaches an agent before the write lands finds no task
   * and is kept for `EARLY_MESSAGE_GRACE_MS` (the intake releases it); a write that took longer than
   * `RESEND_EARLY_MESSAGES_AFTER_MS` has its messages sent again once it is done, in case those were dropped meanwhile
   * (a task with two messages runs once: the table decides); that second send is best-effort, the session stands
   * either way. Returns the number of tasks. On error removes what was written and stored, and rethrows; a write
   * whose outcome stayed unknown (`SessionWriteUnknownError`) is left alone, since it may still land.
   */
  private async writeSealed(
    session: SessionRecord,
    events: readonly unknown[],
    options: SubmitOptions,
  ): Promise<number> {
    const storedKeys: string[] = [];
    let messages: QueueMessage[];
    try {
      const tasks: TaskRecord[] = [];
      for await (const batch of this.taskBatches(session, events, options, storedKeys)) tasks.push(...batch.tasks);
      messages = tasks.map(queueMessageOf);
      // Monotonic: a wall clock moved meanwhile must not skip the second send.
      const now = this.clock ?? (() => performance.now());
      const startedAt = now();
      await settled([
        this.table.createSealedSession!(session, tasks).catch((error: unknown) => {
          // A drawn id is new: "exists" can only be this client's own write, applied but its answer lost.
          if (!(error instanceof SessionExistsError)) throw error;
        }),
        this.queue.send(messages),
      ]);
      if (now() - startedAt <= RESEND_EARLY_MESSAGES_AFTER_MS) return tasks.length;
    } catch (err) {
      if (err instanceof SessionWriteUnknownError) {
        this.logger.error({ err, sessionId: session.sessionId }, 'submission failed; its write may still land');
      } else {
        await this.discardSubmission(err, session.sessionId, true, storedKeys);
      }
      throw err;
    }
    await this.resendEarlyMessages(session.sessionId, messages);
    return messages.length;
  }

  /**
   * Sends a landed sealed session's messages again (see `writeSealed`), twice at most, then gives up with a warning:
   * the first messages went out and its tasks may be running, so the session stands either way (a task whose every
   * message was dropped stays pending until a cancel or delete).
   */
  private async resendEarlyMessages(sessionId: string, messages: readonly QueueMessage[]): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await this.queue.send(messages);
        return;
      } catch (err) {
        if (tries >= 2) {
          this.logger.warn(
            { err, sessionId },
            "sending a slow session write's messages again failed; its tasks run from the first messages unless " +
              'an agent dropped those before the write landed',
          );
          return;
        }
      }
    }
  }

  /**
   * Opens a session for tasks sent in batches (the HTTP API's way to submit): add batches with `addTasks` at their
   * first index, in any order, then `sealSession` with the number of tasks. Nothing is rolled back: a batch that fails
   * can be sent again. Throws `SessionExistsError` when `options.sessionId` is taken.
   */
  async openSession(options: SubmitOptions = {}): Promise<SessionRecord> {
    const expected = options.expectedTasks;
    if (expected !== undefined && !(Number.isInteger(expected) && expected >= 0)) {
      throw new InvalidTaskError(0, `expectedTasks must be a whole number of tasks (got ${String(expected)})`);
    }
    const session = {
      ...this.sessionRecord(options),
      ...(expected !== undefined ? { expectedTaskCount: expected } : {}),
    };
    await this.table.createSession(session);
    return session;
  }

  /**
   * Writes and enqueues one batch of an open session: task `start + i` runs the event whose JSON text is
   * `eventsJson[i]` (valid JSON, kept exactly as given). Every task is checked before any is written: an invalid one
   * rejects with an `InvalidTaskError` naming its index and writes nothing. Writing a batch again rewrites the same
   * tasks, so callers make sure a batch already sent is not sent twice (the HTTP API keeps a request ledger).
   */
  async addTasks(session: SessionRecord, start: number, eventsJson: readonly string[]): Promise<void> {
    const storedKeys: string[] = [];
    const tasks: TaskRecord[] = [];
    try {
      for (let i = 0; i < eventsJson.length; i++) {
        tasks.push(await this.taskOfJson(session, start + i, eventsJson[i]!, storedKeys));
      }
    } catch (err) {
      if (storedKeys.length > 0) await this.store.delete(storedKeys).catch(() => undefined);
      throw err;
    }
    for (let i = 0; i < tasks.length; i += 500) {
      const batch = tasks.slice(i, i + 500);
      if (this.submissions === undefined) await this.write(batch);
      else await this.submissions.writeSubmission({ sessionId: session.sessionId, tasks: batch });
      await yieldToOthers();
    }
  }

  /** Records that an open session holds `taskCount` tasks: its results end there. */
  async sealSession(sessionId: string, taskCount: number): Promise<void> {
    await this.table.sealSession(sessionId, taskCount);
  }

  /**
   * The agents alive now (heartbeat not expired), oldest first; undefined when the grid does not tell (no registry).
   * An empty list means no agent will run queued tasks until one starts.
   */
  async aliveAgents(): Promise<AgentPresence[] | undefined> {
    return this.agents?.listAlive(Date.now());
  }

  /**
   * Failures by error type and time queued / time running of a session's finished tasks (reads them all, up to
   * 200,000 per call).
   */
  async summary(sessionId: string): Promise<SessionSummaryView> {
    const summary = new SessionSummary(sessionId);
    await summary.update(this.table);
    return summary.view();
  }

  /** A handle on an existing session; throws `UnknownSessionError` if there is none. */
  async session(sessionId: string): Promise<SessionHandle> {
    const session = await this.table.getSession(sessionId);
    if (!session) throw new UnknownSessionError(sessionId);
    return new SessionHandle(session, this.handleOptions());
  }

  private handleOptions(): SessionHandleOptions {
    return {
      table: this.table,
      store: this.store,
      pollMs: this.pollMs,
      ...(this.changes ? { changes: this.changes } : {}),
      ...(this.minPollMs !== undefined ? { minPollMs: this.minPollMs } : {}),
      ...(this.missingResultsCheckMs !== undefined ? { missingResultsCheckMs: this.missingResultsCheckMs } : {}),
      logger: this.logger,
      ...(this.clock ? { clock: this.clock } : {}),
    };
  }

  /**
   * Deletes a finished session at once: its tasks, its payload and result files, then the session itself. A session
   * with tasks pending or running (or still being submitted) is refused with `SessionRunningError` unless `force`,
   * which cancels it first. Throws `UnknownSessionError` for an unknown id. Returns how many tasks were deleted.
   */
  async deleteSession(sessionId: string, options: { force?: boolean } = {}): Promise<{ tasks: number }> {
    const session = await this.table.getSession(sessionId);
    if (!session) throw new UnknownSessionError(sessionId);
    const counts = await this.table.countByState(sessionId);
    const live = counts.pending + counts.running;
    if (live > 0 || session.taskCount === undefined) {
      if (!options.force) throw new SessionRunningError(sessionId, live);
      await this.table.cancel(sessionId, undefined, Date.now());
    }
    // Files first, rows after: a delete stopped half-way can be run again (the session is still listed).
    let tasks = 0;
    let cursor: string | undefined;
    for (;;) {
      // The cursor of a results stream never ends: an empty page does.
      const page = await this.table.listTerminal(sessionId, cursor, 1000);
      if (page.tasks.length === 0) break;
      const keys: string[] = [];
      for (const task of page.tasks) {
        tasks += 1;
        if ('key' in task.payload) keys.push(task.payload.key);
        if (task.result !== undefined && 'key' in task.result) keys.push(task.result.key);
      }
      if (keys.length > 0) await this.store.delete(keys);
      cursor = page.cursor;
    }
    await this.store.deletePrefix?.(payloadKeys.sessionPrefix(sessionId));
    await this.table.deleteSession(sessionId);
    return { tasks };
  }

  private sessionRecord(options: SubmitOptions): SessionRecord {
    const nonRetryableErrorTypes = options.nonRetryableErrorTypes ?? this.config.nonRetryableErrorTypes;
    if (!Array.isArray(nonRetryableErrorTypes) || nonRetryableErrorTypes.some((t) => typeof t !== 'string' || !t)) {
      throw new InvalidTaskError(0, 'nonRetryableErrorTypes must be a list of exception class names');
    }
    return {
      sessionId: options.sessionId ?? randomUUID(),
      createdAt: Date.now(),
      priority: this.validPriority(0, options.priority ?? 0),
      maxAttempts: this.validMaxAttempts(0, options.maxAttempts ?? this.config.maxAttempts),
      timeoutMs:
        options.timeoutSec !== undefined ? this.validTimeoutMs(0, options.timeoutSec) : this.config.taskTimeoutMs,
      nonRetryableErrorTypes,
    };
  }

  /** Validates one task's overrides; only the settings given are returned. */
  private taskOverrides(
    index: number,
    options: TaskOptions | undefined,
  ): { priority?: number; maxAttempts?: number; timeoutMs?: number } {
    if (options === undefined) return {};
    return {
      ...(options.priority !== undefined ? { priority: this.validPriority(index, options.priority) } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: this.validMaxAttempts(index, options.maxAttempts) } : {}),
      ...(options.timeoutSec !== undefined ? { timeoutMs: this.validTimeoutMs(index, options.timeoutSec) } : {}),
    };
  }

  private validPriority(index: number, priority: number): number {
    const levels = this.config.priorityLevels;
    if (!Number.isInteger(priority) || priority < 0 || priority >= levels) {
      throw new InvalidTaskError(
        index,
        `priority ${priority} is out of range: use an integer from 0 to ${levels - 1}`,
        { hint: 'raise priority_levels in the grid configuration for more levels' },
      );
    }
    return priority;
  }

  private validMaxAttempts(index: number, maxAttempts: number): number {
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS_LIMIT) {
      throw new InvalidTaskError(
        index,
        `maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT} (got ${maxAttempts})`,
      );
    }
    return maxAttempts;
  }

  private validTimeoutMs(index: number, timeoutSec: number): number {
    const timeoutMs = Math.round(timeoutSec * 1000);
    if (!Number.isFinite(timeoutMs) || !(timeoutMs > 0)) {
      throw new InvalidTaskError(index, `timeoutSec must be a positive number of seconds (got ${timeoutSec})`);
    }
    return timeoutMs;
  }

  private async task(
    session: SessionRecord,
    index: number,
    event: unknown,
    storedKeys: string[],
    overrides: { priority?: number; maxAttempts?: number; timeoutMs?: number } = {},
  ): Promise<TaskRecord> {
    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch (err) {
      throw new InvalidTaskError(index, `is not JSON-serialisable: ${(err as Error).message}`, { cause: err });
    }
    if (json === undefined) {
      throw new InvalidTaskError(index, `is not JSON-serialisable (got ${typeof event})`);
    }
    return this.taskOfJson(session, index, json, storedKeys, overrides);
  }

  private async taskOfJson(
    session: SessionRecord,
    index: number,
    json: string,
    storedKeys: string[],
    overrides: { priority?: number; maxAttempts?: number; timeoutMs?: number } = {},
  ): Promise<TaskRecord> {
    const bytes = Buffer.byteLength(json);
    if (bytes > this.config.maxPayloadBytes) {
      throw new InvalidTaskError(
        index,
        `payload of ${bytes} bytes exceeds the limit of ${this.config.maxPayloadBytes} bytes`,
        {
          hint: 'pass large inputs by reference (e.g. an S3 key in the event) or raise max_payload_bytes',
        },
      );
    }
    let payload: DataRef = { inline: json };
    if (bytes > this.config.inlinePayloadMaxBytes) {
      const key = payloadKeys.input(session.sessionId, taskIdOf(session.sessionId, index));
      await this.store.put(key, json);
      storedKeys.push(key);
      payload = { key, bytes };
    }
    return newTask(session, index, payload, Date.now(), overrides);
  }

  /**
   * Writes a batch of tasks (beside `before`, the session's creation while it runs), then sends their messages
   * (beside `after`, the seal of the last batch): a message never goes before its task and session exist.
   */
  private async write(
    batch: readonly TaskRecord[],
    before: () => Promise<void> = async () => undefined,
    after: () => Promise<void> = async () => undefined,
  ): Promise<void> {
    await settled([this.table.createTasks(batch), before()]);
    await settled([this.queue.send(batch.map(queueMessageOf)), after()]);
  }
}

/** Lets the agents and timers sharing this process run between batches of a long submission. */
function yieldToOthers(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits for all of `work` to end, then rejects with the first failure: a caller cleaning up after a failure never
 * races a write still under way.
 */
async function settled(work: readonly Promise<unknown>[]): Promise<void> {
  const outcomes = await Promise.allSettled(work);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}
