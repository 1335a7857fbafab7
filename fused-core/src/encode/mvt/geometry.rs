//! One feature's geometry as vector tile commands: projected into the tile, clipped to it
//! (with a buffer), simplified, rounded to the tile's grid.

use geo_traits::{
    CoordTrait, GeometryCollectionTrait, GeometryTrait, GeometryType, LineStringTrait, LineTrait,
    MultiLineStringTrait, MultiPointTrait, MultiPolygonTrait, PointTrait, PolygonTrait, RectTrait,
    TriangleTrait,
};

use super::clip::{ClipBox, Pt, simplify};
use super::pbf::zigzag32;
use crate::proj::Projection;
use crate::tile::{MERCATOR_HALF_WIDTH, Tile, lonlat_to_unit};

/// The `GeomType` of a vector tile feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GeomType {
    Point = 1,
    LineString = 2,
    Polygon = 3,
}

/// Maps the table's coordinates into one tile's coordinates.
#[derive(Debug, Clone, Copy)]
pub(super) struct TileTransform {
    /// Source coordinates: lon/lat, Web Mercator metres, or a projection to lon/lat.
    proj: Projection,
    /// Tile coordinates per unit of the world square (`2^z × extent`).
    scale: f64,
    /// The tile's north-west corner in tile coordinates of the world square.
    x0: f64,
    y0: f64,
}

impl TileTransform {
    pub(super) fn new(proj: Projection, tile: Tile, extent: u32) -> Self {
        let scale = tile.side() as f64 * f64::from(extent);
        Self {
            proj,
            scale,
            x0: f64::from(tile.x) * f64::from(extent),
            y0: f64::from(tile.y) * f64::from(extent),
        }
    }

    fn apply(&self, x: f64, y: f64) -> Pt {
        let (ux, uy) = match self.proj {
            Projection::LonLat => lonlat_to_unit(x, y),
            Projection::WebMercator => (
                (x + MERCATOR_HALF_WIDTH) / (2.0 * MERCATOR_HALF_WIDTH),
                (MERCATOR_HALF_WIDTH - y) / (2.0 * MERCATOR_HALF_WIDTH),
            ),
            p => {
                let (lon, lat) = p.to_lonlat(x, y);
                lonlat_to_unit(lon, lat)
            }
        };
        [ux * self.scale - self.x0, uy * self.scale - self.y0]
    }
}

/// Turns geometries into command streams, reusing its buffers from feature to feature.
#[derive(Debug)]
pub(super) struct GeometryEncoder {
    transform: TileTransform,
    clip: ClipBox,
    tolerance: f64,
    pts: Vec<Pt>,
    clipped: Vec<Pt>,
    keep: Vec<bool>,
    grid: Vec<[i32; 2]>,
    /// The points of the feature being encoded (a feature's points take one `MoveTo`).
    point_grid: Vec<[i32; 2]>,
    /// Command streams of the feature being encoded, one per type.
    pub(super) points: Commands,
    pub(super) lines: Commands,
    pub(super) polygons: Commands,
}

/// One geometry type's command stream, with the pen position it ends at.
#[derive(Debug, Default)]
pub(super) struct Commands {
    pub(super) cmds: Vec<u32>,
    cursor: [i32; 2],
}

impl Commands {
    fn clear(&mut self) {
        self.cmds.clear();
        self.cursor = [0, 0];
    }

    fn command(&mut self, id: u32, count: usize) {
        self.cmds.push((id & 7) | ((count as u32) << 3));
    }

    fn to(&mut self, p: [i32; 2]) {
        let (dx, dy) = (
            p[0].wrapping_sub(self.cursor[0]),
            p[1].wrapping_sub(self.cursor[1]),
        );
        self.cmds.push(zigzag32(dx));
        self.cmds.push(zigzag32(dy));
        self.cursor = p;
    }

    /// `MoveTo` the first point, `LineTo` the rest.
    fn path(&mut self, pts: &[[i32; 2]]) {
        self.command(1, 1);
        self.to(pts[0]);
        self.command(2, pts.len() - 1);
        for p in &pts[1..] {
            self.to(*p);
        }
    }
}

const MOVE_TO: u32 = 1;
const CLOSE_PATH: u32 = 7;

impl GeometryEncoder {
    pub(super) fn new(transform: TileTransform, extent: u32, buffer: u32, tolerance: f64) -> Self {
        Self {
            transform,
            clip: ClipBox {
                min: -f64::from(buffer),
                max: f64::from(extent) + f64::from(buffer),
            },
            tolerance,
            pts: Vec::new(),
            clipped: Vec::new(),
            keep: Vec::new(),
            grid: Vec::new(),
            point_grid: Vec::new(),
            points: Commands::default(),
            lines: Commands::default(),
            polygons: Commands::default(),
        }
    }

    /// Encodes one geometry into `points`, `lines` and `polygons` (emptied first).
    pub(super) fn encode<G: GeometryTrait<T = f64>>(&mut self, g: &G) {
        self.points.clear();
        self.lines.clear();
        self.polygons.clear();
        self.point_grid.clear();
        self.geometry(g);
        if !self.point_grid.is_empty() {
            let c = &mut self.points;
            c.command(MOVE_TO, self.point_grid.len());
            for p in &self.point_grid {
                c.to(*p);
            }
        }
    }

    fn geometry<G: GeometryTrait<T = f64>>(&mut self, g: &G) {
        match g.as_type() {
            GeometryType::Point(p) => {
                if let Some(c) = p.coord() {
                    self.point_set(std::iter::once((c.x(), c.y())));
                }
            }
            GeometryType::MultiPoint(m) => {
                self.point_set(m.points().filter_map(|p| p.coord().map(|c| (c.x(), c.y()))));
            }
            GeometryType::LineString(l) => self.line(l.coords().map(|c| (c.x(), c.y()))),
            GeometryType::Line(l) => self.line(l.coords().into_iter().map(|c| (c.x(), c.y()))),
            GeometryType::MultiLineString(m) => {
                for l in m.line_strings() {
                    self.line(l.coords().map(|c| (c.x(), c.y())));
                }
            }
            GeometryType::Polygon(p) => self.polygon(p),
            GeometryType::MultiPolygon(m) => {
                for p in m.polygons() {
                    self.polygon(&p);
                }
            }
            GeometryType::Rect(r) => {
                let (lo, hi) = (r.min(), r.max());
                let ring = [
                    (lo.x(), lo.y()),
                    (hi.x(), lo.y()),
                    (hi.x(), hi.y()),
                    (lo.x(), hi.y()),
                ];
                self.rings(std::iter::once(ring.into_iter()));
            }
            GeometryType::Triangle(t) => {
                let ring = t.coords().map(|c| (c.x(), c.y()));
                self.rings(std::iter::once(ring.into_iter()));
            }
            GeometryType::GeometryCollection(gc) => {
                for g in gc.geometries() {
                    self.geometry(&g);
                }
            }
        }
    }

    fn project(&mut self, coords: impl Iterator<Item = (f64, f64)>) -> Option<(Pt, Pt)> {
        self.pts.clear();
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for (x, y) in coords {
            if !x.is_finite() || !y.is_finite() {
                continue;
            }
            let p = self.transform.apply(x, y);
            // Out of the projection's domain (far beyond a UTM zone, say): left out.
            if !p[0].is_finite() || !p[1].is_finite() {
                continue;
            }
            lo = [lo[0].min(p[0]), lo[1].min(p[1])];
            hi = [hi[0].max(p[0]), hi[1].max(p[1])];
            self.pts.push(p);
        }
        (!self.pts.is_empty()).then_some((lo, hi))
    }

    fn point_set(&mut self, coords: impl Iterator<Item = (f64, f64)>) {
        if self.project(coords).is_none() {
            return;
        }
        self.clipped.clear();
        self.clip.points(&self.pts, &mut self.clipped);
        self.point_grid
            .extend(self.clipped.iter().map(|p| round(*p)));
    }

    fn line(&mut self, coords: impl Iterator<Item = (f64, f64)>) {
        let Some((lo, hi)) = self.project(coords) else {
            return;
        };
        if self.clip.misses_box(lo, hi) {
            return;
        }
        let pts = std::mem::take(&mut self.pts);
        if self.clip.contains_box(lo, hi) {
            self.line_part(&pts);
        } else {
            let clip = self.clip;
            clip.line(&pts, &mut |part| self.line_part(part));
        }
        self.pts = pts;
    }

    fn line_part(&mut self, pts: &[Pt]) {
        simplify(pts, self.tolerance, &mut self.keep);
        self.grid.clear();
        for (p, keep) in pts.iter().zip(&self.keep) {
            let q = round(*p);
            if *keep && self.grid.last() != Some(&q) {
                self.grid.push(q);
            }
        }
        if self.grid.len() >= 2 {
            let grid = std::mem::take(&mut self.grid);
            self.lines.path(&grid);
            self.grid = grid;
        }
    }

    fn polygon<P: PolygonTrait<T = f64>>(&mut self, p: &P) {
        let ext = p.exterior();
        let rings = ext
            .into_iter()
            .map(|r| r.coords().map(|c| (c.x(), c.y())).collect::<Vec<_>>())
            .chain(
                p.interiors()
                    .map(|r| r.coords().map(|c| (c.x(), c.y())).collect::<Vec<_>>()),
            );
        self.rings(rings.map(Vec::into_iter));
    }

    /// A polygon's rings, exterior first. When the exterior vanishes (outside the tile, or
    /// smaller than the grid), the polygon does.
    fn rings<I: Iterator<Item = (f64, f64)>>(&mut self, rings: impl Iterator<Item = I>) {
        for (i, ring) in rings.enumerate() {
            let exterior = i == 0;
            if !self.ring(ring, exterior) && exterior {
                return;
            }
        }
    }

    /// Encodes one ring; false when nothing of it is left.
    fn ring(&mut self, coords: impl Iterator<Item = (f64, f64)>, exterior: bool) -> bool {
        let Some((lo, hi)) = self.project(coords) else {
            return false;
        };
        if self.clip.misses_box(lo, hi) {
            return false;
        }
        // Rings are stored closed; clipping and the commands treat them as open.
        if self.pts.len() > 1 && self.pts.first() == self.pts.last() {
            self.pts.pop();
        }
        self.clipped.clear();
        if self.clip.contains_box(lo, hi) {
            self.clipped.extend_from_slice(&self.pts);
        } else {
            self.clip.ring(&self.pts, &mut self.clipped);
        }
        if self.clipped.len() < 3 {
            return false;
        }
        // Simplify as a closed path: from the first point around back to it.
        let first = self.clipped[0];
        self.clipped.push(first);
        simplify(&self.clipped, self.tolerance, &mut self.keep);
        self.grid.clear();
        let n = self.clipped.len() - 1;
        for (p, keep) in self.clipped[..n].iter().zip(&self.keep) {
            let q = round(*p);
            if *keep && self.grid.last() != Some(&q) {
                self.grid.push(q);
            }
        }
        while self.grid.len() > 1 && self.grid.first() == self.grid.last() {
            self.grid.pop();
        }
        if self.grid.len() < 3 {
            return false;
        }
        let area = twice_area(&self.grid);
        if area == 0 {
            return false;
        }
        // Exterior rings have a positive area in tile coordinates (clockwise on screen),
        // interior rings a negative one.
        if (area > 0) != exterior {
            self.grid.reverse();
        }
        let grid = std::mem::take(&mut self.grid);
        let c = &mut self.polygons;
        c.path(&grid);
        c.command(CLOSE_PATH, 1);
        self.grid = grid;
        true
    }
}

fn round(p: Pt) -> [i32; 2] {
    // The clip box bounds every kept coordinate, so they fit in i32.
    [p[0].round() as i32, p[1].round() as i32]
}

/// Twice the signed area (surveyor's formula) of a ring.
fn twice_area(ring: &[[i32; 2]]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i64::from(a[0]) * i64::from(b[1]) - i64::from(b[0]) * i64::from(a[1])
        })
        .sum()
}
