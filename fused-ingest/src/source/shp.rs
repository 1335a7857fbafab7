//! Shapefile inputs: a `.shp` with its `.dbf` (attributes, optional; text read as UTF-8, else
//! Windows-1252, or as its `.cpg` says; deleted records skipped) and `.prj` (CRS; none means
//! lon/lat), or all of them zipped. Records are read lazily, a batch at a time, framed by
//! their headers and checked against the file size, so a corrupt or truncated file is an error,
//! never a panic. Shapes become 2D little-endian WKB (Z and M are dropped); polygon rings are
//! grouped into polygons by orientation (outer rings clockwise, holes counter-clockwise) and
//! each hole goes to the outer ring that contains it.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Component, Path, PathBuf};

use arrow::record_batch::RecordBatch;
use shapefile::{PolygonRing, ReadableShape, Shape};

use super::features::{FEATURE_BATCH, FeatureBatch, Prop};
use super::{BatchIter, GeomSpec, Opened, Unit, crs_from_text};
use crate::error::{Error, Result};

/// The size of the `.shp` (and `.shx`) file header.
const HEADER_BYTES: u64 = 100;
/// The size of a record header in the `.shp`.
const RECORD_HEADER_BYTES: u64 = 8;

/// Opens a `.shp` file (with its `.dbf`, `.prj` and `.shx` siblings when present).
pub(super) fn open(path: &Path) -> Result<Opened> {
    open_at(path, path)
}

/// Opens a zipped shapefile: its files are extracted into a unique folder of `scratch`. With
/// several `.shp` in the archive, the first in name order is read.
/// How many times its own size an archive may expand to (at least 1 GiB).
const MAX_EXPANSION: u64 = 200;

pub(super) fn open_zip(path: &Path, scratch: &Path) -> Result<Opened> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let cap = size.saturating_mul(MAX_EXPANSION).max(1 << 30);
    let mut budget = cap;
    let bad_zip = |e: zip::result::ZipError| {
        Error::input(path, None, format!("not a readable zip archive: {e}"))
    };
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(bad_zip)?;
    let mut entries = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(bad_zip)?;
        // Entries whose name would leave the folder (`..`, absolute paths) are skipped.
        if let (false, Some(name)) = (entry.is_dir(), entry.enclosed_name())
            && !is_junk(&name)
        {
            entries.push((i, name));
        }
    }
    let mut shps: Vec<&PathBuf> = entries
        .iter()
        .map(|(_, n)| n)
        .filter(|n| has_ext(n, "shp"))
        .collect();
    shps.sort();
    let Some(&shp) = shps.first() else {
        return Err(Error::input(
            path,
            None,
            "the zip archive holds no .shp file",
        ));
    };
    if shps.len() > 1 {
        tracing::warn!(
            "{} holds {} shapefiles ({}); reading only {}",
            path.display(),
            shps.len(),
            shps.iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            shp.display()
        );
    }
    let shp = shp.clone();
    let stem = stem_key(&shp);
    let dir = scratch.join(format!("shp-{}", uuid::Uuid::new_v4()));
    for (i, name) in &entries {
        if stem_key(name) != stem {
            continue;
        }
        let target = dir.join(name);
        let io = |e| {
            Error::io(
                format!("extracting {} from {}", name.display(), path.display()),
                e,
            )
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let entry = archive.by_index(*i).map_err(bad_zip)?;
        let mut out = File::create(&target).map_err(io)?;
        // A zip bomb stops at the cap instead of filling the disk.
        let copied = std::io::copy(&mut std::io::Read::take(entry, budget + 1), &mut out)
            .map_err(|e| Error::input(path, None, format!("extracting {}: {e}", name.display())))?;
        if copied > budget {
            return Err(Error::input(
                path,
                None,
                format!(
                    "the archive expands to more than {} MiB ({}× its size): refused as a zip \
                     bomb",
                    cap >> 20,
                    MAX_EXPANSION
                ),
            ));
        }
        budget -= copied;
    }
    let mut opened = open_at(&dir.join(&shp), &path.join(&shp))?;
    opened.file = path.to_path_buf();
    Ok(opened)
}

/// Whether an archive entry is operating-system clutter (`__MACOSX/`, `._name`).
fn is_junk(name: &Path) -> bool {
    name.components().any(|c| match c {
        Component::Normal(s) => {
            let s = s.to_string_lossy();
            s == "__MACOSX" || s.starts_with("._")
        }
        _ => false,
    })
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// A path without its extension, lower-cased: the files of one shapefile share it.
fn stem_key(p: &Path) -> String {
    p.with_extension("").to_string_lossy().to_lowercase()
}

/// The sibling of `shp` with extension `ext` (in any case).
fn sibling(shp: &Path, ext: &str) -> Option<PathBuf> {
    for e in [ext.to_owned(), ext.to_ascii_uppercase()] {
        let p = shp.with_extension(e);
        if p.is_file() {
            return Some(p);
        }
    }
    let stem = shp.file_stem()?;
    let dir = match shp.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_stem() == Some(stem) && has_ext(p, ext) && p.is_file())
}

/// Opens the shapefile at `shp`, naming it `shown` in errors.
fn open_at(shp: &Path, shown: &Path) -> Result<Opened> {
    let crs = match sibling(shp, "prj") {
        Some(prj) => {
            let bytes = std::fs::read(&prj)
                .map_err(|e| Error::io(format!("reading {}", prj.display()), e))?;
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim_start_matches('\u{feff}').trim();
            (!text.is_empty()).then(|| crs_from_text(text))
        }
        None => None,
    };
    let (_, end) = open_shp(shp, shown)?;
    let text = sibling(shp, "cpg")
        .and_then(|cpg| std::fs::read(cpg).ok())
        .and_then(|c| Text::of_cpg(&String::from_utf8_lossy(&c)))
        .unwrap_or(Text::Auto);
    let dbf = sibling(shp, "dbf");
    let mut columns = Vec::new();
    let mut rows = None;
    if let Some(dbf) = &dbf {
        let d = Dbf::open(dbf, shown, text)?;
        rows = Some(d.records);
        columns = d.fields.iter().map(|f| f.name.clone()).collect();
    } else if let Some(shx) = sibling(shp, "shx") {
        rows = std::fs::metadata(shx)
            .ok()
            .map(|m| m.len().saturating_sub(HEADER_BYTES) / RECORD_HEADER_BYTES);
    }
    let records = Records {
        shown: shown.to_path_buf(),
        shp: shp.to_path_buf(),
        reader: None,
        pos: HEADER_BYTES,
        end,
        dbf,
        text,
        dbf_reader: None,
        columns,
        row: 0,
        buf: Vec::new(),
        done: false,
    };
    let unit: Unit = Box::new(move || {
        let mut records = records;
        let (reader, _) = open_shp(&records.shp, &records.shown)?;
        records.reader = Some(reader);
        if let Some(dbf) = &records.dbf {
            records.dbf_reader = Some(Dbf::open(dbf, &records.shown, records.text)?);
        }
        Ok(Box::new(records) as BatchIter)
    });
    Ok(Opened {
        file: shown.to_path_buf(),
        geom: GeomSpec::Wkb("geometry".into()),
        crs,
        units: vec![unit],
        rows,
    })
}

/// Opens a `.shp`, reads its header and returns the reader (after the header) and where the
/// records end.
fn open_shp(shp: &Path, shown: &Path) -> Result<(BufReader<File>, u64)> {
    let file = File::open(shp).map_err(|e| Error::io(format!("opening {}", shown.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", shown.display()), e))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = shapefile::header::Header::read_from(&mut reader)
        .map_err(|e| Error::input(shown, None, format!("not a valid shapefile: {e}")))?;
    // The header gives the length in 16-bit words; trust the file when they disagree.
    let declared = u64::try_from(header.file_length).unwrap_or(0) * 2;
    let end = if declared >= HEADER_BYTES {
        declared.min(file_len)
    } else {
        file_len
    };
    Ok((reader, end))
}

/// The records of a shapefile, read a batch at a time.
struct Records {
    /// The name of the input in errors.
    shown: PathBuf,
    shp: PathBuf,
    /// The `.shp`, at `pos` (set when the unit runs).
    reader: Option<BufReader<File>>,
    pos: u64,
    /// Where the records end.
    end: u64,
    dbf: Option<PathBuf>,
    /// The encoding of the `.dbf` text.
    text: Text,
    /// The `.dbf`, at the record of `row` (set when the unit runs).
    dbf_reader: Option<Dbf>,
    /// The attribute columns.
    columns: Vec<String>,
    /// The next row.
    row: u64,
    /// The current record's bytes.
    buf: Vec<u8>,
    done: bool,
}

impl Records {
    /// Reads the next shape; `None` at the end of the file.
    fn next_shape(&mut self) -> Result<Option<Shape>> {
        let row = self.row;
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        // Fewer bytes than a record header left: padding, the end.
        if self.pos + RECORD_HEADER_BYTES > self.end {
            return Ok(None);
        }
        let truncated = |_| Error::input(&self.shown, Some(row), "truncated shapefile record");
        let mut head = [0u8; 8];
        reader.read_exact(&mut head).map_err(truncated)?;
        let words = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let len = u64::try_from(words).unwrap_or(u64::MAX).saturating_mul(2);
        let next = self.pos + RECORD_HEADER_BYTES + len.min(self.end);
        if len < 4 || next > self.end {
            return Err(Error::input(
                &self.shown,
                Some(row),
                format!("corrupt or truncated shapefile record (content length {words} words)"),
            ));
        }
        self.buf.resize(len as usize, 0);
        reader.read_exact(&mut self.buf).map_err(truncated)?;
        self.pos = next;
        let shape = Shape::read_from(&mut Cursor::new(&self.buf[..]), len as i32)
            .map_err(|e| Error::input(&self.shown, Some(row), format!("corrupt shape: {e}")))?;
        Ok(Some(shape))
    }

    /// Reads up to a batch of rows into `batch`. Records deleted from the `.dbf` are skipped
    /// (as GDAL does).
    fn fill(&mut self, batch: &mut FeatureBatch) -> Result<()> {
        while batch.len() < FEATURE_BATCH {
            let Some(shape) = self.next_shape()? else {
                self.done = true;
                break;
            };
            let row = self.row;
            self.row += 1;
            let mut props = Vec::new();
            if let Some(dbf) = self.dbf_reader.as_mut() {
                let deleted = dbf.next_record().map_err(|e| {
                    Error::input(
                        &self.shown,
                        Some(row),
                        format!("reading its attributes: {e}"),
                    )
                })?;
                match deleted {
                    Some(true) => continue,
                    Some(false) => props = dbf.values(),
                    // Fewer records than shapes: no attributes.
                    None => {}
                }
            }
            let wkb = shape_wkb(&shape).map_err(|e| Error::input(&self.shown, Some(row), e))?;
            batch.push(props, wkb);
        }
        Ok(())
    }
}

impl Iterator for Records {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batch = FeatureBatch::default();
        for c in &self.columns {
            batch.declare(c);
        }
        if let Err(e) = self.fill(&mut batch) {
            self.done = true;
            return Some(Err(e));
        }
        (batch.len() > 0).then(|| Ok(batch.take()))
    }
}

/// How the text of a `.dbf` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// UTF-8 (invalid bytes replaced).
    Utf8,
    /// A single-byte code page, read as Windows-1252.
    SingleByte,
    /// UTF-8 when valid, else Windows-1252.
    Auto,
}

/// Windows-1252 characters 0x80 to 0x9f (the rest is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

impl Text {
    /// The encoding a `.cpg` file names (`None` when it names none).
    fn of_cpg(cpg: &str) -> Option<Text> {
        let c = cpg.trim().to_ascii_uppercase().replace(['-', '_', ' '], "");
        if c.is_empty() {
            None
        } else if c.contains("UTF8") || c == "65001" {
            Some(Text::Utf8)
        } else {
            Some(Text::SingleByte)
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        let single = |b: &[u8]| {
            b.iter()
                .map(|&c| match c {
                    0x80..=0x9f => CP1252_HIGH[usize::from(c - 0x80)],
                    _ => char::from(c),
                })
                .collect()
        };
        match self {
            Text::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Text::SingleByte => single(bytes),
            Text::Auto => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => single(bytes),
            },
        }
    }
}

/// A field of a `.dbf`.
#[derive(Debug)]
struct Field {
    name: String,
    /// Its type letter.
    kind: u8,
    /// Its bytes in a record.
    start: usize,
    len: usize,
    decimals: u8,
}

/// A `.dbf` attribute table, read a record at a time.
struct Dbf {
    reader: BufReader<File>,
    fields: Vec<Field>,
    /// Its records (deleted ones included).
    records: u64,
    record_len: usize,
    text: Text,
    /// The next record.
    next: u64,
    /// The current record.
    buf: Vec<u8>,
}

impl Dbf {
    /// Opens a `.dbf` and reads its header.
    fn open(path: &Path, shown: &Path, text: Text) -> Result<Self> {
        let bad = |why: &str| {
            Error::input(
                shown,
                None,
                format!("corrupt attribute table {}: {why}", path.display()),
            )
        };
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut head = [0u8; 32];
        reader
            .read_exact(&mut head)
            .map_err(|_| bad("no complete header"))?;
        let records = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let header_len = usize::from(u16::from_le_bytes([head[8], head[9]]));
        let record_len = usize::from(u16::from_le_bytes([head[10], head[11]]));
        if header_len < 33 || record_len == 0 {
            return Err(bad("bad header or record size"));
        }
        let mut descriptors = vec![0u8; header_len - 32];
        reader
            .read_exact(&mut descriptors)
            .map_err(|_| bad("truncated header"))?;
        let mut fields = Vec::new();
        // Byte 0 of a record is its deletion flag.
        let mut start = 1;
        for d in descriptors.chunks_exact(32) {
            if d[0] == 0x0d {
                break;
            }
            let name = d[..11].split(|b| *b == 0).next().unwrap_or_default();
            let kind = d[11].to_ascii_uppercase();
            // Text fields longer than 255 bytes keep the high byte of their size in the
            // decimals.
            let (len, decimals) = match kind {
                b'C' => (usize::from(d[16]) + 256 * usize::from(d[17]), 0),
                _ => (usize::from(d[16]), d[17]),
            };
            // Visual FoxPro's hidden system fields (`_NullFlags`).
            if d[18] & 0x01 == 0 {
                fields.push(Field {
                    name: text.decode(name).trim().to_owned(),
                    kind,
                    start,
                    len,
                    decimals,
                });
            }
            start += len;
        }
        if start > record_len {
            return Err(bad("its fields are longer than a record"));
        }
        Ok(Dbf {
            reader,
            fields,
            records,
            record_len,
            text,
            next: 0,
            buf: vec![0; record_len],
        })
    }

    /// Reads the next record: `Some(deleted)`, or `None` after the last.
    fn next_record(&mut self) -> Result<Option<bool>, String> {
        if self.next >= self.records {
            return Ok(None);
        }
        self.buf.resize(self.record_len, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|_| "the .dbf is truncated".to_owned())?;
        self.next += 1;
        Ok(Some(self.buf[0] == b'*'))
    }

    /// The values of the current record.
    fn values(&self) -> Vec<(String, Prop)> {
        self.fields
            .iter()
            .map(|f| {
                let raw = self.buf.get(f.start..f.start + f.len).unwrap_or_default();
                (f.name.clone(), self.value(f, raw))
            })
            .collect()
    }

    /// One value.
    fn value(&self, f: &Field, raw: &[u8]) -> Prop {
        let ascii = || {
            String::from_utf8_lossy(raw)
                .trim()
                .trim_matches('\0')
                .to_owned()
        };
        let le8 = || <[u8; 8]>::try_from(raw).ok();
        match f.kind {
            b'N' | b'F' => {
                let s = ascii();
                if s.is_empty() || s.starts_with('*') {
                    return Prop::Null;
                }
                if f.kind == b'N'
                    && f.decimals == 0
                    && f.len <= 18
                    && let Ok(i) = s.parse::<i64>()
                {
                    return Prop::Int(i);
                }
                s.parse::<f64>().map_or(Prop::Null, Prop::Float)
            }
            b'L' => match raw.first() {
                Some(b'T' | b't' | b'Y' | b'y') => Prop::Bool(true),
                Some(b'F' | b'f' | b'N' | b'n') => Prop::Bool(false),
                _ => Prop::Null,
            },
            b'D' => {
                let s = ascii();
                match s.as_bytes() {
                    [] => Prop::Null,
                    d if d.len() == 8 && d.iter().all(u8::is_ascii_digit) => {
                        if d.iter().all(|c| *c == b'0') {
                            Prop::Null
                        } else {
                            Prop::Str(format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
                        }
                    }
                    _ => Prop::Str(s),
                }
            }
            b'I' | b'+' => <[u8; 4]>::try_from(raw)
                .map_or(Prop::Null, |b| Prop::Int(i32::from_le_bytes(b).into())),
            b'O' | b'B' if raw.len() == 8 => {
                le8().map_or(Prop::Null, |b| Prop::Float(f64::from_le_bytes(b)))
            }
            b'Y' => le8().map_or(Prop::Null, |b| {
                Prop::Float(i64::from_le_bytes(b) as f64 / 10_000.0)
            }),
            b'T' => le8().map_or(Prop::Null, |b| {
                let day = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let ms = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                if day <= 0 {
                    return Prop::Null;
                }
                let (y, m, d) = civil_from_days(i64::from(day) - 2_440_588);
                let secs = ms.max(0) / 1000;
                Prop::Str(format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                ))
            }),
            // Memos live in another file; binary and general fields are not text.
            b'M' | b'G' | b'P' | b'B' | b'W' | b'Q' | b'@' => Prop::Null,
            _ => {
                let s = self.text.decode(raw);
                let s = s.trim_end_matches([' ', '\0']);
                if s.trim().is_empty() {
                    Prop::Null
                } else {
                    Prop::Str(s.to_owned())
                }
            }
        }
    }
}

/// The (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The x, y of the point types of shapefiles.
trait Xy {
    fn xy(&self) -> (f64, f64);
}

impl Xy for shapefile::Point {
    fn xy(&self) -> (f64, f64) {
        (self.x, self.y)
    }
}

impl Xy for shapefile::PointM {
    fn xy(&self) -> (f64, f64) {
        (self.x, self.y)
    }
}

impl Xy for shapefile::PointZ {
    fn xy(&self) -> (f64, f64) {
        (self.x, self.y)
    }
}

fn header(kind: u32, out: &mut Vec<u8>) {
    out.push(1);
    out.extend_from_slice(&kind.to_le_bytes());
}

fn count(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn coord(p: &impl Xy, out: &mut Vec<u8>) {
    let (x, y) = p.xy();
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
}

fn points<P: Xy>(pts: &[P], out: &mut Vec<u8>) {
    count(pts.len(), out);
    pts.iter().for_each(|p| coord(p, out));
}

/// A shape as 2D little-endian WKB; `None` for a null or empty shape.
fn shape_wkb(shape: &Shape) -> Result<Option<Vec<u8>>, String> {
    Ok(match shape {
        Shape::NullShape => None,
        Shape::Point(p) => Some(point(p)),
        Shape::PointM(p) => Some(point(p)),
        Shape::PointZ(p) => Some(point(p)),
        Shape::Polyline(l) => lines(l.parts()),
        Shape::PolylineM(l) => lines(l.parts()),
        Shape::PolylineZ(l) => lines(l.parts()),
        Shape::Polygon(p) => polygons(p.rings()),
        Shape::PolygonM(p) => polygons(p.rings()),
        Shape::PolygonZ(p) => polygons(p.rings()),
        Shape::Multipoint(m) => multipoint(m.points()),
        Shape::MultipointM(m) => multipoint(m.points()),
        Shape::MultipointZ(m) => multipoint(m.points()),
        Shape::Multipatch(_) => return Err("multipatch shapes are not supported".into()),
    })
}

fn point(p: &impl Xy) -> Vec<u8> {
    let mut out = Vec::with_capacity(21);
    header(1, &mut out);
    coord(p, &mut out);
    out
}

fn multipoint<P: Xy>(pts: &[P]) -> Option<Vec<u8>> {
    if pts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(9 + pts.len() * 21);
    header(4, &mut out);
    count(pts.len(), &mut out);
    for p in pts {
        header(1, &mut out);
        coord(p, &mut out);
    }
    Some(out)
}

/// A line string, or a multi line string of several parts.
fn lines<P: Xy>(parts: &[Vec<P>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match parts {
        [] => return None,
        [line] => {
            header(2, &mut out);
            points(line, &mut out);
        }
        _ => {
            header(5, &mut out);
            count(parts.len(), &mut out);
            for line in parts {
                header(2, &mut out);
                points(line, &mut out);
            }
        }
    }
    Some(out)
}

/// Twice the signed area of a ring (positive when counter-clockwise).
fn area2<P: Xy>(ring: &[P]) -> f64 {
    ring.windows(2)
        .map(|w| {
            let ((x0, y0), (x1, y1)) = (w[0].xy(), w[1].xy());
            x0 * y1 - x1 * y0
        })
        .sum()
}

/// Whether `(x, y)` is inside `ring` (even-odd rule).
fn contains<P: Xy>(ring: &[P], (x, y): (f64, f64)) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0].xy(), w[1].xy());
        if (y0 > y) != (y1 > y) && x < (x1 - x0) * (y - y0) / (y1 - y0) + x0 {
            inside = !inside;
        }
    }
    inside
}

/// Polygons from shapefile rings: each outer ring starts a polygon; each hole joins the
/// smallest outer ring containing it (else the outer ring before it). A polygon, or a
/// multipolygon of several.
fn polygons<P: Xy>(rings: &[PolygonRing<P>]) -> Option<Vec<u8>> {
    // Indices of the rings of each polygon, outer ring first.
    let mut polys: Vec<Vec<usize>> = Vec::new();
    let mut holes = Vec::new();
    for (i, r) in rings.iter().enumerate() {
        match r {
            PolygonRing::Outer(_) => polys.push(vec![i]),
            // A hole before any outer ring can only be an outer ring.
            PolygonRing::Inner(_) if polys.is_empty() => polys.push(vec![i]),
            PolygonRing::Inner(_) => holes.push((i, polys.len() - 1)),
        }
    }
    if polys.is_empty() {
        return None;
    }
    for (hole, before) in holes {
        let ring = rings[hole].points();
        let target = if polys.len() == 1 {
            0
        } else {
            ring.first()
                .map(Xy::xy)
                .and_then(|p| {
                    polys
                        .iter()
                        .enumerate()
                        .filter(|(_, poly)| contains(rings[poly[0]].points(), p))
                        .min_by(|(_, a), (_, b)| {
                            let area = |poly: &Vec<usize>| area2(rings[poly[0]].points()).abs();
                            area(a).total_cmp(&area(b))
                        })
                        .map(|(j, _)| j)
                })
                .unwrap_or(before)
        };
        polys[target].push(hole);
    }
    let mut out = Vec::new();
    let polygon = |poly: &Vec<usize>, out: &mut Vec<u8>| {
        header(3, out);
        count(poly.len(), out);
        for &r in poly {
            points(rings[r].points(), out);
        }
    };
    if let [poly] = polys.as_slice() {
        polygon(poly, &mut out);
    } else {
        header(6, &mut out);
        count(polys.len(), &mut out);
        for poly in &polys {
            polygon(poly, &mut out);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
    use fused_core::output::Crs;
    use shapefile::dbase::{Date, DateTime, FieldValue, Record, TableWriterBuilder, Time};
    use shapefile::{Point, PointZ, Polygon, PolylineZ, Writer};
    use std::io::Write;

    fn wkt_of(wkb: &[u8]) -> String {
        let g = wkb::reader::read_wkb(wkb).expect("valid wkb");
        let mut s = String::new();
        wkt::to_wkt::write_geometry(&mut s, &g).expect("wkt");
        s
    }

    fn read_all(opened: &mut Opened) -> Result<Vec<RecordBatch>> {
        let unit = opened.units.remove(0);
        unit()?.collect()
    }

    fn ring(pts: &[(f64, f64)]) -> Vec<Point> {
        pts.iter().map(|(x, y)| Point::new(*x, *y)).collect()
    }

    /// Writes polygons (with attributes and a `.prj`) to `path`.
    fn write_polygons(path: &Path) {
        let table = TableWriterBuilder::new()
            .add_character_field("name".try_into().expect("name"), 20)
            .add_numeric_field("pop".try_into().expect("name"), 10, 0)
            .add_numeric_field("area".try_into().expect("name"), 12, 3)
            .add_logical_field("ok".try_into().expect("name"))
            .add_date_field("day".try_into().expect("name"));
        let mut w = Writer::from_path(path, table).expect("writer");
        // Clockwise outer rings, a counter-clockwise hole (listed after both outer rings, in
        // the first).
        let square = Polygon::with_rings(vec![PolygonRing::Outer(ring(&[
            (0., 0.),
            (0., 10.),
            (10., 10.),
            (10., 0.),
            (0., 0.),
        ]))]);
        let two = Polygon::with_rings(vec![
            PolygonRing::Outer(ring(&[
                (20., 20.),
                (20., 30.),
                (30., 30.),
                (30., 20.),
                (20., 20.),
            ])),
            PolygonRing::Outer(ring(&[
                (40., 40.),
                (40., 41.),
                (41., 41.),
                (41., 40.),
                (40., 40.),
            ])),
            PolygonRing::Inner(ring(&[
                (22., 22.),
                (24., 22.),
                (24., 24.),
                (22., 24.),
                (22., 22.),
            ])),
        ]);
        let mut r = Record::default();
        r.insert("name".into(), FieldValue::Character(Some("a".into())));
        r.insert("pop".into(), FieldValue::Numeric(Some(5.0)));
        r.insert("area".into(), FieldValue::Numeric(Some(1.5)));
        r.insert("ok".into(), FieldValue::Logical(Some(true)));
        r.insert(
            "day".into(),
            FieldValue::Date(Some(Date::new(2, 1, 2024).expect("date"))),
        );
        w.write_shape_and_record(&square, &r).expect("write");
        let mut r = Record::default();
        r.insert("name".into(), FieldValue::Character(Some("b".into())));
        r.insert("pop".into(), FieldValue::Numeric(None));
        r.insert("area".into(), FieldValue::Numeric(Some(2.25)));
        r.insert("ok".into(), FieldValue::Logical(Some(false)));
        r.insert("day".into(), FieldValue::Date(None));
        w.write_shape_and_record(&two, &r).expect("write");
        drop(w);
        std::fs::write(
            path.with_extension("prj"),
            r#"PROJCS["WGS_1984_UTM_Zone_18N",GEOGCS["GCS_WGS_1984"]]"#,
        )
        .expect("prj");
    }

    /// Writes 3D lines to `path`, with integer, double and date-time attributes.
    fn write_lines(path: &Path) {
        let field = |n: &str| n.try_into().expect("name");
        let table = TableWriterBuilder::new()
            .add_character_field(field("id"), 5)
            .add_integer_field(field("n"))
            .add_double_field(field("d"))
            .add_datetime_field(field("t"));
        let mut w = Writer::from_path(path, table).expect("writer");
        let p = |x, y| PointZ::new(x, y, 7.0, 0.0);
        let one = PolylineZ::new(vec![p(0., 0.), p(1., 1.)]);
        let two =
            PolylineZ::with_parts(vec![vec![p(0., 0.), p(1., 0.)], vec![p(5., 5.), p(6., 6.)]]);
        for (i, (id, l)) in [("cafe", one), ("y", two)].into_iter().enumerate() {
            let mut r = Record::default();
            r.insert("id".into(), FieldValue::Character(Some(id.into())));
            r.insert("n".into(), FieldValue::Integer(i as i32 - 7));
            r.insert("d".into(), FieldValue::Double(0.25 + i as f64));
            let date = Date::new(31, 12, 1999 + i as u32).expect("date");
            let time = Time::new(23, 59, 58).expect("time");
            r.insert("t".into(), FieldValue::DateTime(DateTime::new(date, time)));
            w.write_shape_and_record(&l, &r).expect("write");
        }
    }

    #[test]
    fn reads_polygons_attributes_and_prj() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("polys.shp");
        write_polygons(&path);
        let mut opened = open(&path).expect("open");
        assert_eq!(opened.crs, Some(Crs::Epsg(32618)));
        assert_eq!(opened.rows, Some(2));
        let batches = read_all(&mut opened).expect("read");
        let b = &batches[0];
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["name", "pop", "area", "ok", "day", "geometry"]);
        let col = |i: usize| b.column(i).as_any();
        let name = col(0).downcast_ref::<StringArray>().expect("str");
        assert_eq!(name.iter().collect::<Vec<_>>(), [Some("a"), Some("b")]);
        let pop = col(1).downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(pop.iter().collect::<Vec<_>>(), [Some(5), None]);
        let area = col(2).downcast_ref::<Float64Array>().expect("f64");
        assert_eq!(area.iter().collect::<Vec<_>>(), [Some(1.5), Some(2.25)]);
        let ok = col(3).downcast_ref::<BooleanArray>().expect("bool");
        assert_eq!(ok.iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
        let day = col(4).downcast_ref::<StringArray>().expect("str");
        assert_eq!(day.iter().collect::<Vec<_>>(), [Some("2024-01-02"), None]);
        let g = col(5).downcast_ref::<BinaryArray>().expect("bin");
        assert_eq!(wkt_of(g.value(0)), "POLYGON((0 0,0 10,10 10,10 0,0 0))");
        assert_eq!(
            wkt_of(g.value(1)),
            "MULTIPOLYGON(((20 20,20 30,30 30,30 20,20 20),(22 22,24 22,24 24,22 24,22 22)),\
             ((40 40,40 41,41 41,41 40,40 40)))"
        );
    }

    #[test]
    fn reads_lines_dropping_z_and_without_dbf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lines.shp");
        write_lines(&path);
        let mut opened = open(&path).expect("open");
        assert_eq!(opened.crs, None);
        let b = &read_all(&mut opened).expect("read")[0];
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "n", "d", "t", "geometry"]);
        let col = |i: usize| b.column(i).as_any();
        let n = col(1).downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(n.values().to_vec(), [-7, -6]);
        let d = col(2).downcast_ref::<Float64Array>().expect("f64");
        assert_eq!(d.values().to_vec(), [0.25, 1.25]);
        let t = col(3).downcast_ref::<StringArray>().expect("str");
        assert_eq!(t.value(0), "1999-12-31T23:59:58");
        assert_eq!(t.value(1), "2000-12-31T23:59:58");
        let g = col(4).downcast_ref::<BinaryArray>().expect("bin");
        assert_eq!(wkt_of(g.value(0)), "LINESTRING(0 0,1 1)");
        assert_eq!(wkt_of(g.value(1)), "MULTILINESTRING((0 0,1 0),(5 5,6 6))");
        std::fs::remove_file(path.with_extension("dbf")).expect("rm");
        let mut opened = open(&path).expect("open");
        assert_eq!(opened.rows, Some(2));
        let b = &read_all(&mut opened).expect("read")[0];
        assert_eq!(b.num_columns(), 1);
        assert_eq!(b.num_rows(), 2);
    }

    #[test]
    fn reads_single_byte_text_and_skips_deleted_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lines.shp");
        write_lines(&path);
        let dbf = path.with_extension("dbf");
        let mut bytes = std::fs::read(&dbf).expect("read");
        let at = bytes.windows(4).position(|w| w == b"cafe").expect("cafe");
        // "café" in Windows-1252.
        bytes[at + 3] = 0xe9;
        std::fs::write(&dbf, &bytes).expect("write");
        let b = &read_all(&mut open(&path).expect("open")).expect("read")[0];
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(id.value(0), "café");
        // Delete the first record: its shape goes too.
        bytes[at - 1] = b'*';
        std::fs::write(&dbf, &bytes).expect("write");
        let b = &read_all(&mut open(&path).expect("open")).expect("read")[0];
        assert_eq!(b.num_rows(), 1);
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(id.value(0), "y");
        let g = b
            .column(4)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("bin");
        assert_eq!(wkt_of(g.value(0)), "MULTILINESTRING((0 0,1 0),(5 5,6 6))");
        // A .cpg naming UTF-8 turns the invalid byte into a replacement character.
        std::fs::write(path.with_extension("cpg"), "UTF-8").expect("cpg");
        bytes[at - 1] = b' ';
        std::fs::write(&dbf, &bytes).expect("write");
        let b = &read_all(&mut open(&path).expect("open")).expect("read")[0];
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(id.value(0), "caf\u{fffd}");
    }

    fn zip_of(path: &Path, files: &[(&str, Vec<u8>)]) {
        let mut z = zip::ZipWriter::new(File::create(path).expect("zip"));
        for (name, bytes) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("entry");
            z.write_all(bytes).expect("write");
        }
        z.finish().expect("finish");
    }

    #[test]
    fn reads_zipped_shapefiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_polygons(&dir.path().join("a_polys.shp"));
        write_lines(&dir.path().join("b_lines.shp"));
        let file = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
        let zip_path = dir.path().join("both.zip");
        zip_of(
            &zip_path,
            &[
                ("data/b_lines.shp", file("b_lines.shp")),
                ("data/b_lines.dbf", file("b_lines.dbf")),
                ("__MACOSX/._a_polys.shp", b"junk".to_vec()),
                ("../a_polys.cpg", b"UTF-8".to_vec()),
                ("a_polys.SHP", file("a_polys.shp")),
                ("a_polys.shx", file("a_polys.shx")),
                ("a_polys.dbf", file("a_polys.dbf")),
                ("a_polys.prj", file("a_polys.prj")),
            ],
        );
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).expect("mkdir");
        let mut opened = open_zip(&zip_path, &scratch).expect("open");
        assert_eq!(opened.file, zip_path);
        assert_eq!(opened.crs, Some(Crs::Epsg(32618)));
        let b = &read_all(&mut opened).expect("read")[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.num_columns(), 6);
        assert!(!dir.path().join("a_polys.cpg").exists());
        // Opening it again extracts into another folder.
        let again = open_zip(&zip_path, &scratch).expect("open");
        assert_eq!(again.rows, Some(2));
        assert_eq!(std::fs::read_dir(&scratch).expect("ls").count(), 2);

        let empty = dir.path().join("empty.zip");
        zip_of(&empty, &[("readme.txt", b"hi".to_vec())]);
        let err = open_zip(&empty, &scratch).expect_err("no shp").to_string();
        assert!(
            err.contains("empty.zip") && err.contains("no .shp"),
            "{err}"
        );
        let not_zip = dir.path().join("bad.zip");
        std::fs::write(&not_zip, b"not a zip").expect("write");
        assert!(open_zip(&not_zip, &scratch).is_err());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("polys.shp");
        write_polygons(&path);
        let bytes = std::fs::read(&path).expect("read");
        let read = |b: &[u8]| -> Result<Vec<RecordBatch>> {
            std::fs::write(&path, b).expect("write");
            read_all(&mut open(&path)?)
        };
        for cut in [0, 50, 99, bytes.len() - 10] {
            let err = read(&bytes[..cut]).expect_err("truncated");
            assert!(err.to_string().contains("polys.shp"), "{err}");
        }
        for i in 100..bytes.len() {
            for flip in [0xff, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = read(&b);
            }
        }
        std::fs::write(&path, &bytes).expect("write");
        let dbf = path.with_extension("dbf");
        let table = std::fs::read(&dbf).expect("read");
        std::fs::write(&dbf, &table[..table.len() - 20]).expect("write");
        let err = read_all(&mut open(&path).expect("open")).expect_err("truncated dbf");
        assert!(err.to_string().contains("row 1"), "{err}");
        for i in 0..table.len() {
            let mut b = table.clone();
            b[i] ^= 0xff;
            std::fs::write(&dbf, &b).expect("write");
            let _ = open(&path).and_then(|mut o| read_all(&mut o));
        }
    }

    #[test]
    fn holes_go_to_the_outer_ring_containing_them() {
        let outer = |x: f64| {
            PolygonRing::Outer(ring(&[
                (x, 0.),
                (x, 10.),
                (x + 10., 10.),
                (x + 10., 0.),
                (x, 0.),
            ]))
        };
        let hole = |x: f64| {
            PolygonRing::Inner(ring(&[
                (x, 2.),
                (x + 2., 2.),
                (x + 2., 4.),
                (x, 4.),
                (x, 2.),
            ]))
        };
        let wkb = polygons(&[outer(0.), outer(20.), hole(2.), hole(22.)]).expect("wkb");
        assert_eq!(
            wkt_of(&wkb),
            "MULTIPOLYGON(((0 0,0 10,10 10,10 0,0 0),(2 2,4 2,4 4,2 4,2 2)),\
             ((20 0,20 10,30 10,30 0,20 0),(22 2,24 2,24 4,22 4,22 2)))"
        );
        assert_eq!(polygons::<Point>(&[]), None);
    }
}
