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
        let head = peek(path)?;
        if let Some(name) = &head.crs {
            crs = Some(crs_from_text(name));
        }
        if head.collection {
            Box::new(move || Ok(Box::new(stream_collection(p)) as super::BatchIter))
        } else {
            Box::new(move || whole_document(&p))
        }
    };
    Ok(Opened {
        file: path.to_path_buf(),
        geom: GeomSpec::Wkb("geometry".into()),
        crs,
        units: vec![unit],
        rows: None,
    })
}

/// What the start of a GeoJSON document says.
#[derive(Debug, Default)]
struct Head {
    /// A FeatureCollection with its `features` (streamed).
    collection: bool,
    /// The legacy `crs` member's name, when it comes before the features.
    crs: Option<String>,
}

/// The message that stops [`peek`] at the features.
const STOP: &str = "__fused_stop_at_features__";

/// Reads a document up to its `features` member.
fn peek(path: &Path) -> Result<Head> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct V<'a>(&'a mut Head);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a GeoJSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut is_collection = false;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "type" => {
                        let t: Value = map.next_value()?;
                        is_collection = t == "FeatureCollection";
                    }
                    "crs" => {
                        let c: Value = map.next_value()?;
                        self.0.crs = c
                            .pointer("/properties/name")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    }
                    "features" => {
                        self.0.collection = true;
                        let _ = is_collection;
                        return Err(serde::de::Error::custom(STOP));
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut head = Head::default();
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(64 << 10, file));
    match de.deserialize_map(V(&mut head)) {
        Ok(()) => Ok(head),
        Err(e) if e.to_string().starts_with(STOP) => Ok(head),
        Err(e) => Err(Error::input(path, None, format!("not valid GeoJSON: {e}"))),
    }
}

/// A document that is not a FeatureCollection (a Feature, a geometry), parsed whole.
fn whole_document(p: &Path) -> Result<super::BatchIter> {
    let file = File::open(p).map_err(|e| Error::io(format!("opening {}", p.display()), e))?;
    let doc: Value = serde_json::from_reader(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| Error::input(p, None, format!("not valid JSON: {e}")))?;
    let feature = match doc {
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("Feature") => Value::Object(o),
            Some("FeatureCollection") => {
                return Err(Error::input(
                    p,
                    None,
                    "a FeatureCollection without a features list",
                ));
            }
            Some(_) => {
                serde_json::json!({"type": "Feature", "geometry": Value::Object(o), "properties": {}})
            }
            None => return Err(Error::input(p, None, "not GeoJSON: no \"type\"")),
        },
        _ => return Err(Error::input(p, None, "not GeoJSON: not an object")),
    };
    let mut batch = FeatureBatch::default();
    add(&mut batch, feature).map_err(|e| Error::input(p, Some(0), e))?;
    Ok(Box::new(std::iter::once(Ok(batch.take()))))
}

/// The features of a FeatureCollection, parsed as a stream on a thread of their own and
/// handed over a batch at a time (two batches in flight at most), so the document's size
/// does not bound memory.
fn stream_collection(
    path: PathBuf,
) -> impl Iterator<Item = Result<arrow::record_batch::RecordBatch>> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    type Tx = std::sync::mpsc::SyncSender<Result<arrow::record_batch::RecordBatch>>;
    struct Sink<'a> {
        tx: &'a Tx,
        batch: FeatureBatch,
        row: u64,
    }
    impl Sink<'_> {
        fn push(&mut self, f: Value) -> Result<(), String> {
            add(&mut self.batch, f)?;
            self.row += 1;
            if self.batch.len() >= FEATURE_BATCH {
                self.tx
                    .send(Ok(self.batch.take()))
                    .map_err(|_| "the reader stopped".to_owned())?;
            }
            Ok(())
        }
    }
    struct Features<'a, 'b>(&'a mut Sink<'b>);
    impl<'de> DeserializeSeed<'de> for Features<'_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Features<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of features")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(f) = seq.next_element::<Value>()? {
                self.0.push(f).map_err(serde::de::Error::custom)?;
            }
            Ok(())
        }
    }
    struct Doc<'a, 'b>(&'a mut Sink<'b>);
    impl<'de> Visitor<'de> for Doc<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a FeatureCollection")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "features" {
                    map.next_value_seed(Features(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<arrow::record_batch::RecordBatch>>(2);
    std::thread::spawn(move || {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.send(Err(Error::io(format!("opening {}", path.display()), e)));
                return;
            }
        };
        let mut sink = Sink {
            tx: &tx,
            batch: FeatureBatch::default(),
            row: 0,
        };
        let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, file));
        match de.deserialize_map(Doc(&mut sink)) {
            Ok(()) => {
                if sink.batch.len() > 0 {
                    let b = sink.batch.take();
                    let _ = tx.send(Ok(b));
                }
            }
            Err(e) => {
                // `row` is the feature being read when it failed.
                let _ = tx.send(Err(Error::input(&path, Some(sink.row), e)));
            }
        }
    });
    rx.into_iter()
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
