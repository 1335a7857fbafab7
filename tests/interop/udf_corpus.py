"""The compatibility corpus (tests/udfs: folders in the catalog's format, written by the SDK's
own to_directory) served by `fused serve --udfs` over HTTPS and run by the official SDK by shared
token: file and tile calls, typed parameters, tables, arrays, a header module, @fused.cache, and
a failure."""
import json
import os
import tempfile

# The owner's API token: loading a UDF's code (for fused.submit) needs one; runs by token do not.
os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402
import mercantile  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from fused.types import UdfRuntimeError  # noqa: E402

base = os.environ["FUSED_TEST_BASE_URL"]
fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
tok = json.loads(os.environ["FUSED_TEST_CORPUS_TOKENS"])

out = fused.run(tok["hello_typed"], name="Ada", times="2", shout="true")
assert out == "HELLO, ADA! HELLO, ADA!", out

gdf = fused.run(tok["points_gdf"], n=3)
assert type(gdf).__name__ == "GeoDataFrame" and len(gdf) == 3 and gdf.crs.to_epsg() == 4326, gdf

# Fanned out by the SDK's fused.submit, each input a run on the server.
df = fused.submit(fused.load(tok["points_gdf"]), [{"n": 1}, {"n": 2}])
assert len(df) == 3, df

with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
    f.write("a,b\n1,x\n2,y\n3,z\n")
df = fused.run(tok["csv_reader"], path=f.name, limit=2)
assert df["a"].tolist() == [1, 2] and df["b"].tolist() == ["x", "y"], df
try:
    fused.run(tok["csv_reader"])
    raise AssertionError("a missing path must fail")
except UdfRuntimeError as e:
    assert "path is required" in str(e), str(e)

for _ in range(2):
    df = fused.run(tok["nested_cache"], n=4)
    assert df["square"].tolist() == [0, 1, 4, 9], df

x, y, z = 4, 2, 3
cells = fused.run(tok["tile_bounds"], x=x, y=y, z=z, cells=3)
b = mercantile.bounds(x, y, z)
tile = shapely.box(b.west, b.south, b.east, b.north)
assert len(cells) == 9 and abs(cells.geometry.union_all().area - tile.area) < 1e-6, cells

arr = fused.run(tok["raster_array"], x=x, y=y, z=z, size=8)
assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.shape[-2:] == (8, 8), arr

assert fused.run(tok["with_header"], x=1.5) == {"scaled": 15.0}

try:
    fused.run(tok["raises"], code=3)
    raise AssertionError("expected the UDF's error")
except UdfRuntimeError as e:
    assert "always fails (6)" in str(e), str(e)

print("ALL OK")
