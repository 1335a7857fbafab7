"""The official SDK gets the `h3_relief` demo (an H3 dataset built by our ingestion) as hexagons
on tiles: each at the resolution fitting the zoom, each outline the reference `h3` package's
boundary of its cell, the statistics consistent, and nothing outside the data."""
import os

import fused
import h3
import mercantile
import shapely

base = os.environ["FUSED_TEST_BASE_URL"]
fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
token = os.environ["FUSED_TEST_TOKEN_H3_RELIEF"]

# Over the Alps at zoom 6: res-5 hexagons (about 40 across the tile) whose centres lie in (or next to) the tile.
x, y, z = 33, 22, 6
gdf = fused.run(token, x=x, y=y, z=z)
assert type(gdf).__name__ == "GeoDataFrame" and gdf.crs.to_epsg() == 4326, (type(gdf), gdf.crs)
assert list(gdf.columns) == ["hex", "value", "geometry"], list(gdf.columns)
assert len(gdf) > 100, len(gdf)
cells = [h3.int_to_str(int(v)) for v in gdf["hex"]]
assert {h3.get_resolution(c) for c in cells} == {5}
b = mercantile.bounds(x, y, z)
for c in cells:
    lat, lng = h3.cell_to_latlng(c)
    assert b.west - 0.5 <= lng <= b.east + 0.5 and b.south - 0.5 <= lat <= b.north + 0.5, (c, lat, lng)
for c, g in zip(cells, gdf.geometry):
    ref = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)])
    assert g.equals_exact(ref, 1e-9) or g.normalize().equals_exact(ref.normalize(), 1e-9), c
assert gdf["value"].between(0, 5000).all(), gdf["value"].describe()

# Finer asked explicitly; other statistics of the same cells.
fine = fused.run(token, x=x, y=y, z=z, res=6)
assert {h3.get_resolution(h3.int_to_str(int(v))) for v in fine["hex"]} == {6} and len(fine) > len(gdf)
hi = fused.run(token, x=x, y=y, z=z, statistic="max").set_index("hex")["value"]
lo = fused.run(token, x=x, y=y, z=z, statistic="min").set_index("hex")["value"]
avg = gdf.set_index("hex")["value"]
assert (lo <= avg + 1e-9).all() and (avg <= hi + 1e-9).all()

# Far from the data: no hexagons, not an error.
assert len(fused.run(token, x=0, y=0, z=3)) == 0

print("ALL OK")
