"""pyarrow and geopandas read our GeoParquet: from `fused run --output` and over HTTP."""
import io
import json
import os

import geopandas
import pyarrow.parquet as pq
import requests

path = os.environ["FUSED_TEST_PARQUET"]
table = pq.read_table(path)
assert table.num_rows == 25, table.num_rows
geo = json.loads(table.schema.metadata[b"geo"])
assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry", geo
col = geo["columns"]["geometry"]
assert col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"], col
assert len(col["bbox"]) == 4

# Column types survive: our lean writer annotates small and unsigned integers and strings.
types = {f.name: str(f.type) for f in table.schema}
assert types == {
    "id": "int64",
    "row": "uint32",
    "col": "uint32",
    "value": "double",
    "label": "string",
    "geometry": "binary",
}, types
assert table.column("label").to_pylist()[:2] == ["r0c0", "r0c1"]
assert pq.ParquetFile(path).metadata.created_by.startswith("fused-rs")

gdf = geopandas.read_parquet(path)
assert gdf.crs.to_epsg() == 4326, gdf.crs
assert gdf.geometry.is_valid.all()
assert [round(v, 9) for v in gdf.total_bounds] == [round(v, 9) for v in col["bbox"]]

# Over HTTP, with format=parquet, as any client would fetch it.
base = os.environ["FUSED_TEST_BASE_URL"]
token = os.environ["FUSED_TEST_TOKEN_VECTOR_TILE"]
r = requests.get(f"{base}/realtime-shared/{token}/run/tiles/3/4/2", params={"format": "parquet", "cells": 5})
assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream", r.headers
remote = geopandas.read_parquet(io.BytesIO(r.content))
assert remote.equals(gdf), "the server and `fused run` give the same table"

# GeoJSON from the same tile parses into the same geometries.
r = requests.get(f"{base}/realtime-shared/{token}/run/tiles/3/4/2", params={"format": "geojson", "cells": 5})
fc = geopandas.GeoDataFrame.from_features(r.json()["features"], crs=4326)
assert len(fc) == 25 and fc.geometry.geom_equals(gdf.geometry).all()

print("ALL OK")
