"""Our raster-to-H3 output against the reference implementation (the `h3` package): the cells
of sampled pixel centres (k_ring 0, res_offset 0: each pixel's own cell) are exactly those we
wrote, with the same counts; the SDK's `get_chunks_metadata` reads our `_sample`, and DuckDB
reads the files."""
import glob
import os
import subprocess
import tempfile
from collections import Counter

import duckdb
import h3

import fused

fused_bin = os.environ["FUSED_TEST_BIN"]
tmp = tempfile.mkdtemp()

from pyproj import Transformer

# The harness writes a GeoTIFF in EPSG:4326 and one in UTM 33N, each with a CSV of its valid
# pixels' centres in the raster's CRS; pyproj takes the UTM ones to lon/lat.
utm = Transformer.from_crs(32633, 4326, always_xy=True)
for name, res in [("wgs84.tif", 10), ("utm33.tif", 10)]:
    src = os.path.join(os.environ["FUSED_TEST_RASTERS"], name)
    out = os.path.join(tmp, name + ".h3")
    subprocess.run(
        [fused_bin, "h3", "ingest", src, out, "--res", str(res), "--k-ring", "0",
         "--res-offset", "0", "--metrics", "cnt", "--overview-res", "8", "-q"],
        check=True,
    )
    pixels = [tuple(map(float, line.split(","))) for line in open(src + ".centres.csv")]
    if name.startswith("utm"):
        pixels = [(*utm.transform(x, y), v) for x, y, v in pixels]
    want = Counter(h3.latlng_to_cell(lat, lng, res) for lng, lat, _ in pixels)
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT hex, sum(cnt) FROM read_parquet('{out}/*.parquet') GROUP BY hex"
    ).fetchall()
    got = Counter({h3.int_to_str(int(h)): int(n) for h, n in rows})
    # Exact in lon/lat; through UTM our transform and PROJ differ by millimetres, which may
    # move a pixel lying on a cell's edge: allow one pixel in a thousand.
    moved = sum(((got - want) + (want - got)).values())
    limit = 0 if name.startswith("wgs84") else len(pixels) // 1000 * 2
    assert moved <= limit, (name, moved, len(pixels))
    meta = fused.get_chunks_metadata(out)
    assert meta["num_rows"].sum() == con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/*.parquet')").fetchone()[0]
    # Chunk boxes cover their cells' centres.
    for row in meta.itertuples():
        chunk = fused.get_chunk_from_table(out, row.file_id, row.chunk_id)
        for hx in chunk["hex"]:
            lat, lng = h3.cell_to_latlng(h3.int_to_str(int(hx)))
            assert row.bbox_minx <= lng <= row.bbox_maxx and row.bbox_miny <= lat <= row.bbox_maxy
    over = con.execute(f"SELECT sum(cnt) FROM read_parquet('{out}/overview/hex8.parquet')").fetchone()[0]
    assert over == len(pixels), (over, len(pixels))

print("ALL OK")
