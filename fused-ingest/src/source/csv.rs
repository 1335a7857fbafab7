//! CSV inputs: the schema inferred from the first rows; geometry from lon/lat or WKT columns.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;

use super::{Opened, Unit, detect_geometry};
use crate::error::{Error, Result};
use crate::options::IngestOptions;

/// Rows read to infer column types.
const INFER_ROWS: usize = 10_000;

pub(super) fn open(path: &Path, opts: &IngestOptions) -> Result<Opened> {
    let delimiter = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        b'\t'
    } else {
        b','
    };
    let format = Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let (schema, _) = format
        .infer_schema(BufReader::new(&mut file), Some(INFER_ROWS))
        .map_err(|e| Error::input(path, None, format!("not a readable CSV file: {e}")))?;
    if schema.fields().is_empty() {
        return Err(Error::input(path, None, "the CSV file has no header"));
    }
    let names: Vec<(String, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), false))
        .collect();
    let geom = detect_geometry(path, &names, opts)?;
    let mut projection = None;
    if let Some(load) = &opts.load_columns {
        let mut idx = Vec::new();
        for c in load.iter().map(String::as_str).chain(geom.columns()) {
            let i = schema.index_of(c).map_err(|_| {
                Error::input(
                    path,
                    None,
                    format!("load_columns names {c:?}, which is not a column of this file"),
                )
            })?;
            idx.push(i);
        }
        idx.sort_unstable();
        idx.dedup();
        projection = Some(idx);
    }
    file.rewind()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let p = path.to_path_buf();
    let schema = Arc::new(schema);
    let unit: Unit = Box::new(move || {
        let mut b = ReaderBuilder::new(schema)
            .with_format(format)
            .with_batch_size(64 * 1024);
        if let Some(idx) = projection {
            b = b.with_projection(idx);
        }
        let reader = b
            .build(BufReader::with_capacity(1 << 20, file))
            .map_err(|e| Error::input(&p, None, e))?;
        let file = p.clone();
        let mut row = 0u64;
        Ok(Box::new(reader.map(move |r| {
            r.inspect(|b| row += b.num_rows() as u64)
                .map_err(|e| Error::input(&file, Some(row), e))
        })) as super::BatchIter)
    });
    Ok(Opened {
        file: path.to_path_buf(),
        geom,
        crs: None,
        units: vec![unit],
        rows: None,
    })
}
