"""Errors of the grid, named as the HTTP API's error codes (and the TypeScript SDK's classes)."""
from __future__ import annotations

from typing import Any, Dict, Optional


class HtcGridError(Exception):
    """Base class of every error this client raises on purpose."""

    def __init__(self, message: str, fix: Optional[str] = None) -> None:
        super().__init__(message if not fix else "%s\n  fix: %s" % (message, fix))
        self.problem = message
        self.fix = fix


class ApiError(HtcGridError):
    """An error answer of the API: its HTTP status, code, problem, fix and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fix: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, fix)
        self.status = status
        self.code = code
        self.details = details or {}
        self.retry_after = retry_after


class InvalidRequestError(ApiError):
    """The request is malformed (body, parameters)."""


class InvalidTaskError(ApiError):
    """A task event is not acceptable (not JSON, too large, bad settings); ``index`` names it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = self.details.get("index")


class InvalidCursorError(ApiError):
    """A results cursor the grid did not hand out."""


class UnauthorizedError(ApiError):
    """No token, or not this grid's token (local); or the SigV4 signature was refused (AWS)."""


class NotFoundError(ApiError):
    """No such route."""


class UnknownSessionError(NotFoundError):
    """No session with that id."""


class UnknownTaskError(NotFoundError):
    """No task with that id."""


class MethodNotAllowedError(ApiError):
    """The route exists with another method."""


class ConflictError(ApiError):
    """The request contradicts what the grid holds (a batch out of order, a sealed session, a reused key)."""


class SessionExistsError(ConflictError):
    """A session with this id already exists."""


class RequestInProgressError(ConflictError):
    """The same request is being applied right now: retry shortly."""


class RequestTooLargeError(ApiError):
    """The body or the number of tasks is over the API's limit."""


class RateLimitedError(ApiError):
    """Too many requests: wait ``retry_after`` seconds."""


class NotAvailableError(ApiError):
    """This grid cannot do that (yet)."""


class ServiceUnavailableError(ApiError):
    """The grid is busy: retry shortly."""


class InternalError(ApiError):
    """The server failed; its logs say why."""


class TaskFailedError(HtcGridError):
    """Raised by ``Result.value()`` for a task that did not succeed."""

    def __init__(self, result: Any) -> None:
        error = result.error
        what = "%s: %s" % (error.type, error.message) if error else result.state
        super().__init__("task #%d (%s) %s: %s" % (result.index, result.task_id, result.state, what))
        self.result = result


_BY_CODE = {
    cls.__name__: cls
    for cls in (
        InvalidRequestError,
        InvalidTaskError,
        InvalidCursorError,
        UnauthorizedError,
        NotFoundError,
        UnknownSessionError,
        UnknownTaskError,
        MethodNotAllowedError,
        ConflictError,
        SessionExistsError,
        RequestInProgressError,
        RequestTooLargeError,
        RateLimitedError,
        NotAvailableError,
        ServiceUnavailableError,
        InternalError,
    )
}


def error_from_answer(status: int, body: Any, retry_after: Optional[float] = None) -> ApiError:
    """The exception for an error answer: the class its code names, or ApiError for one this client does not know."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ApiError(status, "HttpError", "HTTP %d: %s" % (status, str(body)[:300]), retry_after=retry_after)
    code = str(error.get("code", "ApiError"))
    details = {k: v for k, v in error.items() if k not in ("code", "message", "fix")}
    cls = _BY_CODE.get(code, ApiError)
    return cls(status, code, str(error.get("message", "")), error.get("fix"), details, retry_after)
