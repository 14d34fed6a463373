"""Shared pieces of the peer benchmarks: the Lambda-style context, the worker's handler, percentiles, the JSON report.

Each peer script prints exactly one JSON line on stdout (its figures); everything else goes to stderr.
"""

import importlib
import json
import os
import sys
import time
import uuid


class LambdaContext:
    """A Lambda context with the fields our grid passes, so the handler does the same work on every system."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:bench"
    memory_limit_in_mb = 128
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    identity = None

    def __init__(self, task_id, deadline_ms=None):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline_ms = deadline_ms if deadline_ms is not None else time.time() * 1000 + 60_000
        self.client_context = _ClientContext({"sessionId": "bench", "taskId": task_id, "attempt": 1})

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


class _ClientContext:
    def __init__(self, custom):
        self.custom = custom
        self.env = None
        self.client = None


_handler = None


def handler():
    """The worker's handler, loaded once per process from HANDLER (module.function) found on PYTHONPATH."""
    global _handler
    if _handler is None:
        module_name, _, function_name = os.environ.get("BENCH_HANDLER", "mock_compute_engine.lambda_handler").rpartition(".")
        _handler = getattr(importlib.import_module(module_name), function_name)
    return _handler


def run_task(event, index):
    """One task exactly as a Lambda would run it: the handler with the event and a fresh context."""
    return handler()(event, LambdaContext(f"bench_{index}"))


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def summarise(name, tasks, succeeded, elapsed_s, latencies_ms, round_trips_ms, extra=None):
    latencies_ms = sorted(latencies_ms)
    round_trips_ms = sorted(round_trips_ms)
    report = {
        "system": name,
        "tasks": tasks,
        "succeeded": succeeded,
        "elapsedMs": round(elapsed_s * 1000, 1),
        "tasksPerSec": round(tasks / elapsed_s, 1) if elapsed_s > 0 else None,
        "latencyP50Ms": _round(percentile(latencies_ms, 50)),
        "latencyP99Ms": _round(percentile(latencies_ms, 99)),
        "roundTrips": len(round_trips_ms),
        "roundTripP50Ms": _round(percentile(round_trips_ms, 50)),
        "roundTripP99Ms": _round(percentile(round_trips_ms, 99)),
        "python": sys.executable,
        "pythonVersion": sys.version.split()[0],
    }
    report.update(extra or {})
    print(json.dumps(report), flush=True)


def _round(value):
    return None if value is None else round(value, 3)


def log(message):
    print(message, file=sys.stderr, flush=True)


def setup_path(worker_dir):
    """Makes the worker's module and this folder importable here and in every child process (Dask and Celery workers)."""
    here = os.path.dirname(os.path.abspath(__file__))
    worker_dir = os.path.abspath(worker_dir)
    parts = [worker_dir, here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    for p in (here, worker_dir):
        if p not in sys.path:
            sys.path.insert(0, p)
