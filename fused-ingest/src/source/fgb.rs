//! FlatGeobuf inputs. The header (columns, CRS, feature count) is read when the file is opened;
//! features are decoded lazily, a batch at a time, skipping the spatial index. Every length and
//! offset is checked against the file, so a corrupt or truncated file is an error, never a panic.
//! Geometries become 2D little-endian WKB (Z, M, T and TM are dropped).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use flatgeobuf::{ColumnType, GeometryType};
use fused_core::output::Crs;

use super::features::{FEATURE_BATCH, FeatureBatch, Prop};
use super::{BatchIter, GeomSpec, Opened, Unit, crs_from_text};
use crate::error::{Error, Result};

/// The magic bytes that start a FlatGeobuf file (the 4th byte is the major version).
const MAGIC: [u8; 8] = *b"fgb\x03fgb\x00";
/// The largest header we accept (as the reference implementation does).
const MAX_HEADER: u64 = 10 * 1024 * 1024;
/// The size of one node of the packed R-tree index.
const INDEX_NODE_BYTES: u64 = 40;

/// Opens a FlatGeobuf file: reads and verifies its header; its features are read by the unit.
pub(super) fn open(path: &Path) -> Result<Opened> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    let mut reader = BufReader::new(file);
    let header_buf = read_header(path, &mut reader, file_len)?;
    let header = flatgeobuf::size_prefixed_root_as_header(&header_buf)
        .map_err(|e| Error::input(path, None, format!("corrupt FlatGeobuf header: {e}")))?;
    let crs = header_crs(header.crs());
    let columns: Vec<(String, ColumnType)> = header
        .columns()
        .map(|cols| {
            cols.iter()
                .map(|c| (c.name().to_owned(), c.type_()))
                .collect()
        })
        .unwrap_or_default();
    let count = header.features_count();
    let index = index_size(count, header.index_node_size()).ok_or_else(|| {
        Error::input(
            path,
            None,
            format!("corrupt FlatGeobuf header: {count} features is too many"),
        )
    })?;
    let start = (MAGIC.len() + header_buf.len()) as u64;
    let features_start = start
        .checked_add(index)
        .filter(|s| *s <= file_len)
        .ok_or_else(|| {
            Error::input(
                path,
                None,
                "truncated FlatGeobuf file: it ends inside the spatial index",
            )
        })?;
    let state = Features {
        path: path.to_path_buf(),
        reader: None,
        columns,
        geometry_type: header.geometry_type(),
        start: features_start,
        remaining: file_len - features_start,
        expected: count,
        row: 0,
        buf: Vec::new(),
        done: false,
    };
    let unit: Unit = Box::new(move || {
        let mut state = state;
        let mut file = File::open(&state.path)
            .map_err(|e| Error::io(format!("opening {}", state.path.display()), e))?;
        file.seek(SeekFrom::Start(state.start))
            .map_err(|e| Error::io(format!("reading {}", state.path.display()), e))?;
        state.reader = Some(BufReader::with_capacity(1 << 20, file));
        Ok(Box::new(state) as BatchIter)
    });
    Ok(Opened {
        file: path.to_path_buf(),
        geom: GeomSpec::Wkb("geometry".into()),
        crs,
        units: vec![unit],
        rows: (count > 0).then_some(count),
    })
}

/// Reads the magic bytes and the (size-prefixed) header, which is verified.
fn read_header(path: &Path, reader: &mut impl Read, file_len: u64) -> Result<Vec<u8>> {
    let truncated = |_| Error::input(path, None, "truncated FlatGeobuf file: no complete header");
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).map_err(truncated)?;
    if magic[..3] != MAGIC[..3] || magic[4..7] != MAGIC[4..7] {
        return Err(Error::input(
            path,
            None,
            "not a FlatGeobuf file (bad magic bytes)",
        ));
    }
    if magic[3] > MAGIC[3] {
        return Err(Error::input(
            path,
            None,
            format!("unsupported FlatGeobuf version {}", magic[3]),
        ));
    }
    let mut size = [0u8; 4];
    reader.read_exact(&mut size).map_err(truncated)?;
    let len = u64::from(u32::from_le_bytes(size));
    // Below 8 bytes the FlatBuffers verifier itself may misbehave.
    if !(8..=MAX_HEADER).contains(&len) || len + 12 > file_len {
        return Err(Error::input(
            path,
            None,
            format!("corrupt FlatGeobuf header: bad header size {len}"),
        ));
    }
    let mut buf = vec![0u8; len as usize + 4];
    buf[..4].copy_from_slice(&size);
    reader.read_exact(&mut buf[4..]).map_err(truncated)?;
    Ok(buf)
}

/// The size in bytes of the packed R-tree index of `count` features (`None` on overflow).
fn index_size(count: u64, node_size: u16) -> Option<u64> {
    if node_size == 0 || count == 0 {
        return Some(0);
    }
    let node = u64::from(node_size.max(2));
    let mut n = count;
    let mut total = count;
    loop {
        n = n.div_ceil(node);
        total = total.checked_add(n)?;
        if n == 1 {
            break;
        }
    }
    total.checked_mul(INDEX_NODE_BYTES)
}

/// The CRS of the header: an EPSG code, else its WKT, else `ORG:code`; `None` when unset.
fn header_crs(crs: Option<flatgeobuf::Crs<'_>>) -> Option<Crs> {
    let c = crs?;
    let org = c.org().map(str::trim).filter(|o| !o.is_empty());
    let code = c.code();
    if code > 0 && org.is_none_or(|o| o.eq_ignore_ascii_case("EPSG")) {
        return Some(Crs::Epsg(code.unsigned_abs()));
    }
    if let Some(wkt) = c.wkt().map(str::trim).filter(|w| !w.is_empty()) {
        return Some(crs_from_text(wkt));
    }
    let code_string = c.code_string().map(str::trim).filter(|s| !s.is_empty());
    match (org, code_string) {
        (Some(org), Some(cs)) => Some(crs_from_text(&format!("{org}:{cs}"))),
        (Some(org), None) if code > 0 => Some(crs_from_text(&format!("{org}:{code}"))),
        (None, Some(cs)) => Some(crs_from_text(cs)),
        _ => None,
    }
}

/// The features of a file, read a batch at a time.
struct Features {
    path: PathBuf,
    /// The file, positioned at the next feature (set when the unit runs).
    reader: Option<BufReader<File>>,
    /// The header's columns, in order.
    columns: Vec<(String, ColumnType)>,
    /// The header's geometry type (`Unknown`: each feature has its own).
    geometry_type: GeometryType,
    /// Offset of the first feature.
    start: u64,
    /// Bytes left in the file.
    remaining: u64,
    /// Features the header announces (0: unknown).
    expected: u64,
    /// The next row.
    row: u64,
    /// The current feature's bytes.
    buf: Vec<u8>,
    done: bool,
}

impl Features {
    /// Reads the next feature into `batch`; `false` at the end of the file.
    fn read_one(&mut self, batch: &mut FeatureBatch) -> Result<bool> {
        let row = self.row;
        let path = &self.path;
        if self.expected > 0 && row >= self.expected {
            return Ok(false);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(false);
        };
        if self.remaining == 0 {
            if self.expected > 0 {
                return Err(Error::input(
                    path,
                    Some(row),
                    format!(
                        "truncated FlatGeobuf file: the header announces {} features but the \
                         file ends after {row}",
                        self.expected
                    ),
                ));
            }
            return Ok(false);
        }
        let truncated = |_| Error::input(path, Some(row), "truncated FlatGeobuf feature");
        let mut size = [0u8; 4];
        reader.read_exact(&mut size).map_err(truncated)?;
        let len = u64::from(u32::from_le_bytes(size));
        if len < 8 || len + 4 > self.remaining {
            return Err(Error::input(
                path,
                Some(row),
                format!("corrupt or truncated FlatGeobuf feature (size {len})"),
            ));
        }
        self.remaining -= len + 4;
        self.buf.clear();
        self.buf.extend_from_slice(&size);
        self.buf.resize(len as usize + 4, 0);
        reader.read_exact(&mut self.buf[4..]).map_err(truncated)?;
        let feature = flatgeobuf::size_prefixed_root_as_feature(&self.buf).map_err(|e| {
            Error::input(path, Some(row), format!("corrupt FlatGeobuf feature: {e}"))
        })?;
        let props = match feature.properties() {
            Some(p) => read_properties(p.bytes(), &self.columns),
            None => Ok(Vec::new()),
        }
        .map_err(|e| Error::input(path, Some(row), e))?;
        let geometry = match feature.geometry() {
            None => None,
            Some(g) => {
                let mut wkb = Vec::with_capacity(64);
                let ty = match self.geometry_type {
                    GeometryType::Unknown => g.type_(),
                    t => t,
                };
                let coords = write_geometry(&g, ty, &mut wkb)
                    .map_err(|e| Error::input(path, Some(row), e))?;
                (coords > 0).then_some(wkb)
            }
        };
        batch.push(props, geometry);
        self.row += 1;
        Ok(true)
    }
}

impl Iterator for Features {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = FeatureBatch::default();
        for (name, _) in &self.columns {
            batch.declare(name);
        }
        while batch.len() < FEATURE_BATCH {
            match self.read_one(&mut batch) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        (batch.len() > 0).then(|| Ok(batch.take()))
    }
}

/// Takes `n` bytes at `*at`.
fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = at
        .checked_add(n)
        .filter(|e| *e <= bytes.len())
        .ok_or("corrupt properties: a value runs past their end")?;
    let out = &bytes[*at..end];
    *at = end;
    Ok(out)
}

/// Takes `N` bytes at `*at` as an array.
fn array<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(bytes, at, N)?);
    Ok(out)
}

/// Decodes a feature's properties: a sequence of (u16 column index, value) pairs.
fn read_properties(
    bytes: &[u8],
    columns: &[(String, ColumnType)],
) -> Result<Vec<(String, Prop)>, String> {
    let mut out = Vec::with_capacity(columns.len());
    let mut at = 0;
    // Some writers leave a trailing byte after the last value.
    while at + 1 < bytes.len() {
        let i = usize::from(u16::from_le_bytes(array(bytes, &mut at)?));
        let (name, ty) = columns
            .get(i)
            .ok_or_else(|| format!("corrupt properties: no column {i}"))?;
        let value = match *ty {
            ColumnType::Byte => Prop::Int(i8::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::UByte => Prop::Int(u8::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::Bool => Prop::Bool(array::<1>(bytes, &mut at)?[0] != 0),
            ColumnType::Short => Prop::Int(i16::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::UShort => Prop::Int(u16::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::Int => Prop::Int(i32::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::UInt => Prop::Int(u32::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::Long => Prop::Int(i64::from_le_bytes(array(bytes, &mut at)?)),
            ColumnType::ULong => {
                let v = u64::from_le_bytes(array(bytes, &mut at)?);
                i64::try_from(v).map_or(Prop::Float(v as f64), Prop::Int)
            }
            ColumnType::Float => Prop::Float(f32::from_le_bytes(array(bytes, &mut at)?).into()),
            ColumnType::Double => Prop::Float(f64::from_le_bytes(array(bytes, &mut at)?)),
            ColumnType::String | ColumnType::Json | ColumnType::DateTime | ColumnType::Binary => {
                let len = u32::from_le_bytes(array(bytes, &mut at)?) as usize;
                let v = take(bytes, &mut at, len)?;
                if *ty == ColumnType::Binary {
                    Prop::Str(v.iter().map(|b| format!("{b:02x}")).collect())
                } else {
                    Prop::Str(String::from_utf8_lossy(v).into_owned())
                }
            }
            other => return Err(format!("column {name:?} has an unknown type {other:?}")),
        };
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// The coordinates of a FlatGeobuf geometry as (x, y) pairs, and its part ends (in points).
struct Parts {
    xy: Vec<f64>,
    ends: Vec<usize>,
}

impl Parts {
    fn of(g: &flatgeobuf::Geometry<'_>) -> Result<Self, String> {
        let xy: Vec<f64> = g.xy().map(|v| v.iter().collect()).unwrap_or_default();
        if !xy.len().is_multiple_of(2) {
            return Err("corrupt geometry: an odd number of ordinates".into());
        }
        let points = xy.len() / 2;
        let mut ends: Vec<usize> = g
            .ends()
            .map(|v| v.iter().map(|e| e as usize).collect())
            .unwrap_or_default();
        if ends.is_empty() && points > 0 {
            ends.push(points);
        }
        let mut last = 0;
        for &e in &ends {
            if e < last || e > points {
                return Err("corrupt geometry: part ends out of order or out of range".into());
            }
            last = e;
        }
        Ok(Self { xy, ends })
    }

    /// The parts, each a slice of ordinates.
    fn parts(&self) -> impl Iterator<Item = &[f64]> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let part = &self.xy[start * 2..e * 2];
            start = e;
            part
        })
    }
}

fn header(kind: u32, out: &mut Vec<u8>) {
    out.push(1);
    out.extend_from_slice(&kind.to_le_bytes());
}

fn count(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Writes a sequence of points (count then x, y pairs); returns the points written.
fn points(xy: &[f64], out: &mut Vec<u8>) -> usize {
    count(xy.len() / 2, out);
    for v in xy {
        out.extend_from_slice(&v.to_le_bytes());
    }
    xy.len() / 2
}

/// Writes a polygon (its rings are the parts); returns the points written.
fn polygon(g: &flatgeobuf::Geometry<'_>, out: &mut Vec<u8>) -> Result<usize, String> {
    let p = Parts::of(g)?;
    header(3, out);
    count(p.ends.len(), out);
    Ok(p.parts().map(|ring| points(ring, out)).sum())
}

/// Writes `g` of type `ty` as 2D little-endian WKB; returns the points written (0: empty).
fn write_geometry(
    g: &flatgeobuf::Geometry<'_>,
    ty: GeometryType,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    Ok(match ty {
        GeometryType::Point => {
            let p = Parts::of(g)?;
            header(1, out);
            match p.xy.get(..2) {
                Some(xy) => {
                    out.extend_from_slice(&xy[0].to_le_bytes());
                    out.extend_from_slice(&xy[1].to_le_bytes());
                    1
                }
                None => {
                    out.extend_from_slice(&f64::NAN.to_le_bytes());
                    out.extend_from_slice(&f64::NAN.to_le_bytes());
                    0
                }
            }
        }
        GeometryType::LineString => {
            let p = Parts::of(g)?;
            header(2, out);
            points(&p.xy, out)
        }
        GeometryType::Polygon => polygon(g, out)?,
        GeometryType::MultiPoint => {
            let p = Parts::of(g)?;
            header(4, out);
            count(p.xy.len() / 2, out);
            for xy in p.xy.chunks_exact(2) {
                header(1, out);
                out.extend_from_slice(&xy[0].to_le_bytes());
                out.extend_from_slice(&xy[1].to_le_bytes());
            }
            p.xy.len() / 2
        }
        GeometryType::MultiLineString => {
            let p = Parts::of(g)?;
            header(5, out);
            count(p.ends.len(), out);
            p.parts()
                .map(|line| {
                    header(2, out);
                    points(line, out)
                })
                .sum()
        }
        GeometryType::MultiPolygon => match g.parts() {
            Some(parts) => {
                header(6, out);
                count(parts.len(), out);
                let mut n = 0;
                for part in parts.iter() {
                    n += polygon(&part, out)?;
                }
                n
            }
            // A multipolygon of one polygon may be stored without parts.
            None => {
                let p = Parts::of(g)?;
                header(6, out);
                if p.ends.is_empty() {
                    count(0, out);
                    0
                } else {
                    count(1, out);
                    polygon(g, out)?
                }
            }
        },
        GeometryType::GeometryCollection => {
            let parts: Vec<_> = g.parts().map(|p| p.iter().collect()).unwrap_or_default();
            header(7, out);
            count(parts.len(), out);
            let mut n = 0;
            for part in &parts {
                n += write_geometry(part, part.type_(), out)?;
            }
            n
        }
        other => return Err(format!("unsupported geometry type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use flatgeobuf::geozero::error::Result as GzResult;
    use flatgeobuf::geozero::{
        ColumnValue, FeatureProcessor, GeomProcessor, GeozeroGeometry, PropertyProcessor,
    };
    use flatgeobuf::{FgbCrs, FgbWriter, FgbWriterOptions};

    /// A test geometry.
    enum G {
        Point(f64, f64),
        Line(Vec<(f64, f64)>),
        Polygon(Vec<Vec<(f64, f64)>>),
    }

    fn line<P: GeomProcessor>(
        p: &mut P,
        pts: &[(f64, f64)],
        tagged: bool,
        idx: usize,
    ) -> GzResult<()> {
        p.linestring_begin(tagged, pts.len(), idx)?;
        for (i, (x, y)) in pts.iter().enumerate() {
            p.xy(*x, *y, i)?;
        }
        p.linestring_end(tagged, idx)
    }

    impl GeozeroGeometry for G {
        fn process_geom<P: GeomProcessor>(&self, p: &mut P) -> GzResult<()> {
            match self {
                G::Point(x, y) => {
                    p.point_begin(0)?;
                    p.xy(*x, *y, 0)?;
                    p.point_end(0)
                }
                G::Line(pts) => line(p, pts, true, 0),
                G::Polygon(rings) => {
                    p.polygon_begin(true, rings.len(), 0)?;
                    for (i, r) in rings.iter().enumerate() {
                        line(p, r, false, i)?;
                    }
                    p.polygon_end(true, 0)
                }
            }
        }
    }

    fn wkt_of(wkb: &[u8]) -> String {
        let g = wkb::reader::read_wkb(wkb).expect("valid wkb");
        let mut s = String::new();
        wkt::to_wkt::write_geometry(&mut s, &g).expect("wkt");
        s
    }

    fn read_all(path: &Path) -> Result<(Opened, Vec<RecordBatch>)> {
        let mut opened = open(path)?;
        let unit = opened.units.remove(0);
        let batches = unit()?.collect::<Result<Vec<_>>>()?;
        Ok((opened, batches))
    }

    fn write_mixed(path: &Path, index: bool) {
        let mut fgb = FgbWriter::create_with_options(
            "test",
            GeometryType::Unknown,
            FgbWriterOptions {
                write_index: index,
                detect_type: false,
                promote_to_multi: false,
                crs: FgbCrs {
                    code: 3857,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("writer");
        fgb.add_column("name", ColumnType::String, |_, _| {});
        fgb.add_column("pop", ColumnType::Long, |_, _| {});
        fgb.add_column("area", ColumnType::Double, |_, _| {});
        fgb.add_column("ok", ColumnType::Bool, |_, _| {});
        let square = vec![(0., 0.), (10., 0.), (10., 10.), (0., 10.), (0., 0.)];
        let hole = vec![(2., 2.), (2., 4.), (4., 4.), (2., 2.)];
        let feats = [
            ("a", G::Point(1.5, 2.5)),
            ("b", G::Line(vec![(0., 0.), (1., 1.), (2., 0.)])),
            ("c", G::Polygon(vec![square, hole])),
        ];
        for (i, (name, g)) in feats.into_iter().enumerate() {
            fgb.add_feature_geom(g, |f| {
                f.property(0, "name", &ColumnValue::String(name))
                    .expect("prop");
                f.property(1, "pop", &ColumnValue::Long(i as i64 * 100))
                    .expect("prop");
                if i != 1 {
                    f.property(2, "area", &ColumnValue::Double(i as f64 + 0.5))
                        .expect("prop");
                }
                f.property(3, "ok", &ColumnValue::Bool(i == 0))
                    .expect("prop");
            })
            .expect("feature");
        }
        // A feature without coordinates.
        fgb.feature_begin(3).expect("feature");
        fgb.properties_begin().expect("props");
        fgb.property(0, "name", &ColumnValue::String("d"))
            .expect("prop");
        fgb.properties_end().expect("props");
        fgb.feature_end(3).expect("feature");
        let mut out = std::fs::File::create(path).expect("create");
        fgb.write(&mut out).expect("write");
    }

    #[test]
    fn reads_features_properties_and_crs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mixed.fgb");
        write_mixed(&path, false);
        let (opened, batches) = read_all(&path).expect("read");
        assert_eq!(opened.crs, Some(Crs::Epsg(3857)));
        assert_eq!(opened.rows, Some(4));
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["name", "pop", "area", "ok", "geometry"]);
        let name = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("str");
        assert_eq!(
            name.iter().collect::<Vec<_>>(),
            [Some("a"), Some("b"), Some("c"), Some("d")]
        );
        let pop = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("i64");
        assert_eq!(
            pop.iter().collect::<Vec<_>>(),
            [Some(0), Some(100), Some(200), None]
        );
        let area = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("f64");
        assert_eq!(
            area.iter().collect::<Vec<_>>(),
            [Some(0.5), None, Some(2.5), None]
        );
        let ok = b
            .column(3)
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .expect("bool");
        assert_eq!(
            ok.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(false), None]
        );
        let g = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .expect("bin");
        assert_eq!(wkt_of(g.value(0)), "POINT(1.5 2.5)");
        assert_eq!(wkt_of(g.value(1)), "LINESTRING(0 0,1 1,2 0)");
        assert_eq!(
            wkt_of(g.value(2)),
            "POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,2 4,4 4,2 2))"
        );
        assert!(g.is_null(3));
    }

    #[test]
    fn skips_the_spatial_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("indexed.fgb");
        write_mixed(&path, true);
        let (_, batches) = read_all(&path).expect("read");
        let b = &batches[0];
        assert_eq!(b.num_rows(), 4);
        let name = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("str");
        let g = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .expect("bin");
        for i in 0..4 {
            let expected = match name.value(i) {
                "a" => Some("POINT(1.5 2.5)"),
                "b" => Some("LINESTRING(0 0,1 1,2 0)"),
                "c" => Some("POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,2 4,4 4,2 2))"),
                _ => None,
            };
            assert_eq!(
                g.is_valid(i).then(|| wkt_of(g.value(i))).as_deref(),
                expected
            );
        }
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("good.fgb");
        write_mixed(&path, false);
        let bytes = std::fs::read(&path).expect("read");
        // Truncated at every length: an error (or fewer rows), never a panic.
        for cut in [0, 5, 10, 20, bytes.len() / 2, bytes.len() - 3] {
            let p = dir.path().join(format!("cut{cut}.fgb"));
            std::fs::write(&p, &bytes[..cut]).expect("write");
            assert!(read_all(&p).is_err(), "cut at {cut}");
        }
        // Garbage in the features: errors naming the file, never a panic.
        for i in (100..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let p = dir.path().join("flip.fgb");
            std::fs::write(&p, &b).expect("write");
            let _ = read_all(&p);
        }
        let p = dir.path().join("not.fgb");
        std::fs::write(&p, b"not a flatgeobuf file at all").expect("write");
        let err = read_all(&p).expect_err("not fgb").to_string();
        assert!(err.contains("not.fgb") && err.contains("magic"), "{err}");
    }

    #[test]
    fn index_size_matches_the_reference() {
        for n in [1usize, 2, 15, 16, 17, 1000, 123_457] {
            assert_eq!(
                index_size(n as u64, 16),
                Some(flatgeobuf::packed_r_tree::PackedRTree::index_size(n, 16) as u64)
            );
        }
        assert_eq!(index_size(u64::MAX, 16), None);
    }
}
