//! The spatial partitioner: a k-d bisection of row centroids into partitions whose summed
//! weight stays within a budget.
//!
//! A partition owns a *cell* (a box of the plane; the root cell is the centroids' box, widened
//! so that it obeys the ratios). It is split when:
//! 1. UTM zones are forced and its centroids span several zones (or both hemispheres): at the
//!    zone boundary (or the equator) nearest their mean;
//! 2. its cell is wider than `max_width_ratio` × its height (or taller than `max_height_ratio`
//!    × its width): the cell is halved across its long side;
//! 3. its weight exceeds the budget: at the mean (or weighted median) of its centroids along
//!    the long side of its cell — the other side when that does not separate them; when all
//!    its centroids are identical, into consecutive runs of rows within the budget (if
//!    `split_identical_centroids`), else it stays whole.
//!
//! Empty halves are dropped. Leaves come out in a fixed order (low side first) whatever the
//! number of threads, and each leaf's rows are in input order, so equal inputs give equal
//! partitions.

use std::ops::Range;

use fused_core::proj::utm_zone;

use crate::options::SplitMethod;

/// A row as the partitioner sees it: its centroid, its weight and its index. Rows are moved
/// around in one contiguous array, so every pass reads memory in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Item {
    /// Centroid longitude.
    pub x: f32,
    /// Centroid latitude.
    pub y: f32,
    /// Weight by the partitioning method.
    pub w: f32,
    /// Index of the row in the input.
    pub row: u32,
}

/// How to partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    /// The most weight per partition.
    pub budget: f64,
    /// Cells wider than this times their height are halved.
    pub max_width_ratio: f64,
    /// Cells taller than this times their width are halved.
    pub max_height_ratio: f64,
    /// Keep each partition within one UTM zone and hemisphere.
    pub utm: bool,
    /// Where over-budget partitions are split.
    pub split: SplitMethod,
    /// Split identical-centroid partitions by rows.
    pub split_identical: bool,
}

/// A cell: `[minx, miny, maxx, maxy]`.
pub(crate) type Cell = [f64; 4];

/// A partition: its cell and the range of the item slice holding its rows (sorted by row).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub cell: Cell,
    pub range: Range<usize>,
}

/// How rows reach leaves: the splits the partitioner made, to route rows it did not see (when
/// it partitioned a sample).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A leaf, by the start of its range.
    Leaf(usize),
    /// Rows below `at` on `axis` go low.
    Split {
        axis: u8,
        at: f64,
        lo: Box<Node>,
        hi: Box<Node>,
    },
    /// Identical centroids split by rows: leaves by the start of their ranges.
    Rows(Vec<usize>),
    /// No row went here.
    Empty,
}

impl Node {
    /// The start of the range of the leaf a row goes to (`None` only for an empty tree).
    pub(crate) fn route(&self, x: f32, y: f32, row: u64) -> Option<usize> {
        let mut n = self;
        loop {
            match n {
                Node::Leaf(s) => return Some(*s),
                Node::Rows(leaves) => {
                    return leaves
                        .get((row % leaves.len().max(1) as u64) as usize)
                        .copied();
                }
                Node::Empty => return None,
                Node::Split { axis, at, lo, hi } => {
                    let c = f64::from(if *axis == 0 { x } else { y });
                    let (first, other) = if c < *at { (lo, hi) } else { (hi, lo) };
                    n = if matches!(**first, Node::Empty) {
                        other
                    } else {
                        first
                    };
                }
            }
        }
    }
}

/// Partitions `items` in place (the root cell fitted to their centroids when `root` is
/// `None`); leaves cover the slice in order, low side first, each sorted by row.
pub(crate) fn partition(items: &mut [Item], root: Option<Cell>, p: &Params) -> Vec<Leaf> {
    let leaves = partition_unsorted(items, root, p);
    for leaf in &leaves {
        items[leaf.range.clone()].sort_unstable_by_key(|i| i.row);
    }
    leaves
}

/// [`partition`] without sorting each leaf by row (for a level that is partitioned again).
pub(crate) fn partition_unsorted(items: &mut [Item], root: Option<Cell>, p: &Params) -> Vec<Leaf> {
    partition_tree(items, root, p).0
}

/// [`partition_unsorted`], with the tree of splits.
pub(crate) fn partition_tree(
    items: &mut [Item],
    root: Option<Cell>,
    p: &Params,
) -> (Vec<Leaf>, Node) {
    if items.is_empty() {
        return (Vec::new(), Node::Empty);
    }
    let root = root.unwrap_or_else(|| root_cell(items, p));
    let mut out = Vec::new();
    let tree = split(items, 0, root, p, 0, &mut out);
    (out, tree)
}

/// The box of the centroids, its short side widened (around its centre) to obey the ratios.
pub(crate) fn root_cell(items: &[Item], p: &Params) -> Cell {
    let s = Stats::of(items, false);
    let mut c = [s.min[0], s.min[1], s.max[0], s.max[1]];
    let (w, h) = (c[2] - c[0], c[3] - c[1]);
    if w > p.max_width_ratio * h {
        let grow = (w / p.max_width_ratio - h) / 2.0;
        c[1] -= grow;
        c[3] += grow;
    } else if h > p.max_height_ratio * w {
        let grow = (h / p.max_height_ratio - w) / 2.0;
        c[0] -= grow;
        c[2] += grow;
    }
    c
}

/// Cells smaller than this (degrees, ~0.1 mm) are not halved for their ratio.
const MIN_CELL: f64 = 1e-9;

/// Rows below which recursion stays on one thread.
const PARALLEL_ROWS: usize = 64 * 1024;

/// Deepest recursion (a guard: cells halve at every level, so this is never reached with
/// finite coordinates).
const MAX_DEPTH: u32 = 256;

/// What one pass over a partition learns.
#[derive(Debug, Clone, Copy)]
struct Stats {
    weight: f64,
    min: [f64; 2],
    max: [f64; 2],
    sum: [f64; 2],
    zones: (u8, u8),
    south: bool,
    north: bool,
}

impl Stats {
    fn of(items: &[Item], utm: bool) -> Self {
        let mut s = Stats {
            weight: 0.0,
            min: [f64::INFINITY; 2],
            max: [f64::NEG_INFINITY; 2],
            sum: [0.0; 2],
            zones: (u8::MAX, 0),
            south: false,
            north: false,
        };
        for i in items {
            let (x, y) = (f64::from(i.x), f64::from(i.y));
            s.weight += f64::from(i.w);
            s.min = [s.min[0].min(x), s.min[1].min(y)];
            s.max = [s.max[0].max(x), s.max[1].max(y)];
            s.sum[0] += x;
            s.sum[1] += y;
            if utm {
                let z = utm_zone(x);
                s.zones = (s.zones.0.min(z), s.zones.1.max(z));
                if i.y < 0.0 {
                    s.south = true;
                } else {
                    s.north = true;
                }
            }
        }
        s
    }

    /// Where to split rows spanning several UTM zones: the zone boundary nearest their mean
    /// longitude; else the equator when they span both hemispheres.
    fn utm_split(&self, n: usize) -> Option<(usize, f64)> {
        let (zmin, zmax) = self.zones;
        if zmin < zmax {
            let m = self.sum[0] / n as f64;
            let best = (zmin + 1..=zmax)
                .map(|z| -180.0 + 6.0 * f64::from(z - 1))
                .min_by(|a, b| (a - m).abs().total_cmp(&(b - m).abs()))?;
            return Some((0, best));
        }
        (self.south && self.north).then_some((1, 0.0))
    }
}

fn coord(i: &Item, axis: usize) -> f64 {
    f64::from(if axis == 0 { i.x } else { i.y })
}

fn split(
    items: &mut [Item],
    offset: usize,
    cell: Cell,
    p: &Params,
    depth: u32,
    out: &mut Vec<Leaf>,
) -> Node {
    if items.is_empty() {
        return Node::Empty;
    }
    let n = items.len();
    let leaf = |out: &mut Vec<Leaf>| {
        out.push(Leaf {
            cell,
            range: offset..offset + n,
        });
        Node::Leaf(offset)
    };
    if depth >= MAX_DEPTH {
        return leaf(out);
    }
    let s = Stats::of(items, p.utm);
    let (w, h) = (cell[2] - cell[0], cell[3] - cell[1]);
    // 1. UTM zones and hemispheres.
    if p.utm
        && let Some((axis, at)) = s.utm_split(n)
    {
        return bisect(items, offset, cell, axis, at, p, depth, out);
    }
    // 2. Ratios of the cell. (A degenerate cell — all its centroids on one boundary line — has
    // no ratio, and cells below MIN_CELL are too small for halving to be exact.)
    if w > p.max_width_ratio * h && h > 0.0 && w > MIN_CELL {
        return bisect(items, offset, cell, 0, cell[0] + w / 2.0, p, depth, out);
    }
    if h > p.max_height_ratio * w && w > 0.0 && h > MIN_CELL {
        return bisect(items, offset, cell, 1, cell[1] + h / 2.0, p, depth, out);
    }
    // 3. The budget.
    if s.weight <= p.budget || n == 1 {
        return leaf(out);
    }
    let long = if w >= h { 0 } else { 1 };
    for axis in [long, 1 - long] {
        let (lo, hi) = (s.min[axis], s.max[axis]);
        if lo >= hi {
            continue;
        }
        let mean = s.sum[axis] / n as f64;
        let at = match p.split {
            SplitMethod::Mean => mean,
            SplitMethod::Median => weighted_median(items, axis)
                .filter(|m| *m > lo && *m < hi)
                .unwrap_or(mean),
        };
        return bisect(items, offset, cell, axis, at, p, depth, out);
    }
    // All centroids are identical.
    if !p.split_identical {
        return leaf(out);
    }
    items.sort_unstable_by_key(|i| i.row);
    let mut start = 0;
    let mut acc = 0.0;
    let mut starts = Vec::new();
    for (k, i) in items.iter().enumerate() {
        let w = f64::from(i.w);
        if k > start && acc + w > p.budget {
            out.push(Leaf {
                cell,
                range: offset + start..offset + k,
            });
            starts.push(offset + start);
            start = k;
            acc = 0.0;
        }
        acc += w;
    }
    out.push(Leaf {
        cell,
        range: offset + start..offset + n,
    });
    starts.push(offset + start);
    Node::Rows(starts)
}

/// Splits items at `at` on `axis` (those below go first) and recurses on both halves.
#[allow(clippy::too_many_arguments)]
fn bisect(
    items: &mut [Item],
    offset: usize,
    cell: Cell,
    axis: usize,
    at: f64,
    p: &Params,
    depth: u32,
    out: &mut Vec<Leaf>,
) -> Node {
    let mid = partition_in_place(items, |i| coord(i, axis) < at);
    let (a, b) = items.split_at_mut(mid);
    let (mut ca, mut cb) = (cell, cell);
    ca[2 + axis] = at;
    cb[axis] = at;
    let (lo, hi) = if a.len() + b.len() > PARALLEL_ROWS {
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        let nodes = rayon::join(
            || split(a, offset, ca, p, depth + 1, &mut la),
            || split(b, offset + mid, cb, p, depth + 1, &mut lb),
        );
        out.extend(la);
        out.extend(lb);
        nodes
    } else {
        let lo = split(a, offset, ca, p, depth + 1, out);
        (lo, split(b, offset + mid, cb, p, depth + 1, out))
    };
    Node::Split {
        axis: axis as u8,
        at,
        lo: Box::new(lo),
        hi: Box::new(hi),
    }
}

/// Moves the items for which `below` holds to the front; returns how many there are.
fn partition_in_place(items: &mut [Item], below: impl Fn(&Item) -> bool) -> usize {
    let mut i = 0;
    for j in 0..items.len() {
        if below(&items[j]) {
            items.swap(i, j);
            i += 1;
        }
    }
    i
}

/// The coordinate just above the one below which half the weight lies (rows weighing nothing
/// count as one); sorts the items along `axis`.
fn weighted_median(items: &mut [Item], axis: usize) -> Option<f64> {
    items.sort_unstable_by(|a, b| coord(a, axis).total_cmp(&coord(b, axis)));
    let wt = |i: &Item| if i.w > 0.0 { f64::from(i.w) } else { 1.0 };
    let half = items.iter().map(wt).sum::<f64>() / 2.0;
    let mut acc = 0.0;
    for (k, i) in items.iter().enumerate() {
        acc += wt(i);
        if acc >= half {
            let c = coord(i, axis);
            return items[k..].iter().map(|j| coord(j, axis)).find(|v| *v > c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(budget: f64) -> Params {
        Params {
            budget,
            max_width_ratio: 2.0,
            max_height_ratio: 2.0,
            utm: true,
            split: SplitMethod::Mean,
            split_identical: true,
        }
    }

    fn keys_of(pts: &[(f32, f32, f32)]) -> Vec<Item> {
        pts.iter()
            .enumerate()
            .map(|(row, &(x, y, w))| Item {
                x,
                y,
                w,
                row: row as u32,
            })
            .collect()
    }

    fn check(items: &[Item], leaves: &[Leaf], p: &Params) {
        // Every row in exactly one leaf, leaves covering the slice in order.
        let mut seen = vec![0u8; items.len()];
        let mut next = 0;
        for l in leaves {
            assert_eq!(l.range.start, next);
            next = l.range.end;
            let rows = &items[l.range.clone()];
            for r in rows {
                seen[r.row as usize] += 1;
            }
            let weight: f64 = rows.iter().map(|r| f64::from(r.w)).sum();
            let identical = rows.iter().all(|r| r.x == rows[0].x && r.y == rows[0].y);
            // Budgets hold, except for one row alone.
            assert!(
                weight <= p.budget * (1.0 + 1e-6)
                    || rows.len() == 1
                    || (identical && !p.split_identical),
                "leaf of weight {weight} > {}",
                p.budget
            );
            // Cells hold their centroids and obey the ratios.
            let (w, h) = (l.cell[2] - l.cell[0], l.cell[3] - l.cell[1]);
            if w > 0.0 && h > 0.0 && w.max(h) > MIN_CELL {
                assert!(
                    w <= p.max_width_ratio * h * (1.0 + 1e-9),
                    "cell {:?}",
                    l.cell
                );
                assert!(
                    h <= p.max_height_ratio * w * (1.0 + 1e-9),
                    "cell {:?}",
                    l.cell
                );
            }
            let zones: std::collections::BTreeSet<_> = rows
                .iter()
                .map(|k| {
                    assert!(f64::from(k.x) >= l.cell[0] && f64::from(k.x) <= l.cell[2]);
                    assert!(f64::from(k.y) >= l.cell[1] && f64::from(k.y) <= l.cell[3]);
                    (utm_zone(f64::from(k.x)), k.y < 0.0)
                })
                .collect();
            assert!(!p.utm || zones.len() <= 1, "leaf spans UTM zones {zones:?}");
            assert!(
                rows.windows(2).all(|w| w[0].row < w[1].row),
                "rows in input order"
            );
        }
        assert!(seen.iter().all(|s| *s == 1), "every row exactly once");
    }

    #[test]
    fn identical_centroids_split_by_rows_or_stay_whole() {
        let mut keys = keys_of(&[(1.0, 1.0, 1.0); 10]);
        let p = params(3.0);
        let leaves = partition(&mut keys, None, &p);
        assert_eq!(
            leaves.iter().map(|l| l.range.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let whole = partition(
            &mut keys,
            None,
            &Params {
                split_identical: false,
                ..p
            },
        );
        assert_eq!(whole.len(), 1);
    }

    #[test]
    fn utm_zones_split_at_their_boundary() {
        let mut keys = keys_of(&[(5.9, 10.0, 1.0), (6.1, 10.0, 1.0)]);
        let leaves = partition(&mut keys, None, &params(100.0));
        assert_eq!(leaves.len(), 2);
        assert_eq!(leaves[0].cell[2], 6.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn invariants_hold(
            pts in prop::collection::vec((-30f32..30f32, -20f32..20f32, 0.1f32..5f32), 1..400),
            budget in 1.0f64..200.0,
            median in any::<bool>(),
            utm in any::<bool>(),
            ratio in 1.0f64..4.0,
        ) {
            let mut keys = keys_of(&pts);
            let p = Params {
                budget,
                max_width_ratio: ratio,
                max_height_ratio: ratio,
                utm,
                split: if median { SplitMethod::Median } else { SplitMethod::Mean },
                split_identical: true,
            };
            let (leaves, tree) = partition_tree(&mut keys, None, &p);
            // The tree routes every row to its leaf (or, for identical centroids split by rows,
            // to one of the leaves of that centroid).
            for l in &leaves {
                for k in &keys[l.range.clone()] {
                    let to = tree.route(k.x, k.y, u64::from(k.row)).expect("routed");
                    let target = leaves.iter().find(|t| t.range.start == to).expect("a leaf");
                    prop_assert!(
                        to == l.range.start
                            || keys[target.range.clone()].iter().all(|t| t.x == k.x && t.y == k.y)
                    );
                }
            }
            for l in &leaves {
                keys[l.range.clone()].sort_unstable_by_key(|i| i.row);
            }
            check(&keys, &leaves, &Params { utm, ..p });
            // Deterministic.
            let mut again = keys_of(&pts);
            prop_assert_eq!(&leaves, &partition(&mut again, None, &p));
            prop_assert_eq!(&keys, &again);
        }
    }
}
