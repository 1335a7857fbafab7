"""The Python side of `cargo xtask bench submit`: the official SDK's fused.submit with the local
engine on a trivial UDF — as many tasks as it finishes within the time budget. Prints JSON."""
import json
import sys
import time

import fused

budget = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0


@fused.udf
def trivial(n: int = 0):
    return n


n, best = 50, None
while True:
    t = time.perf_counter()
    fused.submit(trivial, list(range(n)), engine="local", cache=False, max_workers=32,
                 _isolate_streams=False)
    elapsed = time.perf_counter() - t
    best = (n, elapsed)
    if elapsed * 2.5 > budget or n >= 100_000:
        break
    n *= 2
n, elapsed = best
print(json.dumps({"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed,
                  "per_task_ns": elapsed * 1e9 / n}))
