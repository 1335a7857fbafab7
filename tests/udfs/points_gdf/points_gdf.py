import fused

@fused.udf
def udf(n: int = 5):
    import geopandas as gpd
    import shapely
    return gpd.GeoDataFrame({"id": list(range(n))},
                            geometry=[shapely.Point(10 + i * 0.1, 45 + i * 0.1) for i in range(n)],
                            crs=4326)
