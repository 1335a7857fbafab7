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
    /// Samples per pixel in a chunk (only the first is read).
    samples: u16,
    /// LZW chunks, decoded by [`crate::lzw`] from these byte ranges.
    lzw: Option<LzwChunks>,
}

/// Where the LZW chunks are, and how their samples are stored.
#[derive(Debug, Clone, PartialEq)]
struct LzwChunks {
    offsets: Vec<u64>,
    lengths: Vec<u64>,
    tiled: bool,
    samples: crate::lzw::Samples,
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
        let chunk = guarded(path, || Ok(d.chunk_dimensions()))?;
        let tiled = d.get_chunk_type() == ChunkType::Tile;
        let mut chunks = guarded(path, || {
            if tiled {
                d.tile_count()
            } else {
                d.strip_count()
            }
        })?;
        if chunk.0 == 0 || chunk.1 == 0 {
            return Err(bad(path, "chunks of size zero"));
        }
        // Band-separate (planar) files: band 1's chunks come first, one sample per pixel.
        let samples = if planar == 2 {
            chunks /= u32::from(samples.max(1));
            1
        } else {
            samples
        };
        // A tag's (first) value: BitsPerSample and SampleFormat hold one per sample.
        let unsigned = |d: &mut Decoder<BufReader<File>>, tag: Tag, default: u16| {
            guarded(path, || {
                Ok(d.find_tag_unsigned_vec::<u16>(tag)?
                    .and_then(|v| v.first().copied())
                    .unwrap_or(default))
            })
        };
        let compression = unsigned(&mut d, Tag::Compression, 1)?;
        check_encoding(
            path,
            compression,
            unsigned(&mut d, Tag::SampleFormat, 1)?,
            unsigned(&mut d, Tag::BitsPerSample, 1)?,
        )?;
        let lzw = if compression == 5 {
            let (off, len) = if tiled {
                (Tag::TileOffsets, Tag::TileByteCounts)
            } else {
                (Tag::StripOffsets, Tag::StripByteCounts)
            };
            let offsets: Vec<u64> = guarded(path, || d.get_tag(off)?.into_u64_vec())?;
            let lengths: Vec<u64> = guarded(path, || d.get_tag(len)?.into_u64_vec())?;
            if offsets.len() < chunks as usize || lengths.len() < chunks as usize {
                return Err(bad(path, "fewer chunk offsets than chunks"));
            }
            Some(LzwChunks {
                offsets,
                lengths,
                tiled,
                samples: crate::lzw::Samples {
                    bits: unsigned(&mut d, Tag::BitsPerSample, 1)?,
                    format: unsigned(&mut d, Tag::SampleFormat, 1)?,
                    predictor: unsigned(&mut d, Tag::Predictor, 1)?,
                    per_pixel: samples,
                    big_endian: d.byte_order() == tiff::tags::ByteOrder::BigEndian,
                },
            })
        } else {
            None
        };
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
            lzw,
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
        if let Some(lzw) = &t.lzw {
            let values = read_lzw(d.inner(), lzw, i, t, (w, h))
                .map_err(|e| bad(&t.path, format!("chunk {i}: {e}")))?;
            return band_one(t, i, (x0, y0), (w, h), &values);
        }
        let data = guarded(&t.path, || d.read_chunk(i)).map_err(|e| match e {
            Error::Raster { file, reason } => Error::Raster {
                file,
                reason: format!("chunk {i}: {reason}"),
            },
            e => e,
        })?;
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
        band_one(t, i, (x0, y0), (w, h), &values)
    }
}

/// Reads and decodes LZW chunk `i` (`w` × `h` of the image's pixels).
fn read_lzw(
    f: &mut BufReader<File>,
    lzw: &LzwChunks,
    i: u32,
    t: &GeoTiff,
    (w, h): (u32, u32),
) -> std::result::Result<Vec<f64>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let (off, len) = (lzw.offsets[i as usize], lzw.lengths[i as usize]);
    let size = std::fs::metadata(&t.path).map(|m| m.len()).unwrap_or(0);
    if off.checked_add(len).is_none_or(|end| end > size) {
        return Err(format!(
            "its bytes {off}+{len} lie past the end of the file ({size} bytes)"
        ));
    }
    // Tiles are stored at full size (padded); strips hold their own rows only.
    let (cols, rows) = if lzw.tiled {
        (t.chunk.0, t.chunk.1)
    } else {
        (t.width, h)
    };
    if len == 0 {
        // A sparse chunk (GDAL's SPARSE_OK): never written; GDAL reads nodata (or 0) there.
        let n = u64::from(cols) * u64::from(rows) * u64::from(lzw.samples.per_pixel.max(1));
        return usize::try_from(n)
            .map(|n| vec![t.nodata.unwrap_or(0.0); n])
            .map_err(|_| "a chunk too large".to_owned());
    }
    let mut raw = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(off))
        .and_then(|_| f.read_exact(&mut raw))
        .map_err(|e| e.to_string())?;
    let needed = u64::from(h.saturating_sub(1)) * u64::from(cols) + u64::from(w);
    let needed = usize::try_from(needed).map_err(|_| "a chunk too large".to_owned())?;
    crate::lzw::decode(&raw, cols as usize, rows as usize, needed, lzw.samples)
        .map_err(|e| e.to_string())
}

/// Band 1 of a decoded chunk (tiles may be padded past the image's edge).
fn band_one(
    t: &GeoTiff,
    i: u32,
    (x0, y0): (u32, u32),
    (w, h): (u32, u32),
    values: &[f64],
) -> Result<Window> {
    let padded = u64::from(t.chunk.0) * u64::from(t.chunk.1) * u64::from(t.samples);
    let stride_px = if padded == values.len() as u64 {
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

/// Refuses, when the file is opened, encodings the reader cannot decode.
fn check_encoding(path: &Path, compression: u16, format: u16, bits: u16) -> Result<()> {
    let name = match compression {
        1 | 5 | 7 | 8 | 32946 | 32773 | 50000 => None,
        6 => Some("old-style JPEG"),
        34887 => Some("LERC"),
        34925 => Some("LZMA"),
        50001 => Some("WebP"),
        50002 => Some("JPEG XL"),
        2..=4 => Some("CCITT fax"),
        _ => Some("unknown"),
    };
    if let Some(name) = name {
        return Err(bad(
            path,
            format!(
                "its compression, {name} (code {compression}), is not supported (supported: \
                 none, LZW, deflate, zstd, JPEG, PackBits)"
            ),
        ));
    }
    match format {
        1..=3 => {}
        5 | 6 => return Err(bad(path, "complex samples are not supported")),
        f => return Err(bad(path, format!("sample format {f} is not supported"))),
    }
    if !matches!(bits, 8 | 16 | 32 | 64) {
        return Err(bad(
            path,
            format!("{bits}-bit samples are not supported (8, 16, 32 and 64 are)"),
        ));
    }
    Ok(())
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
