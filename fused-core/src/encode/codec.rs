//! A compact, lossless byte form of [`Output`] for caches: Arrow IPC for tables, raw samples for
//! rasters. Not a wire format; versioned so that an old entry reads as a miss, not as garbage.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::output::{Crs, GeometryColumn, Output, Raster, RasterData, SampleType, Table};
use crate::tile::Bounds;

const MAGIC: &[u8; 4] = b"FOU1";
const GEOMETRY_KEY: &str = "fused:geometry";

fn bad(why: impl Into<String>) -> Error {
    Error::Encode(format!("cached output: {}", why.into()))
}

fn put_block(out: &mut Vec<u8>, block: &[u8]) {
    out.extend_from_slice(&(block.len() as u64).to_le_bytes());
    out.extend_from_slice(block);
}

fn take_block<'a>(b: &mut &'a [u8]) -> Result<&'a [u8]> {
    if b.len() < 8 {
        return Err(bad("truncated"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    let n = usize::try_from(u64::from_le_bytes(n)).map_err(|_| bad("block too large"))?;
    let rest = &b[8..];
    if rest.len() < n {
        return Err(bad("truncated"));
    }
    let (head, tail) = rest.split_at(n);
    *b = tail;
    Ok(head)
}

/// Size of the frame header: magic, kind, payload length, CRC-32 of the payload.
const HEADER: usize = 4 + 1 + 8 + 4;

/// Serializes an output for a cache: a framed payload whose length and CRC-32 are checked on
/// read, so a truncated or corrupted entry is detected.
pub fn encode_output(o: &Output) -> Result<Bytes> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(0);
    out.extend_from_slice(&[0u8; 12]);
    match o {
        Output::Table(t) => {
            out[4] = b'T';
            let mut md: HashMap<String, String> = t.schema().metadata().clone();
            if let Some(g) = t.geometry() {
                md.insert(
                    GEOMETRY_KEY.into(),
                    json!({"name": g.name, "crs": g.crs.to_string()}).to_string(),
                );
            }
            let schema = Arc::new(Schema::new_with_metadata(t.schema().fields().clone(), md));
            let mut ipc = Vec::new();
            {
                let mut w = StreamWriter::try_new(&mut ipc, &schema)?;
                for b in t.batches() {
                    w.write(&b.clone().with_schema(Arc::clone(&schema))?)?;
                }
                w.finish()?;
            }
            out.extend_from_slice(&ipc);
        }
        Output::Raster(r) => {
            out[4] = b'R';
            let header = json!({
                "shape": r.shape(),
                "dtype": r.data().sample_type().numpy_descr(),
                "bounds": r.bounds.map(Bounds::to_array),
                "nodata": r.nodata,
            });
            put_block(&mut out, header.to_string().as_bytes());
            out.extend_from_slice(&r.data().to_le_bytes());
        }
        Output::Json(v) => {
            out[4] = b'J';
            serde_json::to_writer(&mut out, v)?;
        }
        Output::Bytes { content_type, data } => {
            out[4] = b'B';
            put_block(&mut out, content_type.as_bytes());
            out.extend_from_slice(data);
        }
        Output::Empty => out[4] = b'E',
    }
    let len = (out.len() - HEADER) as u64;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[5..13].copy_from_slice(&len.to_le_bytes());
    out[13..17].copy_from_slice(&crc.to_le_bytes());
    Ok(out.into())
}

/// Reads back what [`encode_output`] wrote; anything else (truncated, corrupted, another
/// version) is an error, so callers treat it as a miss.
pub fn decode_output(bytes: &Bytes) -> Result<Output> {
    let b: &[u8] = bytes;
    if b.len() < HEADER || &b[..4] != MAGIC {
        return Err(bad("unknown format or version"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&b[5..13]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&b[13..17]);
    let mut rest = &b[HEADER..];
    if u64::try_from(rest.len()).ok() != Some(u64::from_le_bytes(len)) {
        return Err(bad("truncated"));
    }
    if crc32fast::hash(rest) != u32::from_le_bytes(crc) {
        return Err(bad("checksum mismatch"));
    }
    match b[4] {
        b'T' => {
            let reader = StreamReader::try_new(std::io::Cursor::new(rest), None)?;
            let schema = reader.schema();
            let mut batches = Vec::new();
            for batch in reader {
                batches.push(batch?);
            }
            let geometry = schema.metadata().get(GEOMETRY_KEY).and_then(|g| {
                let v: Value = serde_json::from_str(g).ok()?;
                Some(GeometryColumn {
                    name: v.get("name")?.as_str()?.to_owned(),
                    crs: Crs::parse(v.get("crs")?.as_str()?),
                })
            });
            let mut md = schema.metadata().clone();
            md.remove(GEOMETRY_KEY);
            let clean = Arc::new(Schema::new_with_metadata(schema.fields().clone(), md));
            let batches = batches
                .into_iter()
                .map(|b| {
                    arrow::record_batch::RecordBatch::try_new(
                        Arc::clone(&clean),
                        b.columns().to_vec(),
                    )
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Output::Table(Table::from_parts(clean, batches, geometry)))
        }
        b'R' => {
            let header: Value = serde_json::from_slice(take_block(&mut rest)?)?;
            let shape: [usize; 3] = serde_json::from_value(header["shape"].clone())?;
            let t = header["dtype"]
                .as_str()
                .and_then(SampleType::from_numpy_descr)
                .ok_or_else(|| bad("dtype"))?;
            let mut r = Raster::new(
                shape[0],
                shape[1],
                shape[2],
                RasterData::from_le_bytes(t, rest)?,
            )?;
            if let Some(a) = header["bounds"].as_array() {
                let v: Vec<f64> = a.iter().filter_map(Value::as_f64).collect();
                if let [w, s, e, n] = v[..] {
                    r = r.with_bounds(Bounds::new(w, s, e, n)?);
                }
            }
            if let Some(nd) = header["nodata"].as_f64() {
                r = r.with_nodata(nd);
            }
            Ok(Output::Raster(r))
        }
        b'J' => Ok(Output::Json(serde_json::from_slice(rest)?)),
        b'B' => {
            let ct = std::str::from_utf8(take_block(&mut rest)?)
                .map_err(|_| bad("content type"))?
                .to_owned();
            Ok(Output::Bytes {
                content_type: ct,
                data: bytes.slice(bytes.len() - rest.len()..),
            })
        }
        b'E' if rest.is_empty() => Ok(Output::Empty),
        _ => Err(bad("unknown kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Output {
        Output::Table(crate::output::table::fixtures::points(
            &[7],
            "geometry",
            Crs::WGS84,
            false,
        ))
    }

    #[test]
    fn every_kind_roundtrips() {
        let r = Raster::new(1, 1, 2, RasterData::F64(vec![1.5, 2.5]))
            .unwrap()
            .with_bounds(Bounds::new(0.0, 0.0, 1.0, 1.0).unwrap())
            .with_nodata(0.0);
        for o in [
            table(),
            Output::Raster(r),
            Output::Json(json!({"a": [1, 2]})),
            Output::bytes("text/plain", "hi"),
            Output::Empty,
        ] {
            let enc = encode_output(&o).unwrap();
            assert_eq!(decode_output(&enc).unwrap(), o);
        }
    }

    #[test]
    fn truncated_or_corrupt_is_an_error() {
        let enc = encode_output(&table()).unwrap();
        for cut in [0, 3, 5, enc.len() / 2, enc.len() - 1] {
            assert!(decode_output(&enc.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad = enc.to_vec();
        bad[4] = b'Z';
        assert!(decode_output(&Bytes::from(bad)).is_err());
        let mut flipped = enc.to_vec();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(decode_output(&Bytes::from(flipped)).is_err());
    }
}
