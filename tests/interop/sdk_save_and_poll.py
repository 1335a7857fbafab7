"""Saving code UDFs with the SDK and running them (posted, saved, by shared token) in the
server's Python workers, polled runs (the server answers 202 at once), and a revoked API token."""
import os

base = os.environ["FUSED_TEST_BASE_URL"]
os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402
from fused.types import UdfRuntimeError  # noqa: E402

fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"


@fused.udf
def squares(n: int = 3):
    import pandas as pd
    return pd.DataFrame({"x": [i * i for i in range(n)]})


# Save: the SDK looks the name up (404), then creates it.
squares.to_fused()
loaded = fused.load("squares")
assert loaded.name == "squares" and "def udf(n: int=3)" in loaded.code, loaded.code
udfs = fused.api.get_udfs(whose="self")
assert "default/squares" in udfs, list(udfs)

# Saving changed code under the same name needs overwrite=True.
@fused.udf(name="squares")
def squares_v2(n: int = 4):
    import pandas as pd
    return pd.DataFrame({"x": [i * i for i in range(n)]})


try:
    squares_v2.to_fused()
    raise AssertionError("replacing a saved UDF must need overwrite=True")
except AssertionError:
    raise
except Exception as e:  # noqa: BLE001 — the SDK explains the conflict its own way
    assert "squares" in str(e) or "exists" in str(e), str(e)
squares_v2.to_fused(overwrite=True)
assert "n: int=4" in fused.load("squares").code, fused.load("squares").code

# Collections: one that does not exist is refused unless created.
@fused.udf
def cubes(n: int = 2):
    return n ** 3

try:
    cubes.to_fused(collection_name="analysis")
    raise AssertionError("an unknown collection must be refused")
except Exception as e:  # noqa: BLE001
    assert "analysis" in str(e), str(e)
cubes.to_fused(collection_name="analysis", create_collection=True)
udfs = fused.api.get_udfs(whose="self")
assert "analysis/cubes" in udfs, list(udfs)

# Running Python code: the posted definition runs in the server's Python workers (polled:
# the server answers 202 at once), parameters coerced by the annotations.
df = fused.run(squares, n=2)
assert df["x"].tolist() == [0, 1], df
df = fused.run(squares, n="3")
assert df["x"].tolist() == [0, 1, 4], df


# Fanned out: the SDK's fused.submit runs the posted code once per input on the server.
df = fused.submit(squares, [1, 2, 3])
assert len(df) == 1 + 2 + 3 and sorted(df["x"].tolist()) == [0, 0, 0, 1, 1, 4], df


@fused.udf
def fails(k: int = 1):
    x = k + 1
    raise ValueError(f"no good: {x}")


try:
    fused.run(fails, k=4)
    raise AssertionError("expected an error")
except UdfRuntimeError as e:
    assert "no good: 5" in str(e) and "ValueError" in str(e), str(e)

# The server answers 202 at once (--run-start-wait 0): the SDK polls for the result.
df = fused.run("hello", name="polled")
assert df["message"].tolist() == ["Hello, polled!"], df
gdf = fused.run("vector_tile", x=4, y=2, z=3, cells=2)
assert len(gdf) == 4, len(gdf)

# Shared tokens of a saved UDF work and point at it.
tok = fused.load("squares").create_access_token()
assert tok.udf_slug == "squares", tok
df = fused.run(tok.token, n=5)
assert df["x"].tolist() == [0, 1, 4, 9, 16], df


# Inside a UDF, fused.run reaches saved UDFs by name and shared tokens too.
@fused.udf
def relay(ref: str = "squares", n: int = 2):
    return fused.run(ref, n=n)


assert fused.run(relay, ref="squares", n=3)["x"].tolist() == [0, 1, 4]
assert fused.run(relay, ref=tok.token, n=2)["x"].tolist() == [0, 1]

# A revoked API token is refused.
api = fused.api.FusedAPI()
revoked = os.environ["FUSED_TEST_REVOKED_TOKEN"]
os.environ["FUSED_AUTH_TOKEN"] = revoked
try:
    fused.api.list("fd://")
    raise AssertionError("a revoked token must be refused")
except Exception as e:  # noqa: BLE001 — requests.HTTPError
    assert "401" in str(e) or "revoked" in str(e), str(e)

print("ALL OK")
