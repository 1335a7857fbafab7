//! Tables: Arrow record batches with an optional WKB geometry column.

use std::fmt;

use arrow::array::{Array, BinaryArray, LargeBinaryArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// A coordinate reference system, by authority code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Crs {
    /// An EPSG code, such as 4326 (lon/lat) or 3857 (Web Mercator).
    Epsg(u32),
    /// Any other identifier, kept as text (for example a PROJJSON or WKT string).
    Other(String),
}

impl Crs {
    /// WGS 84 longitude/latitude, the default of GeoParquet and GeoJSON.
    pub const WGS84: Crs = Crs::Epsg(4326);

    /// Parses `"EPSG:4326"` (any case) or bare digits; anything else is kept as text.
    pub fn parse(text: &str) -> Self {
        let t = text.trim();
        let digits = match t.get(..5) {
            Some(prefix) if prefix.eq_ignore_ascii_case("epsg:") => &t[5..],
            _ => t,
        };
        match digits.parse::<u32>() {
            Ok(code) => Crs::Epsg(code),
            Err(_) => Crs::Other(t.to_owned()),
        }
    }
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crs::Epsg(c) => write!(f, "EPSG:{c}"),
            Crs::Other(s) => f.write_str(s),
        }
    }
}

/// Which column of a table holds geometries (as WKB), and in which CRS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeometryColumn {
    /// Column name.
    pub name: String,
    /// CRS of the coordinates.
    pub crs: Crs,
}

/// A table: record batches sharing one schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    geometry: Option<GeometryColumn>,
}

impl Table {
    /// A table of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Self {
            schema: batch.schema(),
            batches: vec![batch],
            geometry: None,
        }
    }

    /// A table of several batches; they must all have `schema`.
    pub fn try_new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        if let Some(b) = batches.iter().find(|b| b.schema() != schema) {
            return Err(Error::Encode(format!(
                "record batch schema {:?} differs from the table schema {:?}",
                b.schema(),
                schema
            )));
        }
        Ok(Self {
            schema,
            batches,
            geometry: None,
        })
    }

    /// Marks `name` as the geometry column, holding WKB in `crs`.
    ///
    /// The column must exist and be `Binary` or `LargeBinary`.
    pub fn with_geometry(mut self, name: &str, crs: Crs) -> Result<Self> {
        let field = self
            .schema
            .field_with_name(name)
            .map_err(|_| Error::Encode(format!("no column {name:?} to use as geometry")))?;
        if !matches!(field.data_type(), DataType::Binary | DataType::LargeBinary) {
            return Err(Error::Encode(format!(
                "geometry column {name:?} must hold WKB as Binary, not {}",
                field.data_type()
            )));
        }
        self.geometry = Some(GeometryColumn {
            name: name.to_owned(),
            crs,
        });
        Ok(self)
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The geometry column, when the table has one.
    pub fn geometry(&self) -> Option<&GeometryColumn> {
        self.geometry.as_ref()
    }

    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Index of the geometry column in the schema.
    pub fn geometry_index(&self) -> Option<usize> {
        let g = self.geometry.as_ref()?;
        self.schema.index_of(&g.name).ok()
    }

    /// The WKB value of every row's geometry (`None` for nulls), batch by batch.
    pub fn wkb_rows(&self) -> Vec<Option<&[u8]>> {
        let Some(idx) = self.geometry_index() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.num_rows());
        for b in &self.batches {
            let col = b.column(idx);
            if let Some(a) = col.as_any().downcast_ref::<BinaryArray>() {
                out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))));
            } else if let Some(a) = col.as_any().downcast_ref::<LargeBinaryArray>() {
                out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))));
            }
        }
        out
    }

    /// Bytes of WKB in the geometry column (0 without one), from the arrays' offsets.
    pub fn geometry_bytes(&self) -> usize {
        let Some(idx) = self.geometry_index() else {
            return 0;
        };
        let span = |first: usize, last: usize| last.saturating_sub(first);
        self.batches
            .iter()
            .map(|b| {
                let col = b.column(idx);
                if let Some(a) = col.as_any().downcast_ref::<BinaryArray>() {
                    let o = a.value_offsets();
                    span(o[0] as usize, o[o.len() - 1] as usize)
                } else if let Some(a) = col.as_any().downcast_ref::<LargeBinaryArray>() {
                    let o = a.value_offsets();
                    span(o[0] as usize, o[o.len() - 1] as usize)
                } else {
                    0
                }
            })
            .sum()
    }

    /// All batches concatenated into one.
    pub fn concat(&self) -> Result<RecordBatch> {
        Ok(arrow::compute::concat_batches(&self.schema, &self.batches)?)
    }

    /// The same table with its parts replaced (used by decoders).
    pub(crate) fn from_parts(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        geometry: Option<GeometryColumn>,
    ) -> Self {
        Self {
            schema,
            batches,
            geometry,
        }
    }

    /// An empty table with the given schema.
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            schema,
            batches: Vec::new(),
            geometry: None,
        }
    }
}

impl From<RecordBatch> for Table {
    fn from(b: RecordBatch) -> Self {
        Self::from_batch(b)
    }
}

/// Tables for tests across the crate.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::{Crs, Table};

    /// `ids` as an `id` column and, beside each, the point (1, 2) as WKB in column `geom_name`;
    /// the last row's geometry is null when `null_last`.
    pub(crate) fn points(ids: &[i32], geom_name: &str, crs: Crs, null_last: bool) -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new(geom_name, DataType::Binary, true),
        ]));
        let mut pt = Vec::new();
        wkb::writer::write_geometry(
            &mut pt,
            &geo_types::Point::new(1.0, 2.0),
            &Default::default(),
        )
        .expect("writing to a Vec");
        let geoms: Vec<Option<&[u8]>> = (0..ids.len())
            .map(|i| (!(null_last && i + 1 == ids.len())).then_some(pt.as_slice()))
            .collect();
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(BinaryArray::from(geoms)),
            ],
        )
        .expect("a valid batch");
        Table::from_batch(b)
            .with_geometry(geom_name, crs)
            .expect("a binary column")
    }
}
