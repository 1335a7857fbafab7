"""`cargo xtask bench ingest`: the same generated GeoParquet ingested by our `fused ingest`
(full partitioning into files and chunks), DuckDB's spatial extension (Hilbert sort + write
with 65,000-row row groups) and geopandas (Hilbert sort + write), each in a fresh process on
this machine; wall time and peak RSS (from wait4) per tool, best of N.

usage: ingest.py FUSED_BIN WORKDIR N_POINTS N_POLYGONS RUNS [BIG_POINTS]

dask-geopandas (spatial_shuffle + to_parquet) runs too when it is installed (the bench installs
it into target/py). BIG_POINTS (default 0: skipped) adds a points input of that many rows (100 M
is about 3 GiB) to check memory stays bounded; only our ingest and DuckDB run on it."""
import glob
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

fused_bin, work = sys.argv[1], sys.argv[2]
n_points, n_polys, runs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
big = int(sys.argv[6]) if len(sys.argv) > 6 else 0
os.makedirs(work, exist_ok=True)
GEO = (
    '{"version":"1.1.0","primary_column":"geometry","columns":{"geometry":'
    '{"encoding":"WKB","geometry_types":["%s"]}}}'
)


def clustered(n, rng):
    centres = rng.uniform([-150, -50], [150, 60], size=(64, 2))
    which = rng.integers(0, len(centres), n)
    xy = centres[which] + rng.normal(0, 1.5, size=(n, 2))
    return np.clip(xy[:, 0], -179.9, 179.9), np.clip(xy[:, 1], -89.9, 89.9)


def table(wkb, start, n, kind, rng):
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "value": pa.array(rng.random(n)),
            "geometry": wkb,
        }
    ).replace_schema_metadata({"geo": GEO % kind})


def write(path, wkb, n, kind, rng):
    pq.write_table(table(wkb, 0, n, kind, rng), path, row_group_size=1_000_000, compression="snappy")


def point_wkb(x, y):
    n = len(x)
    rec = np.zeros(n, dtype=[("bo", "u1"), ("t", "<u4"), ("x", "<f8"), ("y", "<f8")])
    rec["bo"], rec["t"], rec["x"], rec["y"] = 1, 1, x, y
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 21).tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(rec.tobytes())])


def points(path, n):
    if os.path.exists(path):
        return
    rng = np.random.default_rng(1)
    step = 5_000_000
    writer = None
    for start in range(0, n, step):
        m = min(step, n - start)
        x, y = clustered(m, rng)
        t = table(point_wkb(x, y), start, m, "Point", rng)
        if writer is None:
            writer = pq.ParquetWriter(path + ".tmp", t.schema, compression="snappy")
        writer.write_table(t, row_group_size=1_000_000)
    writer.close()
    os.rename(path + ".tmp", path)


def polygons(path, n):
    if os.path.exists(path):
        return
    rng = np.random.default_rng(2)
    x, y = clustered(n, rng)
    s = rng.uniform(0.0005, 0.005, n)
    dt = [("bo", "u1"), ("t", "<u4"), ("rings", "<u4"), ("pts", "<u4"), ("c", "<f8", (10,))]
    rec = np.zeros(n, dtype=dt)
    rec["bo"], rec["t"], rec["rings"], rec["pts"] = 1, 3, 1, 5
    rec["c"] = np.stack([x, y, x + s, y, x + s, y + s, x, y + s, x, y], axis=1)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 93).tobytes())
    wkb = pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(rec.tobytes())])
    write(path, wkb, n, "Polygon", rng)


def remove(path):
    """Outputs are deleted after each run: at 100 M rows each tool writes gigabytes."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def measure(cmd, out):
    best = None
    for _ in range(runs):
        remove(out)
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        err = p.stderr.read().decode()
        if status != 0:
            raise SystemExit(f"{cmd[:3]} failed: {err[-2000:]}")
        rss = ru.ru_maxrss / 1024
        if best is None or wall < best[0]:
            best = (wall, rss)
    remove(out)
    return best


spatial = glob.glob(
    os.path.join(sys.prefix, "lib", "python*", "site-packages", "duckdb_extension_spatial", "**",
                 "spatial.duckdb_extension"),
    recursive=True,
)[0]
DUCKDB = f"""
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads TO {os.cpu_count()}")
con.execute("LOAD '{spatial}'")
src, out = sys.argv[1], sys.argv[2]
con.execute(f'''COPY (
  WITH e AS (SELECT ST_Extent(ST_Extent_Agg(geometry)) AS ext FROM read_parquet('{{src}}'))
  SELECT t.* FROM read_parquet('{{src}}') t ORDER BY ST_Hilbert(t.geometry, (SELECT ext FROM e))
) TO '{{out}}' (FORMAT parquet, ROW_GROUP_SIZE 65000)''')
"""
DASK = """
import dask, dask_geopandas, sys
dask.config.set(scheduler="threads")
d = dask_geopandas.read_parquet(sys.argv[1])
d.spatial_shuffle().to_parquet(sys.argv[2], overwrite=True)
"""
try:
    import dask_geopandas  # noqa: F401

    has_dask = True
except ImportError:
    has_dask = False
GEOPANDAS = """
import geopandas as gpd, sys
g = gpd.read_parquet(sys.argv[1])
g = g.iloc[g.hilbert_distance().argsort()]
g.to_parquet(sys.argv[2], row_group_size=65000)
"""

cases = [("points", n_points, points), ("polygons", n_polys, polygons)]
if big:
    cases.append(("points", big, points))
print(f"| input | tool | seconds | peak RSS (MB) | ratio (DuckDB s / tool s) |")
print("|---|---|---:|---:|---:|")
for name, n, make in cases:
    src = os.path.join(work, f"{name}-{n}.parquet")
    make(src, n)
    size = os.path.getsize(src) / 1e6
    results = {}
    out = os.path.join(work, f"out-{name}")
    results["fused-rs `fused ingest`"] = measure(
        [fused_bin, "ingest", src, out, "-q", "--overwrite"], out
    )
    duck_out = os.path.join(work, f"duck-{name}.parquet")
    results["DuckDB 1.5.5 + spatial"] = measure(
        [sys.executable, "-c", DUCKDB, src, duck_out], duck_out
    )
    if n <= 10_000_000:
        gpd_out = os.path.join(work, f"gpd-{name}.parquet")
        results["geopandas 1.2"] = measure(
            [sys.executable, "-c", GEOPANDAS, src, gpd_out], gpd_out
        )
        if has_dask:
            dask_out = os.path.join(work, f"dask-{name}")
            results["dask-geopandas 0.5"] = measure(
                [sys.executable, "-c", DASK, src, dask_out], dask_out
            )
    duck = results["DuckDB 1.5.5 + spatial"][0]
    for tool, (wall, rss) in results.items():
        print(f"| {n:,} {name} ({size:.0f} MB) | {tool} | {wall:.2f} | {rss:.0f} | {duck / wall:.2f} |")
    sys.stdout.flush()
