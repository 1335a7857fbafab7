//! Feature attributes: a layer's key and value tables, filled from the table's columns.

use std::collections::HashMap;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, LargeStringArray, StringArray, StringViewArray,
};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::pbf;
use crate::error::{Error, Result};

/// A value as the layer's value table holds it (floats by their bits, so they can be keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Value {
    Str(String),
    F32(u32),
    F64(u64),
    Int(i64),
    Uint(u64),
    Bool(bool),
}

impl Value {
    /// The `Value` message.
    fn write(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Str(s) => pbf::bytes(buf, 1, s.as_bytes()),
            Value::F32(bits) => {
                pbf::tag(buf, 2, pbf::FIXED32);
                buf.extend_from_slice(&bits.to_le_bytes());
            }
            Value::F64(bits) => {
                pbf::tag(buf, 3, pbf::FIXED64);
                buf.extend_from_slice(&bits.to_le_bytes());
            }
            Value::Int(v) if *v < 0 => pbf::uint(buf, 6, pbf::zigzag64(*v)),
            Value::Int(v) => pbf::uint(buf, 5, *v as u64),
            Value::Uint(v) => pbf::uint(buf, 5, *v),
            Value::Bool(b) => pbf::uint(buf, 7, u64::from(*b)),
        }
    }
}

/// The layer's keys and values, each stored once.
#[derive(Debug, Default)]
pub(super) struct AttributeTables {
    keys: Vec<String>,
    key_index: HashMap<String, u32>,
    values: Vec<Value>,
    value_index: HashMap<Value, u32>,
}

impl AttributeTables {
    fn key(&mut self, name: &str) -> u32 {
        if let Some(i) = self.key_index.get(name) {
            return *i;
        }
        let i = self.keys.len() as u32;
        self.keys.push(name.to_owned());
        self.key_index.insert(name.to_owned(), i);
        i
    }

    fn value(&mut self, v: Value) -> u32 {
        if let Some(i) = self.value_index.get(&v) {
            return *i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.value_index.insert(v, i);
        i
    }

    /// Writes the layer's `keys` (field 3) and `values` (field 4).
    pub(super) fn write(&self, layer: &mut Vec<u8>) {
        for k in &self.keys {
            pbf::bytes(layer, 3, k.as_bytes());
        }
        let mut v = Vec::new();
        for value in &self.values {
            v.clear();
            value.write(&mut v);
            pbf::bytes(layer, 4, &v);
        }
    }
}

/// The TileJSON type of a column's values as vector tiles carry them: `Number` and `Boolean`
/// for the types written natively, `String` for text and everything written as text.
pub(super) fn tile_type(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "Boolean",
        DataType::Float32
        | DataType::Float64
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "Number",
        _ => "String",
    }
}

/// Reads one column's values for the tags of each row.
pub(super) struct Column<'a> {
    key: Option<u32>,
    name: &'a str,
    array: &'a ArrayRef,
    text: Option<ArrayFormatter<'a>>,
}

impl<'a> Column<'a> {
    /// A column; types without a vector tile value (dates, lists, …) are written as text.
    pub(super) fn new(
        name: &'a str,
        array: &'a ArrayRef,
        options: &'a FormatOptions,
    ) -> Result<Self> {
        let native = matches!(
            array.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) || tile_type(array.data_type()) != "String";
        let text = if native {
            None
        } else {
            Some(
                ArrayFormatter::try_new(array.as_ref(), options).map_err(|e| {
                    Error::Encode(format!(
                        "column {name:?} cannot be written to a vector tile: {e}"
                    ))
                })?,
            )
        };
        Ok(Self {
            key: None,
            name,
            array,
            text,
        })
    }

    /// Appends the (key, value) tag pair of row `i`; nothing for nulls and NaN.
    pub(super) fn tag(&mut self, i: usize, tables: &mut AttributeTables, tags: &mut Vec<u32>) {
        if self.array.is_null(i) {
            return;
        }
        let a = self.array;
        let value = match a.data_type() {
            DataType::Utf8 => Value::Str(
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .map_or_else(String::new, |s| s.value(i).to_owned()),
            ),
            DataType::LargeUtf8 => Value::Str(
                a.as_any()
                    .downcast_ref::<LargeStringArray>()
                    .map_or_else(String::new, |s| s.value(i).to_owned()),
            ),
            DataType::Utf8View => Value::Str(
                a.as_any()
                    .downcast_ref::<StringViewArray>()
                    .map_or_else(String::new, |s| s.value(i).to_owned()),
            ),
            DataType::Boolean => match a.as_any().downcast_ref::<BooleanArray>() {
                Some(b) => Value::Bool(b.value(i)),
                None => return,
            },
            DataType::Float32 => {
                let v = a.as_primitive::<Float32Type>().value(i);
                if v.is_nan() {
                    return;
                }
                Value::F32(v.to_bits())
            }
            DataType::Float64 => {
                let v = a.as_primitive::<Float64Type>().value(i);
                if v.is_nan() {
                    return;
                }
                Value::F64(v.to_bits())
            }
            DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(i).into()),
            DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(i).into()),
            DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(i).into()),
            DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(i)),
            DataType::UInt8 => Value::Uint(a.as_primitive::<UInt8Type>().value(i).into()),
            DataType::UInt16 => Value::Uint(a.as_primitive::<UInt16Type>().value(i).into()),
            DataType::UInt32 => Value::Uint(a.as_primitive::<UInt32Type>().value(i).into()),
            DataType::UInt64 => Value::Uint(a.as_primitive::<UInt64Type>().value(i)),
            _ => match &self.text {
                Some(f) => Value::Str(f.value(i).to_string()),
                None => return,
            },
        };
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = tables.key(self.name);
                self.key = Some(k);
                k
            }
        };
        tags.push(key);
        tags.push(tables.value(value));
    }
}
