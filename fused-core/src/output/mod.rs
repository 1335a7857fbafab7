//! What a UDF returns: a table, a raster, JSON, raw bytes, or nothing.

mod raster;
pub(crate) mod table;

pub use raster::{Raster, RasterData, SampleType};
pub use table::{Crs, GeometryColumn, Table};

use bytes::Bytes;

/// The result of a UDF call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Arrow record batches, optionally with a WKB geometry column and its CRS.
    Table(Table),
    /// Bands × height × width of one sample type, with optional bounds and nodata.
    Raster(Raster),
    /// A JSON value (numbers, strings, lists, objects).
    Json(serde_json::Value),
    /// Bytes the UDF encoded itself, with their content type.
    Bytes {
        /// The MIME type sent as `Content-Type`.
        content_type: String,
        /// The body.
        data: Bytes,
    },
    /// Nothing (the SDK decodes an empty body as `None`).
    Empty,
}

impl Output {
    /// The kind of output in words ("a table", "a raster", …), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::Table(_) => "a table",
            Output::Raster(_) => "a raster",
            Output::Json(_) => "a JSON value",
            Output::Bytes { .. } => "bytes",
            Output::Empty => "nothing",
        }
    }

    /// Raw bytes with a content type.
    pub fn bytes(content_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Output::Bytes {
            content_type: content_type.into(),
            data: data.into(),
        }
    }

    /// A JSON value from anything serializable.
    pub fn json<T: serde::Serialize>(value: &T) -> crate::Result<Self> {
        Ok(Output::Json(serde_json::to_value(value)?))
    }

    /// The table, when this is one.
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Output::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The raster, when this is one.
    pub fn as_raster(&self) -> Option<&Raster> {
        match self {
            Output::Raster(r) => Some(r),
            _ => None,
        }
    }
}

impl From<Table> for Output {
    fn from(t: Table) -> Self {
        Output::Table(t)
    }
}

impl From<Raster> for Output {
    fn from(r: Raster) -> Self {
        Output::Raster(r)
    }
}

impl From<serde_json::Value> for Output {
    fn from(v: serde_json::Value) -> Self {
        Output::Json(v)
    }
}

impl From<arrow::record_batch::RecordBatch> for Output {
    fn from(b: arrow::record_batch::RecordBatch) -> Self {
        Output::Table(Table::from_batch(b))
    }
}

impl From<()> for Output {
    fn from(_: ()) -> Self {
        Output::Empty
    }
}
