"""The Python side of `cargo xtask bench python`: the official SDK's
`fused.run(udf, engine="local", cache=False)` of a hello-world UDF in this one process, warm.
Prints JSON.

usage: sdk_local_run.py CALLS KIND   (KIND: str | dataframe)"""
import json
import sys
import time

import fused

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
kind = sys.argv[2] if len(sys.argv) > 2 else "str"

if kind == "dataframe":
    @fused.udf
    def udf(name: str = "world"):
        import pandas as pd
        return pd.DataFrame({"message": [f"Hello, {name}!"]})
else:
    @fused.udf
    def udf(name: str = "world"):
        return f"Hello, {name}!"

for _ in range(200):
    fused.run(udf, engine="local", cache=False, name="bench")
times = []
for _ in range(calls):
    t = time.perf_counter_ns()
    fused.run(udf, engine="local", cache=False, name="bench")
    times.append(time.perf_counter_ns() - t)
times.sort()
print(json.dumps({"calls": calls, "mean_ns": sum(times) / len(times),
                  "p50_ns": times[len(times) // 2], "p99_ns": times[len(times) * 99 // 100]}))
