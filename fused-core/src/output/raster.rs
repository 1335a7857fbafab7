//! Rasters: bands × height × width of one sample type.

use crate::error::{Error, Result};
use crate::tile::Bounds;

/// The sample type of a raster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleType {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl SampleType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            SampleType::U8 => 1,
            SampleType::U16 | SampleType::I16 => 2,
            SampleType::I32 | SampleType::F32 => 4,
            SampleType::F64 => 8,
        }
    }

    /// The numpy `descr` of this type, little-endian.
    pub fn numpy_descr(self) -> &'static str {
        match self {
            SampleType::U8 => "|u1",
            SampleType::U16 => "<u2",
            SampleType::I16 => "<i2",
            SampleType::I32 => "<i4",
            SampleType::F32 => "<f4",
            SampleType::F64 => "<f8",
        }
    }

    /// Parses a numpy `descr` (`"<f4"`, `"|u1"` …).
    pub fn from_numpy_descr(d: &str) -> Option<Self> {
        Some(match d {
            "|u1" | "<u1" | "u1" => SampleType::U8,
            "<u2" => SampleType::U16,
            "<i2" => SampleType::I16,
            "<i4" => SampleType::I32,
            "<f4" => SampleType::F32,
            "<f8" => SampleType::F64,
            _ => return None,
        })
    }
}

/// Raster samples, band-major (all of band 0, then band 1, …), rows from the north.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RasterData {
    /// Unsigned 8-bit samples.
    U8(Vec<u8>),
    /// Unsigned 16-bit samples.
    U16(Vec<u16>),
    /// Signed 16-bit samples.
    I16(Vec<i16>),
    /// Signed 32-bit samples.
    I32(Vec<i32>),
    /// 32-bit float samples.
    F32(Vec<f32>),
    /// 64-bit float samples.
    F64(Vec<f64>),
}

impl RasterData {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            RasterData::U8(v) => v.len(),
            RasterData::U16(v) => v.len(),
            RasterData::I16(v) => v.len(),
            RasterData::I32(v) => v.len(),
            RasterData::F32(v) => v.len(),
            RasterData::F64(v) => v.len(),
        }
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample type.
    pub fn sample_type(&self) -> SampleType {
        match self {
            RasterData::U8(_) => SampleType::U8,
            RasterData::U16(_) => SampleType::U16,
            RasterData::I16(_) => SampleType::I16,
            RasterData::I32(_) => SampleType::I32,
            RasterData::F32(_) => SampleType::F32,
            RasterData::F64(_) => SampleType::F64,
        }
    }

    /// The samples as little-endian bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|x| f(*x)).collect()
        }
        match self {
            RasterData::U8(v) => v.clone(),
            RasterData::U16(v) => le(v, u16::to_le_bytes),
            RasterData::I16(v) => le(v, i16::to_le_bytes),
            RasterData::I32(v) => le(v, i32::to_le_bytes),
            RasterData::F32(v) => le(v, f32::to_le_bytes),
            RasterData::F64(v) => le(v, f64::to_le_bytes),
        }
    }

    /// Samples of type `t` from little-endian bytes.
    pub fn from_le_bytes(t: SampleType, b: &[u8]) -> Result<Self> {
        if !b.len().is_multiple_of(t.size()) {
            return Err(Error::Encode(format!(
                "{} bytes is not a whole number of {t:?} samples",
                b.len()
            )));
        }
        macro_rules! read {
            ($ty:ty, $n:expr, $variant:ident) => {
                RasterData::$variant(
                    b.chunks_exact($n)
                        .map(|c| {
                            let mut a = [0u8; $n];
                            a.copy_from_slice(c);
                            <$ty>::from_le_bytes(a)
                        })
                        .collect(),
                )
            };
        }
        Ok(match t {
            SampleType::U8 => RasterData::U8(b.to_vec()),
            SampleType::U16 => read!(u16, 2, U16),
            SampleType::I16 => read!(i16, 2, I16),
            SampleType::I32 => read!(i32, 4, I32),
            SampleType::F32 => read!(f32, 4, F32),
            SampleType::F64 => read!(f64, 8, F64),
        })
    }
}

/// A raster: `bands × height × width` samples with optional bounds and nodata.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    bands: usize,
    height: usize,
    width: usize,
    data: RasterData,
    /// The lon/lat box the raster covers, when known.
    pub bounds: Option<Bounds>,
    /// The value that marks missing samples.
    pub nodata: Option<f64>,
}

impl Raster {
    /// A raster; `data` must hold exactly `bands × height × width` samples.
    pub fn new(bands: usize, height: usize, width: usize, data: RasterData) -> Result<Self> {
        let want = bands
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width))
            .ok_or_else(|| Error::Encode("raster dimensions overflow".into()))?;
        if want == 0 {
            return Err(Error::Encode(format!(
                "empty raster ({bands}×{height}×{width})"
            )));
        }
        if data.len() != want {
            return Err(Error::Encode(format!(
                "raster of {bands}×{height}×{width} needs {want} samples, got {}",
                data.len()
            )));
        }
        Ok(Self {
            bands,
            height,
            width,
            data,
            bounds: None,
            nodata: None,
        })
    }

    /// Sets the bounds.
    #[must_use]
    pub fn with_bounds(mut self, b: Bounds) -> Self {
        self.bounds = Some(b);
        self
    }

    /// Sets the nodata value.
    #[must_use]
    pub fn with_nodata(mut self, v: f64) -> Self {
        self.nodata = Some(v);
        self
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The samples.
    pub fn data(&self) -> &RasterData {
        &self.data
    }

    /// The shape `[bands, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.bands, self.height, self.width]
    }
}
