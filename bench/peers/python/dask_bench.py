"""Dask distributed: a LocalCluster of W worker processes (1 thread each) on loopback runs N no-op handler tasks.

Usage: python3 dask_bench.py --worker DIR [--tasks N] [--rounds R] [--workers W]
Submits all tasks with one Client.map (Dask's bulk submission), collects them with as_completed; per-task latency is
from the map call to the moment the client holds the result. Round trips: one Client.submit + result() at a time.
"""

import argparse
import signal
import sys
import time

import peer_common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    peer_common.setup_path(args.worker)
    # A SIGTERM (the driver's timeout) closes the cluster on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import dask
    import distributed
    from distributed import Client, LocalCluster, as_completed

    event = {"worker_arguments": [0]}
    dask.config.set({"distributed.worker.daemon": False})
    with LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as cluster, Client(cluster) as client:
        client.wait_for_workers(args.workers)
        warm = client.map(peer_common.run_task, [event] * 200, range(200), pure=False)
        client.gather(warm)
        del warm

        round_trips = []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            client.submit(peer_common.run_task, event, i, pure=False).result()
            round_trips.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        futures = client.map(peer_common.run_task, [event] * args.tasks, range(args.tasks), pure=False)
        latencies = []
        ok = 0
        for future in as_completed(futures):
            result = future.result()
            latencies.append((time.perf_counter() - started) * 1000)
            if isinstance(result, dict):
                ok += 1
        elapsed = time.perf_counter() - started
        del futures

    peer_common.summarise(
        f"Dask distributed {distributed.__version__}",
        args.tasks,
        ok,
        elapsed,
        latencies,
        round_trips,
        {"workers": args.workers},
    )


if __name__ == "__main__":
    main()
