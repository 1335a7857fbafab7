"""File runs, rasters and errors through the official SDK."""
import os

import fused
import numpy as np
from fused.types import UdfRuntimeError

base = os.environ["FUSED_TEST_BASE_URL"]
fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
hello = os.environ["FUSED_TEST_TOKEN_HELLO"]
vector = os.environ["FUSED_TEST_TOKEN_VECTOR_TILE"]
raster = os.environ["FUSED_TEST_TOKEN_RASTER_TILE"]

df = fused.run(hello, name="Python")
assert df["message"].tolist() == ["Hello, Python!"], df
assert df["length"].tolist() == [6]

# The SDK's default format list asks for npy first: a raster comes back as an array.
arr = fused.run(raster, x=4, y=2, z=3, size=32)
assert isinstance(arr, np.ndarray), type(arr)
assert arr.shape == (3, 32, 32) and arr.dtype == np.uint8, (arr.shape, arr.dtype)

# A UDF error arrives as the SDK's usual exception, carrying our message.
try:
    fused.run(hello, name="")
    raise AssertionError("expected an error")
except UdfRuntimeError as e:
    assert "name must not be empty" in str(e), str(e)
    assert "ValueError" in str(e), str(e)

# A parameter of the wrong type names the parameter, the value and the type.
try:
    fused.run(vector, x=1, y=1, z=2, cells="many")
    raise AssertionError("expected an error")
except UdfRuntimeError as e:
    msg = str(e)
    assert "cells" in msg and "many" in msg and "integer" in msg, msg

# An unknown token is an HTTP error with our detail.
try:
    fused.run("fsh_" + "0" * 40)
    raise AssertionError("expected an error")
except Exception as e:  # requests.HTTPError
    assert "404" in str(e) or "token" in str(e), str(e)

print("ALL OK")
