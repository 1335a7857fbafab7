"""The peer of our vector tile encoder: `mapbox-vector-tile` (PyPI) encoding the same 10 000
features of the same zoom-10 tile (squares of 5 points, then points; id, value, label), from
Web Mercator coordinates (so it does not project, unlike ours). Prints one line per case."""
import statistics
import time

import mapbox_vector_tile
import mercantile
import shapely

SIDE, RUNS = 100, 5
x, y, z = 550, 335, 10
b = mercantile.bounds(x, y, z)
mb = mercantile.xy_bounds(x, y, z)
dx, dy = (b.east - b.west) / SIDE, (b.north - b.south) / SIDE


def merc(lon, lat):
    return mercantile.xy(lon, lat)


polygons, points = [], []
for r in range(SIDE):
    for c in range(SIDE):
        w, s = b.west + c * dx, b.south + r * dy
        ring = [merc(w, s), merc(w + 0.9 * dx, s), merc(w + 0.9 * dx, s + 0.9 * dy), merc(w, s + 0.9 * dy)]
        props = {"id": r * SIDE + c, "value": (r * SIDE + c) * 0.37, "label": f"r{r}c{c}"}
        polygons.append({"geometry": shapely.Polygon(ring), "properties": props})
        points.append({"geometry": shapely.Point(*merc(w + dx / 2, s + dy / 2)), "properties": props})

for name, feats in [("polygons", polygons), ("points", points)]:
    ms = []
    for _ in range(RUNS):
        t = time.perf_counter()
        out = mapbox_vector_tile.encode(
            [{"name": "bench", "features": feats}],
            default_options={"quantize_bounds": (mb.left, mb.bottom, mb.right, mb.top), "extents": 4096},
        )
        ms.append((time.perf_counter() - t) * 1e3)
    print(f"mvt {name} {len(feats)} features: median {statistics.median(ms):.2f} ms, min {min(ms):.2f} ms, {len(out)} bytes")
