import fused

@fused.udf
def udf(n: int = 10):
    import pandas as pd

    @fused.cache
    def squares(k):
        return [i * i for i in range(k)]

    return pd.DataFrame({"square": squares(n)})
