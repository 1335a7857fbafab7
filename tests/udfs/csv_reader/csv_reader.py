import fused

@fused.udf
def udf(path: str = "", limit: int = 100):
    import pandas as pd
    if not path:
        raise ValueError("path is required")
    return pd.read_csv(path).head(limit)
