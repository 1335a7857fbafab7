//! GeoPackage inputs: one feature table (the `layer` option, else the first of
//! `gpkg_contents`), read through SQLite (`sqlx`, read-only) a batch at a time in primary-key
//! order. GeoPackage geometry blobs (header, envelope, then WKB of any byte order and
//! dimension) become 2D little-endian WKB; the CRS comes from `gpkg_spatial_ref_sys`.

use std::future::Future;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use fused_core::output::Crs;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use tokio::runtime::Runtime;

use super::features::{FEATURE_BATCH, FeatureBatch, Prop};
use super::{BatchIter, GeomSpec, Opened, Unit, crs_from_text};
use crate::error::{Error, Result};
use crate::options::IngestOptions;

/// Opens a GeoPackage: picks the feature table and reads its schema, CRS and row count.
pub(super) fn open(path: &Path, opts: &IngestOptions) -> Result<Opened> {
    if !path.is_file() {
        return Err(Error::input(path, None, "no such file"));
    }
    let rt = Rt::new(path)?;
    let layer = opts.gdal_config.layer.clone();
    let p = path.to_path_buf();
    let table = rt.block_on(path, async move {
        let mut conn = connect(&p).await?;
        let table = read_table(&p, &mut conn, layer.as_deref()).await;
        let _ = conn.close().await;
        table
    })??;
    let rows = table.rows;
    let crs = table.crs.clone();
    let path_buf = path.to_path_buf();
    let unit: Unit = Box::new(move || {
        let rt = Rt::new(&path_buf)?;
        let p = path_buf.clone();
        let conn = rt.block_on(&path_buf, async move { connect(&p).await })??;
        Ok(Box::new(Features {
            path: path_buf,
            rt,
            conn: Some(conn),
            table,
            next_key: i64::MIN,
            row: 0,
        }) as BatchIter)
    });
    Ok(Opened {
        file: path.to_path_buf(),
        geom: GeomSpec::Wkb("geometry".into()),
        crs,
        units: vec![unit],
        rows: Some(rows),
    })
}

/// A current-thread runtime for `sqlx`, usable (and droppable) on any thread, even one
/// running asynchronous code.
struct Rt(Option<Runtime>);

impl Rt {
    fn new(path: &Path) -> Result<Self> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| Rt(Some(rt)))
            .map_err(|e| Error::io(format!("starting a runtime to read {}", path.display()), e))
    }

    /// Runs `fut` to completion; on a thread of its own when this one already runs a runtime
    /// (where blocking on another would panic).
    fn block_on<T: Send>(&self, path: &Path, fut: impl Future<Output = T> + Send) -> Result<T> {
        let failed = || Error::input(path, None, "the GeoPackage reader failed");
        let rt = self.0.as_ref().ok_or_else(failed)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(rt.block_on(fut));
        }
        std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join()).map_err(|_| failed())
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics in asynchronous code; this does not.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A read-only connection.
async fn connect(path: &Path) -> Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| Error::input(path, None, format!("cannot open as SQLite: {e}")))
}

/// Quotes an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An attribute column.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// Declared BOOLEAN: integers are read as booleans.
    boolean: bool,
}

/// The feature table to read.
#[derive(Debug)]
struct Table {
    /// The query of a batch (`?1`: the least key to read, `?2`: the batch size), or of a page
    /// (`?1`: the offset, `?2`: the page size) when the table has no integer primary key.
    sql: String,
    /// The index of the primary key among `columns`, when it has one.
    key: Option<usize>,
    /// The attribute columns, in table order; the geometry is selected after them.
    columns: Vec<Column>,
    crs: Option<Crs>,
    rows: u64,
}

/// Reads what is needed to read the table `layer` (else the first feature table).
async fn read_table(
    path: &Path,
    conn: &mut SqliteConnection,
    layer: Option<&str>,
) -> Result<Table> {
    let sql_err = |what: &str, e: sqlx::Error| Error::input(path, None, format!("{what}: {e}"));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM gpkg_contents WHERE lower(data_type) = 'features' ORDER BY rowid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| sql_err("not a GeoPackage (reading gpkg_contents)", e))?;
    let table = match layer {
        Some(l) => tables
            .iter()
            .find(|t| *t == l)
            .or_else(|| tables.iter().find(|t| t.eq_ignore_ascii_case(l)))
            .ok_or_else(|| {
                Error::input(
                    path,
                    None,
                    format!(
                        "no feature table {l:?}; its feature tables are: {}",
                        tables.join(", ")
                    ),
                )
            })?,
        None => tables
            .first()
            .ok_or_else(|| Error::input(path, None, "the GeoPackage holds no feature table"))?,
    };
    let geometry: Option<(String, i64)> = sqlx::query_as(
        "SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
    )
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| sql_err("reading gpkg_geometry_columns", e))?;
    let Some((geom, srs_id)) = geometry else {
        return Err(Error::input(
            path,
            None,
            format!("feature table {table:?} has no entry in gpkg_geometry_columns"),
        ));
    };
    let crs = read_crs(path, conn, srs_id).await?;
    let info: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| sql_err(&format!("reading the columns of {table:?}"), e))?;
    if !info.iter().any(|(n, _, _)| n.eq_ignore_ascii_case(&geom)) {
        return Err(Error::input(
            path,
            None,
            format!("feature table {table:?} has no geometry column {geom:?}"),
        ));
    }
    let attrs: Vec<&(String, String, i64)> = info
        .iter()
        .filter(|(n, _, _)| !n.eq_ignore_ascii_case(&geom))
        .collect();
    let pks: Vec<usize> = attrs
        .iter()
        .enumerate()
        .filter(|(_, (_, _, pk))| *pk > 0)
        .map(|(i, _)| i)
        .collect();
    let key = match pks.as_slice() {
        [i] if attrs[*i].1.eq_ignore_ascii_case("INTEGER") => Some(*i),
        _ => None,
    };
    let columns: Vec<Column> = attrs
        .iter()
        .map(|(name, ty, _)| Column {
            name: name.clone(),
            boolean: ty.eq_ignore_ascii_case("BOOLEAN"),
        })
        .collect();
    let select: Vec<String> = columns
        .iter()
        .map(|c| quote(&c.name))
        .chain([quote(&geom)])
        .collect();
    let from = format!("SELECT {} FROM {}", select.join(", "), quote(table));
    let sql = match key {
        Some(k) => {
            let k = quote(&columns[k].name);
            format!("{from} WHERE {k} >= ?1 ORDER BY {k} LIMIT ?2")
        }
        None => format!("{from} LIMIT ?2 OFFSET ?1"),
    };
    // The table name is quoted.
    let count = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", quote(table)));
    let rows: i64 = sqlx::query_scalar(count)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| sql_err(&format!("counting the rows of {table:?}"), e))?;
    Ok(Table {
        sql,
        key,
        columns,
        crs,
        rows: u64::try_from(rows).unwrap_or(0),
    })
}

/// The CRS of `srs_id` in `gpkg_spatial_ref_sys` (`None`: undefined, read as lon/lat).
async fn read_crs(path: &Path, conn: &mut SqliteConnection, srs_id: i64) -> Result<Option<Crs>> {
    if srs_id == 0 || srs_id == -1 {
        return Ok(None);
    }
    let row: Option<(Option<String>, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys \
         WHERE srs_id = ?",
    )
    .bind(srs_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| Error::input(path, None, format!("reading gpkg_spatial_ref_sys: {e}")))?;
    let Some((org, code, definition)) = row else {
        tracing::warn!(
            "{}: srs_id {srs_id} is not in gpkg_spatial_ref_sys; taking it as EPSG:{srs_id}",
            path.display()
        );
        return Ok(u32::try_from(srs_id).ok().map(Crs::Epsg));
    };
    let org = org.map(|o| o.trim().to_owned()).filter(|o| !o.is_empty());
    let code = code.and_then(|c| u32::try_from(c).ok()).filter(|c| *c > 0);
    if let (Some(o), Some(c)) = (&org, code)
        && o.eq_ignore_ascii_case("EPSG")
    {
        return Ok(Some(Crs::Epsg(c)));
    }
    if srs_id == 4326 {
        return Ok(Some(Crs::Epsg(4326)));
    }
    if let Some(d) = definition
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("undefined"))
    {
        return Ok(Some(crs_from_text(d)));
    }
    Ok(match (org, code) {
        (Some(o), Some(c)) => Some(crs_from_text(&format!("{o}:{c}"))),
        _ => None,
    })
}

/// The attributes and geometry of a row.
type Decoded = (Vec<(String, Prop)>, Option<Vec<u8>>);

/// The rows of the feature table, read a batch at a time.
struct Features {
    path: PathBuf,
    rt: Rt,
    /// The connection; `None` once all rows are read (or on an error).
    conn: Option<SqliteConnection>,
    table: Table,
    /// The least primary key not read yet.
    next_key: i64,
    /// The next row.
    row: u64,
}

impl Features {
    /// The next batch; `None` at the end.
    fn read_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        // Identifiers in it are quoted.
        let sql = sqlx::AssertSqlSafe(self.table.sql.clone());
        let from = match self.table.key {
            Some(_) => self.next_key,
            None => i64::try_from(self.row).unwrap_or(i64::MAX),
        };
        let fut = sqlx::query(sql)
            .bind(from)
            .bind(FEATURE_BATCH as i64)
            .fetch_all(&mut *conn);
        let rows = self.rt.block_on(&self.path, fut)?.map_err(|e| {
            Error::input(
                &self.path,
                Some(self.row),
                format!("reading the table: {e}"),
            )
        })?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut done = rows.len() < FEATURE_BATCH;
        let mut batch = FeatureBatch::default();
        for c in &self.table.columns {
            batch.declare(&c.name);
        }
        for r in &rows {
            let (props, geometry) = self
                .decode(r)
                .map_err(|e| Error::input(&self.path, Some(self.row), e))?;
            if let Some(k) = self.table.key
                && let Some((_, Prop::Int(v))) = props.get(k)
            {
                match v.checked_add(1) {
                    Some(next) => self.next_key = next,
                    None => done = true,
                }
            }
            batch.push(props, geometry);
            self.row += 1;
        }
        if done {
            self.close();
        }
        Ok(Some(batch.take()))
    }

    /// The attributes and geometry of one row.
    fn decode(&self, r: &SqliteRow) -> Result<Decoded, String> {
        let bad = |name: &str, e: sqlx::Error| format!("column {name:?}: {e}");
        let mut props = Vec::with_capacity(self.table.columns.len());
        for (i, c) in self.table.columns.iter().enumerate() {
            let raw = r.try_get_raw(i).map_err(|e| bad(&c.name, e))?;
            let v = if raw.is_null() {
                Prop::Null
            } else {
                match raw.type_info().name() {
                    "INTEGER" => {
                        let v: i64 = r.try_get_unchecked(i).map_err(|e| bad(&c.name, e))?;
                        if c.boolean {
                            Prop::Bool(v != 0)
                        } else {
                            Prop::Int(v)
                        }
                    }
                    "REAL" => Prop::Float(r.try_get_unchecked(i).map_err(|e| bad(&c.name, e))?),
                    "BLOB" => {
                        let v: Vec<u8> = r.try_get_unchecked(i).map_err(|e| bad(&c.name, e))?;
                        Prop::Str(v.iter().map(|b| format!("{b:02x}")).collect())
                    }
                    _ => Prop::Str(r.try_get_unchecked(i).map_err(|e| bad(&c.name, e))?),
                }
            };
            props.push((c.name.clone(), v));
        }
        let g = self.table.columns.len();
        let raw = r.try_get_raw(g).map_err(|e| bad("geometry", e))?;
        let geometry = if raw.is_null() {
            None
        } else {
            let blob: Vec<u8> = r.try_get_unchecked(g).map_err(|e| bad("geometry", e))?;
            gpkg_wkb(&blob)?
        };
        Ok((props, geometry))
    }

    /// Closes the connection.
    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.rt.block_on(&self.path, conn.close());
        }
    }
}

impl Iterator for Features {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.close();
                None
            }
            Err(e) => {
                self.close();
                Some(Err(e))
            }
        }
    }
}

/// A GeoPackage geometry blob as 2D little-endian WKB; `None` when it is empty.
fn gpkg_wkb(blob: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if blob.len() < 8 || &blob[..2] != b"GP" {
        return Err("not a GeoPackage geometry (no GP header)".into());
    }
    let flags = blob[3];
    if flags & 0x20 != 0 {
        return Err("extended GeoPackage geometries are not supported".into());
    }
    let envelope = match (flags >> 1) & 0x07 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        e => return Err(format!("bad GeoPackage envelope indicator {e}")),
    };
    if flags & 0x10 != 0 {
        return Ok(None);
    }
    let wkb = blob
        .get(8 + envelope..)
        .ok_or("truncated GeoPackage geometry")?;
    let mut out = Vec::with_capacity(wkb.len());
    let points = WkbReader { bytes: wkb, at: 0 }.geometry(&mut out, 0)?;
    Ok((points > 0).then_some(out))
}

/// Reads WKB (ISO or EWKB, either byte order, any dimension) and writes it as 2D
/// little-endian ISO WKB.
struct WkbReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// The deepest nesting of collections we follow.
const MAX_DEPTH: u32 = 64;

impl WkbReader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated WKB")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self, le: bool) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn f64(&mut self, le: bool) -> Result<f64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(if le {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }

    /// A count of items of at least `min_bytes` each (checked against the bytes left).
    fn count(&mut self, le: bool, min_bytes: usize, out: &mut Vec<u8>) -> Result<usize, String> {
        let n = self.u32(le)? as usize;
        if n.saturating_mul(min_bytes) > self.bytes.len() - self.at {
            return Err("corrupt WKB: a count runs past the end".into());
        }
        out.extend_from_slice(&(n as u32).to_le_bytes());
        Ok(n)
    }

    /// Copies one point of `dims` ordinates as x, y; returns whether it is not empty.
    fn point(&mut self, le: bool, dims: usize, out: &mut Vec<u8>) -> Result<bool, String> {
        let x = self.f64(le)?;
        let y = self.f64(le)?;
        self.take(8 * (dims - 2))?;
        out.extend_from_slice(&x.to_le_bytes());
        out.extend_from_slice(&y.to_le_bytes());
        Ok(!(x.is_nan() && y.is_nan()))
    }

    /// Copies a sequence of points; returns how many.
    fn points(&mut self, le: bool, dims: usize, out: &mut Vec<u8>) -> Result<usize, String> {
        let n = self.count(le, 8 * dims, out)?;
        for _ in 0..n {
            self.point(le, dims, out)?;
        }
        Ok(n)
    }

    /// Copies one geometry; returns its number of (non-empty) points.
    fn geometry(&mut self, out: &mut Vec<u8>, depth: u32) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err("corrupt WKB: nested too deeply".into());
        }
        let le = match self.take(1)?[0] {
            0 => false,
            1 => true,
            b => return Err(format!("corrupt WKB: bad byte order {b}")),
        };
        let code = self.u32(le)?;
        let mut z = code & 0x8000_0000 != 0;
        let mut m = code & 0x4000_0000 != 0;
        if code & 0x2000_0000 != 0 {
            self.u32(le)?; // an EWKB SRID
        }
        let iso = code & 0x0fff_ffff;
        match iso / 1000 {
            0 => {}
            1 => z = true,
            2 => m = true,
            3 => (z, m) = (true, true),
            _ => return Err(format!("unsupported WKB geometry type {iso}")),
        }
        let dims = 2 + usize::from(z) + usize::from(m);
        let kind = iso % 1000;
        out.push(1);
        out.extend_from_slice(&kind.to_le_bytes());
        Ok(match kind {
            1 => usize::from(self.point(le, dims, out)?),
            2 => self.points(le, dims, out)?,
            3 => {
                let rings = self.count(le, 4, out)?;
                let mut n = 0;
                for _ in 0..rings {
                    n += self.points(le, dims, out)?;
                }
                n
            }
            4..=7 => {
                let parts = self.count(le, 9, out)?;
                let mut n = 0;
                for _ in 0..parts {
                    n += self.geometry(out, depth + 1)?;
                }
                n
            }
            _ => return Err(format!("unsupported WKB geometry type {iso}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
    use wkb::Endianness;

    fn wkt_of(wkb: &[u8]) -> String {
        let g = wkb::reader::read_wkb(wkb).expect("valid wkb");
        let mut s = String::new();
        wkt::to_wkt::write_geometry(&mut s, &g).expect("wkt");
        s
    }

    /// A GeoPackage blob of `wkt`: a header with an xy envelope (header ints in the byte
    /// order of `le`), then WKB in that order.
    fn blob(wkt: &str, le: bool) -> Vec<u8> {
        let g: wkt::Wkt<f64> = wkt.parse().expect("wkt");
        let endianness = if le {
            Endianness::LittleEndian
        } else {
            Endianness::BigEndian
        };
        let mut out = vec![b'G', b'P', 0, 0b0000_0010 | u8::from(le)];
        let srs: i32 = 4326;
        out.extend_from_slice(&if le {
            srs.to_le_bytes()
        } else {
            srs.to_be_bytes()
        });
        out.extend_from_slice(&[0u8; 32]);
        wkb::writer::write_geometry(&mut out, &g, &wkb::writer::WriteOptions { endianness })
            .expect("wkb");
        out
    }

    const SCHEMA: &str = "
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
            organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
            definition TEXT NOT NULL, description TEXT);
        INSERT INTO gpkg_spatial_ref_sys VALUES
            ('WGS 84', 4326, 'EPSG', 4326, 'GEOGCS[\"WGS 84\"]', NULL),
            ('undefined', -1, 'NONE', -1, 'undefined', NULL),
            ('undefined', 0, 'NONE', 0, 'undefined', NULL),
            ('mercator', 900913, 'EPSG', 3857, 'PROJCS[\"WGS 84 / Pseudo-Mercator\"]', NULL),
            ('utm', 100000, 'NONE', 100000,
             'PROJCS[\"WGS_1984_UTM_Zone_33N\",GEOGCS[\"GCS_WGS_1984\"]]', NULL);
        CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,
            data_type TEXT NOT NULL, identifier TEXT, srs_id INTEGER);
        CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
            geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL,
            m TINYINT NOT NULL);
        INSERT INTO gpkg_contents VALUES ('notes', 'attributes', NULL, NULL),
            ('roads', 'features', 'roads', 900913), ('big', 'features', 'big', 100000),
            ('nocrs', 'features', 'nocrs', 0);
        INSERT INTO gpkg_geometry_columns VALUES ('roads', 'geom', 'GEOMETRY', 900913, 2, 0),
            ('big', 'shape', 'POINT', 100000, 0, 0), ('nocrs', 'geom', 'POINT', 0, 0, 0);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
        CREATE TABLE roads (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB, name TEXT,
            lanes INTEGER, speed REAL, open BOOLEAN, data BLOB);
        CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER, shape POINT);
        CREATE TABLE nocrs (fid INTEGER PRIMARY KEY, geom BLOB);
    ";

    /// Builds a GeoPackage at `path`: `roads` (mixed geometries and types), `big` (more rows
    /// than a batch, a custom CRS) and `nocrs` (undefined CRS).
    async fn create(path: &Path) {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create");
        sqlx::raw_sql(SCHEMA)
            .execute(&mut conn)
            .await
            .expect("schema");
        type Road<'a> = (Option<Vec<u8>>, &'a str, Option<i64>, f64, bool);
        let roads: [Road<'_>; 5] = [
            (
                Some(blob("LINESTRING Z (0 0 1, 1 1 2)", false)),
                "a",
                Some(2),
                50.5,
                true,
            ),
            (Some(blob("POINT (3 4)", true)), "b", None, 30.0, false),
            (
                Some(blob(
                    "POLYGON ((0 0, 1 0, 1 1, 0 0), (0.2 0.1, 0.8 0.1, 0.8 0.7, 0.2 0.1))",
                    true,
                )),
                "c",
                Some(1),
                10.0,
                true,
            ),
            (None, "d", Some(4), 90.0, true),
            // The empty flag.
            (
                Some(vec![b'G', b'P', 0, 0b0001_0001, 0, 0, 0, 0]),
                "e",
                Some(1),
                5.0,
                false,
            ),
        ];
        for (g, name, lanes, speed, open) in roads {
            sqlx::query(
                "INSERT INTO roads (geom, name, lanes, speed, open, data) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(g)
            .bind(name)
            .bind(lanes)
            .bind(speed)
            .bind(open)
            .bind(vec![0xcau8, 0xfe])
            .execute(&mut conn)
            .await
            .expect("insert");
        }
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000)
             INSERT INTO big (id, n, shape) SELECT x * 2, x, ? FROM c",
        )
        .bind(blob("MULTIPOINT ZM ((1 2 3 4), (5 6 7 8))", false))
        .execute(&mut conn)
        .await
        .expect("big");
        sqlx::query("INSERT INTO nocrs (geom) VALUES (?)")
            .bind(blob("POINT (1 1)", true))
            .execute(&mut conn)
            .await
            .expect("nocrs");
        conn.close().await.expect("close");
    }

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.gpkg");
        let rt = Rt::new(&path).expect("rt");
        rt.block_on(&path, create(&path)).expect("create");
        (dir, path)
    }

    fn layer(name: Option<&str>) -> IngestOptions {
        let mut o = IngestOptions::default();
        o.gdal_config.layer = name.map(str::to_owned);
        o
    }

    fn read(path: &Path, l: Option<&str>) -> Result<(Opened, Vec<RecordBatch>)> {
        let mut opened = open(path, &layer(l))?;
        let unit = opened.units.remove(0);
        let batches = unit()?.collect::<Result<Vec<_>>>()?;
        Ok((opened, batches))
    }

    #[test]
    fn reads_the_first_feature_table() {
        let (_dir, path) = fixture();
        let (opened, batches) = read(&path, None).expect("read");
        assert_eq!(opened.crs, Some(Crs::Epsg(3857)));
        assert_eq!(opened.rows, Some(5));
        let b = &batches[0];
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            ["fid", "name", "lanes", "speed", "open", "data", "geometry"]
        );
        let col = |i: usize| b.column(i).as_any();
        let fid = col(0).downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(fid.values().to_vec(), [1, 2, 3, 4, 5]);
        let name = col(1).downcast_ref::<StringArray>().expect("str");
        assert_eq!(name.value(2), "c");
        let lanes = col(2).downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(
            lanes.iter().collect::<Vec<_>>(),
            [Some(2), None, Some(1), Some(4), Some(1)]
        );
        let speed = col(3).downcast_ref::<Float64Array>().expect("f64");
        assert_eq!(speed.value(0), 50.5);
        let open = col(4).downcast_ref::<BooleanArray>().expect("bool");
        assert_eq!(
            open.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true), Some(true), Some(false)]
        );
        let data = col(5).downcast_ref::<StringArray>().expect("str");
        assert_eq!(data.value(0), "cafe");
        let g = col(6).downcast_ref::<BinaryArray>().expect("bin");
        assert_eq!(wkt_of(g.value(0)), "LINESTRING(0 0,1 1)");
        assert_eq!(wkt_of(g.value(1)), "POINT(3 4)");
        assert_eq!(
            wkt_of(g.value(2)),
            "POLYGON((0 0,1 0,1 1,0 0),(0.2 0.1,0.8 0.1,0.8 0.7,0.2 0.1))"
        );
        assert!(g.is_null(3));
        assert!(g.is_null(4));
        // Little-endian 2D ISO WKB.
        assert_eq!(&g.value(1)[..5], &[1, 1, 0, 0, 0]);
    }

    #[test]
    fn reads_a_named_layer_in_batches() {
        let (_dir, path) = fixture();
        let (opened, batches) = read(&path, Some("BIG")).expect("read");
        assert_eq!(opened.crs, Some(Crs::Epsg(32633)));
        assert_eq!(opened.rows, Some(40000));
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].num_rows(), FEATURE_BATCH);
        let mut n = Vec::new();
        for b in &batches {
            let names: Vec<_> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["id", "n", "geometry"]);
            let c = b
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64");
            n.extend(c.values().iter().copied());
        }
        assert_eq!(n, (1..=40000).collect::<Vec<_>>());
        let g = batches[1]
            .column(2)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("bin");
        assert_eq!(wkt_of(g.value(0)), "MULTIPOINT((1 2),(5 6))");

        let (opened, batches) = read(&path, Some("nocrs")).expect("read");
        assert_eq!(opened.crs, None);
        assert_eq!(batches[0].num_rows(), 1);
    }

    #[test]
    fn works_inside_a_tokio_runtime() {
        let (_dir, path) = fixture();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("rt");
        let rows = rt.block_on(async {
            let (_, batches) = read(&path, Some("roads")).expect("read");
            batches.iter().map(RecordBatch::num_rows).sum::<usize>()
        });
        assert_eq!(rows, 5);
    }

    #[test]
    fn unknown_layers_and_corrupt_files_are_errors() {
        let (dir, path) = fixture();
        let err = read(&path, Some("notes"))
            .expect_err("not features")
            .to_string();
        assert!(err.contains("roads, big, nocrs"), "{err}");
        assert!(err.contains("test.gpkg"), "{err}");

        let junk = dir.path().join("junk.gpkg");
        std::fs::write(
            &junk,
            b"this is not a sqlite database at all, not even close....",
        )
        .expect("write");
        assert!(read(&junk, None).is_err());
        assert!(read(&dir.path().join("missing.gpkg"), None).is_err());

        let bytes = std::fs::read(&path).expect("read");
        let cut = dir.path().join("cut.gpkg");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
        assert!(read(&cut, Some("big")).is_err());

        // A corrupt geometry blob names its row.
        let rt = Rt::new(&path).expect("rt");
        let update = rt.block_on(&path, async {
            let mut conn = SqliteConnectOptions::new()
                .filename(&path)
                .connect()
                .await
                .expect("c");
            sqlx::query("UPDATE roads SET geom = ? WHERE fid = 2")
                .bind(vec![b'G', b'P', 0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 9])
                .execute(&mut conn)
                .await
                .expect("update");
            conn.close().await.expect("close");
        });
        update.expect("update");
        let err = read(&path, None).expect_err("corrupt").to_string();
        assert!(err.contains("row 1") && err.contains("WKB"), "{err}");
    }

    #[test]
    fn wkb_is_reencoded_safely() {
        // EWKB with an SRID and Z, big-endian.
        let mut ewkb = vec![0u8];
        ewkb.extend_from_slice(&(0xa000_0001u32).to_be_bytes());
        ewkb.extend_from_slice(&4326u32.to_be_bytes());
        for v in [1.0f64, 2.0, 3.0] {
            ewkb.extend_from_slice(&v.to_be_bytes());
        }
        let mut blob = vec![b'G', b'P', 0, 0];
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(&ewkb);
        let wkb = gpkg_wkb(&blob).expect("ok").expect("not empty");
        assert_eq!(wkt_of(&wkb), "POINT(1 2)");
        // Every truncation is an error, never a panic.
        let full = blob_of_polygon();
        for cut in 0..full.len() {
            assert!(gpkg_wkb(&full[..cut]).is_err(), "cut {cut}");
        }
        // A huge count fails fast.
        let mut huge = vec![b'G', b'P', 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(gpkg_wkb(&huge).is_err());
    }

    fn blob_of_polygon() -> Vec<u8> {
        blob("POLYGON Z ((0 0 0, 1 0 0, 1 1 0, 0 0 0))", false)
    }
}
