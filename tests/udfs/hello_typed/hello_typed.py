import fused

@fused.udf
def udf(name: str = "world", times: int = 1, shout: bool = False):
    """Greets `name`, `times` times."""
    text = " ".join([f"Hello, {name}!"] * times)
    return text.upper() if shout else text
