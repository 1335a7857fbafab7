"""UDF folders and zips: the SDK reads ours, and writes its own for the Rust side to read."""
import os

import fused

ours_dir = os.environ["FUSED_TEST_RUST_DIR"]
ours_zip = os.environ["FUSED_TEST_RUST_ZIP"]
out_dir = os.environ["FUSED_TEST_SDK_DIR"]
out_zip = os.environ["FUSED_TEST_SDK_ZIP"]

for path in (ours_dir, ours_zip):
    udf = fused.load(path)
    assert udf.name == "hello", udf.name
    assert udf.entrypoint == "udf", udf.entrypoint
    assert "def udf(name: str" in udf.code, udf.code
    # The SDK parsed the generated signature: it knows the parameters.
    assert udf._parameter_list == ["name"], udf._parameter_list

@fused.udf(cache_max_age="10m", default_parameters={"n": 4})
def squares(n: int = 3, label: str = "sq"):
    """Squares."""
    import pandas as pd
    return pd.DataFrame({"x": [i * i for i in range(n)], "label": label})

squares.to_directory(out_dir)
squares.to_file(out_zip)
print("ALL OK")
