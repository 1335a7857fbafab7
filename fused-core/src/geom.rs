//! Small helpers over WKB geometries: bounding boxes, type names, GeoJSON and WKT.

use geo_traits::{
    CoordTrait, GeometryCollectionTrait, GeometryTrait, GeometryType, LineStringTrait, LineTrait,
    MultiLineStringTrait, MultiPointTrait, MultiPolygonTrait, PointTrait, PolygonTrait, RectTrait,
    TriangleTrait,
};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Parses one WKB geometry.
pub fn read_wkb(buf: &[u8]) -> Result<wkb::reader::Wkb<'_>> {
    wkb::reader::read_wkb(buf).map_err(|e| Error::Encode(format!("invalid WKB geometry: {e}")))
}

/// The GeoJSON name of a geometry's type ("Point", "Polygon", …).
pub fn type_name<G: GeometryTrait<T = f64>>(g: &G) -> &'static str {
    match g.as_type() {
        GeometryType::Point(_) => "Point",
        GeometryType::LineString(_) | GeometryType::Line(_) => "LineString",
        GeometryType::Polygon(_) | GeometryType::Rect(_) | GeometryType::Triangle(_) => "Polygon",
        GeometryType::MultiPoint(_) => "MultiPoint",
        GeometryType::MultiLineString(_) => "MultiLineString",
        GeometryType::MultiPolygon(_) => "MultiPolygon",
        GeometryType::GeometryCollection(_) => "GeometryCollection",
    }
}

/// Calls `f(x, y)` for every coordinate of the geometry.
pub fn for_each_coord<G: GeometryTrait<T = f64>>(g: &G, f: &mut impl FnMut(f64, f64)) {
    fn ls<L: LineStringTrait<T = f64>>(l: &L, f: &mut impl FnMut(f64, f64)) {
        for c in l.coords() {
            f(c.x(), c.y());
        }
    }
    fn poly<P: PolygonTrait<T = f64>>(p: &P, f: &mut impl FnMut(f64, f64)) {
        if let Some(e) = p.exterior() {
            ls(&e, f);
        }
        for r in p.interiors() {
            ls(&r, f);
        }
    }
    match g.as_type() {
        GeometryType::Point(p) => {
            if let Some(c) = p.coord() {
                f(c.x(), c.y());
            }
        }
        GeometryType::LineString(l) => ls(l, f),
        GeometryType::Polygon(p) => poly(p, f),
        GeometryType::MultiPoint(m) => {
            for p in m.points() {
                if let Some(c) = p.coord() {
                    f(c.x(), c.y());
                }
            }
        }
        GeometryType::MultiLineString(m) => {
            for l in m.line_strings() {
                ls(&l, f);
            }
        }
        GeometryType::MultiPolygon(m) => {
            for p in m.polygons() {
                poly(&p, f);
            }
        }
        GeometryType::GeometryCollection(gc) => {
            for g in gc.geometries() {
                for_each_coord(&g, f);
            }
        }
        GeometryType::Rect(r) => {
            f(r.min().x(), r.min().y());
            f(r.max().x(), r.max().y());
        }
        GeometryType::Triangle(t) => {
            for c in t.coords() {
                f(c.x(), c.y());
            }
        }
        GeometryType::Line(l) => {
            for c in l.coords() {
                f(c.x(), c.y());
            }
        }
    }
}

/// A running bounding box `[minx, miny, maxx, maxy]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox(pub Option<[f64; 4]>);

impl BBox {
    /// Grows the box to include a point.
    pub fn add(&mut self, x: f64, y: f64) {
        if !x.is_finite() || !y.is_finite() {
            return;
        }
        self.0 = Some(match self.0 {
            None => [x, y, x, y],
            Some([a, b, c, d]) => [a.min(x), b.min(y), c.max(x), d.max(y)],
        });
    }

    /// Grows the box to include a geometry.
    pub fn add_geometry<G: GeometryTrait<T = f64>>(&mut self, g: &G) {
        for_each_coord(g, &mut |x, y| self.add(x, y));
    }
}

/// The geometry as a GeoJSON geometry object.
pub fn to_geojson<G: GeometryTrait<T = f64>>(g: &G) -> Value {
    fn pt<C: CoordTrait<T = f64>>(c: C) -> Value {
        json!([c.x(), c.y()])
    }
    fn ring<L: LineStringTrait<T = f64>>(l: &L) -> Value {
        Value::Array(l.coords().map(pt).collect())
    }
    fn poly<P: PolygonTrait<T = f64>>(p: &P) -> Value {
        let mut rings: Vec<Value> = p.exterior().map(|e| ring(&e)).into_iter().collect();
        rings.extend(p.interiors().map(|r| ring(&r)));
        Value::Array(rings)
    }
    match g.as_type() {
        GeometryType::Point(p) => match p.coord() {
            Some(c) => json!({"type": "Point", "coordinates": pt(c)}),
            None => json!({"type": "Point", "coordinates": []}),
        },
        GeometryType::LineString(l) => json!({"type": "LineString", "coordinates": ring(l)}),
        GeometryType::Polygon(p) => json!({"type": "Polygon", "coordinates": poly(p)}),
        GeometryType::MultiPoint(m) => json!({
            "type": "MultiPoint",
            "coordinates": m.points().filter_map(|p| p.coord().map(pt)).collect::<Vec<_>>(),
        }),
        GeometryType::MultiLineString(m) => json!({
            "type": "MultiLineString",
            "coordinates": m.line_strings().map(|l| ring(&l)).collect::<Vec<_>>(),
        }),
        GeometryType::MultiPolygon(m) => json!({
            "type": "MultiPolygon",
            "coordinates": m.polygons().map(|p| poly(&p)).collect::<Vec<_>>(),
        }),
        GeometryType::GeometryCollection(gc) => json!({
            "type": "GeometryCollection",
            "geometries": gc.geometries().map(|g| to_geojson(&g)).collect::<Vec<_>>(),
        }),
        GeometryType::Rect(r) => {
            let (a, b) = (r.min(), r.max());
            let (x0, y0, x1, y1) = (a.x(), a.y(), b.x(), b.y());
            json!({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
        }
        GeometryType::Triangle(t) => {
            let mut cs: Vec<Value> = t.coords().into_iter().map(pt).collect();
            if let Some(first) = cs.first().cloned() {
                cs.push(first);
            }
            json!({"type": "Polygon", "coordinates": [cs]})
        }
        GeometryType::Line(l) => {
            json!({"type": "LineString", "coordinates": l.coords().into_iter().map(pt).collect::<Vec<_>>()})
        }
    }
}

/// The geometry as WKT text.
pub fn to_wkt<G: GeometryTrait<T = f64>>(g: &G) -> Result<String> {
    let mut s = String::new();
    wkt::to_wkt::write_geometry(&mut s, g).map_err(|e| Error::Encode(format!("WKT: {e}")))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wkb_of(g: &geo_types::Geometry<f64>) -> Vec<u8> {
        let mut buf = Vec::new();
        wkb::writer::write_geometry(&mut buf, g, &Default::default()).unwrap();
        buf
    }

    #[test]
    fn polygon_bbox_geojson_wkt() {
        let p: geo_types::Geometry<f64> = geo_types::Polygon::new(
            geo_types::LineString::from(vec![(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 0.0)]),
            vec![],
        )
        .into();
        let buf = wkb_of(&p);
        let g = read_wkb(&buf).unwrap();
        let mut bb = BBox(None);
        bb.add_geometry(&g);
        assert_eq!(bb.0, Some([0.0, 0.0, 2.0, 1.0]));
        assert_eq!(type_name(&g), "Polygon");
        assert_eq!(
            to_geojson(&g),
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 0.0]]]})
        );
        assert_eq!(to_wkt(&g).unwrap(), "POLYGON((0 0,2 0,2 1,0 0))");
    }

    #[test]
    fn broken_wkb_is_an_error() {
        assert!(read_wkb(&[1, 2, 3]).is_err());
        assert!(read_wkb(&[]).is_err());
    }
}
