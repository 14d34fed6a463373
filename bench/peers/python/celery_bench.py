"""Celery with a Redis broker and result backend: W prefork worker processes run N no-op handler tasks.

Usage: python3 celery_bench.py --worker DIR [--tasks N] [--rounds R] [--warm-up-rounds K] [--gap-ms G] [--workers W]
       [--redis-server PATH]
Starts redis-server on a free loopback port and one `celery worker --pool=prefork -c W`, and stops both at the end.
Sends every task with apply_async, collects results as they arrive (ResultSet.join_native with a callback); per-task
latency is from the task's own apply_async to the moment the client holds its result. Round trips: apply_async +
get() one at a time, each measured one after a pause of G ms (an interactive user; bench/latency --gap-ms).
"""

import argparse
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import peer_common


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s} s")


def stop(process, grace_s=10):
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def measure(app, run_task, args):
    """Warm-up, round trips, then N tasks at once; returns the arguments of peer_common.summarise."""
    import celery
    from celery.result import ResultSet

    event = {"worker_arguments": [0]}
    warm = [run_task.apply_async((event, i)) for i in range(200)]
    ResultSet(warm).join_native(timeout=120)
    for r in warm:
        r.forget()
    # Single-task round trips before the measured ones, as many as the grid gets (bench/latency --warm-up).
    for i in range(args.warm_up_rounds):
        run_task.apply_async((event, i)).get(timeout=60)

    round_trips = []
    for i in range(args.rounds):
        if args.gap_ms > 0:
            time.sleep(args.gap_ms / 1000)
        t0 = time.perf_counter()
        run_task.apply_async((event, i)).get(timeout=60)
        round_trips.append((time.perf_counter() - t0) * 1000)

    sent_at = {}
    results = []
    started = time.perf_counter()
    for i in range(args.tasks):
        t = time.perf_counter()
        r = run_task.apply_async((event, i))
        sent_at[r.id] = t
        results.append(r)
    latencies = []
    ok = [0]

    def on_result(task_id, value):
        latencies.append((time.perf_counter() - sent_at[task_id]) * 1000)
        if isinstance(value, dict):
            ok[0] += 1

    ResultSet(results).join_native(timeout=600, callback=on_result)
    elapsed = time.perf_counter() - started
    return {
        "name": f"Celery {celery.__version__} + Redis",
        "tasks": args.tasks,
        "succeeded": ok[0],
        "elapsed_s": elapsed,
        "latencies_ms": latencies,
        "round_trips_ms": round_trips,
        "extra": {"workers": args.workers},
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warm-up-rounds", type=int, default=0)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    if not args.gap_ms >= 0:
        parser.error(f"--gap-ms must be a number of milliseconds >= 0, got {args.gap_ms}")
    peer_common.setup_path(args.worker)
    # A SIGTERM (the driver's timeout) must still stop Redis and the worker, which run in their own sessions.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}"
    os.environ["BENCH_REDIS_URL"] = redis_url
    redis_dir = tempfile.mkdtemp(prefix="bench-redis-")
    redis_proc = None
    worker_proc = None
    try:
        redis_proc = subprocess.Popen(
            [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", redis_dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        probe = redis.Redis(host="127.0.0.1", port=port)
        wait_until(probe.ping, 20, "redis-server")

        from celery_app import app, run_task

        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=prefork", "-c", str(args.workers),
             "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            stdout=sys.stderr,
            start_new_session=True,
        )
        wait_until(lambda: len(app.control.ping(timeout=0.5)) >= 1, 60, "celery worker")

        report = measure(app, run_task, args)
        report["extra"]["redisVersion"] = probe.info().get("redis_version")
        peer_common.summarise(**report)
    finally:
        gc.collect()  # pending AsyncResults unsubscribe on deletion: let them do it while Redis is still up
        stop(worker_proc)
        stop(redis_proc)
        shutil.rmtree(redis_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
