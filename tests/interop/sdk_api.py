"""The Fused REST API through the official SDK: whoami, saved UDFs, runs by name and by token,
shared tokens, and files."""
import io
import os
import tempfile

import pandas as pd

base = os.environ["FUSED_TEST_BASE_URL"]
owner_token = os.environ["FUSED_TEST_OWNER_TOKEN"]
# The SDK's documented way to authenticate without a browser login.
os.environ["FUSED_AUTH_TOKEN"] = owner_token
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402
from fused.types import UdfRuntimeError  # noqa: E402

fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
api = fused.api.FusedAPI()

# --- identity
me = api._whoami()
assert me["email"] == "owner@fused.local", me
assert me["handle"] == "owner" and me["name"] and me["team"], me
assert api.auth_token() == owner_token

# --- runs by name and owner/name: the SDK loads the UDF, then posts its definition
df = fused.run("hello", name="by name")
assert df["message"].tolist() == ["Hello, by name!"], df
df = fused.run("owner@fused.local/hello", name="by email")
assert df["message"].tolist() == ["Hello, by email!"], df
df = fused.run("owner/hello", name="by handle")
assert df["message"].tolist() == ["Hello, by handle!"], df

# The generated signature gives the SDK the parameter list, as for any UDF.
udf = fused.load("hello")
assert udf.name == "hello", udf.name
assert "def hello(" in udf.code and "name: str" in udf.code, udf.code
gdf = fused.run(fused.load("vector_tile"), x=4, y=2, z=3, cells=3)
assert len(gdf) == 9 and gdf.crs.to_epsg() == 4326, (len(gdf), gdf.crs)

# A UDF that raises: the SDK shows our message.
try:
    fused.run("hello", name="")
    raise AssertionError("expected an error")
except UdfRuntimeError as e:
    assert "name must not be empty" in str(e), str(e)

# --- the registry
udfs = fused.api.get_udfs(whose="self")
assert "default/hello" in udfs and "default/vector_tile" in udfs, list(udfs)
assert udfs["default/hello"].name == "hello"

# --- shared tokens: create, run (file and tile), revoke
tok = api.create_udf_access_token("hello")
assert tok.token.startswith("fsh_") and tok.enabled, tok
df = fused.run(tok.token, name="shared")
assert df["message"].tolist() == ["Hello, shared!"], df
vtok = fused.load("vector_tile").create_access_token()  # by the UDF's id
gdf = fused.run(vtok.token, x=4, y=2, z=3, cells=2)
assert len(gdf) == 4, len(gdf)
api.delete_udf_access_token(tok.token)
try:
    fused.run(tok.token, name="revoked")
    raise AssertionError("a revoked token must be refused")
except Exception as e:  # noqa: BLE001 — requests.HTTPError
    assert "404" in str(e) or "revoked" in str(e), str(e)

# --- files
payload = b"fused-rs files " * 1000
fused.api.upload(payload, "fd://interop/a.bin")
names = fused.api.list("fd://interop/")
assert names == ["fd://interop/a.bin"], names
details = fused.api.list("fd://interop/", details=True)
assert details[0].size == len(payload) and not details[0].is_directory, details
assert fused.api.get("fd://interop/a.bin") == payload
with tempfile.TemporaryDirectory() as d:
    local = os.path.join(d, "a.bin")
    fused.api.download("fd://interop/a.bin", local)
    assert open(local, "rb").read() == payload
frame = pd.DataFrame({"x": [1, 2, 3]})
fused.api.upload(frame, "fd://interop/frame.parquet")
back = pd.read_parquet(io.BytesIO(fused.api.get("fd://interop/frame.parquet")))
assert back["x"].tolist() == [1, 2, 3], back

import requests  # noqa: E402

signed = fused.api.sign_url("fd://interop/a.bin")
r = requests.get(signed)  # no credentials
assert r.status_code == 200 and r.content == payload, r.status_code
tampered = signed.replace("a.bin", "frame.parquet")
assert requests.get(tampered).status_code == 403
urls = fused.api.sign_url_prefix("fd://interop/")
assert sorted(urls) == ["fd://interop/a.bin", "fd://interop/frame.parquet"], urls
assert requests.get(urls["fd://interop/frame.parquet"]).status_code == 200

# Traversal is refused.
try:
    fused.api.get("fd://../../etc/passwd")
    raise AssertionError("traversal must fail")
except Exception as e:  # noqa: BLE001
    assert "400" in str(e) or "not allowed" in str(e), str(e)

assert fused.api.delete("fd://interop/") is True
assert fused.api.list("fd://interop/") == []

print("ALL OK")
