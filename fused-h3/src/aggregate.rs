//! Rows re-aggregated to a coarser resolution (overviews, and reads at a resolution without
//! an overview): statistics merged per parent cell, categories summed per (parent, value) with
//! new totals.

use h3o::{CellIndex, Resolution};

use crate::extract::{Counts, FastMap, Partial, Stats};
use crate::write::{Row, Value};

/// Sorted output rows of merged partials (statistics, or categories with `cnt_total`).
pub(crate) fn rows_of(p: Partial, counts_mode: bool) -> Vec<Row> {
    if counts_mode {
        rows_of_counts(p.counts)
    } else {
        let mut stats = p.stats;
        merge_stats(&mut stats);
        stats
            .into_iter()
            .map(|(h, s)| (h, Value::Stats(s)))
            .collect()
    }
}

/// Sorts statistics by cell and merges those of one cell (a sorted input is only checked).
pub(crate) fn merge_stats(stats: &mut Vec<(u64, Stats)>) {
    if stats.is_sorted_by(|a, b| a.0 < b.0) {
        return;
    }
    if u32::try_from(stats.len()).is_err() {
        stats.sort_unstable_by_key(|r| r.0);
    } else {
        sort_by_cell(stats);
    }
    stats.dedup_by(|b, a| {
        let same = a.0 == b.0;
        if same {
            a.1.merge(&b.1);
        }
        same
    });
}

/// Sorts (cell, position) pairs, not the 64-byte records, then gathers them.
fn sort_by_cell(stats: &mut Vec<(u64, Stats)>) {
    let mut order: Vec<(u64, u32)> = stats
        .iter()
        .enumerate()
        .map(|(i, (h, _))| (*h, i as u32))
        .collect();
    order.sort_unstable();
    let sorted: Vec<(u64, Stats)> = order.iter().map(|(_, i)| stats[*i as usize]).collect();
    *stats = sorted;
}

fn rows_of_counts(counts: Counts) -> Vec<Row> {
    let mut totals: FastMap<u64, u64> = FastMap::default();
    for ((h, _), (n, _)) in &counts {
        *totals.entry(*h).or_default() += n;
    }
    let mut rows: Vec<Row> = counts
        .into_iter()
        .map(|((h, bits), (cnt, sources))| {
            (
                h,
                Value::Count {
                    data: f64::from_bits(bits),
                    cnt,
                    cnt_total: totals.get(&h).copied().unwrap_or(cnt),
                    sources,
                },
            )
        })
        .collect();
    rows.sort_unstable_by(|a, b| {
        let da = match a.1 {
            Value::Count { data, .. } => data,
            Value::Stats(_) => 0.0,
        };
        let db = match b.1 {
            Value::Count { data, .. } => data,
            Value::Stats(_) => 0.0,
        };
        a.0.cmp(&b.0).then(da.total_cmp(&db))
    });
    rows
}

/// Rows taken to their parents at `res` and merged. Rows sorted by cell (as every bucket
/// and chunk is) merge in one pass; any order is accepted.
pub(crate) fn to_parent(rows: &[Row], res: Resolution) -> Vec<Row> {
    let parent = |h: u64| {
        CellIndex::try_from(h)
            .ok()
            .and_then(|c| c.parent(res))
            .map(u64::from)
    };
    let mut stats: Vec<(u64, Stats)> = Vec::new();
    let mut counts: Counts = FastMap::default();
    let mut any_counts = false;
    for (h, v) in rows {
        let Some(p) = parent(*h) else { continue };
        match v {
            Value::Stats(s) => match stats.last_mut() {
                Some((last, t)) if *last == p => t.merge(s),
                _ => stats.push((p, *s)),
            },
            Value::Count {
                data, cnt, sources, ..
            } => {
                any_counts = true;
                let e = counts.entry((p, data.to_bits())).or_insert((0, 0));
                e.0 += cnt;
                e.1 |= sources;
            }
        }
    }
    if any_counts {
        return rows_of_counts(counts);
    }
    merge_stats(&mut stats);
    stats
        .into_iter()
        .map(|(h, s)| (h, Value::Stats(s)))
        .collect()
}
