//! What the partitioner needs of each geometry (box, centroid, area, length, coordinate
//! count) in one pass over its coordinates, and the per-row rewrites: explode, subdivide,
//! reproject.

use fused_core::proj::Projection;
use geo::{Area, BooleanOps, BoundingRect};
use geo_traits::to_geo::ToGeoGeometry;
use geo_traits::{
    CoordTrait, GeometryCollectionTrait, GeometryTrait, GeometryType, LineStringTrait,
    MultiLineStringTrait, MultiPointTrait, MultiPolygonTrait, PointTrait, PolygonTrait,
};
use geo_types::{Geometry, MultiPolygon, Polygon, Rect, coord};

/// The measures of one geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measure {
    /// `[minx, miny, maxx, maxy]`.
    pub bbox: [f64; 4],
    /// Centroid (area-weighted for polygons, length-weighted for lines, mean for points).
    pub cx: f64,
    /// Centroid y.
    pub cy: f64,
    /// Area (square degrees).
    pub area: f64,
    /// Length, or perimeter of polygons (degrees).
    pub length: f64,
    /// Number of coordinates.
    pub coords: u64,
    /// False when a coordinate is NaN or infinite (the other fields then mean nothing).
    pub finite: bool,
}

/// Running sums while walking a geometry.
#[derive(Default)]
struct Acc {
    bbox: Option<[f64; 4]>,
    area: f64,
    ax: f64,
    ay: f64,
    length: f64,
    lx: f64,
    ly: f64,
    n: u64,
    px: f64,
    py: f64,
    bad: bool,
}

impl Acc {
    fn coord(&mut self, x: f64, y: f64) {
        if !(x.is_finite() && y.is_finite()) {
            self.bad = true;
        }
        self.n += 1;
        self.px += x;
        self.py += y;
        match &mut self.bbox {
            Some(b) => {
                b[0] = b[0].min(x);
                b[1] = b[1].min(y);
                b[2] = b[2].max(x);
                b[3] = b[3].max(y);
            }
            None => self.bbox = Some([x, y, x, y]),
        }
    }

    /// A line string (or ring); returns its signed area and area-weighted centroid sums when
    /// it is a ring.
    fn line<L: LineStringTrait<T = f64>>(&mut self, l: &L) -> (f64, f64, f64) {
        let (mut a2, mut cx, mut cy) = (0.0, 0.0, 0.0);
        let mut prev: Option<(f64, f64)> = None;
        for c in l.coords() {
            let (x, y) = (c.x(), c.y());
            self.coord(x, y);
            if let Some((x0, y0)) = prev {
                let seg = ((x - x0) * (x - x0) + (y - y0) * (y - y0)).sqrt();
                self.length += seg;
                self.lx += seg * (x + x0) / 2.0;
                self.ly += seg * (y + y0) / 2.0;
                let cross = x0 * y - x * y0;
                a2 += cross;
                cx += (x0 + x) * cross;
                cy += (y0 + y) * cross;
            }
            prev = Some((x, y));
        }
        (a2 / 2.0, cx / 6.0, cy / 6.0)
    }

    fn polygon<P: PolygonTrait<T = f64>>(&mut self, p: &P) {
        let ring = |acc: &mut Acc, r: &P::RingType<'_>, hole: bool| {
            let (a, cx, cy) = acc.line(r);
            // Exterior rings add, holes subtract, whatever their winding.
            let s = if (a >= 0.0) != hole { 1.0 } else { -1.0 };
            acc.area += s * a;
            acc.ax += s * cx;
            acc.ay += s * cy;
        };
        if let Some(e) = p.exterior() {
            ring(self, &e, false);
        }
        for i in p.interiors() {
            ring(self, &i, true);
        }
    }

    fn geometry<G: GeometryTrait<T = f64>>(&mut self, g: &G) {
        match g.as_type() {
            GeometryType::Point(p) => {
                if let Some(c) = p.coord() {
                    self.coord(c.x(), c.y());
                }
            }
            GeometryType::LineString(l) => {
                self.line(l);
            }
            GeometryType::Polygon(p) => self.polygon(p),
            GeometryType::MultiPoint(m) => {
                for p in m.points() {
                    if let Some(c) = p.coord() {
                        self.coord(c.x(), c.y());
                    }
                }
            }
            GeometryType::MultiLineString(m) => {
                for l in m.line_strings() {
                    self.line(&l);
                }
            }
            GeometryType::MultiPolygon(m) => {
                for p in m.polygons() {
                    self.polygon(&p);
                }
            }
            GeometryType::GeometryCollection(c) => {
                for g in c.geometries() {
                    self.geometry(&g);
                }
            }
            // WKB has no Rect, Triangle or Line.
            _ => {}
        }
    }
}

/// Measures a WKB geometry; `None` for an empty one. Points take a fast path.
pub(crate) fn measure(wkb: &[u8]) -> Result<Option<Measure>, String> {
    if let Some((x, y)) = wkb_point(wkb) {
        if x.is_nan() && y.is_nan() {
            return Ok(None);
        }
        return Ok(Some(Measure {
            bbox: [x, y, x, y],
            cx: x,
            cy: y,
            area: 0.0,
            length: 0.0,
            coords: 1,
            finite: x.is_finite() && y.is_finite(),
        }));
    }
    let g = wkb::reader::read_wkb(wkb).map_err(|e| format!("invalid WKB geometry: {e}"))?;
    let mut acc = Acc::default();
    acc.geometry(&g);
    let Some(bbox) = acc.bbox else {
        return Ok(None);
    };
    let (cx, cy) = if acc.area.abs() > 0.0 {
        (acc.ax / acc.area, acc.ay / acc.area)
    } else if acc.length > 0.0 {
        (acc.lx / acc.length, acc.ly / acc.length)
    } else {
        (acc.px / acc.n as f64, acc.py / acc.n as f64)
    };
    Ok(Some(Measure {
        bbox,
        cx,
        cy,
        area: acc.area.abs(),
        length: acc.length,
        coords: acc.n,
        finite: !acc.bad,
    }))
}

/// The coordinates of a 2D WKB point, read without parsing machinery.
pub(crate) fn wkb_point(wkb: &[u8]) -> Option<(f64, f64)> {
    if wkb.len() != 21 {
        return None;
    }
    let f = |b: &[u8]| -> Option<[u8; 8]> { b.try_into().ok() };
    match (wkb[0], &wkb[1..5]) {
        (1, [1, 0, 0, 0]) => Some((
            f64::from_le_bytes(f(&wkb[5..13])?),
            f64::from_le_bytes(f(&wkb[13..21])?),
        )),
        (0, [0, 0, 0, 1]) => Some((
            f64::from_be_bytes(f(&wkb[5..13])?),
            f64::from_be_bytes(f(&wkb[13..21])?),
        )),
        _ => None,
    }
}

/// A 2D WKB point.
pub(crate) fn point_wkb(x: f64, y: f64, out: &mut Vec<u8>) {
    out.push(1);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
}

/// Whether a box lies within lon [-180, 180] / lat [-90, 90].
pub(crate) fn in_wgs84_range(b: &[f64; 4]) -> bool {
    b[0] >= -180.0 && b[2] <= 180.0 && b[1] >= -90.0 && b[3] <= 90.0
}

/// The WKB of each part of a multi-part geometry (or of each member of a collection), or
/// `None` when the geometry has one part.
pub(crate) fn explode(wkb: &[u8]) -> Result<Option<Vec<Vec<u8>>>, String> {
    if wkb_point(wkb).is_some() {
        return Ok(None);
    }
    let g = wkb::reader::read_wkb(wkb).map_err(|e| format!("invalid WKB geometry: {e}"))?;
    let mut parts = Vec::new();
    let opts = wkb::writer::WriteOptions::default();
    let write = |g: &dyn Fn(&mut Vec<u8>) -> wkb::error::WkbResult<()>| -> Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        g(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf)
    };
    match g.as_type() {
        GeometryType::MultiPoint(m) => {
            for p in m.points() {
                parts.push(write(&|b| wkb::writer::write_point(b, &p, &opts))?);
            }
        }
        GeometryType::MultiLineString(m) => {
            for l in m.line_strings() {
                parts.push(write(&|b| wkb::writer::write_line_string(b, &l, &opts))?);
            }
        }
        GeometryType::MultiPolygon(m) => {
            for p in m.polygons() {
                parts.push(write(&|b| wkb::writer::write_polygon(b, &p, &opts))?);
            }
        }
        GeometryType::GeometryCollection(c) => {
            for m in c.geometries() {
                parts.push(write(&|b| wkb::writer::write_geometry(b, &m, &opts))?);
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(parts))
}

/// Reprojects a WKB geometry to lon/lat.
pub(crate) fn reproject(wkb: &[u8], from: Projection) -> Result<Vec<u8>, String> {
    let g = wkb::reader::read_wkb(wkb).map_err(|e| format!("invalid WKB geometry: {e}"))?;
    let mut g: Geometry<f64> = g
        .try_to_geometry()
        .ok_or_else(|| "an empty point cannot be reprojected".to_owned())?;
    use geo::MapCoordsInPlace;
    g.map_coords_in_place(|c| {
        let (x, y) = from.to_lonlat(c.x, c.y);
        coord! {x: x, y: y}
    });
    to_wkb(&g)
}

fn to_wkb(g: &Geometry<f64>) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    wkb::writer::write_geometry(&mut buf, g, &Default::default()).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The deepest subdivision (2^depth pieces at most per geometry).
const MAX_SUBDIVIDE_DEPTH: u32 = 16;

/// Cuts a polygonal geometry whose area exceeds `start` into pieces of at most `stop` (default
/// `start`) square degrees, halving its box along the longer side; `None` when it is left
/// whole (not polygonal or small enough).
pub(crate) fn subdivide(
    wkb: &[u8],
    start: f64,
    stop: Option<f64>,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    if wkb_point(wkb).is_some() {
        return Ok(None);
    }
    let g = wkb::reader::read_wkb(wkb).map_err(|e| format!("invalid WKB geometry: {e}"))?;
    let mp: MultiPolygon<f64> = match g.try_to_geometry() {
        Some(Geometry::Polygon(p)) => MultiPolygon(vec![p]),
        Some(Geometry::MultiPolygon(m)) => m,
        _ => return Ok(None),
    };
    if mp.unsigned_area() <= start {
        return Ok(None);
    }
    let stop = stop.unwrap_or(start);
    let mut out = Vec::new();
    cut(mp, stop, 0, &mut out);
    out.iter()
        .filter(|p| !p.0.is_empty())
        .map(|p| match p.0.as_slice() {
            [one] => to_wkb(&Geometry::Polygon(one.clone())),
            _ => to_wkb(&Geometry::MultiPolygon(p.clone())),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn cut(mp: MultiPolygon<f64>, stop: f64, depth: u32, out: &mut Vec<MultiPolygon<f64>>) {
    let area = mp.unsigned_area();
    let Some(r) = mp.bounding_rect() else { return };
    if area <= stop || depth >= MAX_SUBDIVIDE_DEPTH {
        out.push(mp);
        return;
    }
    let (a, b) = if r.width() >= r.height() {
        let mid = (r.min().x + r.max().x) / 2.0;
        (
            Rect::new(r.min(), coord! {x: mid, y: r.max().y}),
            Rect::new(coord! {x: mid, y: r.min().y}, r.max()),
        )
    } else {
        let mid = (r.min().y + r.max().y) / 2.0;
        (
            Rect::new(r.min(), coord! {x: r.max().x, y: mid}),
            Rect::new(coord! {x: r.min().x, y: mid}, r.max()),
        )
    };
    for half in [a, b] {
        let piece = mp.intersection(&Polygon::from(half));
        if piece.unsigned_area() > 0.0 {
            cut(piece, stop, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    fn wkb_of(g: Geometry<f64>) -> Vec<u8> {
        to_wkb(&g).expect("wkb")
    }

    #[test]
    fn measures_a_square_with_a_hole() {
        let p = polygon!(
            exterior: [(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 4.), (x: 0., y: 0.)],
            interiors: [[(x: 1., y: 1.), (x: 2., y: 1.), (x: 2., y: 2.), (x: 1., y: 2.), (x: 1., y: 1.)]],
        );
        let m = measure(&wkb_of(Geometry::Polygon(p)))
            .expect("ok")
            .expect("not empty");
        assert_eq!(m.area, 15.0);
        assert_eq!(m.bbox, [0., 0., 4., 4.]);
        assert_eq!(m.coords, 10);
        assert_eq!(m.length, 20.0);
        // (16·(2,2) − 1·(1.5,1.5)) / 15
        assert!((m.cx - 30.5 / 15.0).abs() < 1e-12 && (m.cy - 30.5 / 15.0).abs() < 1e-12);
    }

    #[test]
    fn points_take_the_fast_path_and_bad_wkb_is_an_error() {
        let mut b = Vec::new();
        point_wkb(1.5, -2.0, &mut b);
        let m = measure(&b).expect("ok").expect("some");
        assert_eq!((m.cx, m.cy, m.coords), (1.5, -2.0, 1));
        assert!(measure(&[1, 3, 0]).is_err());
    }

    #[test]
    fn subdivision_keeps_the_area_and_bounds_the_pieces() {
        let p = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 0., y: 10.), (x: 0., y: 0.)];
        let pieces = subdivide(&wkb_of(Geometry::Polygon(p)), 5.0, Some(5.0))
            .expect("ok")
            .expect("cut");
        assert!(pieces.len() > 1);
        let areas: Vec<f64> = pieces
            .iter()
            .map(|w| measure(w).expect("ok").expect("some").area)
            .collect();
        assert!((areas.iter().sum::<f64>() - 50.0).abs() < 1e-9);
        assert!(areas.iter().all(|a| *a <= 5.0 + 1e-9), "{areas:?}");
    }

    #[test]
    fn explode_splits_multi_parts() {
        let mp = Geometry::MultiPoint(vec![(1.0, 2.0), (3.0, 4.0)].into());
        let parts = explode(&wkb_of(mp)).expect("ok").expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(wkb_point(&parts[1]), Some((3.0, 4.0)));
    }
}
