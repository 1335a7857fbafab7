"""`cargo xtask bench h3`: the same GeoTIFF into H3 by our `fused h3 ingest`, raster2dggs (CLI)
and h3ronpy (`raster_to_dataframe`, not compacted), each in a fresh process; wall time, pixels
per second and peak RSS (wait4), output rows.

The raster (written when missing): float32, SIZE × SIZE pixels of 0.0001° from (10°E, 45°N),
tiled 512, deflate + predictor 3, 5 % nodata.

usage: h3.py FUSED_BIN RASTER WORKDIR RES[,RES...] SIZE"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

fused_bin, raster, work = sys.argv[1], sys.argv[2], sys.argv[3]
resolutions = [int(r) for r in sys.argv[4].split(",")]
size = int(sys.argv[5])
bindir = os.path.dirname(sys.executable)

H3RONPY = """
import sys, numpy as np, rasterio
from h3ronpy.raster import raster_to_dataframe
with rasterio.open(sys.argv[1]) as src:
    band = src.read(1)
    t = raster_to_dataframe(band, src.transform, int(sys.argv[2]), nodata_value=src.nodata, compact=False)
print(t.num_rows)
"""
COUNT = """
import glob, os, sys, pyarrow.dataset as ds
# Our overviews (overview/) are not rows at the resolution asked: count the top-level files
# of our dataset, every Parquet file of the others'.
files = sys.argv[1:] if len(sys.argv) > 2 else None
print(ds.dataset(files or sys.argv[1], format="parquet").count_rows())
"""
PIXELS = """
import sys, numpy as np, rasterio
with rasterio.open(sys.argv[1]) as src:
    b = src.read(1)
    print(int(np.count_nonzero(b != src.nodata)))
"""


def run(cmd):
    # Output goes to files, not pipes: a tool printing progress bars would fill a pipe and
    # block before wait4 returns.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode(errors="replace")
    if status != 0:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"
        return wall, ru.ru_maxrss / 1024, f"FAILED ({how}) {errors[-300:].strip()}"
    return wall, ru.ru_maxrss / 1024, text


def rows(path, top_level=False):
    args = sorted(glob.glob(os.path.join(path, "*.parquet"))) if top_level else [path]
    out = run([sys.executable, "-c", COUNT, *args])[2].strip()
    return int(out) if out.isdigit() else -1


def report(res, tool, wall, rss, nrows, ours, failure=None):
    if failure:
        print(f"| {res} | {tool} | {wall:.2f} | — | {rss:.0f} | {failure} | — |")
    else:
        print(f"| {res} | {tool} | {wall:.2f} | {pixels / wall / 1e6:.2f} | {rss:.0f} | {nrows:,} | {wall / ours:.1f}× |")
    sys.stdout.flush()


MAKE = """
import sys, numpy as np, rasterio
from affine import Affine
path, n = sys.argv[1], int(sys.argv[2])
c = np.arange(n, dtype=np.float32)
field = (np.sin(c * 0.001)[None, :] * 100 + np.cos(c * 0.002)[:, None] * 50).astype(np.float32)
field[np.random.default_rng(7).random((n, n)) < 0.05] = -9999
with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                   crs="EPSG:4326", transform=Affine(0.0001, 0, 10, 0, -0.0001, 45), nodata=-9999,
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=3) as d:
    d.write(field, 1)
"""
if not os.path.exists(raster):
    made = run([sys.executable, "-c", MAKE, raster, str(size)])[2]
    if made.startswith("FAILED"):
        sys.exit(f"writing the raster: {made}")
pixels = int(run([sys.executable, "-c", PIXELS, raster])[2].strip())
print(f"{pixels:,} valid pixels\n")
print("| res | tool | seconds | M pixels/s | peak RSS (MB) | rows | ours faster by |")
print("|---:|---|---:|---:|---:|---:|---:|")
for res in resolutions:
    out = os.path.join(work, f"fused-{res}")
    shutil.rmtree(out, ignore_errors=True)
    ours, rss, text = run([fused_bin, "h3", "ingest", raster, out, "--res", str(res), "--k-ring", "0",
                           "--res-offset", "0", "--metrics", "avg", "--no-source-url", "-q"])
    failed = text if text.startswith("FAILED") else None
    report(res, "fused-rs `fused h3 ingest` (avg)", ours, rss, rows(out, top_level=True), ours, failed)
    shutil.rmtree(out, ignore_errors=True)
    out = os.path.join(work, f"r2d-{res}")
    shutil.rmtree(out, ignore_errors=True)
    wall, rss, text = run([os.path.join(bindir, "raster2dggs"), "h3", raster, out, "-r", str(res),
                           "-v", "ERROR"])
    failed = text if text.startswith("FAILED") else None
    report(res, "raster2dggs 0.18.3", wall, rss, rows(out) if not failed else 0, ours, failed)
    shutil.rmtree(out, ignore_errors=True)
    wall, rss, text = run([sys.executable, "-c", H3RONPY, raster, str(res)])
    failed = text if text.startswith("FAILED") else None
    report(res, "h3ronpy 0.22.0 (`raster_to_dataframe`)", wall, rss,
           int(text.strip()) if not failed else 0, ours, failed)
