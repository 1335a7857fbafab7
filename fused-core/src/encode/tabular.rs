//! Tables as JSON records, CSV (geometry as WKT) and Arrow IPC files.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::geom::{read_wkb, to_geojson, to_wkt};
use crate::output::Table;

/// The table's rows as JSON objects; with `skip_geometry` the geometry column is left out.
pub(crate) fn records(table: &Table, skip_geometry: bool) -> Result<Vec<Value>> {
    let geo_idx = table.geometry_index().filter(|_| skip_geometry);
    let mut out = Vec::with_capacity(table.num_rows());
    for batch in table.batches() {
        let batch = match geo_idx {
            Some(i) => {
                let mut b = batch.clone();
                b.remove_column(i);
                b
            }
            None => batch.clone(),
        };
        if batch.num_columns() == 0 {
            out.extend(std::iter::repeat_n(
                Value::Object(Default::default()),
                batch.num_rows(),
            ));
            continue;
        }
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(&batch)?;
        w.finish()?;
        let bytes = w.into_inner();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(rows)) => out.extend(rows),
            // The writer emits nothing at all for a batch of zero rows.
            _ if batch.num_rows() == 0 => {}
            _ => return Err(Error::Encode("arrow JSON writer produced no array".into())),
        }
    }
    Ok(out)
}

/// JSON records; the geometry column (if any) as GeoJSON geometry objects.
pub(crate) fn table_to_json(table: &Table) -> Result<Vec<u8>> {
    let mut rows = records(table, true)?;
    if let Some(g) = table.geometry() {
        for (row, wkb) in table.wkb_rows().into_iter().enumerate() {
            let v = match wkb {
                Some(w) => to_geojson(&read_wkb(w)?),
                None => Value::Null,
            };
            if let Some(Value::Object(m)) = rows.get_mut(row) {
                m.insert(g.name.clone(), v);
            }
        }
    }
    Ok(serde_json::to_vec(&rows)?)
}

/// The batch with the geometry column replaced by WKT text.
fn with_wkt(table: &Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let Some(idx) = table.geometry_index() else {
        return Ok(batch.clone());
    };
    let one = Table::from_batch(batch.clone())
        .with_geometry(table.schema().field(idx).name(), crate::output::Crs::WGS84)?;
    let mut b = StringBuilder::new();
    for wkb in one.wkb_rows() {
        match wkb {
            Some(w) => b.append_value(to_wkt(&read_wkb(w)?)?),
            None => b.append_null(),
        }
    }
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[idx] = Field::new(fields[idx].name(), DataType::Utf8, true);
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[idx] = Arc::new(b.finish());
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// CSV with a header row; the geometry column as WKT.
pub(crate) fn table_to_csv(table: &Table) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        if table.batches().is_empty() {
            let names: Vec<&str> = table
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            drop(w);
            buf.extend_from_slice(names.join(",").as_bytes());
            buf.push(b'\n');
            return Ok(buf);
        }
        for batch in table.batches() {
            w.write(&with_wkt(table, batch)?)?;
        }
    }
    Ok(buf)
}

/// An Arrow IPC file (Feather v2); geometry stays WKB.
pub(crate) fn table_to_feather(table: &Table) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = arrow::ipc::writer::FileWriter::try_new(&mut buf, table.schema())?;
    for b in table.batches() {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(buf)
}
