//! Vector tiles read back by a small decoder written from the spec.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::output::Crs;

/// A decoded feature: type, attributes (key → debug text of the value), geometry as rings or
/// parts of tile coordinates.
#[derive(Debug)]
struct Feature {
    kind: u64,
    tags: Vec<(String, String)>,
    parts: Vec<Vec<[i64; 2]>>,
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// (field, wire type, payload bytes or varint value) of a message.
fn fields(b: &[u8]) -> Vec<(u64, &[u8], u64)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at);
        match key & 7 {
            0 => out.push((key >> 3, &b[0..0], varint(b, &mut at))),
            1 => {
                out.push((key >> 3, &b[at..at + 8], 0));
                at += 8;
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                out.push((key >> 3, &b[at..at + n], 0));
                at += n;
            }
            5 => {
                out.push((key >> 3, &b[at..at + 4], 0));
                at += 4;
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn packed(b: &[u8]) -> Vec<u64> {
    let mut at = 0;
    let mut v = Vec::new();
    while at < b.len() {
        v.push(varint(b, &mut at));
    }
    v
}

fn unzig(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The one layer: (name, extent, features).
fn decode(tile: &[u8]) -> (String, u64, Vec<Feature>) {
    let layers: Vec<_> = fields(tile).into_iter().filter(|f| f.0 == 3).collect();
    assert_eq!(layers.len(), 1);
    let (mut name, mut extent, mut keys, mut values, mut raw) =
        (String::new(), 0, Vec::new(), Vec::new(), Vec::new());
    for (f, bytes, v) in fields(layers[0].1) {
        match f {
            1 => name = String::from_utf8(bytes.to_vec()).unwrap(),
            2 => raw.push(bytes),
            3 => keys.push(String::from_utf8(bytes.to_vec()).unwrap()),
            4 => {
                let (vf, vb, vv) = fields(bytes)[0];
                values.push(match vf {
                    1 => format!("str:{}", String::from_utf8(vb.to_vec()).unwrap()),
                    3 => format!("f64:{}", f64::from_le_bytes(vb.try_into().unwrap())),
                    5 => format!("uint:{vv}"),
                    6 => format!("sint:{}", unzig(vv)),
                    7 => format!("bool:{}", vv != 0),
                    _ => format!("field{vf}"),
                });
            }
            5 => extent = v,
            15 => assert_eq!(v, 2),
            _ => {}
        }
    }
    let features = raw
        .into_iter()
        .map(|b| {
            let mut feat = Feature {
                kind: 0,
                tags: Vec::new(),
                parts: Vec::new(),
            };
            for (f, bytes, v) in fields(b) {
                match f {
                    2 => {
                        let t = packed(bytes);
                        feat.tags = t
                            .chunks(2)
                            .map(|kv| {
                                (keys[kv[0] as usize].clone(), values[kv[1] as usize].clone())
                            })
                            .collect();
                    }
                    3 => feat.kind = v,
                    4 => {
                        let c = packed(bytes);
                        let (mut i, mut cur) = (0, [0i64, 0]);
                        while i < c.len() {
                            let (id, n) = (c[i] & 7, c[i] >> 3);
                            i += 1;
                            if id == 7 {
                                continue;
                            }
                            for k in 0..n {
                                cur = [cur[0] + unzig(c[i]), cur[1] + unzig(c[i + 1])];
                                i += 2;
                                if id == 1 && (feat.kind != 1 || k == 0) {
                                    feat.parts.push(Vec::new());
                                }
                                if let Some(p) = feat.parts.last_mut() {
                                    p.push(cur);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            feat
        })
        .collect();
    (name, extent, features)
}

fn area(ring: &[[i64; 2]]) -> i64 {
    (0..ring.len())
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

fn wkb(g: &geo_types::Geometry<f64>) -> Vec<u8> {
    let mut buf = Vec::new();
    wkb::writer::write_geometry(&mut buf, g, &Default::default()).unwrap();
    buf
}

fn table(geoms: Vec<Option<geo_types::Geometry<f64>>>, crs: Crs) -> Table {
    let n = geoms.len();
    let wkbs: Vec<Option<Vec<u8>>> = geoms.iter().map(|g| g.as_ref().map(wkb)).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            (0..n as i64).map(|i| i - 1).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            (0..n).map(|i| Some(format!("f{i}"))).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            (0..n)
                .map(|i| if i == 0 { None } else { Some(i as f64 / 2.0) })
                .collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            (0..n).map(|i| Some(i % 2 == 0)).collect::<Vec<_>>(),
        )),
        Arc::new(BinaryArray::from(
            wkbs.iter().map(|w| w.as_deref()).collect::<Vec<_>>(),
        )),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("even", DataType::Boolean, true),
        Field::new("geometry", DataType::Binary, true),
    ]));
    Table::from_batch(RecordBatch::try_new(schema, cols).unwrap())
        .with_geometry("geometry", crs)
        .unwrap()
}

fn square(w: f64, s: f64, e: f64, n: f64) -> geo_types::Polygon<f64> {
    geo_types::Polygon::new(
        geo_types::LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]),
        vec![],
    )
}

#[test]
fn polygons_lines_and_points_land_on_the_grid_with_their_attributes() {
    // Zoom 1, tile (1, 0): lon 0..180, lat 0..85.05.
    let tile = Tile::new(1, 0, 1).unwrap();
    let mut hole = square(10.0, 10.0, 90.0, 60.0);
    hole.interiors_push(geo_types::LineString::from(vec![
        (30.0, 20.0),
        (30.0, 40.0),
        (60.0, 40.0),
        (60.0, 20.0),
        (30.0, 20.0),
    ]));
    let t = table(
        vec![
            Some(hole.into()),
            Some(geo_types::Point::new(90.0, 0.0).into()),
            Some(geo_types::LineString::from(vec![(0.0, 0.0), (90.0, 0.0)]).into()),
            None,
            Some(geo_types::Point::new(-90.0, 0.0).into()),
        ],
        Crs::WGS84,
    );
    let (name, extent, feats) = decode(&encode_mvt(&t, tile, &MvtOptions::new("cells")).unwrap());
    assert_eq!((name.as_str(), extent), ("cells", 4096));
    // The row without a geometry and the point in the western hemisphere are left out.
    assert_eq!(feats.len(), 3, "{feats:?}");
    let poly = &feats[0];
    assert_eq!(poly.kind, 3);
    assert_eq!(poly.parts.len(), 2);
    assert!(
        area(&poly.parts[0]) > 0,
        "exterior ring clockwise on screen"
    );
    assert!(area(&poly.parts[1]) < 0, "hole the other way");
    // lon 10 → x = 10/180 × 4096 ≈ 228; lon 90 → 2048.
    let xs: Vec<i64> = poly.parts[0].iter().map(|p| p[0]).collect();
    assert_eq!(
        (xs.iter().min(), xs.iter().max()),
        (Some(&228), Some(&2048))
    );
    assert_eq!(poly.tags[0], ("id".into(), "sint:-1".into()));
    assert_eq!(poly.tags[1], ("name".into(), "str:f0".into()));
    // A null attribute is left out.
    assert_eq!(poly.tags.len(), 3, "{:?}", poly.tags);
    let point = &feats[1];
    assert_eq!(
        (point.kind, point.parts.clone()),
        (1, vec![vec![[2048, 4096]]])
    );
    assert!(point.tags.contains(&("value".into(), "f64:0.5".into())));
    assert!(point.tags.contains(&("id".into(), "uint:0".into())));
    let line = &feats[2];
    assert_eq!(
        (line.kind, line.parts.clone()),
        (2, vec![vec![[0, 4096], [2048, 4096]]])
    );
    assert!(line.tags.contains(&("even".into(), "bool:true".into())));
}

#[test]
fn geometries_are_clipped_to_the_tile_and_its_buffer() {
    let tile = Tile::new(1, 1, 2).unwrap();
    let t = table(
        vec![
            Some(square(-170.0, -80.0, 170.0, 89.9).into()),
            Some(geo_types::LineString::from(vec![(-120.0, 45.0), (170.0, 45.0)]).into()),
        ],
        Crs::WGS84,
    );
    let (_, _, feats) = decode(&encode_mvt(&t, tile, &MvtOptions::new("l")).unwrap());
    for f in &feats {
        for p in f.parts.iter().flatten() {
            assert!(
                (-64..=4096 + 64).contains(&p[0]) && (-64..=4096 + 64).contains(&p[1]),
                "{p:?}"
            );
        }
    }
    // The square covers the whole tile: its ring is the buffered tile.
    assert_eq!(feats[0].parts[0].len(), 4, "{:?}", feats[0].parts);
    assert_eq!(
        area(&feats[0].parts[0]),
        2 * (4096 + 128) * (4096 + 128),
        "{:?}",
        feats[0].parts
    );
    assert_eq!(feats[1].parts[0][0][0], -64);
}

#[test]
fn web_mercator_input_matches_lon_lat_input() {
    let tile = Tile::containing(12.5, 41.9, 9).unwrap();
    let lonlat = table(
        vec![Some(geo_types::Point::new(12.5, 41.9).into())],
        Crs::WGS84,
    );
    let merc = Projection::WebMercator.from_lonlat(12.5, 41.9);
    let m = table(
        vec![Some(geo_types::Point::new(merc.0, merc.1).into())],
        Crs::Epsg(3857),
    );
    let opts = MvtOptions::new("p");
    let (_, _, a) = decode(&encode_mvt(&lonlat, tile, &opts).unwrap());
    let (_, _, b) = decode(&encode_mvt(&m, tile, &opts).unwrap());
    assert_eq!(a[0].parts, b[0].parts);
}

#[test]
fn field_types_say_how_the_tile_carries_each_column() {
    use arrow::array::Decimal128Array;
    let dec = Decimal128Array::from(vec![12_345i128])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let t = table(
        vec![Some(geo_types::Point::new(0.0, 0.0).into())],
        Crs::WGS84,
    );
    let mut fields: Vec<arrow::datatypes::FieldRef> = t.schema().fields().iter().cloned().collect();
    let mut cols: Vec<ArrayRef> = t.batches()[0].columns().to_vec();
    fields.push(Arc::new(Field::new(
        "price",
        DataType::Decimal128(10, 2),
        false,
    )));
    cols.push(Arc::new(dec));
    let t = Table::from_batch(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap())
        .with_geometry("geometry", Crs::WGS84)
        .unwrap();
    assert_eq!(
        field_types(&t),
        vec![
            ("id".to_owned(), "Number"),
            ("name".to_owned(), "String"),
            ("value".to_owned(), "Number"),
            ("even".to_owned(), "Boolean"),
            ("price".to_owned(), "String"),
        ]
    );
    // And the decimal is written as text, as its type says.
    let (_, _, f) =
        decode(&encode_mvt(&t, Tile::new(0, 0, 0).unwrap(), &MvtOptions::new("d")).unwrap());
    assert!(
        f[0].tags.contains(&("price".into(), "str:123.45".into())),
        "{:?}",
        f[0].tags
    );
}

#[test]
fn empty_tiles_and_refusals() {
    let opts = MvtOptions::new("x");
    let far = table(
        vec![Some(square(100.0, 10.0, 101.0, 11.0).into())],
        Crs::WGS84,
    );
    assert!(
        encode_mvt(&far, Tile::new(0, 0, 1).unwrap(), &opts)
            .unwrap()
            .is_empty()
    );
    // Smaller than a grid cell at zoom 0: nothing left to draw.
    let tiny = table(
        vec![Some(square(1.0, 1.0, 1.0001, 1.0001).into())],
        Crs::WGS84,
    );
    assert!(
        encode_mvt(&tiny, Tile::new(0, 0, 0).unwrap(), &opts)
            .unwrap()
            .is_empty()
    );
    let no_geom = Table::from_batch(
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap(),
    );
    let e = encode_mvt(&no_geom, Tile::new(0, 0, 0).unwrap(), &opts).unwrap_err();
    assert!(e.to_string().contains("no geometry column"), "{e}");
    let many = table(
        (0..11)
            .map(|_| Some(geo_types::Point::new(0.0, 0.0).into()))
            .collect(),
        Crs::WGS84,
    );
    let small = MvtOptions {
        max_features: 10,
        ..opts.clone()
    };
    let e = encode_mvt(&many, Tile::new(0, 0, 0).unwrap(), &small).unwrap_err();
    assert!(e.to_string().contains("11 rows"), "{e}");
    let odd = table(
        vec![Some(geo_types::Point::new(0.0, 0.0).into())],
        Crs::Other("LOCAL_CS".into()),
    );
    let e = encode_mvt(&odd, Tile::new(0, 0, 0).unwrap(), &opts).unwrap_err();
    assert!(e.to_string().contains("reproject"), "{e}");
}

#[test]
fn the_pen_carries_across_rings_and_parts_of_one_feature() {
    // Zoom 0: x = (lon + 180) / 360 × 4096; y from 0 (north) to 4096 (south).
    let tile = Tile::new(0, 0, 0).unwrap();
    let mut poly = square(-90.0, -45.0, 90.0, 45.0);
    poly.interiors_push(geo_types::LineString::from(vec![
        (-45.0, -20.0),
        (-45.0, 20.0),
        (45.0, 20.0),
        (45.0, -20.0),
        (-45.0, -20.0),
    ]));
    // Two parts of one line feature: the second starts from where the first left the pen.
    let zigzag = geo_types::MultiLineString::new(vec![
        geo_types::LineString::from(vec![(0.0, 0.0), (0.0, 10.0)]),
        geo_types::LineString::from(vec![(-90.0, 0.0), (90.0, 0.0)]),
    ]);
    let t = table(vec![Some(poly.into()), Some(zigzag.into())], Crs::WGS84);
    let (_, _, f) = decode(&encode_mvt(&t, tile, &MvtOptions::new("l")).unwrap());
    let lat_y = |lat: f64| {
        let (_, uy) = crate::tile::lonlat_to_unit(0.0, lat);
        (uy * 4096.0).round() as i64
    };
    let (y45, y20) = (lat_y(45.0), lat_y(20.0));
    assert_eq!(f[0].parts.len(), 2);
    let ring = |parts: &[[i64; 2]]| {
        let mut p = parts.to_vec();
        p.sort();
        p
    };
    assert_eq!(
        ring(&f[0].parts[0]),
        ring(&[
            [1024, y45],
            [3072, y45],
            [3072, 4096 - y45],
            [1024, 4096 - y45]
        ])
    );
    assert_eq!(
        ring(&f[0].parts[1]),
        ring(&[
            [1536, y20],
            [2560, y20],
            [2560, 4096 - y20],
            [1536, 4096 - y20]
        ])
    );
    assert_eq!(
        f[1].parts,
        vec![
            vec![[2048, 2048], [2048, lat_y(10.0)]],
            vec![[1024, 2048], [3072, 2048]]
        ]
    );
}

#[test]
fn a_feature_s_points_take_one_move_to() {
    let tile = Tile::new(0, 0, 0).unwrap();
    let mp = geo_types::MultiPoint::new(vec![
        geo_types::Point::new(0.0, 0.0),
        geo_types::Point::new(90.0, 0.0),
    ]);
    let gc = geo_types::GeometryCollection::new_from(vec![
        geo_types::Point::new(-90.0, 0.0).into(),
        mp.clone().into(),
        geo_types::LineString::from(vec![(0.0, 0.0), (10.0, 10.0)]).into(),
    ]);
    let t = table(
        vec![
            Some(mp.into()),
            Some(geo_types::Geometry::GeometryCollection(gc)),
        ],
        Crs::WGS84,
    );
    let (_, _, f) = decode(&encode_mvt(&t, tile, &MvtOptions::new("p")).unwrap());
    assert_eq!(f[0].kind, 1);
    assert_eq!(f[0].parts, vec![vec![[2048, 2048], [3072, 2048]]]);
    // The collection: its three points as one point feature, its line as a second feature
    // with the same attributes.
    assert_eq!(
        (f[1].kind, f[1].parts.len(), f[1].parts[0].len()),
        (1, 1, 3)
    );
    assert_eq!(f[2].kind, 2);
    assert_eq!(f[1].tags, f[2].tags);
}

#[test]
fn repeated_column_names_give_one_key_and_infinities_no_vertex() {
    let wkb_point = wkb(&geo_types::Point::new(1.0, 1.0).into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("a", DataType::Int64, false),
        Field::new("geometry", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(BinaryArray::from(vec![Some(wkb_point.as_slice())])),
        ],
    )
    .unwrap();
    let t = Table::from_batch(batch)
        .with_geometry("geometry", Crs::WGS84)
        .unwrap();
    let (_, _, f) =
        decode(&encode_mvt(&t, Tile::new(0, 0, 0).unwrap(), &MvtOptions::new("a")).unwrap());
    assert_eq!(f[0].tags, vec![("a".to_owned(), "uint:1".to_owned())]);

    // A Web Mercator line whose far end overflows the tile grid at zoom 20: that vertex is
    // dropped, not turned into garbage; what is left is a lone point, so no line.
    let tile = Tile::containing(0.0001, 0.0001, 20).unwrap();
    let line = geo_types::LineString::from(vec![(10.0, 10.0), (1.7e308, 10.0)]);
    let t = table(vec![Some(line.into())], Crs::Epsg(3857));
    assert!(
        encode_mvt(&t, tile, &MvtOptions::new("l"))
            .unwrap()
            .is_empty()
    );
}

mod invariants {
    use proptest::prelude::*;

    use super::*;

    fn coord() -> impl Strategy<Value = (f64, f64)> {
        (-180.0f64..180.0, -85.0f64..85.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the shapes and the tile: every vertex lies in the buffered tile, lines keep
        /// two distinct points or more, and polygon rings (one exterior each here) three or
        /// more with a positive area.
        #[test]
        fn output_stays_in_the_buffered_tile_and_well_formed(
            ring in prop::collection::vec(coord(), 3..40),
            line in prop::collection::vec(coord(), 2..40),
            point in coord(),
            z in 0u8..12,
            fx in 0.0f64..1.0,
            fy in 0.0f64..1.0,
        ) {
            let n = 1u64 << z;
            let tile = Tile::new(
                ((fx * n as f64) as u64).min(n - 1),
                ((fy * n as f64) as u64).min(n - 1),
                u64::from(z),
            ).unwrap();
            let mut closed = ring.clone();
            closed.push(ring[0]);
            let poly = geo_types::Polygon::new(geo_types::LineString::from(closed), vec![]);
            let t = table(
                vec![
                    Some(poly.into()),
                    Some(geo_types::LineString::from(line).into()),
                    Some(geo_types::Point::new(point.0, point.1).into()),
                ],
                Crs::WGS84,
            );
            let out = encode_mvt(&t, tile, &MvtOptions::new("p")).unwrap();
            if out.is_empty() {
                return Ok(());
            }
            let (_, _, feats) = decode(&out);
            for f in &feats {
                for part in &f.parts {
                    for p in part {
                        prop_assert!((-64..=4160).contains(&p[0]) && (-64..=4160).contains(&p[1]), "{p:?}");
                    }
                    match f.kind {
                        2 => {
                            prop_assert!(part.len() >= 2);
                            prop_assert!(part.windows(2).all(|w| w[0] != w[1]), "{part:?}");
                        }
                        3 => {
                            prop_assert!(part.len() >= 3, "{part:?}");
                            prop_assert!(area(part) > 0, "{part:?}");
                        }
                        _ => prop_assert_eq!(part.len(), 1),
                    }
                }
            }
        }
    }
}
