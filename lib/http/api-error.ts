// Errors of the HTTP API: a status, a code (the error class name clients raise), the problem and the fix.
import {
  HtcGridError,
  InvalidCursorError,
  InvalidTaskError,
  SessionExistsError,
  TransientServiceError,
  UnknownSessionError,
  UnknownTaskError,
} from '../core';

/** The JSON body of every error response: `{"error": {"code", "message", "fix", ...details}}`. */
export interface ApiErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly fix?: string;
    readonly [detail: string]: unknown;
  };
}

/** An answer other than success. `code` names the exception the Python client raises (as our classes are named). */
export class ApiError extends HtcGridError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly problem: string,
    readonly fix?: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(problem, { hint: fix });
  }

  static invalidRequest(problem: string, fix: string, details?: Record<string, unknown>): ApiError {
    return new ApiError(400, 'InvalidRequestError', problem, fix, details);
  }

  static invalidTask(index: number, problem: string, fix?: string): ApiError {
    return new ApiError(400, 'InvalidTaskError', `task #${index}: ${problem}`, fix, { index });
  }

  static conflict(problem: string, fix: string, details?: Record<string, unknown>): ApiError {
    return new ApiError(409, 'ConflictError', problem, fix, details);
  }

  static notFound(problem: string, fix: string): ApiError {
    return new ApiError(404, 'NotFoundError', problem, fix);
  }

  /**
   * No session has this id: it never existed, or it finished and was deleted `task_retention_sec` later. The API
   * cannot tell the two apart, so the message names both and the fix covers both.
   */
  static unknownSession(sessionId: string): ApiError {
    return new ApiError(
      404,
      'UnknownSessionError',
      `unknown session '${sessionId}': no session has this id, or it finished more than task_retention_sec ago and was deleted`,
      'use the sessionId returned when the session was created (GET /v1/sessions lists the sessions kept); ' +
        "a deleted session's results are gone: submit its tasks again, and raise task_retention_sec " +
        '(default 7 days) to keep sessions longer',
      { sessionId },
    );
  }

  static notAvailable(problem: string, fix: string): ApiError {
    return new ApiError(501, 'NotAvailableError', problem, fix);
  }

  body(): ApiErrorBody {
    return {
      error: { code: this.code, message: this.problem, ...(this.fix ? { fix: this.fix } : {}), ...this.details },
    };
  }
}

/** Maps any error to the answer the API gives: the grid's own errors keep their meaning, the rest are a 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof UnknownSessionError) {
    return ApiError.unknownSession(err.sessionId);
  }
  if (err instanceof UnknownTaskError) {
    return new ApiError(404, 'UnknownTaskError', `unknown task '${err.taskId}'`, 'task ids are <session id>_<index>', {
      taskId: err.taskId,
    });
  }
  if (err instanceof SessionExistsError) {
    return new ApiError(409, 'SessionExistsError', `session '${err.sessionId}' already exists`, err.hint, {
      sessionId: err.sessionId,
    });
  }
  if (err instanceof InvalidTaskError) {
    const message = err.hint ? err.message.slice(0, err.message.length - `\n  fix: ${err.hint}`.length) : err.message;
    return new ApiError(400, 'InvalidTaskError', message, err.hint, { index: err.index });
  }
  if (err instanceof TransientServiceError) {
    return new ApiError(
      503,
      'ServiceUnavailableError',
      'the grid is busy right now',
      'retry after the delay in Retry-After',
      {},
      { 'retry-after': '1' },
    );
  }
  if (err instanceof InvalidCursorError) {
    return new ApiError(400, 'InvalidCursorError', err.message.split('\n')[0]!, err.hint);
  }
  return new ApiError(500, 'InternalError', 'the grid could not answer this request', 'see the server logs');
}
