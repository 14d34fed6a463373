"""The Python client against a real local grid (``htcgrid local up --http``, started by test/http/python-client.test.ts).

The grid runs test/fixtures/http/worker; ``HTCGRID_CLIENT_CONFIG`` names its client.json.
"""
import json
import math
import os
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from htcgrid import (
    Grid,
    HtcGridError,
    InvalidCursorError,
    InvalidTaskError,
    TaskFailedError,
    UnauthorizedError,
    UnknownSessionError,
)
from htcgrid.compat import AWSConnector
from htcgrid.grid import _session_replaced

CONFIG = os.environ.get("HTCGRID_CLIENT_CONFIG")
pytestmark = pytest.mark.skipif(not CONFIG, reason="HTCGRID_CLIENT_CONFIG names no running grid")


@pytest.fixture(scope="module")
def grid():
    with Grid.connect(CONFIG) as g:
        yield g


def test_a_session_streams_every_result_in_completion_order_with_index_and_task_id(grid):
    session = grid.submit({"do": "echo", "i": i} for i in range(50))
    results = list(session.results())
    assert sorted(r.index for r in results) == list(range(50))
    finished = [r.task_id for r in results]
    assert len(set(finished)) == 50
    for r in results:
        assert r.ok and r.task_id == "%s_%d" % (session.session_id, r.index)
        assert r.result == {"echo": {"do": "echo", "i": r.index}}
    assert session.status().done


def test_agents_lists_the_grids_agent_with_busy_and_idle_slots(grid):
    answer = grid.agents()
    assert answer["source"] == "registry"
    (agent,) = answer["agents"]
    assert agent["slots"] == 2 and agent["state"] == "alive"
    assert agent["busySlots"] + agent["idleSlots"] == 2
    assert agent["runtimeRestarts"] >= 0


def test_values_reach_python_exactly_as_the_worker_returned_them(grid):
    (r,) = list(grid.submit([{"do": "values"}]).results())
    value = r.value()
    assert math.isnan(value["nan"])
    assert value["inf"] == math.inf and value["ninf"] == -math.inf
    assert value["negzero"] == 0 and math.copysign(1, value["negzero"]) == -1
    assert value["big"] == 2**64 + 1 and value["bigneg"] == -(2**70) - 3
    assert value["tenth"] == 0.1 and value["text"] == "line\nbreak \u00e9"
    assert r.result_json.startswith('{"nan": NaN, "inf": Infinity, "ninf": -Infinity, "negzero": -0.0')


def test_values_of_a_result_from_the_payload_store_reach_python_exactly(grid):
    (r,) = list(grid.submit([{"do": "values", "pad": 40000}]).results())
    value = r.value()
    assert math.isnan(value["nan"]) and value["ninf"] == -math.inf
    assert math.copysign(1, value["negzero"]) == -1 and value["big"] == 2**64 + 1
    assert value["unicode"] == "\u4e2d \U0001f600 \u2028 \ud800" and value["pad"] == "x" * 40000


def test_big_integers_in_events_reach_the_worker_exactly(grid):
    (r,) = list(grid.submit([{"do": "echo", "id": 2**80 + 7}]).results())
    assert r.result["echo"]["id"] == 2**80 + 7


def test_a_task_that_raises_comes_back_failed_with_its_error_type(grid):
    session = grid.submit([{"do": "fail", "instrument": "X"}], max_attempts=1)
    (r,) = list(session.results())
    assert r.state == "failed" and r.reason == "error"
    assert r.error.type == "PricingError" and r.error.message == "cannot price X"
    with pytest.raises(TaskFailedError, match="PricingError: cannot price X"):
        r.value()
    detail = session.task(0)
    assert detail["history"][0]["outcome"] == "error"
    summary = session.summary()
    assert summary["failures"][0]["errorType"] == "PricingError"


def test_several_batches_make_one_session(grid):
    session = grid.submit(({"do": "noop"} for _ in range(12_001)), batch_size=5000)
    status = session.wait(timeout=120)
    assert status.task_count == 12_001 and status.counts["succeeded"] == 12_001
    assert len(session.task_ids) == 12_001


def test_wait_status_and_cancel(grid):
    session = grid.submit([{"do": "sleep", "seconds": 10}] * 6)
    assert session.status().task_count == 6
    assert session.cancel() == 6
    status = session.wait(timeout=30)
    assert status.counts["cancelled"] == 6
    assert [r.state for r in session.results()] == ["cancelled"] * 6


def test_wait_gives_up_with_a_timeout_error(grid):
    session = grid.submit([{"do": "sleep", "seconds": 5}])
    with pytest.raises(TimeoutError):
        session.wait(timeout=0.2)
    session.cancel()


def test_an_event_that_is_not_json_raises_invalid_task_error_and_cancels_what_was_sent(grid):
    events = [{"do": "sleep", "seconds": 5}, {"x": float("nan")}]
    with pytest.raises(InvalidTaskError, match="task #1 is not JSON") as caught:
        grid.submit(events, batch_size=1)
    assert caught.value.index == 1


def test_an_unknown_session_raises_unknown_session_error(grid):
    with pytest.raises(UnknownSessionError, match="unknown session"):
        grid.session("no-such-session")


def test_a_wrong_token_raises_unauthorized_error():
    with open(CONFIG) as f:
        url = json.load(f)["api_url"]
    with pytest.raises(UnauthorizedError) as caught:
        Grid.connect(url, token="wrong").info()
    assert "Bearer" in caught.value.fix


def test_results_show_a_tqdm_progress_bar_when_tqdm_is_installed(grid, monkeypatch):
    bars = []

    class FakeTqdm:
        def __init__(self, total=None, **kwargs):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    session = grid.submit([{"do": "noop"}] * 5)
    assert len(list(session.results())) == 5
    assert [(b.total, b.n, b.closed) for b in bars] == [(5, 5, True)]
    assert len(list(session.results(progress=False))) == 5 and len(bars) == 1


def test_without_tqdm_asking_for_a_progress_bar_says_how_to_get_one(grid, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    session = grid.submit([{"do": "noop"}])
    assert len(list(session.results())) == 1
    with pytest.raises(HtcGridError, match="pip install tqdm"):
        list(session.results(progress=True))


def test_htc_grid_connector_sends_gets_results_and_cancels_in_htc_grid_shapes():
    with open(CONFIG) as f:
        config = json.load(f)
    connector = AWSConnector()
    connector.init(config, username="", password="")
    connector.authenticate()
    submission = connector.send([{"do": "echo", "i": 0}, {"do": "fail", "instrument": "Y"}, {"do": "echo", "i": 2}])
    sid = submission["session_id"]
    assert submission["task_ids"] == ["%s_%d" % (sid, i) for i in range(3)]
    results = connector.get_results(submission, timeout_sec=60)
    assert sorted(results["finished"]) == ["%s_0" % sid, "%s_2" % sid]
    assert [json.loads(o)["echo"]["do"] for o in results["finished_OUTPUT"]] == ["echo", "echo"]
    assert results["failed"] == ["%s_1" % sid]
    assert json.loads(results["failed_OUTPUT"][0])["errorType"] == "PricingError"
    assert results["cancelled"] == [] and results["cancelled_OUTPUT"] == []
    assert results["metadata"] == {"tasks_in_response": 3}

    long = connector.send([{"do": "sleep", "seconds": 10}] * 4)
    cancelled = connector.cancel_sessions([long["session_id"]])
    counts = cancelled[long["session_id"]]
    assert counts["total_cancelled_tasks"] == 4
    assert counts["cancelled_pending"] + counts["cancelled_processing"] == 4
    after = connector.get_results(long, timeout_sec=30)
    assert len(after["cancelled"]) == 4 and after["metadata"]["tasks_in_response"] == 4


def test_connect_picks_the_stack_of_a_cdk_outputs_file(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"HtcGrid-a": {"TableName": "t"}, "HtcGrid-b": {"ApiUrl": "http://127.0.0.1:9", "Region": "eu-west-1"}}))
    grid = Grid.connect(str(outputs), token="t")
    assert grid.url == "http://127.0.0.1:9"
    with pytest.raises(HtcGridError, match="no client configuration"):
        Grid.connect(str(tmp_path / "missing.json"))


class _Recorder(BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):
        _Recorder.seen.append(dict(self.headers.items()))
        body = json.dumps({"api": "htcgrid"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_requests_to_an_aws_grid_are_signed_with_sigv4_for_lambda(monkeypatch):
    pytest.importorskip("botocore")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("HTCGRID_API_TOKEN", raising=False)
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        grid = Grid.connect({"ApiUrl": "http://127.0.0.1:%d/" % server.server_port, "Region": "eu-west-3"})
        assert grid.info() == {"api": "htcgrid"}
    finally:
        server.shutdown()
    headers = {k.lower(): v for k, v in _Recorder.seen[-1].items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/lambda/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers


def test_a_results_wait_never_outlasts_the_connections_timeout():
    # The server sends nothing while it waits: a wait longer than the socket's timeout broke the stream each time.
    with Grid.connect(CONFIG, timeout=3.0) as short:
        asked = []
        lines = short._http.lines

        def recording(path, query):
            asked.append(float(query["waitSec"]))
            return lines(path, query)

        short._http.lines = recording
        session = short.submit([{"do": "sleep", "seconds": 4}])
        (r,) = list(session.results())
        assert r.ok
        assert asked and max(asked) < 3.0


def _refusing_cursors(grid, refuse):
    """Makes the grid's server refuse the cursors `refuse(query)` picks, as a server of an earlier version does a
    cursor it cannot read: the cursor is sent with a fourth segment, which every version refuses (400)."""
    asked = []
    lines = grid._http.lines

    def sending(path, query):
        query = dict(query)
        if query.get("cursor") and refuse(query):
            query["cursor"] += ".x.x"
        asked.append(query.get("cursor"))
        return lines(path, query)

    grid._http.lines = sending
    return asked


def test_a_cursor_the_server_refuses_restarts_the_stream_from_the_first_result_each_result_yielded_once():
    with Grid.connect(CONFIG, timeout=2.0) as short:
        refused = []
        asked = _refusing_cursors(short, lambda query: not refused and not refused.append(query["cursor"]))
        session = short.submit([{"do": "echo", "i": i} for i in range(3)] + [{"do": "sleep", "seconds": 2.5}])
        results = list(session.results())
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    assert len(refused) == 1
    # The request after the refused one has no cursor: the stream from the first result.
    assert asked[asked.index(refused[0] + ".x.x") + 1] is None


def test_a_server_that_refuses_its_own_cursors_raises_invalid_cursor_error_rather_than_loop():
    with Grid.connect(CONFIG, timeout=1.5) as short:
        asked = _refusing_cursors(short, lambda query: True)
        session = short.submit([{"do": "echo", "i": 0}, {"do": "sleep", "seconds": 8}])
        try:
            with pytest.raises(InvalidCursorError):
                list(session.results())
        finally:
            session.cancel()
    # A restart after a new result (the echo), then the refusal with nothing new since is raised: no loop.
    assert asked[-2] is None and asked[-1].endswith(".x.x")
    assert len(asked) <= 6


def test_a_cursor_refused_because_its_session_was_created_again_is_raised_not_restarted():
    replaced = InvalidCursorError(400, "InvalidCursorError", "the cursor is of ...", None, {"cursorCreatedAt": 1})
    older = InvalidCursorError(400, "InvalidCursorError", "the cursor is of an earlier session 's' (created ...)")
    unreadable = InvalidCursorError(400, "InvalidCursorError", "invalid results cursor 'x.y.z'")
    assert [_session_replaced(e) for e in (replaced, older, unreadable)] == [True, True, False]
