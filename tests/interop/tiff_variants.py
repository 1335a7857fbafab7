"""GeoTIFFs written by GDAL (through rasterio) in every layout our reader claims: strips and
tiles (with partial edge tiles), no compression, deflate, LZW and zstd, predictors 2 and 3,
8- to 64-bit integer and float samples, pixel- and band-interleaved multi-band files, a COG,
and four georeferencings (lon/lat, UTM, Web Mercator, a rotated ModelTransformation).

For each file, band 1's values as little-endian float64 (`<name>.f64`) and what the reader
must find go into `manifest.json`, for `fused/tests/interop.rs` to compare with.

usage: FUSED_TEST_OUT=DIR python tiff_variants.py"""
import json
import os

import numpy as np
import rasterio
import rasterio.windows
from affine import Affine

out = os.environ["FUSED_TEST_OUT"]
W, H = 77, 53  # not multiples of the blocks: partial edge tiles and strips
GEO = {
    "lonlat": ("EPSG:4326", Affine(0.001, 0, 12.0, 0, -0.001, 45.0), 4326),
    "utm33": ("EPSG:32633", Affine(30, 0, 500_000, 0, -30, 4_650_000), 32633),
    "webmercator": ("EPSG:3857", Affine(50, 0, 1_300_000, 0, -50, 5_600_000), 3857),
    "rotated": ("EPSG:4326", Affine(0.001, 0.0002, 12.0, 0.0001, -0.001, 45.0), 4326),
}
manifest = []


def band(dtype, k):
    """A pattern spanning the type's range (band k), nodata put in a few pixels."""
    i = np.arange(H * W, dtype=np.float64).reshape(H, W) + 1000 * k
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        v = np.sin(i / 7.0) * 1e4 + i / 3.0
    else:
        lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
        v = lo + (i * 7919) % (hi - lo)
    return v.astype(dtype)


def nodata_of(dtype):
    d = np.dtype(dtype)
    if d.kind == "u":
        return float(min(np.iinfo(d).max, 2**32 - 1))
    return -128.0 if d == np.int8 else -9999.0


def write(name, dtype, geo="lonlat", count=1, driver="GTiff", only_window=False, **opts):
    crs, transform, epsg = GEO[geo]
    nodata = nodata_of(dtype)
    bands = [band(dtype, k) for k in range(count)]
    bands[0][::11, ::13] = nodata
    path = os.path.join(out, name + ".tif")
    with rasterio.open(path, "w", driver=driver, width=W, height=H, count=count, dtype=dtype,
                       crs=crs, transform=transform, nodata=nodata, **opts) as dst:
        for k, b in enumerate(bands):
            if only_window:  # the first tile only: the others stay unwritten
                dst.write(b[:32, :32], k + 1, window=rasterio.windows.Window(0, 0, 32, 32))
            else:
                dst.write(b, k + 1)
    # What GDAL reads back (no rounding assumptions of our own).
    with rasterio.open(path) as src:
        values = src.read(1).astype("<f8")
    values.tofile(os.path.join(out, name + ".f64"))
    manifest.append({"name": name, "file": path, "width": W, "height": H,
                     "transform": list(transform.to_gdal()), "epsg": epsg, "nodata": nodata})


DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float32", "float64"]
LAYOUTS = {"strips": {"tiled": False, "blockysize": 8},
           "tiles": {"tiled": True, "blockxsize": 32, "blockysize": 32}}
for dtype in DTYPES:
    floating = np.dtype(dtype).kind == "f"
    for layout, lopts in LAYOUTS.items():
        write(f"{dtype}-{layout}-none", dtype, **lopts)
        for compress in ["deflate", "lzw", "zstd"]:
            for predictor in [1, 2, 3] if floating else [1, 2]:
                write(f"{dtype}-{layout}-{compress}-p{predictor}", dtype, compress=compress,
                      predictor=predictor, **lopts)
for interleave in ["pixel", "band"]:
    for layout, lopts in LAYOUTS.items():
        write(f"3bands-{interleave}-{layout}", "int16", count=3, interleave=interleave,
              compress="deflate", predictor=2, **lopts)
write("cog", "float32", driver="COG", compress="deflate", predictor=3, blocksize=32,
      overviews="auto")
# Sparse (GDAL's SPARSE_OK): tiles never written read as nodata.
write("sparse-lzw", "float32", tiled=True, blockxsize=32, blockysize=32, compress="lzw",
      sparse_ok=True, only_window=True)
for geo in ["utm33", "webmercator", "rotated"]:
    write(f"geo-{geo}", "float32", geo=geo, tiled=True, blockxsize=32, blockysize=32,
          compress="zstd", predictor=3)
# Encodings the reader refuses, each with (part of) the reason it must give.
for name, dtype, opts, reason in [
    ("bad-lerc", "float32", {"compress": "lerc"}, "LERC"),
    ("bad-complex", "complex64", {}, "complex samples"),
    ("bad-nbits", "uint8", {"nbits": 4}, "4-bit samples"),
]:
    path = os.path.join(out, name + ".tif")
    crs, transform, _ = GEO["lonlat"]
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype=dtype,
                       crs=crs, transform=transform, **opts) as dst:
        dst.write(np.ones((H, W), dtype=dtype), 1)
    manifest.append({"name": name, "file": path, "error": reason})
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f)
print(f"{len(manifest)} GeoTIFFs written\nALL OK")
