"""Python client of the htc-grid-cdk HTTP API.

    from htcgrid import Grid
    grid = Grid.connect(".htcgrid/client.json")          # or the API's URL, or a deployed stack's outputs
    session = grid.submit({"spot": s} for s in range(100))
    for r in session.results():                          # in completion order
        print(r.index, r.task_id, r.result if r.ok else r.error)
"""
from .errors import (
    ApiError,
    ConflictError,
    HtcGridError,
    InternalError,
    InvalidCursorError,
    InvalidRequestError,
    InvalidTaskError,
    MethodNotAllowedError,
    NotAvailableError,
    NotFoundError,
    RateLimitedError,
    RequestInProgressError,
    RequestTooLargeError,
    ServiceUnavailableError,
    SessionExistsError,
    TaskFailedError,
    UnauthorizedError,
    UnknownSessionError,
    UnknownTaskError,
)
from .grid import CLIENT_CONFIG_FILE, Grid, Result, Session, Status, TaskError

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "CLIENT_CONFIG_FILE",
    "ConflictError",
    "Grid",
    "HtcGridError",
    "InternalError",
    "InvalidCursorError",
    "InvalidRequestError",
    "InvalidTaskError",
    "MethodNotAllowedError",
    "NotAvailableError",
    "NotFoundError",
    "RateLimitedError",
    "RequestInProgressError",
    "RequestTooLargeError",
    "Result",
    "ServiceUnavailableError",
    "Session",
    "SessionExistsError",
    "Status",
    "TaskError",
    "TaskFailedError",
    "UnauthorizedError",
    "UnknownSessionError",
    "UnknownTaskError",
]
