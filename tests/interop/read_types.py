"""pyarrow reads every column type of our lean Parquet writer, nulls included."""
import os

import pyarrow as pa
import pyarrow.parquet as pq

t = pq.read_table(os.environ["FUSED_TEST_PARQUET"])
want = {
    "b": (pa.bool_(), [True, None, False]),
    "i8": (pa.int8(), [-128, 127, None]),
    "i16": (pa.int16(), [None, -32768, 32767]),
    "i32": (pa.int32(), [-(2**31), None, 2**31 - 1]),
    "i64": (pa.int64(), [-(2**63), 0, 2**63 - 1]),
    "u8": (pa.uint8(), [255, None, 0]),
    "u16": (pa.uint16(), [65535, 1, None]),
    "u32": (pa.uint32(), [2**32 - 1, None, 7]),
    "u64": (pa.uint64(), [2**64 - 1, 1, None]),
    "f32": (pa.float32(), [1.5, None, -0.25]),
    "f64": (pa.float64(), [None, 1.7976931348623157e308, 1e-300]),
    "s": (pa.string(), ["é ü", None, ""]),
    "ls": (pa.string(), ["large", "x", None]),
    "bin": (pa.binary(), [b"\x00\xff", None, b""]),
}
assert t.column_names == list(want), t.column_names
for name, (typ, values) in want.items():
    col = t.column(name)
    assert col.type == typ, (name, col.type, typ)
    assert col.to_pylist() == values, (name, col.to_pylist(), values)
assert pq.ParquetFile(os.environ["FUSED_TEST_PARQUET"]).metadata.metadata[b"fused:format"] == b"table"
print("ALL OK")
