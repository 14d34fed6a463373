"""Python half of bench/http-api.ts: submits no-op tasks through the HTTP API, then streams their results.

Prints one JSON line: submit and results timings. Run by the bench with the client package on PYTHONPATH.
"""
import json
import sys
import time

from htcgrid import Grid


def main() -> None:
    config, tasks, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    grid = Grid.connect(config)
    started = time.perf_counter()
    session = grid.submit(({"worker_arguments": [0]} for _ in range(tasks)), batch_size=batch)
    submitted = time.perf_counter()
    session.wait(poll_sec=0.2)
    done = time.perf_counter()
    count = 0
    ok = 0
    for r in session.results(progress=False):
        count += 1
        ok += r.ok
    streamed = time.perf_counter()
    print(
        json.dumps(
            {
                "sessionId": session.session_id,
                "tasks": tasks,
                "submitSec": round(submitted - started, 3),
                "untilDoneSec": round(done - started, 3),
                "resultsSec": round(streamed - done, 3),
                "results": count,
                "succeeded": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
