//! Turns the raw batches of a source into the rows that are partitioned: the geometry as a
//! WKB column named `geometry` in lon/lat, exploded and subdivided as asked, empty and
//! out-of-range rows dropped (and counted), columns selected — and, per row, its [`Key`]: the
//! centroid and weight the partitioner works on.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use fused_core::output::Crs;
use fused_core::proj::Projection;

use crate::error::{Error, Result};
use crate::geometry::{self, Measure};
use crate::options::{IngestOptions, PartitioningMethod};
use crate::source::{GeomSpec, Opened};

/// The name of the geometry column of ingested tables.
pub const GEOMETRY: &str = "geometry";

/// What the partitioner knows of a row: its centroid and weight (single precision is plenty to
/// group rows; chunk boxes are computed from the geometries themselves).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Key {
    /// Centroid longitude.
    pub x: f32,
    /// Centroid latitude.
    pub y: f32,
    /// Weight by the partitioning method.
    pub w: f32,
}

/// Rows dropped or added while preparing, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Rows read from the inputs.
    pub rows_read: u64,
    /// Rows dropped for a missing or empty geometry.
    pub dropped_empty: u64,
    /// Rows dropped for coordinates outside lon [-180, 180] / lat [-90, 90].
    pub dropped_out_of_bounds: u64,
    /// Rows dropped for a coordinate that is not a finite number (NaN, infinity).
    pub dropped_invalid: u64,
    /// Rows added by exploding multi-part geometries.
    pub added_by_explode: u64,
    /// Rows added by subdividing large geometries.
    pub added_by_subdivide: u64,
}

impl Counts {
    /// Adds another count.
    pub(crate) fn add(&mut self, o: &Counts) {
        self.rows_read += o.rows_read;
        self.dropped_empty += o.dropped_empty;
        self.dropped_out_of_bounds += o.dropped_out_of_bounds;
        self.dropped_invalid += o.dropped_invalid;
        self.added_by_explode += o.added_by_explode;
        self.added_by_subdivide += o.added_by_subdivide;
    }
}

/// A prepared batch and the keys of its rows.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub batch: RecordBatch,
    pub keys: Vec<Key>,
}

/// How to prepare the batches of one source.
#[derive(Debug, Clone)]
pub(crate) struct Preparer {
    file: std::path::PathBuf,
    geom: GeomSpec,
    projection: Projection,
    opts: Arc<IngestOptions>,
}

impl Preparer {
    /// For the batches of `src`.
    pub(crate) fn new(src: &Opened, opts: Arc<IngestOptions>) -> Result<Self> {
        let projection = match &src.crs {
            None => Projection::LonLat,
            Some(Crs::Epsg(code)) => Projection::from_epsg(*code).ok_or_else(|| {
                Error::input(
                    &src.file,
                    None,
                    format!(
                        "its CRS EPSG:{code} cannot be transformed to EPSG:4326 here \
                         (supported: lon/lat, Web Mercator, UTM zones); reproject it first"
                    ),
                )
            })?,
            Some(other) => {
                let text = other.to_string();
                return Err(Error::input(
                    &src.file,
                    None,
                    format!(
                        "its CRS is not one we can identify ({}…); reproject it to EPSG:4326 \
                         first",
                        text.chars().take(80).collect::<String>()
                    ),
                ));
            }
        };
        Ok(Self {
            file: src.file.clone(),
            geom: src.geom.clone(),
            projection,
            opts,
        })
    }

    /// Prepares one batch; `at` names its place in the file for errors ("row group 3, ").
    pub(crate) fn prepare(
        &self,
        raw: &RecordBatch,
        first_row: u64,
        unit: Option<usize>,
        counts: &mut Counts,
    ) -> Result<Prepared> {
        let n = raw.num_rows();
        counts.rows_read += n as u64;
        let row_err = |i: usize, e: String| {
            let e = match unit {
                Some(u) => format!("(row group {u}) {e}"),
                None => e,
            };
            Error::input(&self.file, Some(first_row + i as u64), e)
        };
        let geom = self.geometry(raw, &row_err)?;
        let opts = &self.opts;
        let lonlat = self.projection == Projection::LonLat;
        let mut keys = Vec::with_capacity(n);
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        // New geometries by output row; rows not listed keep their source geometry (so the
        // common case — nothing rewritten — copies nothing).
        let mut rewritten: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut changed = false;
        for i in 0..n {
            if geom.is_null(i) {
                counts.dropped_empty += 1;
                changed = true;
                continue;
            }
            let source = geom.value(i);
            let base: std::borrow::Cow<'_, [u8]> = if lonlat {
                std::borrow::Cow::Borrowed(source)
            } else {
                std::borrow::Cow::Owned(self.reproject(source).map_err(|e| row_err(i, e))?)
            };
            let parts = if opts.explode_geometries {
                geometry::explode(&base).map_err(|e| row_err(i, e))?
            } else {
                None
            };
            let mut list: Vec<std::borrow::Cow<'_, [u8]>> = match parts {
                Some(p) if p.is_empty() => {
                    counts.dropped_empty += 1;
                    changed = true;
                    continue;
                }
                Some(p) => {
                    counts.added_by_explode += p.len().saturating_sub(1) as u64;
                    p.into_iter().map(std::borrow::Cow::Owned).collect()
                }
                None => vec![base],
            };
            if let (Some(_), Some(start)) = (opts.subdivide_method, opts.subdivide_start) {
                let mut all = Vec::with_capacity(list.len());
                for part in list {
                    match geometry::subdivide(&part, start, opts.subdivide_stop)
                        .map_err(|e| row_err(i, e))?
                    {
                        Some(cut) => {
                            counts.added_by_subdivide += cut.len().saturating_sub(1) as u64;
                            all.extend(cut.into_iter().map(std::borrow::Cow::Owned));
                        }
                        None => all.push(part),
                    }
                }
                list = all;
            }
            for piece in list {
                let m = match geometry::measure(&piece).map_err(|e| row_err(i, e))? {
                    Some(m) => m,
                    None => {
                        counts.dropped_empty += 1;
                        changed = true;
                        continue;
                    }
                };
                if !m.finite {
                    counts.dropped_invalid += 1;
                    changed = true;
                    continue;
                }
                if !geometry::in_wgs84_range(&m.bbox) && opts.drops_out_of_bounds() {
                    counts.dropped_out_of_bounds += 1;
                    changed = true;
                    continue;
                }
                keys.push(key(&m, opts.partitioning_method));
                if let std::borrow::Cow::Owned(new) = piece {
                    rewritten.push((rows.len(), new));
                }
                rows.push(i as u32);
            }
        }
        changed |= !rewritten.is_empty() || rows.len() != n;
        let geometry: ArrayRef = if changed {
            let mut out = BinaryBuilder::with_capacity(rows.len(), geom.values().len());
            let mut next = rewritten.iter().peekable();
            for (k, r) in rows.iter().enumerate() {
                match next.peek() {
                    Some((at, new)) if *at == k => {
                        out.append_value(new);
                        next.next();
                    }
                    _ => out.append_value(geom.value(*r as usize)),
                }
            }
            Arc::new(out.finish())
        } else {
            Arc::new(geom.clone())
        };
        let batch = self.assemble(raw, geometry, (changed).then_some(&rows))?;
        Ok(Prepared { batch, keys })
    }

    /// The geometry column of a raw batch, as WKB.
    fn geometry(
        &self,
        raw: &RecordBatch,
        row_err: &dyn Fn(usize, String) -> Error,
    ) -> Result<BinaryArray> {
        let col = |name: &str| {
            raw.column_by_name(name)
                .ok_or_else(|| Error::input(&self.file, None, format!("missing column {name:?}")))
        };
        match &self.geom {
            GeomSpec::Wkb(c) => {
                let a = col(c)?;
                match a.data_type() {
                    DataType::Binary => Ok(a.as_binary::<i32>().clone()),
                    DataType::LargeBinary | DataType::BinaryView => {
                        Ok(cast(a, &DataType::Binary)?.as_binary::<i32>().clone())
                    }
                    other => Err(Error::input(
                        &self.file,
                        None,
                        format!("the geometry column {c:?} is {other}, not WKB binary"),
                    )),
                }
            }
            GeomSpec::Wkt(c) => {
                let a = cast(col(c)?, &DataType::Utf8)?;
                let s = a.as_string::<i32>();
                let mut b = BinaryBuilder::with_capacity(s.len(), s.len() * 32);
                let mut buf = Vec::new();
                for i in 0..s.len() {
                    if s.is_null(i) || s.value(i).trim().is_empty() {
                        b.append_null();
                        continue;
                    }
                    let w = wkt::Wkt::<f64>::from_str(s.value(i))
                        .map_err(|e| row_err(i, format!("invalid WKT in {c:?}: {e}")))?;
                    buf.clear();
                    wkb::writer::write_geometry(&mut buf, &w, &Default::default())
                        .map_err(|e| row_err(i, e.to_string()))?;
                    b.append_value(&buf);
                }
                Ok(b.finish())
            }
            GeomSpec::LonLat(x, y) => {
                let num = |name: &str| -> Result<ArrayRef> {
                    cast(col(name)?, &DataType::Float64).map_err(|e| {
                        Error::input(
                            &self.file,
                            None,
                            format!("column {name:?} is not numeric: {e}"),
                        )
                    })
                };
                let (xs, ys) = (num(x)?, num(y)?);
                let (xs, ys) = (
                    xs.as_primitive::<Float64Type>(),
                    ys.as_primitive::<Float64Type>(),
                );
                let mut b = BinaryBuilder::with_capacity(xs.len(), xs.len() * 21);
                let mut buf = Vec::with_capacity(21);
                for i in 0..xs.len() {
                    if xs.is_null(i)
                        || ys.is_null(i)
                        || xs.value(i).is_nan()
                        || ys.value(i).is_nan()
                    {
                        b.append_null();
                        continue;
                    }
                    buf.clear();
                    geometry::point_wkb(xs.value(i), ys.value(i), &mut buf);
                    b.append_value(&buf);
                }
                Ok(b.finish())
            }
        }
    }

    fn reproject(&self, wkb: &[u8]) -> Result<Vec<u8>, String> {
        if let Some((x, y)) = geometry::wkb_point(wkb) {
            let (lon, lat) = self.projection.to_lonlat(x, y);
            let mut out = Vec::with_capacity(21);
            geometry::point_wkb(lon, lat, &mut out);
            return Ok(out);
        }
        geometry::reproject(wkb, self.projection)
    }

    /// The output batch: the kept attribute columns (taken at `rows` when rows changed) and
    /// the geometry, at the place of the source geometry column (or last).
    fn assemble(
        &self,
        raw: &RecordBatch,
        geometry: ArrayRef,
        rows: Option<&Vec<u32>>,
    ) -> Result<RecordBatch> {
        let schema = raw.schema();
        let idx = rows.map(|r| UInt32Array::from(r.clone()));
        let geom_col = match &self.geom {
            GeomSpec::Wkb(c) | GeomSpec::Wkt(c) => Some(c.as_str()),
            GeomSpec::LonLat(..) => None,
        };
        let mut fields = Vec::with_capacity(schema.fields().len() + 1);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len() + 1);
        let mut placed = false;
        for (f, a) in schema.fields().iter().zip(raw.columns()) {
            let name = f.name().as_str();
            if Some(name) == geom_col {
                fields.push(geometry_field());
                arrays.push(geometry.clone());
                placed = true;
                continue;
            }
            if name == GEOMETRY || self.opts.remove_cols.iter().any(|r| r == name) {
                continue;
            }
            fields.push(f.as_ref().clone().with_nullable(true));
            arrays.push(match &idx {
                Some(i) => take(a, i, None)?,
                None => a.clone(),
            });
        }
        if !placed {
            fields.push(geometry_field());
            arrays.push(geometry);
        }
        let n = arrays.last().map_or(0, |a| a.len());
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// The Arrow field of the geometry column.
pub(crate) fn geometry_field() -> Field {
    Field::new(GEOMETRY, DataType::Binary, true)
}

/// The key of a measured geometry.
pub(crate) fn key(m: &Measure, method: PartitioningMethod) -> Key {
    let w = match method {
        PartitioningMethod::Rows => 1.0,
        PartitioningMethod::Area => m.area,
        PartitioningMethod::Length => m.length,
        PartitioningMethod::Coords => m.coords as f64,
    };
    Key {
        x: m.cx as f32,
        y: m.cy as f32,
        w: w as f32,
    }
}

/// One schema for batches of several files: columns in order of first appearance, types
/// promoted where files disagree (integers and floats → Float64, anything else → Utf8).
pub(crate) fn unify(schemas: &[SchemaRef]) -> SchemaRef {
    let mut fields: Vec<Field> = Vec::new();
    for s in schemas {
        for f in s.fields() {
            match fields.iter_mut().find(|g| g.name() == f.name()) {
                None => fields.push(f.as_ref().clone().with_nullable(true)),
                Some(g) if g.data_type() == f.data_type() => {}
                Some(g) => {
                    let t = promote(g.data_type(), f.data_type());
                    *g = Field::new(g.name(), t, true);
                }
            }
        }
    }
    // The geometry stays binary whatever happens.
    if let Some(g) = fields.iter_mut().find(|g| g.name() == GEOMETRY) {
        *g = geometry_field();
    }
    Arc::new(Schema::new(fields))
}

fn promote(a: &DataType, b: &DataType) -> DataType {
    let int = |t: &DataType| t.is_integer();
    let num = |t: &DataType| t.is_numeric();
    if *a == DataType::Null {
        return b.clone();
    }
    if *b == DataType::Null {
        return a.clone();
    }
    if int(a) && int(b) {
        DataType::Int64
    } else if num(a) && num(b) {
        DataType::Float64
    } else {
        DataType::Utf8
    }
}

/// Casts a batch to `schema` (columns it lacks are null).
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let n = batch.num_rows();
    let cols = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(a) if a.data_type() == f.data_type() => Ok(a.clone()),
            Some(a) => Ok(cast(a, f.data_type())?),
            None => Ok(arrow::array::new_null_array(f.data_type(), n)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}
