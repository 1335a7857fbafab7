//! Rasters as PNG and GeoTIFF.

use std::io::Cursor;

use tiff::encoder::{TiffEncoder, colortype};
use tiff::tags::Tag;

use crate::error::{Error, Result};
use crate::output::{Raster, RasterData};

/// Why a raster cannot be a PNG, if it cannot.
pub(crate) fn png_compatible(r: &Raster) -> std::result::Result<(), String> {
    match (r.data(), r.bands()) {
        (RasterData::U8(_) | RasterData::U16(_), 1..=4) => Ok(()),
        (RasterData::U8(_) | RasterData::U16(_), n) => {
            Err(format!("PNG holds 1 to 4 bands, not {n}"))
        }
        (d, _) => Err(format!(
            "PNG holds 8- or 16-bit unsigned samples, not {:?}; scale to u8 or use tiff/npy",
            d.sample_type()
        )),
    }
}

/// Why a raster cannot be a TIFF here, if it cannot: one band of any type, or 3/4 bands of
/// u8/u16 (RGB/RGBA).
pub(crate) fn tiff_compatible(r: &Raster) -> std::result::Result<(), String> {
    match (r.data(), r.bands()) {
        (_, 1) | (RasterData::U8(_) | RasterData::U16(_), 3 | 4) => Ok(()),
        (d, n) => Err(format!(
            "TIFF here holds one band of any type or 3/4 bands of u8/u16, not {n} bands of {:?}; use npy",
            d.sample_type()
        )),
    }
}

/// Band-major samples → pixel-interleaved samples.
fn interleave<T: Copy>(v: &[T], bands: usize, pixels: usize) -> Vec<T> {
    if bands == 1 {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len());
    for p in 0..pixels {
        for b in 0..bands {
            out.push(v[b * pixels + p]);
        }
    }
    out
}

/// Encodes a raster of 1–4 bands of u8 or u16 samples as PNG (gray, gray+alpha, RGB, RGBA).
pub(crate) fn encode_png(r: &Raster) -> Result<Vec<u8>> {
    png_compatible(r).map_err(Error::Format)?;
    let (w, h, bands) = (r.width(), r.height(), r.bands());
    let too_big = || Error::Encode(format!("raster of {w}×{h} is too large for PNG"));
    let mut buf = Vec::new();
    {
        let mut enc = png::Encoder::new(
            &mut buf,
            u32::try_from(w).map_err(|_| too_big())?,
            u32::try_from(h).map_err(|_| too_big())?,
        );
        enc.set_color(match bands {
            1 => png::ColorType::Grayscale,
            2 => png::ColorType::GrayscaleAlpha,
            3 => png::ColorType::Rgb,
            _ => png::ColorType::Rgba,
        });
        enc.set_compression(png::Compression::Fast);
        let pixels = w * h;
        let data: Vec<u8> = match r.data() {
            RasterData::U8(v) => {
                enc.set_depth(png::BitDepth::Eight);
                interleave(v, bands, pixels)
            }
            RasterData::U16(v) => {
                enc.set_depth(png::BitDepth::Sixteen);
                interleave(v, bands, pixels)
                    .into_iter()
                    .flat_map(u16::to_be_bytes)
                    .collect()
            }
            _ => unreachable!("checked by png_compatible"),
        };
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Encode(format!("png: {e}")))?;
        w.write_image_data(&data)
            .map_err(|e| Error::Encode(format!("png: {e}")))?;
        w.finish().map_err(|e| Error::Encode(format!("png: {e}")))?;
    }
    Ok(buf)
}

/// Encodes a raster as a GeoTIFF (EPSG:4326 georeferencing when it has bounds), with the
/// `fused` metadata domain the Python SDK reads back: `orig_type`, `shape`, `bounds`.
pub(crate) fn encode_tiff(r: &Raster) -> Result<Vec<u8>> {
    let tiff_err = |e: tiff::TiffError| Error::Encode(format!("tiff: {e}"));
    let (w, h, bands) = (r.width(), r.height(), r.bands());
    let (w32, h32) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            return Err(Error::Encode(format!(
                "raster of {w}×{h} is too large for TIFF"
            )));
        }
    };
    let pixels = w * h;
    let mut buf = Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut buf).map_err(tiff_err)?;

    let shape = if bands == 1 {
        format!("[{h}, {w}]")
    } else {
        format!("[{bands}, {h}, {w}]")
    };
    let mut items = format!(
        "<GDALMetadata><Item name=\"orig_type\" domain=\"fused\">numpy.ndarray</Item>\
         <Item name=\"shape\" domain=\"fused\">{shape}</Item>"
    );
    if let Some(b) = r.bounds {
        items.push_str(&format!(
            "<Item name=\"bounds\" domain=\"fused\">[{}, {}, {}, {}]</Item>",
            b.west, b.south, b.east, b.north
        ));
    }
    items.push_str("</GDALMetadata>");

    macro_rules! write {
        ($ct:ty, $data:expr) => {{
            let mut img = enc.new_image::<$ct>(w32, h32).map_err(tiff_err)?;
            let d = img.encoder();
            if let Some(b) = r.bounds {
                d.write_tag(
                    Tag::ModelPixelScaleTag,
                    &[b.width() / w as f64, b.height() / h as f64, 0.0][..],
                )
                .map_err(tiff_err)?;
                d.write_tag(
                    Tag::ModelTiepointTag,
                    &[0.0, 0.0, 0.0, b.west, b.north, 0.0][..],
                )
                .map_err(tiff_err)?;
                // GeoKeyDirectory: version 1.1.0, 3 keys: model type geographic, raster type
                // pixel-is-area, geographic CRS EPSG:4326.
                d.write_tag(
                    Tag::GeoKeyDirectoryTag,
                    &[
                        1u16, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326,
                    ][..],
                )
                .map_err(tiff_err)?;
            }
            if let Some(nd) = r.nodata {
                d.write_tag(Tag::GdalNodata, &*format!("{nd}"))
                    .map_err(tiff_err)?;
            }
            d.write_tag(Tag::Unknown(42112), &*items)
                .map_err(tiff_err)?;
            img.write_data(&$data).map_err(tiff_err)?;
        }};
    }
    match (r.data(), bands) {
        (RasterData::U8(v), 1) => write!(colortype::Gray8, v[..]),
        (RasterData::U8(v), 3) => write!(colortype::RGB8, interleave(v, 3, pixels)[..]),
        (RasterData::U8(v), 4) => write!(colortype::RGBA8, interleave(v, 4, pixels)[..]),
        (RasterData::U16(v), 1) => write!(colortype::Gray16, v[..]),
        (RasterData::U16(v), 3) => write!(colortype::RGB16, interleave(v, 3, pixels)[..]),
        (RasterData::U16(v), 4) => write!(colortype::RGBA16, interleave(v, 4, pixels)[..]),
        (RasterData::I16(v), 1) => write!(colortype::GrayI16, v[..]),
        (RasterData::I32(v), 1) => write!(colortype::GrayI32, v[..]),
        (RasterData::F32(v), 1) => write!(colortype::Gray32Float, v[..]),
        (RasterData::F64(v), 1) => write!(colortype::Gray64Float, v[..]),
        _ => {
            let why = tiff_compatible(r).err().unwrap_or_default();
            return Err(Error::Format(why));
        }
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::Bounds;

    #[test]
    fn png_roundtrip_rgb() {
        let r = Raster::new(3, 2, 2, RasterData::U8((0..12).collect())).unwrap();
        let bytes = encode_png(&r).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut out = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut out).unwrap();
        assert_eq!(
            (info.width, info.height, info.color_type),
            (2, 2, png::ColorType::Rgb)
        );
        // First pixel is (band0[0], band1[0], band2[0]).
        assert_eq!(&out[..3], &[0, 4, 8]);
    }

    #[test]
    fn float_raster_is_not_png() {
        let r = Raster::new(1, 1, 1, RasterData::F32(vec![1.0])).unwrap();
        assert!(encode_png(&r).unwrap_err().to_string().contains("tiff/npy"));
    }

    #[test]
    fn tiff_roundtrip_with_georeferencing() {
        let r = Raster::new(1, 2, 3, RasterData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
            .unwrap()
            .with_bounds(Bounds::new(10.0, 40.0, 13.0, 42.0).unwrap())
            .with_nodata(-9999.0);
        let bytes = encode_tiff(&r).unwrap();
        let mut d = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(d.dimensions().unwrap(), (3, 2));
        match d.read_image().unwrap() {
            tiff::decoder::DecodingResult::F32(v) => {
                assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            }
            other => panic!("unexpected {other:?}"),
        }
        let scale = d.get_tag_f64_vec(Tag::ModelPixelScaleTag).unwrap();
        assert_eq!(scale, vec![1.0, 1.0, 0.0]);
        let tie = d.get_tag_f64_vec(Tag::ModelTiepointTag).unwrap();
        assert_eq!(&tie[3..5], &[10.0, 42.0]);
        let md = d.get_tag_ascii_string(Tag::Unknown(42112)).unwrap();
        assert!(
            md.contains("numpy.ndarray") && md.contains("[2, 3]"),
            "{md}"
        );
    }
}
