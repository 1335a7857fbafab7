"""The Python side of `cargo xtask bench cache`: per-hit time of the official SDK's
@fused.cache on a 1 MiB pandas DataFrame (2 int64 columns x 65 536 rows). Prints JSON."""
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import pandas as pd

import fused

fused.options.cache_directory = pathlib.Path(tempfile.mkdtemp())


@fused.cache(cache_verbose=False)
def table(n: int):
    return pd.DataFrame({"a": np.arange(n, dtype="int64"), "b": np.arange(n, dtype="int64") * 7})


first = table(65_536)
assert len(first) == 65_536
rounds, iters = 7, int(sys.argv[1]) if len(sys.argv) > 1 else 100
per = []
for _ in range(rounds):
    t = time.perf_counter_ns()
    for _ in range(iters):
        df = table(65_536)
    per.append((time.perf_counter_ns() - t) / iters)
assert len(df) == 65_536
per.sort()
print(json.dumps({"sdk_hit_ns": per[len(per) // 2]}))
