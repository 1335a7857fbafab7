//! XYZ tiles and lon/lat bounds in the Web Mercator tiling scheme (the one `mercantile` uses).

use std::f64::consts::PI;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest latitude Web Mercator can show: `atan(sinh(π))` in degrees.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// Half the width of the Web Mercator plane, in metres (π × the WGS 84 semi-major axis).
pub const MERCATOR_HALF_WIDTH: f64 = PI * 6_378_137.0;

/// The deepest zoom accepted (tile coordinates must fit in 32 bits).
pub const MAX_ZOOM: u8 = 30;

/// A Web Mercator map tile: column `x`, row `y` (counted from the north) at zoom `z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tile {
    /// Column, 0 at the antimeridian west edge.
    pub x: u32,
    /// Row, 0 at the northern edge.
    pub y: u32,
    /// Zoom level, 0..=30.
    pub z: u8,
}

impl Tile {
    /// A tile, checked: `z ≤ 30` and `x, y < 2^z`.
    pub fn new(x: u64, y: u64, z: u64) -> Result<Self> {
        let bad = |reason: String| Error::InvalidTile { z, x, y, reason };
        if z > u64::from(MAX_ZOOM) {
            return Err(bad(format!("zoom must be at most {MAX_ZOOM}")));
        }
        let n = 1u64 << z;
        if x >= n || y >= n {
            return Err(bad(format!("x and y must be below 2^z = {n} at zoom {z}")));
        }
        // Both fit: z ≤ 30, so x, y < 2^30.
        Ok(Self {
            x: x as u32,
            y: y as u32,
            z: z as u8,
        })
    }

    /// Number of tiles along one side at this zoom.
    pub fn side(self) -> u64 {
        1u64 << self.z
    }

    /// The tile's box in lon/lat degrees.
    pub fn bounds(self) -> Bounds {
        let n = self.side() as f64;
        let lon = |x: f64| x / n * 360.0 - 180.0;
        let lat = |y: f64| (PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
        Bounds {
            west: lon(f64::from(self.x)),
            south: lat(f64::from(self.y) + 1.0),
            east: lon(f64::from(self.x) + 1.0),
            north: lat(f64::from(self.y)),
        }
    }

    /// The tile's box in Web Mercator metres `[minx, miny, maxx, maxy]`.
    pub fn mercator_bounds(self) -> [f64; 4] {
        let size = 2.0 * MERCATOR_HALF_WIDTH / self.side() as f64;
        let minx = -MERCATOR_HALF_WIDTH + f64::from(self.x) * size;
        let maxy = MERCATOR_HALF_WIDTH - f64::from(self.y) * size;
        [minx, maxy - size, minx + size, maxy]
    }

    /// The tile at zoom `z` that contains the point (longitude clamped to ±180, latitude to
    /// ±[`MAX_LATITUDE`]); a point on a shared edge belongs to the tile east/south of it.
    pub fn containing(lon: f64, lat: f64, z: u8) -> Result<Self> {
        if !lon.is_finite() || !lat.is_finite() {
            return Err(Error::InvalidBounds(format!(
                "not a finite point: ({lon}, {lat})"
            )));
        }
        let z = z.min(MAX_ZOOM);
        let (fx, fy) = lonlat_to_unit(lon, lat);
        let n = (1u64 << z) as f64;
        let max = (1u64 << z) - 1;
        let x = ((fx * n).floor().max(0.0) as u64).min(max);
        let y = ((fy * n).floor().max(0.0) as u64).min(max);
        Tile::new(x, y, u64::from(z))
    }

    /// The parent tile one zoom up, or `None` at zoom 0.
    pub fn parent(self) -> Option<Self> {
        (self.z > 0).then(|| Self {
            x: self.x / 2,
            y: self.y / 2,
            z: self.z - 1,
        })
    }

    /// The four children one zoom down, or `None` at the deepest zoom.
    pub fn children(self) -> Option<[Self; 4]> {
        (self.z < MAX_ZOOM).then(|| {
            let (x, y, z) = (self.x * 2, self.y * 2, self.z + 1);
            [
                Self { x, y, z },
                Self { x: x + 1, y, z },
                Self { x, y: y + 1, z },
                Self {
                    x: x + 1,
                    y: y + 1,
                    z,
                },
            ]
        })
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

/// A lon/lat box `[west, south, east, north]` in degrees (EPSG:4326), as UDFs receive `bounds`.
///
/// Serialized as the four-number array the Fused SDK uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "[f64; 4]", into = "[f64; 4]")]
pub struct Bounds {
    /// Minimum longitude.
    pub west: f64,
    /// Minimum latitude.
    pub south: f64,
    /// Maximum longitude.
    pub east: f64,
    /// Maximum latitude.
    pub north: f64,
}

impl Bounds {
    /// A checked box: finite numbers, `south ≤ north`, latitudes within ±90, longitudes within
    /// ±180 (a box crossing the antimeridian has `west > east`).
    pub fn new(west: f64, south: f64, east: f64, north: f64) -> Result<Self> {
        let b = Self {
            west,
            south,
            east,
            north,
        };
        if ![west, south, east, north].iter().all(|v| v.is_finite()) {
            return Err(Error::InvalidBounds(format!(
                "{b}: all four numbers must be finite"
            )));
        }
        if south > north {
            return Err(Error::InvalidBounds(format!("{b}: south is above north")));
        }
        if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) {
            return Err(Error::InvalidBounds(format!(
                "{b}: latitudes must be within ±90"
            )));
        }
        if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
            return Err(Error::InvalidBounds(format!(
                "{b}: longitudes must be within ±180"
            )));
        }
        Ok(b)
    }

    /// `[west, south, east, north]`.
    pub fn to_array(self) -> [f64; 4] {
        [self.west, self.south, self.east, self.north]
    }

    /// Width in degrees of longitude.
    pub fn width(self) -> f64 {
        self.east - self.west
    }

    /// Height in degrees of latitude.
    pub fn height(self) -> f64 {
        self.north - self.south
    }

    /// True when `other` lies inside this box (edges included), within `eps` degrees.
    pub fn contains(self, other: Bounds, eps: f64) -> bool {
        other.west >= self.west - eps
            && other.east <= self.east + eps
            && other.south >= self.south - eps
            && other.north <= self.north + eps
    }

    /// True when the point lies inside the box (edges included).
    pub fn contains_point(self, lon: f64, lat: f64) -> bool {
        (self.west..=self.east).contains(&lon) && (self.south..=self.north).contains(&lat)
    }

    /// The box in Web Mercator metres `[minx, miny, maxx, maxy]` (latitudes clamped).
    pub fn to_mercator(self) -> [f64; 4] {
        let (minx, miny) = lonlat_to_mercator(self.west, self.south);
        let (maxx, maxy) = lonlat_to_mercator(self.east, self.north);
        [minx, miny, maxx, maxy]
    }
}

impl TryFrom<[f64; 4]> for Bounds {
    type Error = Error;
    fn try_from(a: [f64; 4]) -> Result<Self> {
        Self::new(a[0], a[1], a[2], a[3])
    }
}

impl From<Bounds> for [f64; 4] {
    fn from(b: Bounds) -> Self {
        b.to_array()
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {}, {}, {}]",
            self.west, self.south, self.east, self.north
        )
    }
}

impl schemars::JsonSchema for Bounds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bounds".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "items": { "type": "number" },
            "minItems": 4,
            "maxItems": 4,
            "description": "[west, south, east, north] in degrees (EPSG:4326)",
            crate::schema::KIND_KEY: "bounds",
        })
    }
}

/// Lon/lat degrees → Web Mercator metres (latitude clamped to ±[`MAX_LATITUDE`]).
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
    let x = lon.to_radians() * 6_378_137.0;
    let y = (PI / 4.0 + lat.to_radians() / 2.0).tan().ln() * 6_378_137.0;
    (x, y)
}

/// Web Mercator metres → lon/lat degrees.
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / 6_378_137.0).to_degrees();
    let lat = (2.0 * (y / 6_378_137.0).exp().atan() - PI / 2.0).to_degrees();
    (lon, lat)
}

/// Lon/lat → position on the unit square (0,0 = north-west corner).
pub(crate) fn lonlat_to_unit(lon: f64, lat: f64) -> (f64, f64) {
    let lon = lon.clamp(-180.0, 180.0);
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
    let x = (lon + 180.0) / 360.0;
    let s = lat.to_radians().sin();
    let y = 0.5 - ((1.0 + s) / (1.0 - s)).ln() / (4.0 * PI);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_mercantile() {
        // mercantile.bounds(1, 2, 3), as observed from the Python SDK.
        let b = Tile::new(1, 2, 3).unwrap().bounds();
        assert_eq!(
            b.to_array(),
            [-135.0, 40.97989806962013, -90.0, 66.51326044311186]
        );
        let w = Tile::new(0, 0, 0).unwrap().bounds();
        assert!((w.north - MAX_LATITUDE).abs() < 1e-9 && (w.south + MAX_LATITUDE).abs() < 1e-9);
    }

    #[test]
    fn refuses_bad_tiles() {
        assert!(Tile::new(0, 0, 31).is_err());
        assert!(Tile::new(8, 0, 3).is_err());
        assert!(Tile::new(0, 8, 3).is_err());
        assert!(Tile::new(0, 0, 30).is_ok());
        let e = Tile::new(1, 0, 0).unwrap_err().to_string();
        assert!(e.contains("z=0 x=1 y=0"), "{e}");
    }

    #[test]
    fn bounds_checks() {
        assert!(Bounds::new(0.0, 10.0, 1.0, 5.0).is_err());
        assert!(Bounds::new(f64::NAN, 0.0, 1.0, 1.0).is_err());
        assert!(Bounds::new(-181.0, 0.0, 1.0, 1.0).is_err());
        let b: Bounds = serde_json::from_str("[-1, -2, 3, 4]").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "[-1.0,-2.0,3.0,4.0]");
        assert!(serde_json::from_str::<Bounds>("[1, 2, 3]").is_err());
    }

    #[test]
    fn mercator_roundtrip() {
        let (x, y) = lonlat_to_mercator(12.5, 41.9);
        let (lon, lat) = mercator_to_lonlat(x, y);
        assert!((lon - 12.5).abs() < 1e-9 && (lat - 41.9).abs() < 1e-9);
        let t = Tile::new(0, 0, 1).unwrap();
        let m = t.mercator_bounds();
        assert!(
            (m[0] + MERCATOR_HALF_WIDTH).abs() < 1e-6 && (m[3] - MERCATOR_HALF_WIDTH).abs() < 1e-6
        );
        assert!(m[1].abs() < 1e-6 && m[2].abs() < 1e-6);
    }

    fn any_tile() -> impl Strategy<Value = Tile> {
        (0u8..=MAX_ZOOM).prop_flat_map(|z| {
            let n = 1u64 << z;
            (0..n, 0..n).prop_map(move |(x, y)| Tile::new(x, y, u64::from(z)).unwrap())
        })
    }

    proptest! {
        #[test]
        fn tile_bounds_tile_roundtrip(t in any_tile()) {
            let b = t.bounds();
            // The centre of a tile's box in Mercator space lies inside that tile.
            let m = t.mercator_bounds();
            let (lon, lat) = mercator_to_lonlat((m[0] + m[2]) / 2.0, (m[1] + m[3]) / 2.0);
            prop_assert!(b.contains_point(lon, lat));
            prop_assert_eq!(Tile::containing(lon, lat, t.z).unwrap(), t);
        }

        #[test]
        fn bounds_stay_inside_the_world(t in any_tile()) {
            let b = t.bounds();
            prop_assert!(b.west >= -180.0 && b.east <= 180.0);
            prop_assert!(b.south >= -MAX_LATITUDE - 1e-9 && b.north <= MAX_LATITUDE + 1e-9);
            prop_assert!(b.west < b.east && b.south < b.north);
            prop_assert!(Bounds::new(b.west, b.south, b.east, b.north).is_ok());
        }

        #[test]
        fn parents_contain_children(t in any_tile()) {
            if let Some(p) = t.parent() {
                prop_assert!(p.bounds().contains(t.bounds(), 1e-9));
                prop_assert!(p.children().unwrap().contains(&t));
            }
            if let Some(kids) = t.children() {
                for k in kids {
                    prop_assert!(t.bounds().contains(k.bounds(), 1e-9));
                    prop_assert_eq!(k.parent(), Some(t));
                }
            }
        }
    }
}
