"""The official SDK runs our vector tile UDF by its shared token and gets a GeoDataFrame."""
import os

import fused
import mercantile
import shapely
from fused.types import UdfRuntimeError  # noqa: F401  (the SDK's own error type must import)

base = os.environ["FUSED_TEST_BASE_URL"]
fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
token = os.environ["FUSED_TEST_TOKEN_VECTOR_TILE"]

x, y, z = 4, 2, 3
gdf = fused.run(token, x=x, y=y, z=z, cells=3)
assert type(gdf).__name__ == "GeoDataFrame", type(gdf)
assert len(gdf) == 9, len(gdf)
assert gdf.crs is not None and gdf.crs.to_epsg() == 4326, gdf.crs
assert list(gdf.columns) == ["id", "row", "col", "value", "label", "geometry"], list(gdf.columns)
assert sorted(gdf["id"].tolist()) == list(range(9))

# Every cell lies inside the tile, and together they cover it.
b = mercantile.bounds(x, y, z)
tile_box = shapely.box(b.west, b.south, b.east, b.north)
assert all(tile_box.buffer(1e-9).contains(g) for g in gdf.geometry), "a cell leaves the tile"
assert abs(gdf.geometry.union_all().area - tile_box.area) < 1e-6
assert gdf.geometry.geom_type.unique().tolist() == ["Polygon"]

# Parameters reach the UDF, coerced to their types.
assert len(fused.run(token, x=x, y=y, z=z, cells="2")) == 4
scaled = fused.run(token, x=x, y=y, z=z, cells=3, scale=2.0)
assert (abs(scaled["value"] - 2 * gdf["value"]) < 1e-9).all()

# Another tile gives other cells.
other = fused.run(token, x=0, y=0, z=1, cells=3)
assert other.total_bounds[0] == -180.0 and other.total_bounds[2] == 0.0, other.total_bounds

print("ALL OK")
