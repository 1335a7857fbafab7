//! GeoJSON (a FeatureCollection, a Feature or a bare geometry) and newline-delimited GeoJSON.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::features::{FEATURE_BATCH, FeatureBatch, Prop};
use super::{GeomSpec, Opened, Unit, crs_from_text};
use crate::error::{Error, Result};

pub(super) fn open(path: &Path, lines: bool) -> Result<Opened> {
    let p = path.to_path_buf();
    let mut crs = None;
    let unit: Unit = if lines {
        Box::new(move || Ok(Box::new(LineFeatures::new(p)?) as super::BatchIter))
    } else {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let doc: Value = serde_json::from_reader(BufReader::with_capacity(1 << 20, file))
            .map_err(|e| Error::input(path, None, format!("not valid JSON: {e}")))?;
        if let Some(name) = doc.pointer("/crs/properties/name").and_then(Value::as_str) {
            crs = Some(crs_from_text(name));
        }
        let features = match doc {
            Value::Object(mut o) => match o.get("type").and_then(Value::as_str) {
                Some("FeatureCollection") => match o.remove("features") {
                    Some(Value::Array(f)) => f,
                    _ => {
                        return Err(Error::input(
                            path,
                            None,
                            "a FeatureCollection without a features list",
                        ));
                    }
                },
                Some("Feature") => vec![Value::Object(o)],
                Some(_) => vec![
                    serde_json::json!({"type": "Feature", "geometry": Value::Object(o), "properties": {}}),
                ],
                None => return Err(Error::input(path, None, "not GeoJSON: no \"type\"")),
            },
            _ => return Err(Error::input(path, None, "not GeoJSON: not an object")),
        };
        Box::new(move || {
            let mut out = Vec::new();
            let mut batch = FeatureBatch::default();
            for (row, f) in features.into_iter().enumerate() {
                add(&mut batch, f).map_err(|e| Error::input(&p, Some(row as u64), e))?;
                if batch.len() >= FEATURE_BATCH {
                    out.push(Ok(batch.take()));
                }
            }
            if batch.len() > 0 {
                out.push(Ok(batch.take()));
            }
            Ok(Box::new(out.into_iter()) as super::BatchIter)
        })
    };
    Ok(Opened {
        file: path.to_path_buf(),
        geom: GeomSpec::Wkb("geometry".into()),
        crs,
        units: vec![unit],
        rows: None,
    })
}

/// Newline-delimited features, read a batch at a time.
struct LineFeatures {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    row: u64,
    done: bool,
}

impl LineFeatures {
    fn new(path: PathBuf) -> Result<Self> {
        let file =
            File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Self {
            path,
            lines: BufReader::with_capacity(1 << 20, file).lines(),
            row: 0,
            done: false,
        })
    }
}

impl Iterator for LineFeatures {
    type Item = Result<arrow::record_batch::RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = FeatureBatch::default();
        while batch.len() < FEATURE_BATCH {
            let Some(line) = self.lines.next() else {
                self.done = true;
                break;
            };
            let row = self.row;
            self.row += 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(Error::input(&self.path, Some(row), e))),
            };
            // RFC 8142 record separators and blank lines are allowed.
            let line = line.trim_start_matches('\u{1e}').trim();
            if line.is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Value>(line)
                .map_err(|e| format!("not valid JSON: {e}"))
                .and_then(|f| add(&mut batch, f));
            if let Err(e) = parsed {
                self.done = true;
                return Some(Err(Error::input(&self.path, Some(row), e)));
            }
        }
        (batch.len() > 0).then(|| Ok(batch.take()))
    }
}

/// Adds one GeoJSON feature.
fn add(batch: &mut FeatureBatch, f: Value) -> Result<(), String> {
    let Value::Object(mut f) = f else {
        return Err("a feature is not an object".into());
    };
    let geometry = match f.remove("geometry") {
        None | Some(Value::Null) => None,
        Some(g) => {
            let mut wkb = Vec::new();
            write_wkb(&g, &mut wkb)?;
            Some(wkb)
        }
    };
    let props = match f.remove("properties") {
        Some(Value::Object(p)) => p
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Null => Prop::Null,
                    Value::Bool(b) => Prop::Bool(b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => Prop::Int(i),
                        None => Prop::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Value::String(s) => Prop::Str(s),
                    other => Prop::Str(other.to_string()),
                };
                (k, v)
            })
            .collect(),
        _ => Vec::new(),
    };
    batch.push(props, geometry);
    Ok(())
}

fn coord(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let c = v.as_array().ok_or("a position is not an array")?;
    let (Some(x), Some(y)) = (
        c.first().and_then(Value::as_f64),
        c.get(1).and_then(Value::as_f64),
    ) else {
        return Err("a position needs two numbers".into());
    };
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
    Ok(())
}

fn list<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} is not an array"))
}

fn count(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn header(kind: u32, out: &mut Vec<u8>) {
    out.push(1);
    out.extend_from_slice(&kind.to_le_bytes());
}

fn positions(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let l = list(v, "a line")?;
    count(l.len(), out);
    l.iter().try_for_each(|c| coord(c, out))
}

fn rings(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let r = list(v, "a polygon")?;
    count(r.len(), out);
    r.iter().try_for_each(|l| positions(l, out))
}

/// Writes a GeoJSON geometry (2D; extra ordinates dropped) as little-endian WKB.
pub(super) fn write_wkb(g: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let t = g["type"].as_str().ok_or("a geometry without \"type\"")?;
    let c = &g["coordinates"];
    match t {
        "Point" => {
            header(1, out);
            match c.as_array() {
                Some(a) if a.is_empty() => {
                    out.extend_from_slice(&f64::NAN.to_le_bytes());
                    out.extend_from_slice(&f64::NAN.to_le_bytes());
                }
                _ => coord(c, out)?,
            }
        }
        "LineString" => {
            header(2, out);
            positions(c, out)?;
        }
        "Polygon" => {
            header(3, out);
            rings(c, out)?;
        }
        "MultiPoint" => {
            header(4, out);
            let p = list(c, "a multipoint")?;
            count(p.len(), out);
            for p in p {
                header(1, out);
                coord(p, out)?;
            }
        }
        "MultiLineString" => {
            header(5, out);
            let l = list(c, "a multilinestring")?;
            count(l.len(), out);
            for l in l {
                header(2, out);
                positions(l, out)?;
            }
        }
        "MultiPolygon" => {
            header(6, out);
            let p = list(c, "a multipolygon")?;
            count(p.len(), out);
            for p in p {
                header(3, out);
                rings(p, out)?;
            }
        }
        "GeometryCollection" => {
            header(7, out);
            let g = list(&g["geometries"], "geometries")?;
            count(g.len(), out);
            for g in g {
                write_wkb(g, out)?;
            }
        }
        other => return Err(format!("unknown geometry type {other:?}")),
    }
    Ok(())
}
