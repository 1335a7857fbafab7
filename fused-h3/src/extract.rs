//! Pixels into cells: each valid pixel's centre, in lon/lat, is assigned the cell at
//! `res + res_offset`; with `k_ring` > 0 the cells within that distance count too; each is
//! then taken to its parent at `res`. Hits are aggregated per cell ([`Stats`]) or per
//! (cell, value) ([`Counts`]) — one partial per chunk, merged afterwards.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use fused_core::proj::Projection;
use h3o::{CellIndex, Resolution};

use crate::geotiff::Window;

/// Running statistics of the values hitting one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    /// Hits.
    pub(crate) n: u64,
    /// Sum of values.
    pub(crate) sum: f64,
    /// Sum of squared values.
    pub(crate) sumsq: f64,
    /// Smallest value.
    pub(crate) min: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// Sources the values came from (bit i: input i; inputs past 63 share bit 63).
    pub(crate) sources: u64,
}

impl Stats {
    /// One value from the sources `source` (bits).
    pub(crate) fn new(v: f64, source: u64) -> Self {
        Self {
            n: 1,
            sum: v,
            sumsq: v * v,
            min: v,
            max: v,
            sources: source,
        }
    }

    /// Merges another partial.
    pub(crate) fn merge(&mut self, o: &Stats) {
        self.n += o.n;
        self.sum += o.sum;
        self.sumsq += o.sumsq;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sources |= o.sources;
    }
}

/// Hits per (cell, value bits), with the sources.
pub(crate) type Counts = FastMap<(u64, u64), (u64, u64)>;

/// A hash map for cell indexes: they are already well spread, so a multiply-and-fold beats
/// the default SipHash several times over (nothing here is keyed by untrusted input an
/// attacker could choose to collide).
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<CellHasher>>;

/// The hasher of [`FastMap`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let x = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// A chunk's partial result.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    /// Per cell, for the statistics metrics (a cell may repeat: merged when drained).
    pub(crate) stats: Vec<(u64, Stats)>,
    /// Per (cell, value), for `cnt`.
    pub(crate) counts: Counts,
    /// Valid pixels seen.
    pub(crate) pixels: u64,
}

/// How to assign pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Assign {
    /// Resolution of the first assignment.
    pub(crate) assign_res: Resolution,
    /// Output resolution.
    pub(crate) res: Resolution,
    /// Ring distance.
    pub(crate) k_ring: u32,
    /// Count (category) mode instead of statistics.
    pub(crate) counts: bool,
    /// The raster's CRS.
    pub(crate) projection: Projection,
    /// Values equal to this are skipped (NaN always is).
    pub(crate) nodata: Option<f64>,
    /// The raster's geotransform.
    pub(crate) transform: [f64; 6],
}

/// Assigns the pixels of a window (`centre(col, row)` gives CRS coordinates) from source
/// `source` (its index). Pixels are first grouped by their own cell (several pixels share
/// one), then each group's disk is expanded once and taken to the parents — the same hits as
/// expanding every pixel, for a fraction of the work.
pub(crate) fn extract(w: &Window, a: &Assign, source: usize, out: &mut Partial) {
    let bit = 1u64 << source.min(63);
    let nodata = a.nodata;
    let valid = move |v: f64| !(v.is_nan() || nodata == Some(v));
    let (cells, spans) = crate::fill::assign(w, &a.transform, a.projection, a.assign_res, &valid);
    let mut disk: Vec<CellIndex> = Vec::with_capacity(64);
    let expand = |cell: u64, disk: &mut Vec<CellIndex>| {
        disk.clear();
        let Ok(cell) = CellIndex::try_from(cell) else {
            return;
        };
        if a.k_ring == 0 {
            disk.push(cell);
        } else {
            disk.extend(cell.grid_disk::<Vec<_>>(a.k_ring));
        }
    };
    if a.counts {
        let mut own: FastMap<(u64, u64), u64> = FastMap::default();
        for (v, cell) in w.values.iter().zip(cells) {
            let Some(cell) = cell else { continue };
            out.pixels += 1;
            *own.entry((u64::from(cell), v.to_bits())).or_insert(0) += 1;
        }
        for ((cell, value), n) in own {
            expand(cell, &mut disk);
            for d in &disk {
                let Some(p) = d.parent(a.res) else { continue };
                let e = out.counts.entry((u64::from(p), value)).or_insert((0, 0));
                e.0 += n;
                e.1 |= bit;
            }
        }
        return;
    }
    // Statistics of each pixel's own cell: gathered in a map when cells span many pixels
    // (few cells), else listed as they come (the buckets sort and merge them).
    let own: Vec<(u64, Stats)> = if spans {
        let mut m: FastMap<u64, Stats> = FastMap::default();
        for (v, c) in w.values.iter().zip(cells) {
            let Some(c) = c else { continue };
            let s = Stats::new(*v, bit);
            m.entry(u64::from(c))
                .and_modify(|t| t.merge(&s))
                .or_insert(s);
            out.pixels += 1;
        }
        m.into_iter().collect()
    } else {
        let v: Vec<(u64, Stats)> = w
            .values
            .iter()
            .zip(cells)
            .filter_map(|(v, c)| c.map(|c| (u64::from(c), Stats::new(*v, bit))))
            .collect();
        out.pixels += v.len() as u64;
        v
    };
    if a.k_ring == 0 && a.assign_res == a.res {
        out.stats.extend(own);
        return;
    }
    let mut hits: Vec<(u64, Stats)> = Vec::with_capacity(own.len());
    for (cell, st) in own {
        expand(cell, &mut disk);
        for d in &disk {
            if let Some(p) = d.parent(a.res) {
                hits.push((u64::from(p), st));
            }
        }
    }
    crate::aggregate::merge_stats(&mut hits);
    out.stats.extend(hits);
}
