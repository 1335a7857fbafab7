//! Buckets drained into files, in cell order: a file per `file_res` cell, a row group per
//! `chunk_res` cell (or per `max_rows` rows). Buckets may be finer than row groups (see
//! [`key_res`]): consecutive buckets of one row group are appended to it, and a row group is
//! cut at [`MAX_GROUP_ROWS`] rows whatever its cell, so neither a bucket nor a row group grows
//! with the raster.

use fused_ingest::ChunkEntry;
use h3o::{CellIndex, Resolution};

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

/// Drains `buckets` into files opened by `open(file cell)`, calling `each` with every
/// bucket's rows once written.
pub(crate) fn drain(
    buckets: Buckets,
    cuts: Cuts,
    layout: &Layout,
    open: &mut dyn FnMut(u64) -> Result<FileWriter>,
    each: &mut dyn FnMut(&[Row]) -> Result<()>,
) -> Result<Drained> {
    let mut out = Drained::default();
    // The open file, its open row group's cell and box.
    let mut file: Option<(u64, FileWriter)> = None;
    let mut group: Option<u64> = None;
    let mut extent: Option<[f64; 4]> = None;
    let group_bbox = |g: Option<u64>, extent: Option<[f64; 4]>| -> [f64; 4] {
        g.filter(|g| *g != 0)
            .and_then(|g| descendants_bbox(g, cuts.res))
            .or(extent)
            .unwrap_or([-180.0, -90.0, 180.0, 90.0])
    };
    let max_rows = if cuts.max_rows == 0 {
        MAX_GROUP_ROWS
    } else {
        cuts.max_rows.min(MAX_GROUP_ROWS)
    };
    for bucket in buckets.drain()? {
        let (_, rows) = bucket?;
        let Some(first) = rows.first() else { continue };
        let (file_id, group_id) = (
            parent(first.0, cuts.file_res),
            parent(first.0, cuts.chunk_res),
        );
        let new_file = file.as_ref().is_none_or(|(id, _)| *id != file_id);
        if let Some((_, w)) = file.as_mut()
            && (new_file || (cuts.chunk_res.is_some() && group != Some(group_id)))
        {
            w.end_chunk(group_bbox(group, extent))?;
            extent = None;
        }
        if new_file {
            if let Some((_, w)) = file.take() {
                out.index.extend(w.finish()?);
            }
            file = Some((file_id, open(file_id)?));
            out.files += 1;
        }
        group = Some(group_id);
        let Some((_, w)) = file.as_mut() else {
            continue;
        };
        // Cut by rows: always at `max_rows`, and only there without `chunk_res`.
        let mut rest: &[Row] = &rows;
        while !rest.is_empty() {
            let room = (max_rows - w.pending().min(max_rows)).max(1) as usize;
            let (part, tail) = rest.split_at(room.min(rest.len()));
            w.append(layout, part)?;
            if cuts.chunk_res.is_none() {
                extent = Some(union(extent, cells_bbox(part.iter().map(|r| r.0))));
            }
            if w.pending() >= max_rows {
                w.end_chunk(group_bbox(group, extent))?;
                extent = None;
            }
            rest = tail;
        }
        out.rows += rows.len() as u64;
        each(&rows)?;
    }
    if let Some((_, mut w)) = file.take() {
        w.end_chunk(group_bbox(group, extent))?;
        out.index.extend(w.finish()?);
    }
    Ok(out)
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
