// Typed errors of the grid. Each names the problem and, where there is one, the fix; retryability lives on the error.
import { DISK_FULL_FIX, DISK_FULL_PROBLEM } from './api-views';

export interface HtcGridErrorOptions {
  cause?: unknown;
  /** How to fix it, shown to the user after the message. */
  hint?: string;
}

/** Base class of every error the grid raises on purpose. */
export class HtcGridError extends Error {
  readonly hint?: string;
  constructor(message: string, options: HtcGridErrorOptions = {}) {
    super(options.hint ? `${message}\n  fix: ${options.hint}` : message, { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

/** A configuration value is missing or invalid. `issues` lists every problem found, not just the first. */
export class ConfigError extends HtcGridError {
  readonly issues: readonly string[];
  constructor(issues: readonly string[], options: HtcGridErrorOptions = {}) {
    super(`invalid grid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`, options);
    this.issues = issues;
  }
}

/** A submitted task is not acceptable (not JSON-serialisable, too large, ...). Nothing of its session was kept. */
export class InvalidTaskError extends HtcGridError {
  constructor(
    readonly index: number,
    problem: string,
    options: HtcGridErrorOptions = {},
  ) {
    super(`task #${index}: ${problem}`, options);
  }
}

export class UnknownSessionError extends HtcGridError {
  constructor(readonly sessionId: string) {
    super(`unknown session '${sessionId}' (unknown or expired)`, {
      hint:
        'check the id printed by `htcgrid submit` or `htcgrid status`; a finished session is deleted ' +
        'task_retention_sec after it finished (default 7 days)',
    });
  }
}

/** `delete` of a session that still has tasks to run (or whose submission is not finished), without `force`. */
export class SessionRunningError extends HtcGridError {
  constructor(
    readonly sessionId: string,
    readonly live: number,
  ) {
    super(
      live > 0
        ? `session '${sessionId}' still has ${live} task(s) pending or running`
        : `session '${sessionId}' is still being submitted`,
      { hint: `wait for it to finish, or cancel it first: htcgrid delete ${sessionId} --force` },
    );
  }
}

/** A session with this id already exists: tasks are never added to, or overwritten in, an existing session. */
export class SessionExistsError extends HtcGridError {
  constructor(readonly sessionId: string) {
    super(`session '${sessionId}' already exists`, {
      hint: 'submit under a new session id (or omit it to get a fresh one)',
    });
  }
}

/**
 * A session's write went unanswered through every try (a dropped connection, a timeout, a 5xx, a transaction still
 * under way): it may have landed, or may yet land. Nothing was removed, since a clean-up could race that write.
 */
export class SessionWriteUnknownError extends HtcGridError {
  constructor(
    readonly sessionId: string,
    options: { cause?: unknown } = {},
  ) {
    super(`the write of session '${sessionId}' was not answered: it may have landed, or may still land`, {
      ...options,
      hint:
        `see whether it did with htcgrid status ${sessionId}; remove it with htcgrid delete ${sessionId} --force ` +
        'before you submit its tasks again',
    });
  }
}

export class UnknownTaskError extends HtcGridError {
  constructor(readonly taskId: string) {
    super(`unknown task '${taskId}'`);
  }
}

/** The worker could not be loaded: missing module or function, import error, bad zip. Fails the grid start. */
export class WorkerInitError extends HtcGridError {
  constructor(
    message: string,
    readonly errorType: string = 'Runtime.ImportModuleError',
    options: HtcGridErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** A worker package could not be built. */
export class BundlingError extends HtcGridError {}

/** A service call failed in a way worth retrying after a back-off (throttling, 5xx, connection reset). */
export class TransientServiceError extends HtcGridError {
  readonly retryable = true;
}

/**
 * The file system holding the grid folder is full (SQLite's `SQLITE_FULL`, or `ENOSPC` writing a payload file). The
 * write was rolled back as a whole: nothing recorded before is lost, and the same write succeeds once space is back.
 */
export class DiskFullError extends TransientServiceError {
  constructor(what: string, options: { cause?: unknown } = {}) {
    super(`${what}: ${DISK_FULL_PROBLEM}`, { ...options, hint: DISK_FULL_FIX });
  }
}

/**
 * A full disk is logged once per this period at most by each part of a grid that waits it out (an agent's writes, the
 * retention sweep), however often they find it still full.
 */
export const DISK_FULL_WARN_EVERY_MS = 60_000;

/** Whether `error` is a full disk (`DiskFullError`), the one failure an agent waits out rather than counts. */
export function isDiskFull(error: unknown): error is DiskFullError {
  return error instanceof DiskFullError;
}

/** A lease-guarded write was rejected because the caller no longer holds the task. */
export class StaleLeaseError extends HtcGridError {
  constructor(readonly taskId: string) {
    super(`task '${taskId}' is no longer held by this agent (its lease expired, it was cancelled or re-queued)`);
  }
}

/** A queue receipt that queue never handed out (stale receipts of real messages are not errors: they are ignored). */
export class InvalidReceiptError extends HtcGridError {
  constructor(readonly receipt: string) {
    super(`invalid queue receipt '${shorten(receipt, 40)}'`, {
      hint: 'pass the receipt of a received message unchanged',
    });
  }
}

/** A `listTerminal` cursor that the task table did not hand out. */
export class InvalidCursorError extends HtcGridError {
  constructor(readonly cursor: string) {
    super(`invalid terminal-task cursor '${shorten(cursor, 80)}'`, {
      hint: 'pass back the cursor of the previous page unchanged',
    });
  }
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** A grid folder already runs another grid (another worker or handler): a second one must not share its queue. */
export class GridFolderInUseError extends HtcGridError {}
