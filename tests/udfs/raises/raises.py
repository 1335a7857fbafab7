import fused

@fused.udf
def udf(code: int = 1):
    value = code * 2
    raise RuntimeError(f"this UDF always fails ({value})")
