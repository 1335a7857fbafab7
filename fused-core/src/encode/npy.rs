//! numpy `.npy` (format version 1.0) for rasters.

use crate::error::{Error, Result};
use crate::output::{Raster, RasterData, SampleType};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a raster as `.npy`: shape `(height, width)` for one band, else `(bands, height, width)`.
pub fn encode_npy(r: &Raster) -> Vec<u8> {
    let shape = if r.bands() == 1 {
        format!("({}, {})", r.height(), r.width())
    } else {
        format!("({}, {}, {})", r.bands(), r.height(), r.width())
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        r.data().sample_type().numpy_descr()
    );
    // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let data = r.data().to_le_bytes();
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The header is at most a few hundred bytes.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Decodes a little-endian, C-order `.npy` array of 2 or 3 dimensions into a raster.
pub fn decode_npy(b: &[u8]) -> Result<Raster> {
    let bad = |why: &str| Error::Encode(format!("npy: {why}"));
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err(bad("not an .npy file"));
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err(bad("unsupported version")),
    };
    let header = b
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(
            header[i..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start(),
        )
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| bad("no descr"))?;
    let t = SampleType::from_numpy_descr(descr)
        .ok_or_else(|| bad(&format!("unsupported dtype {descr}")))?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(bad("Fortran order is not supported"));
    }
    let shape_txt = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("bad shape"))?;
    let (bands, h, w) = match dims[..] {
        [h, w] => (1, h, w),
        [c, h, w] => (c, h, w),
        _ => {
            return Err(bad(&format!(
                "expected 2 or 3 dimensions, got {}",
                dims.len()
            )));
        }
    };
    let data = RasterData::from_le_bytes(t, &b[start + hlen..])?;
    Raster::new(bands, h, w, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_roundtrip_and_alignment() {
        let r = Raster::new(2, 2, 3, RasterData::I16((0..12).collect())).unwrap();
        let b = encode_npy(&r);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(decode_npy(&b).unwrap(), r);
        assert!(decode_npy(&b[..20]).is_err());
        assert!(decode_npy(b"hello world").is_err());
    }
}
