"""The Celery app of the benchmark: one task that runs the handler, broker and result backend on Redis (BENCH_REDIS_URL)."""

import os

from celery import Celery

import peer_common

_redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("bench", broker=f"{_redis}/0", backend=f"{_redis}/1")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.run_task")
def run_task(event, index):
    return peer_common.run_task(event, index)
