//! Single-band float32 GeoTIFFs written with the `tiff` encoder: north-up, georeferenced by
//! pixel scale and tie point, the CRS as an EPSG code, GDAL's nodata tag, deflate strips.
//! Enough for test fixtures, benchmarks and the demo dataset of `fused serve`.

use std::path::Path;

use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, colortype};
use tiff::tags::Tag;

use crate::error::{Error, Result};

/// Where a north-up raster lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Georef {
    /// CRS x of the raster's west edge.
    pub x0: f64,
    /// CRS y of the raster's north edge.
    pub y0: f64,
    /// Pixel size in CRS units (square pixels).
    pub pixel: f64,
    /// The CRS: 4326 (lon/lat) or a projected EPSG code.
    pub epsg: u16,
}

/// Writes `values` (`width` × `height`, row-major) as a float32 GeoTIFF at `path`.
pub fn write_f32(
    path: &Path,
    georef: Georef,
    (width, height): (u32, u32),
    nodata: Option<f32>,
    values: &[f32],
) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    };
    let tiff = |e: tiff::TiffError| Error::Raster {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    if values.len() != width as usize * height as usize {
        return Err(Error::Options(format!(
            "{} values for a {width}×{height} raster",
            values.len()
        )));
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut enc = TiffEncoder::new(&mut f)
        .map_err(tiff)?
        .with_compression(Compression::Deflate(DeflateLevel::Fast));
    let mut img = enc
        .new_image::<colortype::Gray32Float>(width, height)
        .map_err(tiff)?;
    img.rows_per_strip(64).map_err(tiff)?;
    let d = img.encoder();
    let Georef {
        x0,
        y0,
        pixel,
        epsg,
    } = georef;
    d.write_tag(Tag::ModelPixelScaleTag, &[pixel, pixel, 0.0][..])
        .map_err(tiff)?;
    d.write_tag(Tag::ModelTiepointTag, &[0.0, 0.0, 0.0, x0, y0, 0.0][..])
        .map_err(tiff)?;
    // GTModelType (2 geographic, 1 projected), GTRasterType (pixel is area), then the CRS.
    let (model, key) = if epsg == 4326 {
        (2u16, 2048u16)
    } else {
        (1, 3072)
    };
    d.write_tag(
        Tag::GeoKeyDirectoryTag,
        &[
            1u16, 1, 0, 3, 1024, 0, 1, model, 1025, 0, 1, 1, key, 0, 1, epsg,
        ][..],
    )
    .map_err(tiff)?;
    if let Some(v) = nodata {
        d.write_tag(Tag::GdalNodata, &*format!("{v}"))
            .map_err(tiff)?;
    }
    img.write_data(values).map_err(tiff)?;
    std::io::Write::flush(&mut f).map_err(io)
}
