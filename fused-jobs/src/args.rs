//! [`ArgList`]: the calls of a `submit` — scalars for the first parameter, maps of arguments,
//! or the rows of an Arrow table — and the Arrow table of those arguments.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use fused_core::{Args, Error, Result};
use serde_json::{Map, Value};

/// The arguments of each call of a `submit`.
#[derive(Debug, Clone)]
pub enum ArgList {
    /// One value per call, bound to the UDF's first parameter.
    Scalars(Vec<Value>),
    /// One map of arguments per call.
    Maps(Vec<Map<String, Value>>),
    /// One call per row, the columns naming the arguments.
    Table(RecordBatch),
}

impl<T: Into<Value>> From<Vec<T>> for ArgList {
    fn from(v: Vec<T>) -> Self {
        let values: Vec<Value> = v.into_iter().map(Into::into).collect();
        if values.iter().all(Value::is_object) && !values.is_empty() {
            ArgList::Maps(
                values
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Object(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            ArgList::Scalars(values)
        }
    }
}

impl From<RecordBatch> for ArgList {
    fn from(b: RecordBatch) -> Self {
        ArgList::Table(b)
    }
}

impl ArgList {
    /// Number of calls.
    pub fn len(&self) -> usize {
        match self {
            ArgList::Scalars(v) => v.len(),
            ArgList::Maps(v) => v.len(),
            ArgList::Table(b) => b.num_rows(),
        }
    }

    /// True when there is no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arguments of each call; `first_param` names the parameter scalars bind to.
    pub fn into_calls(self, first_param: Option<&str>) -> Result<Vec<Args>> {
        match self {
            ArgList::Scalars(values) => {
                let name = first_param.ok_or_else(|| {
                    Error::Options(
                        "a list of values binds to the UDF's first parameter, and this UDF \
                         declares none (pass a list of maps)"
                            .into(),
                    )
                })?;
                Ok(values
                    .into_iter()
                    .map(|v| Args::new().with(name, v))
                    .collect())
            }
            ArgList::Maps(maps) => maps
                .into_iter()
                .map(|m| Args::from_json(Value::Object(m)))
                .collect(),
            ArgList::Table(b) => rows(&b),
        }
    }
}

/// The rows of a record batch as argument maps (values as JSON).
fn rows(b: &RecordBatch) -> Result<Vec<Args>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        w.write(b)?;
        w.finish()?;
    }
    let rows: Vec<Map<String, Value>> = if buf.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&buf)?
    };
    rows.into_iter()
        .map(|m| Args::from_json(Value::Object(m)))
        .collect()
}

/// A column of JSON values, typed when they agree (integers, numbers, booleans, text), else the
/// values' JSON text.
pub(crate) fn column(values: &[Option<&Value>]) -> (DataType, ArrayRef) {
    let present = || values.iter().flatten().filter(|v| !v.is_null());
    if present().all(|v| v.is_i64()) {
        let mut b = Int64Builder::new();
        values
            .iter()
            .for_each(|v| b.append_option(v.and_then(Value::as_i64)));
        (DataType::Int64, Arc::new(b.finish()))
    } else if present().all(|v| v.is_number()) {
        let mut b = Float64Builder::new();
        values
            .iter()
            .for_each(|v| b.append_option(v.and_then(Value::as_f64)));
        (DataType::Float64, Arc::new(b.finish()))
    } else if present().all(|v| v.is_boolean()) {
        let mut b = BooleanBuilder::new();
        values
            .iter()
            .for_each(|v| b.append_option(v.and_then(Value::as_bool)));
        (DataType::Boolean, Arc::new(b.finish()))
    } else {
        let mut b = StringBuilder::new();
        for v in values {
            match v {
                None | Some(Value::Null) => b.append_null(),
                Some(Value::String(s)) => b.append_value(s),
                Some(other) => b.append_value(other.to_string()),
            }
        }
        (DataType::Utf8, Arc::new(b.finish()))
    }
}

/// A table with one column per argument name (in order of first appearance).
pub(crate) fn args_table(calls: &[&Args]) -> Result<RecordBatch> {
    let mut names: Vec<&String> = Vec::new();
    for a in calls {
        for (k, _) in a.iter() {
            if !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for n in names {
        let values: Vec<Option<&Value>> = calls.iter().map(|a| a.get(n)).collect();
        let (ty, col) = column(&values);
        fields.push(Field::new(n.as_str(), ty, true));
        cols.push(col);
    }
    let schema = Arc::new(Schema::new(fields));
    let opts = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(calls.len()));
    Ok(RecordBatch::try_new_with_options(schema, cols, &opts)?)
}
