//! LZW chunks decoded here rather than by the `tiff` crate: GDAL ends the LZW stream of an
//! edge tile once the image's own pixels are written — no end code, no padding — and `tiff`
//! 0.11 refuses such a stream ("no lzw end code found"); libtiff stops once a chunk's bytes
//! are produced, and so do we. The predictor (2: horizontal differencing, 3: floating point)
//! is then undone and the samples become `f64`.

use std::fmt;

/// How a chunk's samples are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Samples {
    /// Bits per sample: 8, 16, 32 or 64.
    pub(crate) bits: u16,
    /// SampleFormat: 1 unsigned, 2 signed, 3 float.
    pub(crate) format: u16,
    /// Predictor: 1 none, 2 horizontal, 3 floating point.
    pub(crate) predictor: u16,
    /// Samples per pixel in the chunk.
    pub(crate) per_pixel: u16,
    /// The file is big-endian (`MM`).
    pub(crate) big_endian: bool,
}

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Samples a decoded chunk may hold (as `f64`, 512 MiB: a corrupt size tag must not
/// allocate gigabytes).
const MAX_CHUNK_SAMPLES: usize = 64 << 20;

/// Decodes an LZW chunk of `cols` × `rows` pixels (its stored size, padding included) whose
/// first `needed` pixels (row-major) are the image's; returns every sample as `f64`.
pub(crate) fn decode(
    raw: &[u8],
    cols: usize,
    rows: usize,
    needed: usize,
    s: Samples,
) -> Result<Vec<f64>, DecodeError> {
    let bps = match s.bits {
        8 | 16 | 32 | 64 => usize::from(s.bits / 8),
        b => return Err(DecodeError(format!("{b}-bit samples are not supported"))),
    };
    if !matches!((s.format, s.bits), (1 | 2, _) | (3, 32 | 64)) {
        return Err(DecodeError(format!(
            "sample format {} with {} bits is not supported",
            s.format, s.bits
        )));
    }
    let n = usize::from(s.per_pixel.max(1));
    let row_bytes = cols * n * bps;
    let total = row_bytes
        .checked_mul(rows)
        .filter(|t| *t / bps <= MAX_CHUNK_SAMPLES)
        .ok_or_else(|| DecodeError(format!("a chunk of {cols}×{rows} pixels is too large")))?;
    let mut out = vec![0u8; total];
    let produced = inflate(raw, &mut out)?;
    let want = needed * n * bps;
    if produced < want {
        return Err(DecodeError(format!(
            "the LZW data ends after {produced} of {want} bytes"
        )));
    }
    for row in out.chunks_exact_mut(row_bytes) {
        match s.predictor {
            1 => {}
            2 => undo_horizontal(row, n, bps, s.big_endian),
            3 if s.format == 3 => undo_floating(row, n, bps),
            p => return Err(DecodeError(format!("predictor {p} is not supported"))),
        }
    }
    // Predictor 3 leaves samples big-endian, whatever the file's byte order.
    let big = s.big_endian || s.predictor == 3;
    Ok(out.chunks_exact(bps).map(|b| value(b, s, big)).collect())
}

/// LZW (MSB first, TIFF's early code-size switch) into `out`; the bytes produced. Stops at an
/// end code, at the end of the input, or when `out` is full.
fn inflate(raw: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut d = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let (mut i, mut o) = (0, 0);
    while o < out.len() {
        let r = d.decode_bytes(&raw[i..], &mut out[o..]);
        i += r.consumed_in;
        o += r.consumed_out;
        match r.status {
            Ok(weezl::LzwStatus::Ok) if r.consumed_in + r.consumed_out > 0 => {}
            Ok(_) => break,
            // Garbage after the chunk's bytes is ignored, as libtiff does.
            Err(_) if o == out.len() => break,
            Err(e) => return Err(DecodeError(format!("corrupt LZW data: {e}"))),
        }
    }
    Ok(o)
}

fn read_uint(b: &[u8], big: bool) -> u64 {
    let mut a = [0u8; 8];
    if big {
        a[8 - b.len()..].copy_from_slice(b);
        u64::from_be_bytes(a)
    } else {
        a[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(a)
    }
}

fn write_uint(b: &mut [u8], v: u64, big: bool) {
    let len = b.len();
    if big {
        b.copy_from_slice(&v.to_be_bytes()[8 - len..]);
    } else {
        b.copy_from_slice(&v.to_le_bytes()[..len]);
    }
}

/// Predictor 2: each sample is stored as the difference from the same sample of the pixel
/// to its left (wrapping, at the sample's width).
fn undo_horizontal(row: &mut [u8], n: usize, bps: usize, big: bool) {
    if bps == 1 {
        for k in n..row.len() {
            row[k] = row[k].wrapping_add(row[k - n]);
        }
        return;
    }
    let mask = if bps == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * bps)) - 1
    };
    let stride = n * bps;
    for at in (stride..row.len()).step_by(bps) {
        let prev = read_uint(&row[at - stride..at - stride + bps], big);
        let cur = read_uint(&row[at..at + bps], big);
        write_uint(&mut row[at..at + bps], cur.wrapping_add(prev) & mask, big);
    }
}

/// Predictor 3: the row's bytes are differenced (by pixel), and stored as planes of byte
/// significance, most significant first.
fn undo_floating(row: &mut [u8], n: usize, bps: usize) {
    for k in n..row.len() {
        row[k] = row[k].wrapping_add(row[k - n]);
    }
    let count = row.len() / bps;
    let planes = row.to_vec();
    for i in 0..count {
        for b in 0..bps {
            row[i * bps + b] = planes[b * count + i];
        }
    }
}

fn value(b: &[u8], s: Samples, big: bool) -> f64 {
    let u = read_uint(b, big);
    match (s.format, s.bits) {
        (3, 32) => f64::from(f32::from_bits(u as u32)),
        (3, _) => f64::from_bits(u),
        (2, 8) => f64::from(u as u8 as i8),
        (2, 16) => f64::from(u as u16 as i16),
        (2, 32) => f64::from(u as u32 as i32),
        (2, _) => u as i64 as f64,
        _ => u as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lzw(bytes: &[u8]) -> Vec<u8> {
        weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(bytes)
            .expect("encode")
    }

    const LE_U16: Samples = Samples {
        bits: 16,
        format: 1,
        predictor: 2,
        per_pixel: 1,
        big_endian: false,
    };

    #[test]
    fn horizontal_differences_are_summed_back() {
        // Values 1000, 1003, 999, 65535 (wraps) stored as differences.
        let diffs: Vec<u8> = [1000u16, 3, 0u16.wrapping_sub(4), 64536]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let got = decode(&lzw(&diffs), 4, 1, 4, LE_U16).expect("decode");
        assert_eq!(got, vec![1000.0, 1003.0, 999.0, 65535.0]);
    }

    #[test]
    fn floating_point_predictor_is_undone() {
        let vals = [1.5f32, -2.25, 1e6, 0.0];
        // Planes of big-endian bytes, then differenced.
        let be: Vec<[u8; 4]> = vals.iter().map(|v| v.to_be_bytes()).collect();
        let mut planes: Vec<u8> = (0..4).flat_map(|b| be.iter().map(move |x| x[b])).collect();
        for k in (1..planes.len()).rev() {
            planes[k] = planes[k].wrapping_sub(planes[k - 1]);
        }
        let s = Samples {
            bits: 32,
            format: 3,
            predictor: 3,
            per_pixel: 1,
            big_endian: false,
        };
        let got = decode(&lzw(&planes), 4, 1, 4, s).expect("decode");
        assert_eq!(got, vals.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
    }

    #[test]
    fn a_stream_cut_after_the_image_pixels_is_read_and_a_shorter_one_refused() {
        let s = Samples {
            predictor: 1,
            bits: 8,
            ..LE_U16
        };
        // A 4×2 tile whose image part is its first 5 pixels.
        let got = decode(&lzw(&[1, 2, 3, 4, 5]), 4, 2, 5, s).expect("decode");
        assert_eq!(got[..5], [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(got.len(), 8);
        let e = decode(&lzw(&[1, 2, 3]), 4, 2, 5, s).expect_err("short");
        assert!(e.to_string().contains("3 of 5"), "{e}");
        let e = decode(&[0xff; 7], 4, 2, 5, s).expect_err("garbage");
        assert!(e.to_string().contains("LZW"), "{e}");
    }
}
