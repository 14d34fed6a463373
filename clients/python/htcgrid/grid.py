"""Grid and Session: submit any iterable of events, follow the session, stream its results in completion order."""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from ._transport import SigV4Signer, Transport, check_answer
from .errors import HtcGridError, InvalidCursorError, InvalidTaskError, TaskFailedError

#: Where ``htcgrid local up --http`` writes the API's address and token, inside the grid folder.
CLIENT_CONFIG_FILE = "client.json"
_DEFAULT_DIR = ".htcgrid"
_LAMBDA_URL = re.compile(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws$")
# Under the API's 5 MiB body limit, with room for the request line and headers.
_MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TaskError:
    """A task's error as Lambda reports it."""

    type: str
    message: str
    stack: List[str]


@dataclass(frozen=True)
class Result:
    """One finished task. ``result`` is the handler's return value, read with Python's json (NaN, big ints intact)."""

    index: int
    task_id: str
    state: str
    result: Any = None
    #: The return value's JSON text, exactly as the worker's runtime wrote it.
    result_json: Optional[str] = None
    error: Optional[TaskError] = None
    reason: Optional[str] = None
    attempts: int = 0
    duration_ms: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    def value(self) -> Any:
        """The return value; raises TaskFailedError if the task failed or was cancelled."""
        if not self.ok:
            raise TaskFailedError(self)
        return self.result


@dataclass(frozen=True)
class Status:
    """Counts of a session's tasks per state."""

    session_id: str
    sealed: bool
    task_count: Optional[int]
    counts: Dict[str, int] = field(default_factory=dict)
    done: bool = False

    @property
    def finished(self) -> int:
        return self.counts.get("succeeded", 0) + self.counts.get("failed", 0) + self.counts.get("cancelled", 0)


class Grid:
    """A grid reached through its HTTP API. ``Grid.connect(...)`` finds it; ``submit`` sends a session of tasks."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport

    @classmethod
    def connect(
        cls,
        target: Union[None, str, "os.PathLike[str]", Mapping[str, Any]] = None,
        *,
        token: Optional[str] = None,
        region: Optional[str] = None,
        stack: Optional[str] = None,
        timeout: float = 60.0,
    ) -> "Grid":
        """Connects to a grid's API.

        ``target`` is one of: the API's URL; a client configuration file or its dict (``<grid dir>/client.json``,
        written by ``htcgrid local up --http``: ``api_url`` and ``api_token``); a grid folder; the stack outputs of a
        deployed grid (``ApiUrl``, ``Region``), or a ``cdk deploy --outputs-file`` JSON (``stack`` picks one). Default:
        ``$HTCGRID_CLIENT_CONFIG``, else ``.htcgrid/client.json``. A URL of a Lambda function URL is called with
        requests signed by botocore (SigV4); a local grid's with its bearer token (``token``, or
        ``$HTCGRID_API_TOKEN``).
        """
        config = _client_config(target, stack)
        url = str(config.get("api_url") or config.get("ApiUrl") or "")
        if not url:
            raise HtcGridError(
                "the client configuration names no API URL (api_url or ApiUrl)",
                "start the grid with `htcgrid local up --http`, or deploy the stack with its GridApi",
            )
        token = token or config.get("api_token") or os.environ.get("HTCGRID_API_TOKEN")
        signer = None
        if not token:
            host = re.sub(r":\d+$", "", url.split("//", 1)[-1].split("/", 1)[0])
            match = _LAMBDA_URL.search(host)
            region = region or config.get("Region") or config.get("region") or (match.group(1) if match else None)
            if not region:
                raise HtcGridError(
                    "no token for %s, and no AWS region to sign requests for it" % url,
                    "pass token=... for a local grid (it is in <grid dir>/client.json), or region=... for an AWS grid",
                )
            signer = SigV4Signer(region)
        return cls(Transport(url, token=token, signer=signer, timeout=timeout))

    @property
    def url(self) -> str:
        return self._http.base_url

    def info(self) -> Dict[str, Any]:
        """What the grid is: its limits and the defaults sessions get."""
        return check_answer(self._http.json("GET", "/v1")[0])

    def agents(self) -> Dict[str, Any]:
        """The agents alive on the grid (``agents``: each with ``slots``, ``busySlots``, ``idleSlots``,
        ``runtimeRestarts``, task counts and ``waitingForDisk`` as of its last heartbeat), and a ``note`` on how
        fresh they are."""
        return check_answer(self._http.json("GET", "/v1/agents")[0])

    def submit(
        self,
        events: Iterable[Any],
        *,
        session_id: Optional[str] = None,
        priority: Optional[int] = None,
        max_attempts: Optional[int] = None,
        timeout_sec: Optional[float] = None,
        non_retryable_error_types: Optional[Sequence[str]] = None,
        expected_tasks: Optional[int] = None,
        batch_size: int = 5000,
    ) -> "Session":
        """Submits one task per event (any JSON value), streamed in batches: a million events never sit in memory.

        An event that is not JSON (NaN, Infinity, an object json cannot encode) raises InvalidTaskError naming its
        index; the tasks already sent are then cancelled. Retried requests never duplicate a task.
        """
        if expected_tasks is None and hasattr(events, "__len__"):
            expected_tasks = len(events)  # type: ignore[arg-type]
        options = {
            "sessionId": session_id,
            "priority": priority,
            "maxAttempts": max_attempts,
            "timeoutSec": timeout_sec,
            "nonRetryableErrorTypes": list(non_retryable_error_types) if non_retryable_error_types is not None else None,
            "expectedTasks": expected_tasks,
        }
        body = {k: v for k, v in options.items() if v is not None}
        created = check_answer(
            self._http.json("POST", "/v1/sessions", body, headers={"idempotency-key": str(uuid.uuid4())})[0]
        )
        session = Session(self._http, created["sessionId"])
        path = "/v1/sessions/%s/tasks" % session.session_id
        encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
        try:
            start = 0
            lines: List[bytes] = []
            size = 0
            for event in events:
                index = start + len(lines)
                try:
                    line = encode(event).encode("utf-8")
                except (TypeError, ValueError) as e:
                    raise InvalidTaskError(
                        400, "InvalidTaskError", "task #%d is not JSON: %s" % (index, e),
                        "events must be JSON values: no NaN or Infinity, no objects json cannot encode",
                        {"index": index},
                    ) from e
                if lines and (len(lines) >= batch_size or size + len(line) + 1 > _MAX_BATCH_BYTES):
                    self._http.post_ndjson(path, b"\n".join(lines), {"start": start})
                    start += len(lines)
                    lines, size = [], 0
                lines.append(line)
                size += len(line) + 1
            if lines:
                self._http.post_ndjson(path, b"\n".join(lines), {"start": start})
                start += len(lines)
            self._http.json("POST", "/v1/sessions/%s/seal" % session.session_id, {"taskCount": start})
        except BaseException:
            try:
                session.cancel()
            except Exception:
                pass  # the original error matters more
            raise
        session._task_count = start
        return session

    def session(self, session_id: str) -> "Session":
        """A handle on an existing session (raises UnknownSessionError if there is none)."""
        session = Session(self._http, session_id)
        session.status()
        return session

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Grid":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Session:
    """A submitted session: its status, its results in completion order, waiting for it, cancelling it."""

    def __init__(self, transport: Transport, session_id: str) -> None:
        self._http = transport
        self.session_id = session_id
        self._task_count: Optional[int] = None

    def __repr__(self) -> str:
        return "Session(%r)" % self.session_id

    @property
    def task_ids(self) -> List[str]:
        """The ids of the session's tasks, in submission order (``<session id>_<index>``)."""
        count = self._task_count if self._task_count is not None else self.status().task_count or 0
        return ["%s_%d" % (self.session_id, i) for i in range(count)]

    def status(self) -> Status:
        body, _ = self._http.json("GET", "/v1/sessions/%s" % self.session_id)
        if body.get("taskCount") is not None:
            self._task_count = body["taskCount"]
        return Status(body["sessionId"], body["sealed"], body.get("taskCount"), dict(body["counts"]), body["done"])

    def results(self, *, progress: Optional[bool] = None, wait_sec: Optional[float] = None) -> Iterator[Result]:
        """Every task's result, in completion order, as tasks finish; ends when all have finished.

        The stream resumes where it broke (a dropped connection, a server's time limit) without repeating a task. A
        cursor the server cannot resume (an API rolled back to an earlier version) starts the stream again from the
        first result, the results yielded before skipped; InvalidCursorError is raised when the session was deleted
        and another created under its id meanwhile, or when the server refuses its own cursors. ``wait_sec`` bounds the wait for tasks still running (None: until the session is done). A tqdm progress bar
        shows when tqdm is installed and ``progress`` is not False.
        """
        bar = _progress_bar(progress, self._task_count, "results")
        delivered = bytearray()
        cursor: Optional[str] = None
        # A cursor the server refuses (an API rolled back to a version that cannot read it) restarts the stream from
        # the first result, whose lines delivered before are skipped; again only once a new result came since.
        may_restart = True
        deadline = None if wait_sec is None else time.monotonic() + wait_sec
        try:
            while True:
                # Never longer than the socket waits in silence: a longer wait ended in a timeout and a resume.
                longest = self._http.stream_wait_sec
                wait = longest if deadline is None else max(0.0, deadline - time.monotonic())
                query = {"cursor": cursor, "waitSec": "%.3f" % min(wait, longest)}
                ended = None
                try:
                    for raw in self._http.lines("/v1/sessions/%s/results" % self.session_id, query):
                        line = json.loads(raw)
                        if "end" in line:
                            ended = line["end"]
                            cursor = line["cursor"]
                            continue  # the last line: the stream ends after it
                        if line.get("cursor"):
                            cursor = line["cursor"]
                        index = line["index"]
                        if index >= len(delivered):
                            delivered.extend(b"\0" * (index + 1 - len(delivered)))
                        if delivered[index]:
                            continue  # delivered before a resume
                        delivered[index] = 1
                        may_restart = True
                        if bar is not None:
                            bar.update(1)
                        yield _result_of(line, raw)
                except ConnectionError:
                    continue  # resume from the last cursor
                except InvalidCursorError as e:
                    if cursor is None or not may_restart or _session_replaced(e):
                        raise
                    cursor = None
                    may_restart = False
                    continue
                if ended == "complete":
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
        finally:
            if bar is not None:
                bar.close()

    def __iter__(self) -> Iterator[Result]:
        return self.results()

    def wait(self, timeout: Optional[float] = None, *, progress: Optional[bool] = None, poll_sec: float = 0.5) -> Status:
        """Waits until every task has finished; returns the final status. Raises TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        delay = 0.02
        try:
            while True:
                status = self.status()
                if bar is None:
                    bar = _progress_bar(progress, status.task_count, "tasks")
                if bar is not None:
                    bar.update(status.finished - bar.n)
                if status.done:
                    return status
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        "session %s: %d of %s tasks finished after %s s"
                        % (self.session_id, status.finished, status.task_count, timeout)
                    )
                time.sleep(delay)
                delay = min(poll_sec, delay * 2)
        finally:
            if bar is not None:
                bar.close()

    def cancel(self, task_ids: Optional[Sequence[str]] = None) -> int:
        """Cancels the session (or some tasks): pending tasks never start, running ones stop. Returns how many."""
        body = {"taskIds": list(task_ids)} if task_ids is not None else {}
        answer, _ = self._http.json("POST", "/v1/sessions/%s/cancel" % self.session_id, body)
        return int(answer["cancelled"])

    def summary(self) -> Dict[str, Any]:
        """Failures by error type, time queued and time running of the finished tasks."""
        return check_answer(self._http.json("GET", "/v1/sessions/%s/summary" % self.session_id)[0])

    def task(self, index: int) -> Dict[str, Any]:
        """One task in detail: attempt history, error and stack, captured output, payload, result."""
        return check_answer(self._http.json("GET", "/v1/tasks/%s_%d" % (self.session_id, index))[0])


def _session_replaced(error: InvalidCursorError) -> bool:
    """Whether the server refused the cursor because its session was deleted and another created under its id."""
    # Servers before the detail say so only in the message.
    return "cursorCreatedAt" in error.details or error.problem.startswith("the cursor is of an earlier session")


def _result_of(line: Dict[str, Any], raw: bytes) -> Result:
    error = line.get("error")
    result_json = None
    if "result" in line:
        # The exact text, cut from the line: the server splices it in right before "attempts".
        text = raw.decode("utf-8")
        result_json = text[text.index(',"result":') + 10 : text.rindex(',"attempts":')]
    return Result(
        index=line["index"],
        task_id=line["taskId"],
        state=line["state"],
        result=line.get("result"),
        result_json=result_json,
        error=TaskError(error["type"], error["message"], list(error.get("stack", []))) if error else None,
        reason=line.get("reason"),
        attempts=line.get("attempts", 0),
        duration_ms=line.get("durationMs"),
    )


def _progress_bar(progress: Optional[bool], total: Optional[int], unit: str) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        if progress:
            raise HtcGridError("progress=True needs tqdm", "pip install tqdm")
        return None
    return tqdm(total=total, unit=" " + unit, leave=False)


def _client_config(target: Any, stack: Optional[str]) -> Mapping[str, Any]:
    if target is None:
        target = os.environ.get("HTCGRID_CLIENT_CONFIG") or os.path.join(_DEFAULT_DIR, CLIENT_CONFIG_FILE)
    if isinstance(target, Mapping):
        return _pick_stack(target, stack)
    text = os.fspath(target)
    if re.match(r"^https?://", text):
        return {"api_url": text}
    path = os.path.join(text, CLIENT_CONFIG_FILE) if os.path.isdir(text) else text
    try:
        with open(path, encoding="utf-8") as f:
            return _pick_stack(json.load(f), stack)
    except FileNotFoundError:
        raise HtcGridError(
            "no client configuration at %s" % path,
            "start a grid with `htcgrid local up --http` (it writes <grid dir>/client.json), or pass the API's URL",
        ) from None
    except ValueError as e:
        raise HtcGridError("%s is not JSON: %s" % (path, e), "pass the client.json the grid wrote") from None


def _pick_stack(config: Mapping[str, Any], stack: Optional[str]) -> Mapping[str, Any]:
    """A `cdk deploy --outputs-file` JSON holds one object per stack: pick the one with the API."""
    if "api_url" in config or "ApiUrl" in config:
        return config
    stacks = {k: v for k, v in config.items() if isinstance(v, Mapping) and "ApiUrl" in v}
    if stack is not None:
        if stack not in stacks:
            raise HtcGridError("stack %s has no ApiUrl output in this file" % stack, "deploy the grid with its GridApi")
        return stacks[stack]
    if len(stacks) == 1:
        return next(iter(stacks.values()))
    raise HtcGridError(
        "the configuration names no API (%s)" % (", ".join(sorted(stacks)) or "no ApiUrl, no api_url"),
        "pass stack=<name> to pick one of several stacks, or the client.json of a local grid",
    )
