import fused

@fused.udf
def udf(bounds: fused.types.Bounds = None, cells: int = 2):
    import geopandas as gpd
    import shapely
    west, south, east, north = bounds
    dx, dy = (east - west) / cells, (north - south) / cells
    boxes = [shapely.box(west + i * dx, south + j * dy, west + (i + 1) * dx, south + (j + 1) * dy)
             for i in range(cells) for j in range(cells)]
    return gpd.GeoDataFrame({"cell": list(range(len(boxes)))}, geometry=boxes, crs=4326)
