"""The floor: the same handler called in a plain loop in one Python process, no grid, no transport.

Usage: python3 floor_bench.py --worker DIR [--tasks N] [--rounds R]
"""

import argparse
import time

import peer_common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    peer_common.setup_path(args.worker)
    event = {"worker_arguments": [0]}
    for i in range(100):
        peer_common.run_task(event, i)

    round_trips = []
    for i in range(args.rounds):
        t0 = time.perf_counter()
        peer_common.run_task(event, i)
        round_trips.append((time.perf_counter() - t0) * 1000)

    latencies = []
    ok = 0
    started = time.perf_counter()
    for i in range(args.tasks):
        t0 = time.perf_counter()
        result = peer_common.run_task(event, i)
        latencies.append((time.perf_counter() - t0) * 1000)
        if isinstance(result, dict):
            ok += 1
    elapsed = time.perf_counter() - started
    peer_common.summarise("floor (in-process loop)", args.tasks, ok, elapsed, latencies, round_trips, {"workers": 1})


if __name__ == "__main__":
    main()
