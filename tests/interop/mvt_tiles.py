"""Our vector tiles read by an independent decoder (`mapbox-vector-tile` from PyPI): the same
features as the GeoJSON of the same tile, projected into the tile, clipped to its buffer, with
the same attributes; TileJSON documents that lead to those tiles; bad input answered clearly."""
import json
import os
import urllib.error
import urllib.request

import mapbox_vector_tile
import mercantile
import shapely
import shapely.validation
from shapely.geometry import box, shape
from shapely.ops import transform

base = os.environ["FUSED_TEST_BASE_URL"]
shared = f"{base}/realtime-shared"
EXTENT, BUFFER = 4096, 64
MAX_LAT = 85.0511287798066


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def tile_coords(x, y, z):
    """lon/lat → this tile's grid (y down), as the MVT spec lays it out."""
    west, south, east, north = mercantile.xy_bounds(x, y, z)

    def f(lon, lat, *_):
        # Web Mercator ends at ±85.05°: beyond, points sit on its edge (as in our encoder).
        lon, lat = max(-180, min(180, lon)), max(-MAX_LAT, min(MAX_LAT, lat))
        mx, my = mercantile.xy(lon, lat)
        return ((mx - west) / (east - west) * EXTENT, (north - my) / (north - south) * EXTENT)

    return lambda g: transform(lambda xs, ys, zs=None: tuple(zip(*[f(a, b) for a, b in zip(xs, ys)])), g)


def compare(token, x, y, z, query="", layer=None):
    st, h, body = get(f"{shared}/{token}/run/tiles/{z}/{x}/{y}?format=geojson{query}")
    assert st == 200, (st, body[:300])
    features = json.loads(body)["features"]
    st, h, mvt = get(f"{shared}/{token}/run/tiles/{z}/{x}/{y}?format=mvt{query}")
    assert st == 200, (st, mvt[:300])
    assert h["content-type"] == "application/vnd.mapbox-vector-tile", h["content-type"]
    to_tile = tile_coords(x, y, z)
    clip = box(-BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    expected = []
    for f in features:
        g = to_tile(shape(f["geometry"])).intersection(clip)
        # What covers less than a grid cell is not drawn.
        if not g.is_empty and (g.area >= 1 or g.geom_type not in ("Polygon", "MultiPolygon")):
            expected.append((g, f["properties"]))
    if not expected:
        assert mvt == b"", len(mvt)
        return 0
    decoded = mapbox_vector_tile.decode(mvt, default_options={"y_coord_down": True})
    assert list(decoded) == [layer], list(decoded)
    got = decoded[layer]
    assert got["extent"] == EXTENT, got["extent"]
    feats = got["features"]
    assert len(feats) == len(expected), (
        [f["properties"] for f in feats], [p for _, p in expected], [g.wkt[:120] for g, _ in expected])
    for (want, props), f in zip(expected, feats):
        g = shape(f["geometry"])
        assert g.is_valid, (shapely.validation.explain_validity(g), f)
        # One grid cell of rounding and simplification, at most.
        d = want.hausdorff_distance(g)
        assert d <= 1.5, (d, want.wkt[:200], g.wkt[:200])
        if want.geom_type in ("Polygon", "MultiPolygon"):
            assert abs(want.area - g.area) <= 0.01 * want.area + 4 * EXTENT / 100, (want.area, g.area)
        for k, v in props.items():
            if v is None:
                assert k not in f["properties"], (k, f["properties"])
            elif isinstance(v, float):
                assert abs(f["properties"][k] - v) <= 1e-9 * max(1, abs(v)), (k, v, f["properties"][k])
            else:
                assert f["properties"][k] == v, (k, v, f["properties"].get(k))
        assert set(f["properties"]) <= set(props), (f["properties"], props)
    return len(feats)


vt = os.environ["FUSED_TEST_TOKEN_VECTOR_TILE"]
assert compare(vt, 4, 2, 3, "&cells=5", "vector_tile") == 25
assert compare(vt, 0, 0, 0, "&cells=7&scale=2.5", "vector_tile") == 49
assert compare(vt, 70000, 40000, 17, "&cells=3", "vector_tile") == 9

# Every kind of geometry from a Python UDF: a polygon with a hole, lines leaving the tile, points
# inside and outside it, a polygon across its edge.
shapes = os.environ["FUSED_TEST_TOKEN_SHAPES"]
for x, y, z in [(4, 2, 3), (550, 335, 10), (0, 0, 0)]:
    # The points outside the tile and its buffer are dropped; the rest is there.
    assert compare(shapes, x, y, z, "", "shapes") == 4, (x, y, z)

h3 = os.environ["FUSED_TEST_TOKEN_H3_RELIEF"]
n = compare(h3, 33, 22, 6, "", "h3_relief")
assert n > 100, n
# Far from the data: an empty tile (no bytes), not an error.
assert compare(h3, 0, 0, 3, "", "h3_relief") == 0

# TileJSON: a map client's way in, with the parameters in the tile URLs.
st, h, body = get(f"{shared}/{vt}/run/tiles.json?cells=6")
assert st == 200, (st, body)
doc = json.loads(body)
assert doc["tilejson"] == "3.0.0" and doc["minzoom"] == 0 and doc["maxzoom"] >= 14, doc
assert doc["vector_layers"][0]["id"] == "vector_tile", doc
# The attributes of the tiles made above.
fields = doc["vector_layers"][0]["fields"]
assert fields == {"id": "Number", "row": "Number", "col": "Number", "value": "Number", "label": "String"}, fields
url = doc["tiles"][0]
assert "{z}/{x}/{y}" in url and "format=mvt" in url and "cells=6" in url, url
st, h, mvt = get(url.replace("{z}", "2").replace("{x}", "1").replace("{y}", "1"))
assert st == 200 and len(mapbox_vector_tile.decode(mvt)["vector_tile"]["features"]) == 36
st, h, body = get(f"{shared}/{os.environ['FUSED_TEST_TOKEN_RASTER_TILE']}/run/tiles.json?format=png")
doc = json.loads(body)
assert st == 200 and "vector_layers" not in doc and "format=png" in doc["tiles"][0], doc
assert get(f"{shared}/{vt}/run/tiles.json?format=csv")[0] == 400
assert get(f"{shared}/fsh_nope/run/tiles.json")[0] == 404

# Bad input: clear errors, quickly.
st, h, body = get(f"{shared}/{vt}/run/tiles/31/0/0?format=mvt")
assert st == 400 and b"zoom" in body, (st, body)
st, h, body = get(f"{shared}/{vt}/run/tiles/3/8/0?format=mvt")
assert st == 400, (st, body)
hello = os.environ["FUSED_TEST_TOKEN_HELLO"]
st, h, body = get(f"{shared}/{hello}/run?format=mvt")
assert st == 400 and b"tile calls" in body, (st, body)
st, h, body = get(f"{shared}/{hello}/run/tiles/1/0/0?format=mvt")
assert st == 400 and b"mvt" in body, (st, body)
# A raster asked for as mvt or png gets the image.
st, h, body = get(f"{shared}/{os.environ['FUSED_TEST_TOKEN_RASTER_TILE']}/run/tiles/3/4/2?format=mvt,png")
assert st == 200 and h["content-type"] == "image/png", (st, h["content-type"])

print("ALL OK")
