//! Builds record batches from features read one by one (GeoJSON, FlatGeobuf, Shapefile,
//! GeoPackage): attribute types are inferred per batch (booleans, integers, floats, else text)
//! and the geometry is a WKB column named `geometry`, last.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

/// Rows per batch built from features.
pub(super) const FEATURE_BATCH: usize = 32 * 1024;

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Prop {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Prop {
    fn text(&self) -> Option<String> {
        match self {
            Prop::Null => None,
            Prop::Bool(b) => Some(b.to_string()),
            Prop::Int(i) => Some(i.to_string()),
            Prop::Float(f) => Some(f.to_string()),
            Prop::Str(s) => Some(s.clone()),
        }
    }
}

/// Collects features into a batch.
#[derive(Debug, Default)]
pub(super) struct FeatureBatch {
    names: Vec<String>,
    index: HashMap<String, usize>,
    columns: Vec<Vec<Prop>>,
    geometry: Vec<Option<Vec<u8>>>,
}

impl FeatureBatch {
    /// Rows so far.
    pub(super) fn len(&self) -> usize {
        self.geometry.len()
    }

    /// Declares a column (so columns keep their source order even when the first values are
    /// missing).
    pub(super) fn declare(&mut self, name: &str) {
        self.column(name);
    }

    fn column(&mut self, name: &str) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.names.len();
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        self.columns.push(vec![Prop::Null; self.geometry.len()]);
        i
    }

    /// Adds one feature.
    pub(super) fn push(&mut self, props: Vec<(String, Prop)>, geometry: Option<Vec<u8>>) {
        let row = self.geometry.len();
        for (k, v) in props {
            let i = self.column(&k);
            let col = &mut self.columns[i];
            if col.len() == row {
                col.push(v);
            } else {
                // A repeated key: the last value wins.
                col[row] = v;
            }
        }
        self.geometry.push(geometry);
        for c in &mut self.columns {
            if c.len() < self.geometry.len() {
                c.push(Prop::Null);
            }
        }
    }

    /// The batch (empty columns are kept as text); `self` is left empty with the same columns.
    pub(super) fn take(&mut self) -> RecordBatch {
        let mut fields = Vec::with_capacity(self.names.len() + 1);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.names.len() + 1);
        for (name, col) in self.names.iter().zip(&mut self.columns) {
            let values = std::mem::take(col);
            let (t, a) = build(values);
            fields.push(Field::new(name, t, true));
            arrays.push(a);
        }
        let mut g = BinaryBuilder::new();
        for v in self.geometry.drain(..) {
            g.append_option(v);
        }
        fields.push(Field::new("geometry", DataType::Binary, true));
        arrays.push(Arc::new(g.finish()));
        let n = arrays[0].len();
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .unwrap_or_else(|e| unreachable!("columns of one length: {e}"))
    }
}

fn build(values: Vec<Prop>) -> (DataType, ArrayRef) {
    let all = |f: fn(&Prop) -> bool| values.iter().all(|v| matches!(v, Prop::Null) || f(v));
    let any_value = values.iter().any(|v| !matches!(v, Prop::Null));
    if any_value && all(|v| matches!(v, Prop::Bool(_))) {
        let mut b = BooleanBuilder::with_capacity(values.len());
        for v in values {
            b.append_option(match v {
                Prop::Bool(b) => Some(b),
                _ => None,
            });
        }
        return (DataType::Boolean, Arc::new(b.finish()));
    }
    if any_value && all(|v| matches!(v, Prop::Int(_))) {
        let mut b = Int64Builder::with_capacity(values.len());
        for v in values {
            b.append_option(match v {
                Prop::Int(i) => Some(i),
                _ => None,
            });
        }
        return (DataType::Int64, Arc::new(b.finish()));
    }
    if any_value && all(|v| matches!(v, Prop::Int(_) | Prop::Float(_))) {
        let mut b = Float64Builder::with_capacity(values.len());
        for v in values {
            b.append_option(match v {
                Prop::Int(i) => Some(i as f64),
                Prop::Float(f) => Some(f),
                _ => None,
            });
        }
        return (DataType::Float64, Arc::new(b.finish()));
    }
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
    for v in values {
        b.append_option(v.text());
    }
    (DataType::Utf8, Arc::new(b.finish()))
}
