import fused

@fused.udf
def udf(x: float = 2.0):
    from utils import scale
    return {"scaled": scale(x)}
