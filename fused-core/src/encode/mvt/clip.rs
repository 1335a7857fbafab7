//! Clipping and simplification in tile coordinates (floating point, before rounding).

/// A point in tile coordinates: `0..extent` across the tile, y pointing down.
pub(super) type Pt = [f64; 2];

/// An axis-aligned box `[min, max]` in tile coordinates (the tile plus its buffer).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClipBox {
    pub(super) min: f64,
    pub(super) max: f64,
}

impl ClipBox {
    fn inside(&self, p: Pt) -> bool {
        p[0] >= self.min && p[0] <= self.max && p[1] >= self.min && p[1] <= self.max
    }

    /// True when the box `[lo, hi]` lies inside this one.
    pub(super) fn contains_box(&self, lo: Pt, hi: Pt) -> bool {
        self.inside(lo) && self.inside(hi)
    }

    /// True when the box `[lo, hi]` does not touch this one.
    pub(super) fn misses_box(&self, lo: Pt, hi: Pt) -> bool {
        hi[0] < self.min || hi[1] < self.min || lo[0] > self.max || lo[1] > self.max
    }

    /// Keeps the points inside the box.
    pub(super) fn points(&self, pts: &[Pt], out: &mut Vec<Pt>) {
        out.extend(pts.iter().copied().filter(|p| self.inside(*p)));
    }

    /// Cuts a line string to the box; each piece that stays inside is passed to `part`.
    pub(super) fn line(&self, pts: &[Pt], part: &mut impl FnMut(&[Pt])) {
        let mut cur: Vec<Pt> = Vec::new();
        for w in pts.windows(2) {
            match self.segment(w[0], w[1]) {
                Some((a, b)) => {
                    if cur.last() != Some(&a) {
                        if cur.len() >= 2 {
                            part(&cur);
                        }
                        cur.clear();
                        cur.push(a);
                    }
                    cur.push(b);
                    // The segment left the box: the piece ends here.
                    if b != w[1] {
                        if cur.len() >= 2 {
                            part(&cur);
                        }
                        cur.clear();
                    }
                }
                None => {
                    if cur.len() >= 2 {
                        part(&cur);
                    }
                    cur.clear();
                }
            }
        }
        if cur.len() >= 2 {
            part(&cur);
        }
    }

    /// Liang–Barsky: the part of segment `a → b` inside the box.
    fn segment(&self, a: Pt, b: Pt) -> Option<(Pt, Pt)> {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [
            (-dx, a[0] - self.min),
            (dx, self.max - a[0]),
            (-dy, a[1] - self.min),
            (dy, self.max - a[1]),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
                if t0 > t1 {
                    return None;
                }
            }
        }
        let at = |t: f64| [a[0] + t * dx, a[1] + t * dy];
        Some((
            if t0 > 0.0 { at(t0) } else { a },
            if t1 < 1.0 { at(t1) } else { b },
        ))
    }

    /// Sutherland–Hodgman: the ring (without its closing point) cut to the box. A ring around
    /// the box becomes the box; a ring outside it becomes empty.
    pub(super) fn ring(&self, ring: &[Pt], out: &mut Vec<Pt>) {
        let mut a: Vec<Pt> = ring.to_vec();
        let mut b: Vec<Pt> = Vec::with_capacity(ring.len() + 4);
        // (axis, bound, keep when coordinate >= bound)
        for (axis, bound, keep_above) in [
            (0usize, self.min, true),
            (0, self.max, false),
            (1, self.min, true),
            (1, self.max, false),
        ] {
            b.clear();
            let inside = |p: &Pt| {
                if keep_above {
                    p[axis] >= bound
                } else {
                    p[axis] <= bound
                }
            };
            let n = a.len();
            for i in 0..n {
                let cur = a[i];
                let prev = a[(i + n - 1) % n];
                let (ci, pi) = (inside(&cur), inside(&prev));
                if ci != pi {
                    let t = (bound - prev[axis]) / (cur[axis] - prev[axis]);
                    let mut x = [
                        prev[0] + t * (cur[0] - prev[0]),
                        prev[1] + t * (cur[1] - prev[1]),
                    ];
                    x[axis] = bound;
                    b.push(x);
                }
                if ci {
                    b.push(cur);
                }
            }
            std::mem::swap(&mut a, &mut b);
            if a.is_empty() {
                break;
            }
        }
        out.extend_from_slice(&a);
    }
}

/// Douglas–Peucker: marks in `keep` the points of `pts` a simplification within `tolerance`
/// keeps (always the first and the last).
pub(super) fn simplify(pts: &[Pt], tolerance: f64, keep: &mut Vec<bool>) {
    keep.clear();
    keep.resize(pts.len(), false);
    let n = pts.len();
    if n == 0 {
        return;
    }
    keep[0] = true;
    keep[n - 1] = true;
    if n < 3 {
        return;
    }
    let tol2 = tolerance * tolerance;
    let mut stack = vec![(0usize, n - 1)];
    while let Some((first, last)) = stack.pop() {
        let (a, b) = (pts[first], pts[last]);
        let mut worst = (0.0f64, 0usize);
        for (i, p) in pts.iter().enumerate().take(last).skip(first + 1) {
            let d = dist2_to_segment(*p, a, b);
            if d > worst.0 {
                worst = (d, i);
            }
        }
        if worst.0 > tol2 {
            keep[worst.1] = true;
            if worst.1 - first > 1 {
                stack.push((first, worst.1));
            }
            if last - worst.1 > 1 {
                stack.push((worst.1, last));
            }
        }
    }
}

/// Squared distance from `p` to the segment `a → b`.
fn dist2_to_segment(p: Pt, a: Pt, b: Pt) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    x * x + y * y
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: ClipBox = ClipBox {
        min: 0.0,
        max: 10.0,
    };

    #[test]
    fn a_line_crossing_the_box_is_cut_at_its_edges() {
        let mut parts = Vec::new();
        B.line(&[[-5.0, 5.0], [15.0, 5.0]], &mut |p| parts.push(p.to_vec()));
        assert_eq!(parts, [vec![[0.0, 5.0], [10.0, 5.0]]]);
        // In, out, in again: two pieces.
        let mut parts = Vec::new();
        B.line(
            &[[1.0, 1.0], [1.0, 20.0], [2.0, 20.0], [2.0, 1.0]],
            &mut |p| parts.push(p.to_vec()),
        );
        assert_eq!(
            parts,
            [vec![[1.0, 1.0], [1.0, 10.0]], vec![[2.0, 10.0], [2.0, 1.0]]]
        );
        let mut n = 0;
        B.line(&[[20.0, 20.0], [30.0, 30.0]], &mut |_| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn a_ring_around_the_box_becomes_the_box() {
        let mut out = Vec::new();
        B.ring(
            &[[-5.0, -5.0], [15.0, -5.0], [15.0, 15.0], [-5.0, 15.0]],
            &mut out,
        );
        assert_eq!(out.len(), 4);
        for p in &out {
            assert!(p[0] == 0.0 || p[0] == 10.0);
            assert!(p[1] == 0.0 || p[1] == 10.0);
        }
        out.clear();
        B.ring(&[[20.0, 20.0], [30.0, 20.0], [30.0, 30.0]], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn simplification_drops_points_within_the_tolerance() {
        let pts = [[0.0, 0.0], [5.0, 0.2], [10.0, 0.0], [10.0, 10.0]];
        let mut keep = Vec::new();
        simplify(&pts, 0.5, &mut keep);
        assert_eq!(keep, [true, false, true, true]);
        simplify(&pts, 0.1, &mut keep);
        assert_eq!(keep, [true, true, true, true]);
    }
}
