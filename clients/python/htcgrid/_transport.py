"""HTTP to the grid's API with the standard library: keep-alive, bearer token or SigV4, retries that are safe."""
from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from typing import Any, Dict, Iterator, Optional, Tuple
from urllib.parse import urlencode, urlsplit

from .errors import ApiError, HtcGridError, RateLimitedError, RequestInProgressError, error_from_answer

# Answers worth the same request again after a pause: every request of this client is safe to repeat (batches and
# session creation carry their idempotency key; the rest only read or cancel).
_RETRIED = (RateLimitedError, RequestInProgressError)


class SigV4Signer:
    """Signs requests for a Lambda function URL with AWS_IAM auth (botocore's SigV4, service ``lambda``)."""

    def __init__(self, region: str, credentials: Any = None) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.session import Session
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise HtcGridError(
                "signing requests for an AWS grid needs botocore", "pip install botocore (or ./clients/python[aws])"
            ) from e
        self._auth_class = SigV4Auth
        self._request_class = AWSRequest
        creds = credentials or Session().get_credentials()
        if creds is None:
            raise HtcGridError(
                "no AWS credentials found to sign requests to the grid's API",
                "configure credentials as for the AWS CLI (environment, ~/.aws, instance role)",
            )
        self._credentials = creds
        self.region = region

    def headers(self, method: str, url: str, body: bytes, headers: Dict[str, str]) -> Dict[str, str]:
        request = self._request_class(method=method, url=url, data=body, headers=dict(headers))
        frozen = self._credentials.get_frozen_credentials() if hasattr(self._credentials, "get_frozen_credentials") else self._credentials
        self._auth_class(frozen, "lambda", self.region).add_auth(request)
        return dict(request.headers.items())


class Transport:
    """One keep-alive connection per thread to the API; JSON in and out, NDJSON streamed line by line."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        signer: Optional[SigV4Signer] = None,
        timeout: float = 60.0,
        retries: int = 8,
    ) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HtcGridError("%r is not an http(s) URL of the grid's API" % base_url, "pass e.g. http://127.0.0.1:8642")
        self.base_url = "%s://%s" % (parts.scheme, parts.netloc)
        self._prefix = parts.path
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._token = token
        self._signer = signer
        self._timeout = timeout
        self._retries = retries
        self._local = threading.local()

    @property
    def stream_wait_sec(self) -> float:
        """The longest silent wait to ask of a streaming answer: the server ends it in time, before the socket's
        ``timeout`` would take the silence for a dead connection (and a resume)."""
        if self._timeout is None:
            return 840.0
        return min(840.0, max(self._timeout / 2.0, self._timeout - 5.0))

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def close(self) -> None:
        self._drop()

    def _headers(self, method: str, path: str, body: bytes, content_type: Optional[str], extra: Dict[str, str]) -> Dict[str, str]:
        headers = {"accept": "application/json, application/x-ndjson", "user-agent": "htcgrid-python/0.1"}
        if content_type:
            headers["content-type"] = content_type
        headers.update(extra)
        if self._token:
            headers["authorization"] = "Bearer %s" % self._token
        elif self._signer:
            headers = self._signer.headers(method, self.base_url + path, body, headers)
        return headers

    def _open(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, Any]] = None,
        body: bytes = b"",
        content_type: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> http.client.HTTPResponse:
        """Sends the request (again on a dropped connection, a 429 or a request in progress); returns a 2xx response."""
        full = self._prefix + path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
        attempt = 0
        while True:
            attempt += 1
            try:
                conn = self._connection()
                conn.request(method, full, body=body or None, headers=self._headers(method, full, body, content_type, headers or {}))
                response = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
                self._drop()
                if attempt > self._retries:
                    raise HtcGridError(
                        "cannot reach the grid's API at %s: %s" % (self.base_url, e),
                        "check that the grid runs (htcgrid local up --http) and the URL is right",
                    ) from e
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            if 200 <= response.status < 300:
                return response
            data = response.read()
            retry_after = _retry_after(response)
            try:
                parsed: Any = json.loads(data.decode("utf-8")) if data else {}
            except ValueError:
                parsed = data.decode("utf-8", "replace")
            error = error_from_answer(response.status, parsed, retry_after)
            if response.getheader("connection", "").lower() == "close":
                self._drop()
            if isinstance(error, _RETRIED) or response.status in (502, 503, 504):
                if attempt <= self._retries:
                    time.sleep(retry_after if retry_after is not None else min(2.0, 0.05 * 2**attempt))
                    continue
            raise error

    def json(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[Any, Dict[str, str]]:
        data = b"" if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
        response = self._open(method, path, query, data, "application/json" if body is not None else None, headers)
        text = response.read()
        return json.loads(text.decode("utf-8")), {k.lower(): v for k, v in response.getheaders()}

    def post_ndjson(self, path: str, lines: bytes, query: Dict[str, Any]) -> Any:
        response = self._open("POST", path, query, lines, "application/x-ndjson")
        return json.loads(response.read().decode("utf-8"))

    def lines(self, path: str, query: Dict[str, Any]) -> Iterator[bytes]:
        """The lines of an NDJSON answer as they arrive. A broken stream raises ConnectionError (resume from a cursor)."""
        response = self._open("GET", path, query)
        try:
            while True:
                try:
                    line = response.readline()
                except (http.client.HTTPException, OSError) as e:
                    self._drop()
                    raise ConnectionError(str(e)) from e
                if not line:
                    return
                if line.strip():
                    yield line
        finally:
            if not response.isclosed():
                # Stopped early: the rest of the stream is not wanted and the connection cannot be reused.
                self._drop()


def _retry_after(response: http.client.HTTPResponse) -> Optional[float]:
    value = response.getheader("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def check_answer(value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(0, "HttpError", "unexpected answer from the grid: %r" % (value,))
    return value
