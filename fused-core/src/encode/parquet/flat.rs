//! A Parquet writer for flat tables of primitive columns: one row group, one PLAIN data page per
//! column, no compression, no statistics.
//!
//! It exists for speed: a map tile is a small table answered thousands of times a second, and a
//! general writer spends most of that time setting itself up. Written from the Parquet format
//! specification; anything it does not cover (nested, temporal, decimal, dictionary columns…)
//! goes to the general writer instead, so [`supports`] decides.

use arrow::array::{
    Array, AsArray, BooleanArray, GenericBinaryArray, GenericStringArray, OffsetSizeTrait,
    PrimitiveArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use super::thrift::{Ty, Writer};

const MAGIC: &[u8] = b"PAR1";

/// Parquet physical types.
#[derive(Clone, Copy)]
enum Physical {
    Boolean = 0,
    Int32 = 1,
    Int64 = 2,
    Float = 4,
    Double = 5,
    ByteArray = 6,
}

/// How one Arrow type is stored: physical type, legacy converted type, and integer logical type
/// (bit width, signed) or string logical type.
struct Mapping {
    physical: Physical,
    converted: Option<i32>,
    logical: Option<Logical>,
}

enum Logical {
    String,
    Int { bits: i8, signed: bool },
}

fn mapping(t: &DataType) -> Option<Mapping> {
    let int = |physical, converted, bits, signed| Mapping {
        physical,
        converted: Some(converted),
        logical: Some(Logical::Int { bits, signed }),
    };
    let plain = |physical| Mapping {
        physical,
        converted: None,
        logical: None,
    };
    Some(match t {
        DataType::Boolean => plain(Physical::Boolean),
        DataType::Int8 => int(Physical::Int32, 15, 8, true),
        DataType::Int16 => int(Physical::Int32, 16, 16, true),
        DataType::Int32 => plain(Physical::Int32),
        DataType::Int64 => plain(Physical::Int64),
        DataType::UInt8 => int(Physical::Int32, 11, 8, false),
        DataType::UInt16 => int(Physical::Int32, 12, 16, false),
        DataType::UInt32 => int(Physical::Int32, 13, 32, false),
        DataType::UInt64 => int(Physical::Int64, 14, 64, false),
        DataType::Float32 => plain(Physical::Float),
        DataType::Float64 => plain(Physical::Double),
        DataType::Utf8 | DataType::LargeUtf8 => Mapping {
            physical: Physical::ByteArray,
            converted: Some(0),
            logical: Some(Logical::String),
        },
        DataType::Binary | DataType::LargeBinary => plain(Physical::ByteArray),
        _ => return None,
    })
}

/// The largest table (in Arrow memory) written with one page per column; larger ones go to the
/// general writer, which pages them. It also keeps every size below `i32::MAX`, as the format
/// requires.
const MAX_BYTES: usize = 64 << 20;

/// True when the batches are small enough for one page per column.
pub(super) fn fits(batches: &[RecordBatch]) -> bool {
    batches
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .sum::<usize>()
        <= MAX_BYTES
}

/// True when every column of `schema` is one this writer stores.
pub(super) fn supports(schema: &Schema) -> bool {
    !schema.fields().is_empty()
        && schema
            .fields()
            .iter()
            .all(|f| mapping(f.data_type()).is_some())
}

/// Definition levels (bit width 1) as the RLE/bit-packed hybrid, with its 4-byte length prefix.
fn def_levels(out: &mut Vec<u8>, columns: &[&dyn Array]) {
    let n: usize = columns.iter().map(|c| c.len()).sum();
    let nulls: usize = columns.iter().map(|c| c.null_count()).sum();
    let mut body = Vec::with_capacity(8 + n / 8);
    if n == 0 {
        // No values, no runs.
    } else if nulls == 0 {
        // One RLE run of n ones.
        push_varint(&mut body, (n as u64) << 1);
        body.push(1);
    } else {
        // Bit-packed groups of eight, least significant bit first.
        let groups = n.div_ceil(8);
        push_varint(&mut body, ((groups as u64) << 1) | 1);
        let start = body.len();
        body.resize(start + groups, 0);
        let mut i = 0;
        for c in columns {
            for r in 0..c.len() {
                if c.is_valid(r) {
                    body[start + i / 8] |= 1 << (i % 8);
                }
                i += 1;
            }
        }
    }
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn plain_primitive<T, const N: usize>(
    out: &mut Vec<u8>,
    cols: &[&dyn Array],
    le: impl Fn(T::Native) -> [u8; N],
) where
    T: ArrowPrimitiveType,
{
    for c in cols {
        let a: &PrimitiveArray<T> = c.as_primitive::<T>();
        if a.null_count() == 0 {
            for v in a.values().iter() {
                out.extend_from_slice(&le(*v));
            }
        } else {
            for v in a.iter().flatten() {
                out.extend_from_slice(&le(v));
            }
        }
    }
}

fn plain_bytes<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = Option<&'a [u8]>>) {
    for v in values.flatten() {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

fn plain_strings<O: OffsetSizeTrait>(out: &mut Vec<u8>, a: &GenericStringArray<O>) {
    plain_bytes(out, a.iter().map(|s| s.map(str::as_bytes)));
}

fn plain_binary<O: OffsetSizeTrait>(out: &mut Vec<u8>, a: &GenericBinaryArray<O>) {
    plain_bytes(out, a.iter());
}

fn plain_bools(out: &mut Vec<u8>, cols: &[&dyn Array]) {
    let mut byte = 0u8;
    let mut bit = 0;
    for c in cols {
        let a: &BooleanArray = c.as_boolean();
        for v in a.iter().flatten() {
            if v {
                byte |= 1 << bit;
            }
            bit += 1;
            if bit == 8 {
                out.push(byte);
                byte = 0;
                bit = 0;
            }
        }
    }
    if bit > 0 {
        out.push(byte);
    }
}

/// PLAIN-encoded non-null values of one column across batches.
fn plain_values(out: &mut Vec<u8>, t: &DataType, cols: &[&dyn Array]) {
    match t {
        DataType::Boolean => plain_bools(out, cols),
        DataType::Int8 => plain_primitive::<Int8Type, 4>(out, cols, |v| i32::from(v).to_le_bytes()),
        DataType::Int16 => {
            plain_primitive::<Int16Type, 4>(out, cols, |v| i32::from(v).to_le_bytes())
        }
        DataType::Int32 => plain_primitive::<Int32Type, 4>(out, cols, i32::to_le_bytes),
        DataType::Int64 => plain_primitive::<Int64Type, 8>(out, cols, i64::to_le_bytes),
        DataType::UInt8 => {
            plain_primitive::<UInt8Type, 4>(out, cols, |v| u32::from(v).to_le_bytes())
        }
        DataType::UInt16 => {
            plain_primitive::<UInt16Type, 4>(out, cols, |v| u32::from(v).to_le_bytes())
        }
        DataType::UInt32 => plain_primitive::<UInt32Type, 4>(out, cols, u32::to_le_bytes),
        DataType::UInt64 => plain_primitive::<UInt64Type, 8>(out, cols, u64::to_le_bytes),
        DataType::Float32 => plain_primitive::<Float32Type, 4>(out, cols, f32::to_le_bytes),
        DataType::Float64 => plain_primitive::<Float64Type, 8>(out, cols, f64::to_le_bytes),
        DataType::Utf8 => cols
            .iter()
            .for_each(|c| plain_strings(out, c.as_string::<i32>())),
        DataType::LargeUtf8 => cols
            .iter()
            .for_each(|c| plain_strings(out, c.as_string::<i64>())),
        DataType::Binary => cols
            .iter()
            .for_each(|c| plain_binary(out, c.as_binary::<i32>())),
        DataType::LargeBinary => cols
            .iter()
            .for_each(|c| plain_binary(out, c.as_binary::<i64>())),
        // `supports` admitted only the types above.
        _ => {}
    }
}

/// Where one column chunk landed in the file.
struct Chunk {
    offset: i64,
    size: i64,
    values: i64,
}

/// Writes `batches` (all of `schema`, which [`supports`] accepted, and small enough that
/// [`fits`] holds) as one Parquet file.
pub(super) fn write(
    schema: &Schema,
    batches: &[RecordBatch],
    kv: &[(String, String)],
    created_by: &str,
) -> Vec<u8> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Vec::with_capacity(
        1024 + batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    let mut page = Vec::new();
    let mut chunks = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let cols: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        page.clear();
        if field.is_nullable() {
            def_levels(&mut page, &cols);
        }
        plain_values(&mut page, field.data_type(), &cols);
        let offset = out.len() as i64;
        let header_start = out.len();
        Writer::new(&mut out)
            .i32(1, 0) // DATA_PAGE
            .i32(2, page.len() as i32)
            .i32(3, page.len() as i32)
            .begin(5)
            .i32(1, rows as i32)
            .i32(2, 0) // PLAIN
            .i32(3, 3) // RLE
            .i32(4, 3) // RLE
            .end()
            .end();
        let header_len = out.len() - header_start;
        out.extend_from_slice(&page);
        chunks.push(Chunk {
            offset,
            size: (header_len + page.len()) as i64,
            values: rows as i64,
        });
    }

    let footer_start = out.len();
    {
        let mut w = Writer::new(&mut out);
        w.i32(1, 2).list(2, Ty::Struct, schema.fields().len() + 1);
        w.element()
            .binary(4, b"schema")
            .i32(5, schema.fields().len() as i32)
            .end();
        for f in schema.fields() {
            let Some(m) = mapping(f.data_type()) else {
                continue;
            };
            w.element()
                .i32(1, m.physical as i32)
                .i32(3, i32::from(f.is_nullable()))
                .binary(4, f.name().as_bytes());
            if let Some(c) = m.converted {
                w.i32(6, c);
            }
            match m.logical {
                Some(Logical::String) => {
                    w.begin(10).begin(1).end().end();
                }
                Some(Logical::Int { bits, signed }) => {
                    w.begin(10)
                        .begin(10)
                        .i8(1, bits)
                        .bool(2, signed)
                        .end()
                        .end();
                }
                None => {}
            }
            w.end();
        }
        w.i64(3, rows as i64).list(4, Ty::Struct, 1);
        let total: i64 = chunks.iter().map(|c| c.size).sum();
        w.element().list(1, Ty::Struct, chunks.len());
        for (f, c) in schema.fields().iter().zip(&chunks) {
            let physical = mapping(f.data_type()).map_or(0, |m| m.physical as i32);
            w.element().i64(2, c.offset).begin(3);
            w.i32(1, physical)
                .list(2, Ty::I32, 2)
                .elem_i32(0)
                .elem_i32(3);
            w.list(3, Ty::Binary, 1).elem_binary(f.name().as_bytes());
            w.i32(4, 0) // UNCOMPRESSED
                .i64(5, c.values)
                .i64(6, c.size)
                .i64(7, c.size)
                .i64(9, c.offset)
                .end() // ColumnMetaData
                .end(); // ColumnChunk
        }
        w.i64(2, total)
            .i64(3, rows as i64)
            .i64(5, 4)
            .i64(6, total)
            .end(); // RowGroup
        if !kv.is_empty() {
            w.list(5, Ty::Struct, kv.len());
            for (k, v) in kv {
                w.element()
                    .binary(1, k.as_bytes())
                    .binary(2, v.as_bytes())
                    .end();
            }
        }
        w.binary(6, created_by.as_bytes()).end();
    }
    let footer_len = (out.len() - footer_start) as u32;
    out.extend_from_slice(&footer_len.to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
        Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, StringArray, UInt8Array,
        UInt16Array, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::Field;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    use super::*;

    /// Reads a file back with the `parquet` crate, the reference reader.
    fn read_back(file: Vec<u8>) -> (Vec<RecordBatch>, Vec<(String, String)>) {
        let b = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).unwrap();
        let kv = b
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| {
                kv.iter()
                    .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        (
            b.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap(),
            kv,
        )
    }

    /// The same values with the types the reader gives back (large offsets become small ones).
    fn as_read(a: &ArrayRef) -> ArrayRef {
        match a.data_type() {
            DataType::LargeUtf8 => arrow::compute::cast(a, &DataType::Utf8).unwrap(),
            DataType::LargeBinary => arrow::compute::cast(a, &DataType::Binary).unwrap(),
            _ => Arc::clone(a),
        }
    }

    fn column(kind: u8, vals: &[Option<i64>]) -> ArrayRef {
        let f = |v: &Option<i64>| v.map(|x| x as f64 / 7.0);
        match kind % 15 {
            0 => Arc::new(BooleanArray::from(
                vals.iter()
                    .map(|v| v.map(|x| x % 2 == 0))
                    .collect::<Vec<_>>(),
            )),
            1 => Arc::new(Int8Array::from(
                vals.iter().map(|v| v.map(|x| x as i8)).collect::<Vec<_>>(),
            )),
            2 => Arc::new(Int16Array::from(
                vals.iter().map(|v| v.map(|x| x as i16)).collect::<Vec<_>>(),
            )),
            3 => Arc::new(Int32Array::from(
                vals.iter().map(|v| v.map(|x| x as i32)).collect::<Vec<_>>(),
            )),
            4 => Arc::new(Int64Array::from(vals.to_vec())),
            5 => Arc::new(UInt8Array::from(
                vals.iter().map(|v| v.map(|x| x as u8)).collect::<Vec<_>>(),
            )),
            6 => Arc::new(UInt16Array::from(
                vals.iter().map(|v| v.map(|x| x as u16)).collect::<Vec<_>>(),
            )),
            7 => Arc::new(UInt32Array::from(
                vals.iter().map(|v| v.map(|x| x as u32)).collect::<Vec<_>>(),
            )),
            8 => Arc::new(UInt64Array::from(
                vals.iter().map(|v| v.map(|x| x as u64)).collect::<Vec<_>>(),
            )),
            9 => Arc::new(Float32Array::from(
                vals.iter()
                    .map(|v| f(v).map(|x| x as f32))
                    .collect::<Vec<_>>(),
            )),
            10 => Arc::new(Float64Array::from(vals.iter().map(f).collect::<Vec<_>>())),
            11 => Arc::new(StringArray::from(
                vals.iter()
                    .map(|v| v.map(|x| format!("s{x}é")))
                    .collect::<Vec<_>>(),
            )),
            12 => Arc::new(LargeStringArray::from(
                vals.iter()
                    .map(|v| v.map(|x| x.to_string()))
                    .collect::<Vec<_>>(),
            )),
            13 => Arc::new(BinaryArray::from(
                vals.iter()
                    .map(|v| v.map(|x| x.to_le_bytes().to_vec()))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<Vec<_>>(),
            )),
            _ => Arc::new(LargeBinaryArray::from(
                vals.iter()
                    .map(|v| v.map(|x| vec![0u8; (x.unsigned_abs() % 5) as usize]))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<Vec<_>>(),
            )),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever we write, the reference reader reads back: every type, nulls, several batches.
        #[test]
        fn the_reference_reader_reads_back_what_we_write(
            kinds in proptest::collection::vec(0u8..15, 1..6),
            nullable in proptest::collection::vec(any::<bool>(), 6),
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::option::weighted(0.8, any::<i64>()), 0..40), 1..4),
        ) {
            let fields: Vec<Field> = kinds.iter().enumerate().map(|(i, k)| {
                Field::new(format!("c{i}"), column(*k, &[]).data_type().clone(), nullable[i])
            }).collect();
            let schema = Arc::new(Schema::new(fields));
            let rbs: Vec<RecordBatch> = batches.iter().map(|vals| {
                let cols: Vec<ArrayRef> = kinds.iter().enumerate().map(|(i, k)| {
                    // A column that is not nullable gets no nulls.
                    let v: Vec<Option<i64>> = if nullable[i] { vals.clone() } else { vals.iter().map(|x| Some(x.unwrap_or(1))).collect() };
                    column(*k, &v)
                }).collect();
                RecordBatch::try_new(Arc::clone(&schema), cols).unwrap()
            }).collect();
            prop_assert!(supports(&schema));
            let kv = vec![("geo".to_owned(), "{\"x\":1}".to_owned())];
            let (back, back_kv) = read_back(write(&schema, &rbs, &kv, "test"));
            prop_assert_eq!(back_kv, kv);
            let total: usize = rbs.iter().map(RecordBatch::num_rows).sum();
            prop_assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), total);
            if total > 0 {
                let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
                let want = arrow::compute::concat_batches(&schema, &rbs).unwrap();
                let (bs, ws) = (back.schema(), want.schema());
                for i in 0..want.num_columns() {
                    prop_assert_eq!(bs.field(i).name(), ws.field(i).name());
                    let expected = as_read(want.column(i));
                    prop_assert_eq!(back.column(i).as_ref(), expected.as_ref(), "column {}", i);
                }
            }
        }
    }

    #[test]
    fn other_types_go_to_the_general_writer() {
        assert!(!supports(&Schema::new(vec![Field::new(
            "d",
            DataType::Date32,
            true
        )])));
        assert!(!supports(&Schema::new(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true
        )])));
        assert!(!supports(&Schema::empty()));
    }
}
