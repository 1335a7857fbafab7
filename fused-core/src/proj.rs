//! Coordinate transforms to and from WGS 84 longitude/latitude for the projections ingestion
//! meets most: Web Mercator and UTM (transverse Mercator, Krüger series, millimetre accuracy
//! within a zone). No database and no C library: other CRSs are refused by name.

use std::f64::consts::PI;

/// WGS 84 semi-major axis, metres.
const A: f64 = 6_378_137.0;
/// WGS 84 flattening.
const F: f64 = 1.0 / 298.257_223_563;
/// UTM scale factor on the central meridian.
const K0: f64 = 0.9996;

/// A projection this module can invert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Projection {
    /// Longitude/latitude in degrees on WGS 84 (or a datum within a few metres of it: NAD83,
    /// ETRS89).
    LonLat,
    /// Spherical ("Web") Mercator, metres (EPSG:3857).
    WebMercator,
    /// Universal Transverse Mercator, metres.
    Utm {
        /// Zone, 1–60.
        zone: u8,
        /// Southern hemisphere (false northing 10,000 km).
        south: bool,
    },
}

impl Projection {
    /// The projection of an EPSG code, when supported: 4326, 4269, 4258, 4617 (lon/lat); 3857,
    /// 900913, 102100 (Web Mercator); 32601–32660, 32701–32760 (WGS 84 / UTM); 26901–26923
    /// (NAD83 / UTM); 25828–25838 (ETRS89 / UTM).
    pub fn from_epsg(code: u32) -> Option<Self> {
        let utm = |zone: u32, south: bool| Projection::Utm {
            zone: zone as u8,
            south,
        };
        Some(match code {
            4326 | 4269 | 4258 | 4617 | 4979 => Projection::LonLat,
            3857 | 900_913 | 102_100 | 3785 => Projection::WebMercator,
            32601..=32660 => utm(code - 32600, false),
            32701..=32760 => utm(code - 32700, true),
            26901..=26923 => utm(code - 26900, false),
            25828..=25838 => utm(code - 25800, false),
            _ => return None,
        })
    }

    /// The WGS 84 / UTM projection whose zone holds `lon`, `lat` (no Norway/Svalbard
    /// exceptions).
    pub fn utm_zone_of(lon: f64, lat: f64) -> Self {
        Projection::Utm {
            zone: utm_zone(lon),
            south: lat < 0.0,
        }
    }

    /// Projected `x`, `y` → longitude, latitude in degrees.
    pub fn to_lonlat(&self, x: f64, y: f64) -> (f64, f64) {
        match *self {
            Projection::LonLat => (x, y),
            Projection::WebMercator => (
                (x / A).to_degrees(),
                (2.0 * (y / A).exp().atan() - PI / 2.0).to_degrees(),
            ),
            Projection::Utm { zone, south } => utm_inverse(zone, south, x, y),
        }
    }

    /// Longitude, latitude in degrees → projected `x`, `y`.
    pub fn from_lonlat(&self, lon: f64, lat: f64) -> (f64, f64) {
        match *self {
            Projection::LonLat => (lon, lat),
            Projection::WebMercator => {
                let lat = lat.clamp(-85.051_128_78, 85.051_128_78).to_radians();
                (A * lon.to_radians(), A * (PI / 4.0 + lat / 2.0).tan().ln())
            }
            Projection::Utm { zone, south } => utm_forward(zone, south, lon, lat),
        }
    }
}

/// The UTM zone (1–60) of a longitude.
pub fn utm_zone(lon: f64) -> u8 {
    let lon = if lon.is_finite() { lon } else { 0.0 };
    (((lon + 180.0) / 6.0).floor() as i64).clamp(0, 59) as u8 + 1
}

/// Third flattening and the rectifying radius.
fn series() -> (f64, f64) {
    let n = F / (2.0 - F);
    let n2 = n * n;
    (n, A / (1.0 + n) * (1.0 + n2 / 4.0 + n2 * n2 / 64.0))
}

fn central_meridian(zone: u8) -> f64 {
    (f64::from(zone) * 6.0 - 183.0).to_radians()
}

fn utm_forward(zone: u8, south: bool, lon: f64, lat: f64) -> (f64, f64) {
    let (n, big_a) = series();
    let (n2, n3) = (n * n, n * n * n);
    let alpha = [
        n / 2.0 - 2.0 * n2 / 3.0 + 5.0 * n3 / 16.0,
        13.0 * n2 / 48.0 - 3.0 * n3 / 5.0,
        61.0 * n3 / 240.0,
    ];
    let phi = lat.to_radians();
    let dl = lon.to_radians() - central_meridian(zone);
    let c = 2.0 * n.sqrt() / (1.0 + n);
    let t = (phi.sin().atanh() - c * (c * phi.sin()).atanh()).sinh();
    let xi = (t / dl.cos()).atan();
    let eta = (dl.sin() / (1.0 + t * t).sqrt()).atanh();
    let (mut e, mut nn) = (eta, xi);
    for (j, a) in alpha.iter().enumerate() {
        let k = 2.0 * (j as f64 + 1.0);
        e += a * (k * xi).cos() * (k * eta).sinh();
        nn += a * (k * xi).sin() * (k * eta).cosh();
    }
    let false_northing = if south { 10_000_000.0 } else { 0.0 };
    (500_000.0 + K0 * big_a * e, false_northing + K0 * big_a * nn)
}

fn utm_inverse(zone: u8, south: bool, x: f64, y: f64) -> (f64, f64) {
    let (n, big_a) = series();
    let (n2, n3) = (n * n, n * n * n);
    let beta = [
        n / 2.0 - 2.0 * n2 / 3.0 + 37.0 * n3 / 96.0,
        n2 / 48.0 + n3 / 15.0,
        17.0 * n3 / 480.0,
    ];
    let delta = [
        2.0 * n - 2.0 * n2 / 3.0 - 2.0 * n3,
        7.0 * n2 / 3.0 - 8.0 * n3 / 5.0,
        56.0 * n3 / 15.0,
    ];
    let false_northing = if south { 10_000_000.0 } else { 0.0 };
    let xi = (y - false_northing) / (K0 * big_a);
    let eta = (x - 500_000.0) / (K0 * big_a);
    let (mut xi1, mut eta1) = (xi, eta);
    for (j, b) in beta.iter().enumerate() {
        let k = 2.0 * (j as f64 + 1.0);
        xi1 -= b * (k * xi).sin() * (k * eta).cosh();
        eta1 -= b * (k * xi).cos() * (k * eta).sinh();
    }
    let chi = (xi1.sin() / eta1.cosh()).asin();
    let mut phi = chi;
    for (j, d) in delta.iter().enumerate() {
        phi += d * (2.0 * (j as f64 + 1.0) * chi).sin();
    }
    let lon = central_meridian(zone) + (eta1.sinh() / xi1.cos()).atan();
    (lon.to_degrees(), phi.to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_central_meridian_and_equator_are_exact() {
        let p = Projection::Utm {
            zone: 31,
            south: false,
        };
        let (x, y) = p.from_lonlat(3.0, 0.0);
        assert!((x - 500_000.0).abs() < 1e-6 && y.abs() < 1e-6, "{x} {y}");
        // One degree of latitude on the central meridian: 110,574.4 m × k0 (GeographicLib).
        let (_, y1) = p.from_lonlat(3.0, 1.0);
        assert!((y1 - 110_574.389 * K0).abs() < 0.01, "{y1}");
    }

    #[test]
    fn utm_round_trips_across_zones_and_hemispheres() {
        for (lon, lat) in [
            (-122.4, 37.8),
            (151.2, -33.9),
            (2.35, 48.85),
            (-70.0, -80.0),
        ] {
            let p = Projection::utm_zone_of(lon, lat);
            let (x, y) = p.from_lonlat(lon, lat);
            let (lon2, lat2) = p.to_lonlat(x, y);
            // Within a millimetre (1e-8° ≈ 1 mm): the Krüger series to n³.
            assert!(
                (lon - lon2).abs() < 1e-8 && (lat - lat2).abs() < 1e-8,
                "{lon},{lat} → {lon2},{lat2}"
            );
        }
        assert_eq!(utm_zone(-180.0), 1);
        assert_eq!(utm_zone(180.0), 60);
        assert_eq!(
            Projection::from_epsg(32733),
            Some(Projection::Utm {
                zone: 33,
                south: true
            })
        );
    }

    #[test]
    fn web_mercator_round_trips() {
        let p = Projection::WebMercator;
        let (x, y) = p.from_lonlat(-73.98, 40.75);
        // 6 378 137 m × −73.98° in radians.
        assert!((x - -8_235_415.93).abs() < 0.01, "{x}");
        let (lon, lat) = p.to_lonlat(x, y);
        assert!((lon + 73.98).abs() < 1e-9 && (lat - 40.75).abs() < 1e-9);
    }
}
