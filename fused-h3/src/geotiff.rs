//! GeoTIFF (and COG) rasters read in pure Rust with the `tiff` crate: the georeferencing from
//! the GeoTIFF tags (pixel scale and tie point, or the model transformation; EPSG from the
//! GeoKey directory; nodata from GDAL's tag), and the first band read tile by tile (or strip
//! by strip) so that any window can be decoded on its own thread.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tiff::decoder::{ChunkType, Decoder, DecodingResult};
use tiff::tags::Tag;

use crate::error::{Error, Result};

/// An opened GeoTIFF: its size, georeferencing and chunk layout.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoTiff {
    /// The file.
    pub path: PathBuf,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// GDAL-style geotransform: `x = gt[0] + col·gt[1] + row·gt[2]`,
    /// `y = gt[3] + col·gt[4] + row·gt[5]` (pixel corners).
    pub transform: [f64; 6],
    /// The EPSG code of its CRS, when its GeoKeys give one.
    pub epsg: Option<u32>,
    /// The nodata value (GDAL_NODATA tag).
    pub nodata: Option<f64>,
    /// Width and height of a chunk (tile, or strip of full width).
    pub chunk: (u32, u32),
    /// Chunks (tiles or strips) in the image.
    pub chunks: u32,
    /// Samples per pixel (only the first is read).
    samples: u16,
}

/// A decoded window: the pixels of one chunk, band 1, as f64 (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Column of its first pixel.
    pub x0: u32,
    /// Row of its first pixel.
    pub y0: u32,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Values, row-major.
    pub values: Vec<f64>,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Raster {
        file: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Runs a decoder call, turning a panic inside the decoder (a corrupt file) into an error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> tiff::TiffResult<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(bad(path, e)),
        Err(_) => Err(bad(path, "the TIFF decoder failed on a corrupt structure")),
    }
}

fn decoder(path: &Path) -> Result<Decoder<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::Io {
        context: format!("opening {}", path.display()),
        source: e,
    })?;
    guarded(path, || Decoder::new(BufReader::with_capacity(1 << 20, f)))
}

impl GeoTiff {
    /// Opens a GeoTIFF; a TIFF without georeferencing is an error.
    pub fn open(path: &Path) -> Result<Self> {
        let mut d = decoder(path)?;
        let (width, height) = guarded(path, || d.dimensions())?;
        let scale = guarded(path, || {
            d.find_tag(Tag::ModelPixelScaleTag)?
                .map(|v| v.into_f64_vec())
                .transpose()
        })?;
        let tie = guarded(path, || {
            d.find_tag(Tag::ModelTiepointTag)?
                .map(|v| v.into_f64_vec())
                .transpose()
        })?;
        let matrix = guarded(path, || {
            d.find_tag(Tag::ModelTransformationTag)?
                .map(|v| v.into_f64_vec())
                .transpose()
        })?;
        let transform = match (scale, tie, matrix) {
            (Some(s), Some(t), _) if s.len() >= 2 && t.len() >= 6 => [
                t[3] - t[0] * s[0],
                s[0],
                0.0,
                t[4] + t[1] * s[1],
                0.0,
                -s[1],
            ],
            (_, _, Some(m)) if m.len() >= 8 => [m[3], m[0], m[1], m[7], m[4], m[5]],
            _ => {
                return Err(bad(
                    path,
                    "no georeferencing (no ModelPixelScale + ModelTiepoint or \
                     ModelTransformation tag): not a GeoTIFF",
                ));
            }
        };
        if transform.iter().any(|v| !v.is_finite()) || transform[1] == 0.0 || transform[5] == 0.0 {
            return Err(bad(path, format!("an unusable geotransform {transform:?}")));
        }
        let keys: Option<Vec<u16>> = guarded(path, || {
            d.find_tag_unsigned_vec::<u16>(Tag::GeoKeyDirectoryTag)
        })?;
        let epsg = keys.as_deref().and_then(epsg_of_keys);
        let nodata = guarded(path, || {
            d.find_tag(Tag::GdalNodata)?
                .map(|v| v.into_string())
                .transpose()
        })?
        .and_then(|s| s.trim_matches(char::from(0)).trim().parse::<f64>().ok());
        let samples = guarded(path, || {
            Ok(d.find_tag_unsigned(Tag::SamplesPerPixel)?.unwrap_or(1u16))
        })?;
        let planar = guarded(path, || {
            Ok(d.find_tag_unsigned(Tag::PlanarConfiguration)?
                .unwrap_or(1u16))
        })?;
        if samples > 1 && planar == 2 {
            return Err(bad(
                path,
                "planar multi-band TIFFs are not supported (band-interleaved, or one band, are)",
            ));
        }
        let chunk = guarded(path, || Ok(d.chunk_dimensions()))?;
        let chunks = guarded(path, || match d.get_chunk_type() {
            ChunkType::Tile => d.tile_count(),
            ChunkType::Strip => d.strip_count(),
        })?;
        if chunk.0 == 0 || chunk.1 == 0 {
            return Err(bad(path, "chunks of size zero"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            width,
            height,
            transform,
            epsg,
            nodata,
            chunk,
            chunks,
            samples,
        })
    }

    /// The pixel size, as (x, y) magnitudes in CRS units.
    pub fn pixel_size(&self) -> (f64, f64) {
        (self.transform[1].abs(), self.transform[5].abs())
    }

    /// CRS coordinates of a pixel's centre.
    pub fn centre(&self, col: u32, row: u32) -> (f64, f64) {
        let (c, r) = (f64::from(col) + 0.5, f64::from(row) + 0.5);
        let t = &self.transform;
        (t[0] + c * t[1] + r * t[2], t[3] + c * t[4] + r * t[5])
    }

    /// A reader of this raster's chunks (one per thread).
    pub fn reader(&self) -> Result<ChunkReader> {
        Ok(ChunkReader {
            tiff: self.clone(),
            decoder: decoder(&self.path)?,
        })
    }
}

/// Reads chunks of one raster.
pub struct ChunkReader {
    tiff: GeoTiff,
    decoder: Decoder<BufReader<File>>,
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("tiff", &self.tiff.path)
            .finish()
    }
}

impl ChunkReader {
    /// Decodes chunk `i` (band 1).
    pub fn read(&mut self, i: u32) -> Result<Window> {
        let t = &self.tiff;
        if i >= t.chunks {
            return Err(bad(&t.path, format!("no chunk {i} (of {})", t.chunks)));
        }
        let across = t.width.div_ceil(t.chunk.0).max(1);
        let (x0, y0) = ((i % across) * t.chunk.0, (i / across) * t.chunk.1);
        let d = &mut self.decoder;
        let (w, h) = guarded(&t.path, || Ok(d.chunk_data_dimensions(i)))?;
        let data = guarded(&t.path, || d.read_chunk(i))
            .map_err(|e| bad(&t.path, format!("chunk {i}: {e}")))?;
        let values: Vec<f64> = match data {
            DecodingResult::U8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U64(v) => v.into_iter().map(|x| x as f64).collect(),
            DecodingResult::I8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I64(v) => v.into_iter().map(|x| x as f64).collect(),
            DecodingResult::F32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F64(v) => v,
            DecodingResult::F16(v) => v.into_iter().map(f64::from).collect(),
        };
        // Tiles may be padded past the image's edge: keep the data part, band 1.
        let stride_px = if t.chunk.0 * t.chunk.1 * u32::from(t.samples) == values.len() as u32 {
            t.chunk.0
        } else {
            w
        };
        let s = usize::from(t.samples);
        let mut out = Vec::with_capacity((w * h) as usize);
        for r in 0..h as usize {
            for c in 0..w as usize {
                let at = (r * stride_px as usize + c) * s;
                out.push(values.get(at).copied().ok_or_else(|| {
                    bad(
                        &t.path,
                        format!("chunk {i} holds fewer pixels than its size"),
                    )
                })?);
            }
        }
        Ok(Window {
            x0,
            y0,
            width: w,
            height: h,
            values: out,
        })
    }
}

/// The EPSG code in a GeoKey directory: ProjectedCSTypeGeoKey (3072), else
/// GeographicTypeGeoKey (2048); user-defined (32767) is none.
fn epsg_of_keys(keys: &[u16]) -> Option<u32> {
    let n = usize::from(*keys.get(3)?);
    let entries: Vec<&[u16]> = keys.get(4..4 + 4 * n)?.chunks(4).collect();
    let value = |id: u16| {
        entries
            .iter()
            .find(|e| e[0] == id && e[1] == 0)
            .map(|e| u32::from(e[3]))
            .filter(|v| *v != 32767 && *v != 0)
    };
    value(3072).or_else(|| value(2048))
}
