"""Ingestion through the official SDK against our server: `fused.ingest(...).run_batch()` (the
local file is uploaded with sign-upload-temp, the job runs our partitioner), then the SDK's own
readers (`get_chunks_metadata`, `get_chunk_from_table`), geopandas and DuckDB read the table."""
import glob
import os
import tempfile

os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import duckdb  # noqa: E402
import geopandas as gpd  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402

import fused  # noqa: E402
from fused._public_api import ingest_nongeospatial  # noqa: E402

base = os.environ["FUSED_TEST_BASE_URL"]
files = os.environ["FUSED_TEST_FILES"]
fused.options.base_url = base

rng = np.random.default_rng(7)
n = 3000
xs = np.concatenate([rng.normal(-122.4, 0.5, n // 2), rng.normal(2.35, 0.5, n - n // 2)])
ys = np.concatenate([rng.normal(37.8, 0.3, n // 2), rng.normal(48.85, 0.3, n - n // 2)])
gdf = gpd.GeoDataFrame(
    {"id": np.arange(n), "name": [f"p{i}" for i in range(n)]},
    geometry=gpd.points_from_xy(xs, ys),
    crs="EPSG:4326",
)
tmp = tempfile.mkdtemp()
src = os.path.join(tmp, "points.parquet")
gdf.to_parquet(src)

job = fused.ingest(
    src,
    "fd://tables/points/",
    partitioning_maximum_per_file=1000,
    partitioning_maximum_per_chunk=200,
).run_batch()
job_id = job.job_id
done = fused.api.job_wait_for_job(job_id, poll_interval_seconds=0.2, timeout=60)
logs = [line["message"] for line in fused.api.job_get_logs(job_id)]
assert done.job_status == "Done", (done, logs)
assert any("partitioned into" in m for m in logs), logs

table = os.path.join(files, "tables", "points")
meta = fused.get_chunks_metadata(table)
assert isinstance(meta, gpd.GeoDataFrame), type(meta)
assert meta["num_rows"].sum() == n, meta
assert (meta["num_rows"] <= 200).all(), meta["num_rows"].max()
per_file = meta.groupby("file_id")["num_rows"].sum()
assert (per_file <= 1000).all(), per_file
seen = []
for row in meta.itertuples():
    chunk = fused.get_chunk_from_table(table, row.file_id, row.chunk_id)
    assert isinstance(chunk, gpd.GeoDataFrame), type(chunk)
    assert chunk.crs.to_epsg() == 4326, chunk.crs
    assert len(chunk) == row.num_rows
    # The chunk's box covers its rows.
    b = chunk.total_bounds
    assert b[0] >= row.bbox_minx and b[2] <= row.bbox_maxx, (b, row)
    assert b[1] >= row.bbox_miny and b[3] <= row.bbox_maxy, (b, row)
    assert meta.geometry[row.Index].covers(shapely.box(*b)), row
    seen.extend(chunk["id"].tolist())
assert sorted(seen) == list(range(n)), "every row exactly once"

# geopandas reads each file as GeoParquet, geometries intact.
parts = [gpd.read_parquet(f) for f in sorted(glob.glob(os.path.join(table, "*.parquet")))]
whole = pd.concat(parts).set_index("id").sort_index()
assert whole.crs.to_epsg() == 4326
assert whole.geometry.geom_equals(gdf.set_index("id").geometry).all()

# DuckDB with its spatial extension (from PyPI) reads the files as GeoParquet.
import duckdb_extension_spatial  # noqa: E402

ext = glob.glob(
    os.path.join(os.path.dirname(duckdb_extension_spatial.__file__), "**", "spatial.duckdb_extension"),
    recursive=True,
)[0]
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
count, kind = con.execute(
    f"SELECT count(*), any_value(ST_GeometryType(geometry)) FROM read_parquet('{table}/*.parquet')"
).fetchone()
assert count == n and kind == "POINT", (count, kind)

# A bad job is refused at once, with the reason.
try:
    fused.ingest("fd://nothing/here.parquet", "/etc/evil").run_batch()
    raise AssertionError("a server path as output must be refused")
except Exception as e:  # noqa: BLE001
    assert "path on the server" in str(e), e

# ingest_nongeospatial: rows sorted by the partition column, cut by count.
plain = os.path.join(tmp, "plain.parquet")
pd.DataFrame({"k": rng.integers(0, 50, 500), "v": np.arange(500)}).to_parquet(plain)
job = ingest_nongeospatial(
    plain,
    "fd://tables/plain/",
    partition_col="k",
    partitioning_maximum_per_file=200,
    partitioning_maximum_per_chunk=50,
).run_batch()
done = fused.api.job_wait_for_job(job.job_id, poll_interval_seconds=0.2, timeout=60)
assert done.job_status == "Done", (done, fused.api.job_get_logs(job.job_id))
plain_meta = fused.get_chunks_metadata(os.path.join(files, "tables", "plain"))
assert plain_meta["num_rows"].sum() == 500 and len(plain_meta) == 10, plain_meta
first = fused.get_chunk_from_table(os.path.join(files, "tables", "plain"), 0, 0)
assert list(first["k"]) == sorted(first["k"]), first

print("ALL OK")
