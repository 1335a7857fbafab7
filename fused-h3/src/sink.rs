//! Buckets drained into files, in cell order: a file per `file_res` cell, a row group per
//! `chunk_res` cell (or per `max_rows` rows). Buckets may be finer than row groups (see
//! [`key_res`]): consecutive buckets of one row group are appended to it, and a row group is
//! cut at [`MAX_GROUP_ROWS`] rows whatever its cell, so neither a bucket nor a row group grows
//! with the raster.

use fused_ingest::ChunkEntry;
use h3o::{CellIndex, Resolution};
use rayon::prelude::*;

use crate::bucket::Buckets;
use crate::error::Result;
use crate::write::{FileWriter, Layout, Row, cells_bbox, descendants_bbox};

/// Rows past which a row group is closed even within one cell.
pub(crate) const MAX_GROUP_ROWS: u64 = 1 << 22;

/// Records a bucket should hold at most (about 32–56 MB serialised).
const BUCKET_RECORDS: f64 = (1 << 20) as f64;

/// The coarsest resolution, not coarser than `coarsest`, whose cells hold at most
/// [`BUCKET_RECORDS`] records when each cell at `res` holds `per_cell` of them.
pub(crate) fn key_res(res: u8, coarsest: u8, per_cell: f64) -> Result<Resolution> {
    let mut kr = coarsest.min(res);
    while kr < res && 7f64.powi(i32::from(res - kr)) * per_cell > BUCKET_RECORDS {
        kr += 1;
    }
    Resolution::try_from(kr)
        .map_err(|e| crate::error::Error::Options(format!("resolution {kr}: {e}")))
}

/// How sorted rows are cut into files and row groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cuts {
    /// A file per cell of this resolution (`None`: one file).
    pub(crate) file_res: Option<Resolution>,
    /// A row group per cell of this resolution (`None`: per `max_rows`).
    pub(crate) chunk_res: Option<Resolution>,
    /// Rows per row group without `chunk_res`.
    pub(crate) max_rows: u64,
    /// The rows' resolution.
    pub(crate) res: Resolution,
}

/// What draining wrote.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Every row group, file by file.
    pub(crate) index: Vec<ChunkEntry>,
    /// Files created.
    pub(crate) files: u64,
    /// Rows written.
    pub(crate) rows: u64,
}

fn parent(h: u64, r: Option<Resolution>) -> u64 {
    match r {
        Some(r) => CellIndex::try_from(h)
            .ok()
            .and_then(|c| c.parent(r))
            .map_or(0, u64::from),
        None => 0,
    }
}

fn union(a: Option<[f64; 4]>, b: [f64; 4]) -> [f64; 4] {
    match a {
        None => b,
        Some(a) => [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ],
    }
}

/// What opens a file for a file cell.
pub(crate) type Open<'a> = dyn FnMut(u64) -> Result<FileWriter> + Send + 'a;
/// What sees every bucket's rows once written.
pub(crate) type Each<'a> = dyn FnMut(&[Row]) -> Result<()> + Send + 'a;

/// Buckets loaded at once while the previous ones are written.
const LOAD_AHEAD: usize = 2;

/// Drains `buckets` into files opened by `open(file cell)`, calling `each` with every
/// bucket's rows once written. Buckets are loaded (read, sorted, merged) on the other cores
/// while the previous ones are encoded.
pub(crate) fn drain(
    buckets: Buckets,
    cuts: Cuts,
    layout: &Layout,
    open: &mut Open<'_>,
    each: &mut Each<'_>,
) -> Result<Drained> {
    let loader = buckets.drain();
    let mut sink = Sink {
        cuts,
        layout,
        open,
        each,
        file: None,
        group: None,
        extent: None,
        max_rows: if cuts.max_rows == 0 {
            MAX_GROUP_ROWS
        } else {
            cuts.max_rows.min(MAX_GROUP_ROWS)
        },
        out: Drained::default(),
    };
    let load = |keys: &[u64]| -> Result<Vec<Vec<Row>>> {
        keys.par_iter().map(|k| loader.load(*k)).collect()
    };
    let mut batches = loader.keys().chunks(LOAD_AHEAD);
    let mut current = batches.next().map(load).transpose()?;
    while let Some(loaded) = current.take() {
        let next = batches.next();
        let (written, next) = rayon::join(
            || loaded.into_iter().try_for_each(|rows| sink.put(&rows)),
            || next.map(load).transpose(),
        );
        written?;
        current = next?;
    }
    sink.finish()
}

/// Files being written: the open file, its open row group's cell and box.
struct Sink<'a, 'b> {
    cuts: Cuts,
    layout: &'a Layout,
    open: &'a mut Open<'b>,
    each: &'a mut Each<'b>,
    file: Option<(u64, FileWriter)>,
    group: Option<u64>,
    extent: Option<[f64; 4]>,
    max_rows: u64,
    out: Drained,
}

impl Sink<'_, '_> {
    fn group_bbox(&self) -> [f64; 4] {
        self.group
            .filter(|g| *g != 0)
            .and_then(|g| descendants_bbox(g, self.cuts.res))
            .or(self.extent)
            .unwrap_or([-180.0, -90.0, 180.0, 90.0])
    }

    fn end_chunk(&mut self) -> Result<()> {
        let bbox = self.group_bbox();
        if let Some((_, w)) = self.file.as_mut() {
            w.end_chunk(bbox)?;
        }
        self.extent = None;
        Ok(())
    }

    /// Writes one bucket's sorted rows.
    fn put(&mut self, rows: &[Row]) -> Result<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let cuts = self.cuts;
        let (file_id, group_id) = (
            parent(first.0, cuts.file_res),
            parent(first.0, cuts.chunk_res),
        );
        let new_file = self.file.as_ref().is_none_or(|(id, _)| *id != file_id);
        if self.file.is_some()
            && (new_file || (cuts.chunk_res.is_some() && self.group != Some(group_id)))
        {
            self.end_chunk()?;
        }
        if new_file {
            if let Some((_, w)) = self.file.take() {
                self.out.index.extend(w.finish()?);
            }
            self.file = Some((file_id, (self.open)(file_id)?));
            self.out.files += 1;
        }
        self.group = Some(group_id);
        // Cut by rows: always at `max_rows`, and only there without `chunk_res`.
        let mut rest: &[Row] = rows;
        while !rest.is_empty() {
            let Some((_, w)) = self.file.as_mut() else {
                break;
            };
            let room = (self.max_rows - w.pending().min(self.max_rows)).max(1) as usize;
            let (part, tail) = rest.split_at(room.min(rest.len()));
            w.append(self.layout, part)?;
            let full = w.pending() >= self.max_rows;
            if cuts.chunk_res.is_none() {
                self.extent = Some(union(self.extent, cells_bbox(part.iter().map(|r| r.0))));
            }
            if full {
                self.end_chunk()?;
            }
            rest = tail;
        }
        self.out.rows += rows.len() as u64;
        (self.each)(rows)
    }

    fn finish(mut self) -> Result<Drained> {
        self.end_chunk()?;
        if let Some((_, w)) = self.file.take() {
            self.out.index.extend(w.finish()?);
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_get_finer_as_cells_hold_more_records() {
        // One record per cell: 7^7 cells fit, so the chunk resolution is kept.
        assert_eq!(u8::from(key_res(13, 6, 1.0).unwrap()), 6);
        // Hundreds of categories per cell: finer buckets.
        assert_eq!(u8::from(key_res(11, 4, 168.0).unwrap()), 7);
        // A single cell past the budget: buckets are cells at `res` itself.
        assert_eq!(u8::from(key_res(7, 2, 1e7).unwrap()), 7);
        // Never coarser than asked.
        assert_eq!(u8::from(key_res(9, 5, 0.001).unwrap()), 5);
    }
}
