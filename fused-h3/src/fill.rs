//! Pixels assigned to cells cell by cell, not pixel by pixel: each cell's boundary is taken to
//! pixel space and filled row by row; only pixels whose centre lies within a hair (ε) of the
//! boundary are checked with a point-to-cell, so the result is exactly the per-pixel-centre
//! assignment. Cells are visited by flooding from a seed pixel's cell to its neighbours while
//! they meet the window; pixels left over (cells across the antimeridian, rotated rasters) get a
//! point-to-cell each.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use fused_core::proj::Projection;
use h3o::{CellIndex, LatLng, Resolution};

use crate::geotiff::Window;

/// Earth radius (m) used to bound how far a cell's edge strays from a straight line.
const R: f64 = 6_371_007.0;

/// The cell of every pixel of `w` whose value passes `valid` (`None` for the others), row-major
/// — the same as `LatLng(centre).to_cell(res)` for each, faster when cells span many pixels —
/// and whether they do (if not, pixels mostly have cells of their own).
pub(crate) fn assign(
    w: &Window,
    transform: &[f64; 6],
    projection: Projection,
    res: Resolution,
    valid: &dyn Fn(f64) -> bool,
) -> (Vec<Option<CellIndex>>, bool) {
    let (ww, wh) = (w.width as usize, w.height as usize);
    let mut out: Vec<Option<CellIndex>> = vec![None; ww * wh];
    let centre = |c: usize, r: usize| -> (f64, f64) {
        let (cc, rr) = (
            f64::from(w.x0) + c as f64 + 0.5,
            f64::from(w.y0) + r as f64 + 0.5,
        );
        (
            transform[0] + cc * transform[1] + rr * transform[2],
            transform[3] + cc * transform[4] + rr * transform[5],
        )
    };
    let point_cell = |c: usize, r: usize| -> Option<CellIndex> {
        let (x, y) = centre(c, r);
        let (lon, lat) = projection.to_lonlat(x, y);
        LatLng::new(lat, lon).ok().map(|ll| ll.to_cell(res))
    };
    let rotated = transform[2] != 0.0 || transform[4] != 0.0;
    let spans = cells_span_pixels(w, transform, projection, res);
    if !rotated && spans {
        // Pixel space of this window: u = column, v = row, pixel centres at integers.
        let to_pixel = |lon: f64, lat: f64| -> (f64, f64) {
            let (x, y) = projection.from_lonlat(lon, lat);
            (
                (x - transform[0]) / transform[1] - 0.5 - f64::from(w.x0),
                (y - transform[3]) / transform[5] - 0.5 - f64::from(w.y0),
            )
        };
        // Pixel size in metres, roughly, to turn edge curvature into pixels.
        let pixel_m = match projection {
            Projection::LonLat => transform[1].abs().to_radians() * R,
            _ => transform[1].abs(),
        };
        let mut visited: HashSet<CellIndex, BuildHasherDefault<crate::extract::CellHasher>> =
            HashSet::default();
        let mut queue: VecDeque<CellIndex> = VecDeque::new();
        let mut seed_from = 0;
        loop {
            // Seed: the first valid pixel not assigned yet.
            let seed = (seed_from..ww * wh).find(|i| out[*i].is_none() && valid(w.values[*i]));
            let Some(i) = seed else { break };
            seed_from = i + 1;
            let Some(cell) = point_cell(i % ww, i / ww) else {
                continue;
            };
            if !visited.insert(cell) {
                // Its cell was filled yet this pixel was left: a hard case, done below.
                continue;
            }
            queue.push_back(cell);
            while let Some(cell) = queue.pop_front() {
                let met = fill_cell(cell, &mut out, w, &to_pixel, pixel_m, valid, &point_cell);
                if met {
                    for n in cell.grid_disk::<Vec<_>>(1) {
                        if visited.insert(n) {
                            queue.push_back(n);
                        }
                    }
                }
            }
        }
    }
    // Whatever is left: one point-to-cell each.
    for r in 0..wh {
        for c in 0..ww {
            let i = r * ww + c;
            if out[i].is_none() && valid(w.values[i]) {
                out[i] = point_cell(c, r);
            }
        }
    }
    (out, spans)
}

/// Whether cells at `res` are large enough (several pixels across) for filling them to beat a
/// point-to-cell per pixel.
fn cells_span_pixels(w: &Window, t: &[f64; 6], p: Projection, res: Resolution) -> bool {
    let (cx, cy) = (
        t[0] + (f64::from(w.x0) + f64::from(w.width) / 2.0) * t[1],
        t[3] + (f64::from(w.y0) + f64::from(w.height) / 2.0) * t[5],
    );
    let (lon, lat) = p.to_lonlat(cx, cy);
    let Ok(ll) = LatLng::new(lat, lon) else {
        return false;
    };
    let pixel_m2 = match p {
        Projection::LonLat => {
            let m = t[1].abs().to_radians() * R;
            m * t[5].abs().to_radians() * R * lat.to_radians().cos()
        }
        _ => (t[1] * t[5]).abs(),
    };
    ll.to_cell(res).area_m2() > 8.0 * pixel_m2
}

/// Fills the pixels of `cell` in the window; true when the cell meets the window (so its
/// neighbours may too).
fn fill_cell(
    cell: CellIndex,
    out: &mut [Option<CellIndex>],
    w: &Window,
    to_pixel: &dyn Fn(f64, f64) -> (f64, f64),
    pixel_m: f64,
    valid: &dyn Fn(f64) -> bool,
    point_cell: &dyn Fn(usize, usize) -> Option<CellIndex>,
) -> bool {
    let (ww, wh) = (w.width as usize, w.height as usize);
    let boundary = cell.boundary();
    let verts: Vec<LatLng> = boundary.iter().copied().collect();
    if verts.len() < 3 {
        return false;
    }
    let lons = verts.iter().map(|v| v.lng());
    let (lo, hi) = lons.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if hi - lo > 180.0 {
        // Across the antimeridian: its pixels are done one by one.
        return true;
    }
    let poly: Vec<(f64, f64)> = verts.iter().map(|v| to_pixel(v.lng(), v.lat())).collect();
    if poly.iter().any(|(u, v)| !u.is_finite() || !v.is_finite()) {
        return true;
    }
    // How far an edge may stray from the straight line between its vertices, in pixels (a
    // generous bound of a great-circle arc's sagitta), plus a margin for rounding.
    let longest = verts
        .iter()
        .zip(verts.iter().cycle().skip(1))
        .map(|(a, b)| a.distance_m(*b))
        .fold(0.0, f64::max);
    let eps = 1e-3 + 4.0 * longest * longest / (8.0 * R) / pixel_m;
    let (umin, umax, vmin, vmax) = poly.iter().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (u, v)| (a.min(*u), b.max(*u), c.min(*v), d.max(*v)),
    );
    if umax < -eps - 0.5
        || vmax < -eps - 0.5
        || umin > ww as f64 - 0.5 + eps
        || vmin > wh as f64 - 0.5 + eps
    {
        return false;
    }
    let r0 = (vmin - eps).ceil().max(0.0) as usize;
    let r1 = ((vmax + eps).floor()).min(wh as f64 - 1.0);
    if r1 < 0.0 {
        return false;
    }
    let r1 = r1 as usize;
    let mut met = false;
    for r in r0..=r1.min(wh.saturating_sub(1)) {
        let v = r as f64;
        // Crossings of the row's line with the edges: the inside is between the extremes.
        let (mut xa, mut xb) = (f64::INFINITY, f64::NEG_INFINITY);
        for k in 0..poly.len() {
            let (p, q) = (poly[k], poly[(k + 1) % poly.len()]);
            if (p.1 <= v && q.1 >= v) || (q.1 <= v && p.1 >= v) {
                let x = if (q.1 - p.1).abs() < 1e-12 {
                    xa = xa.min(p.0.min(q.0));
                    xb = xb.max(p.0.max(q.0));
                    continue;
                } else {
                    p.0 + (v - p.1) * (q.0 - p.0) / (q.1 - p.1)
                };
                xa = xa.min(x);
                xb = xb.max(x);
            }
        }
        // Rows this close to the top or bottom vertex are checked pixel by pixel.
        let near_tip = v - vmin < eps || vmax - v < eps;
        let (band_lo, band_hi) = if xa.is_finite() {
            (xa, xb)
        } else {
            (umin, umax)
        };
        let c0 = (band_lo - eps).ceil().max(0.0);
        let c1 = (band_hi + eps).floor().min(ww as f64 - 1.0);
        if c1 < c0 {
            continue;
        }
        met = true;
        for c in c0 as usize..=c1 as usize {
            let i = r * ww + c;
            if out[i].is_some() || !valid(w.values[i]) {
                continue;
            }
            let x = c as f64;
            let sure = !near_tip && xa.is_finite() && x > xa + eps && x < xb - eps;
            // Near an edge, the pixel's centre decides.
            if sure || point_cell(c, r) == Some(cell) {
                out[i] = Some(cell);
            }
        }
    }
    met
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(width: u32, height: u32) -> Window {
        Window {
            x0: 3,
            y0: 5,
            width,
            height,
            values: (0..width * height)
                .map(|i| if i % 97 == 0 { f64::NAN } else { 1.0 })
                .collect(),
        }
    }

    fn check(t: [f64; 6], p: Projection, res: u8) {
        let w = window(180, 140);
        let res = Resolution::try_from(res).expect("res");
        let valid = |v: f64| !v.is_nan();
        let (got, _) = assign(&w, &t, p, res, &valid);
        for r in 0..w.height as usize {
            for c in 0..w.width as usize {
                let i = r * w.width as usize + c;
                let (cc, rr) = (
                    f64::from(w.x0) + c as f64 + 0.5,
                    f64::from(w.y0) + r as f64 + 0.5,
                );
                let (x, y) = (t[0] + cc * t[1], t[3] + rr * t[5]);
                let (lon, lat) = p.to_lonlat(x, y);
                let want =
                    valid(w.values[i]).then(|| LatLng::new(lat, lon).expect("ll").to_cell(res));
                assert_eq!(got[i], want, "pixel {c},{r} at res {res}");
            }
        }
    }

    #[test]
    fn cell_filling_equals_point_to_cell_in_lonlat() {
        for res in [6, 8, 9, 10, 11, 12] {
            check(
                [10.0, 0.0001, 0.0, 45.0, 0.0, -0.0001],
                Projection::LonLat,
                res,
            );
        }
        // Far north, where cells are skewed in lon/lat.
        check(
            [20.0, 0.0005, 0.0, 78.0, 0.0, -0.0002],
            Projection::LonLat,
            9,
        );
    }

    #[test]
    fn cell_filling_equals_point_to_cell_in_utm_and_web_mercator() {
        let utm = Projection::Utm {
            zone: 33,
            south: false,
        };
        for res in [8, 10, 11] {
            check([500_000.0, 10.0, 0.0, 4_650_000.0, 0.0, -10.0], utm, res);
        }
        check(
            [1_000_000.0, 30.0, 0.0, 6_000_000.0, 0.0, -30.0],
            Projection::WebMercator,
            9,
        );
    }
}
