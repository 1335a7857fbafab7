"""`fused serve --udfs DIR`: the UDFs of a folder served by name through the official SDK,
reloaded when their files change and withdrawn when they go; a broken one does not stop the
others."""
import os
import pathlib
import time

base = os.environ["FUSED_TEST_BASE_URL"]
os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"

import fused  # noqa: E402

fused.options.base_url = base
fused.options.shared_udf_base_url = f"{base}/realtime-shared"
udfs = pathlib.Path(os.environ["FUSED_TEST_UDFS"])

# A .py file and an SDK-format folder (written by our to_directory), typed parameters coerced.
assert fused.run("greet", name="dir") == "Hello, dir!", fused.run("greet", name="dir")
df = fused.run("squares", n="3")
assert df["x"].tolist() == [0, 1, 4], df
assert "def udf(name: str" in fused.load("greet").code, fused.load("greet").code
# A UDF calling another through the server: fused.run inside it.
df = fused.run("calls")
assert df["message"].tolist() == ["Hello, inner!"] and df["n"].tolist() == [1], df


def wait_for(check, what, seconds=15):
    end = time.time() + seconds
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 — not there yet
            pass
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


# Bad UDFs fail their own call only, with a clear error, and the server goes on.
for name, want in [("sleepy", "3"), ("killer", "died")]:
    try:
        fused.run(name)
        raise AssertionError(f"{name} must fail")
    except AssertionError:
        raise
    except Exception as e:  # noqa: BLE001 — UdfRuntimeError, or the polled run's error
        assert want in str(e), (name, str(e))
    assert fused.run("greet", name="after") == "Hello, after!"
assert fused.run("chatty") == "done"

# Edited: the new code serves within seconds.
(udfs / "greet.py").write_text(
    "@fused.udf\ndef udf(name: str = 'world'):\n    return f'Bonjour, {name}!'\n")
wait_for(lambda: fused.run("greet", name="dir") == "Bonjour, dir!", "the edited UDF")

# Fixed: the broken one loads once its file is good.
(udfs / "broken.py").write_text("@fused.udf\ndef udf():\n    return 'mended'\n")
wait_for(lambda: fused.run("broken") == "mended", "the mended UDF")

# Deleted: withdrawn.
(udfs / "greet.py").unlink()


def gone():
    try:
        fused.run("greet", name="x")
        return False
    except Exception as e:  # noqa: BLE001
        return "greet" in str(e) or "404" in str(e) or "not" in str(e).lower()


wait_for(gone, "the deleted UDF to go")
print("ALL OK")
