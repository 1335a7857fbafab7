//! End-to-end ingestion: real files in, a table out, read back with our readers; the
//! invariants of the partitioning, reproducibility, and bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use fused_ingest::{
    ForceUtm, PartitioningMethod, get_chunk_from_table, ingest, read_bbox, read_chunk_index,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

fn point(x: f64, y: f64) -> Vec<u8> {
    let mut b = vec![1u8, 1, 0, 0, 0];
    b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(&y.to_le_bytes());
    b
}

fn square(x: f64, y: f64, s: f64) -> Vec<u8> {
    let mut b = vec![1u8, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0];
    for (px, py) in [(x, y), (x + s, y), (x + s, y + s), (x, y + s), (x, y)] {
        b.extend_from_slice(&px.to_le_bytes());
        b.extend_from_slice(&py.to_le_bytes());
    }
    b
}

/// Clustered pseudo-random points (a fixed LCG, so the input never changes).
fn points(n: usize) -> Vec<(f64, f64)> {
    let mut s: u64 = 42;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let centres = [(-122.4, 37.8), (2.35, 48.85), (139.7, 35.7), (-46.6, -23.5)];
    (0..n)
        .map(|i| {
            let (cx, cy) = centres[i % centres.len()];
            (cx + (next() - 0.5) * 8.0, cy + (next() - 0.5) * 4.0)
        })
        .collect()
}

fn write_geoparquet(path: &Path, geoms: Vec<Vec<u8>>, row_group: usize) {
    let n = geoms.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("geometry", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / 2.0),
            )),
            Arc::new(BinaryArray::from_iter_values(geoms.iter())),
        ],
    )
    .expect("batch");
    let geo = r#"{"version":"1.1.0","primary_column":"geometry","columns":{"geometry":{"encoding":"WKB","geometry_types":[]}}}"#;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .set_key_value_metadata(Some(vec![KeyValue::new("geo".into(), geo.to_owned())]))
        .build();
    let f = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(f, schema, Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// Every row of a table: id → (file, chunk, x, y).
fn read_table(dir: &Path) -> BTreeMap<i64, (i64, i64, f64, f64)> {
    let index = read_chunk_index(dir).expect("index");
    let mut out = BTreeMap::new();
    for c in &index {
        let batches = get_chunk_from_table(dir, c.file_id, Some(&[c.chunk_id as usize]), None)
            .expect("chunk");
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, c.num_rows, "index row count of {c:?}");
        for b in batches {
            let ids = b
                .column_by_name("id")
                .expect("id")
                .as_primitive::<Int64Type>()
                .clone();
            let g = b
                .column_by_name("geometry")
                .expect("geometry")
                .as_binary::<i32>()
                .clone();
            for i in 0..b.num_rows() {
                let w = g.value(i);
                let (x, y) = (
                    f64::from_le_bytes(w[5..13].try_into().expect("x")),
                    f64::from_le_bytes(w[13..21].try_into().expect("y")),
                );
                // The chunk's box covers its rows.
                assert!(
                    x >= c.bbox[0] && x <= c.bbox[2] && y >= c.bbox[1] && y <= c.bbox[3],
                    "row {} outside its chunk box {:?}",
                    ids.value(i),
                    c.bbox
                );
                let dup = out.insert(ids.value(i), (c.file_id, c.chunk_id, x, y));
                assert!(dup.is_none(), "row {} in two chunks", ids.value(i));
            }
        }
    }
    out
}

#[tokio::test]
async fn points_land_once_within_maxima_and_reruns_are_byte_identical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("points.parquet");
    let pts = points(20_000);
    write_geoparquet(
        &input,
        pts.iter().map(|(x, y)| point(*x, *y)).collect(),
        3_000,
    );
    let out = tmp.path().join("table");
    let report = ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .partitioning_maximum_per_file(5_000.0)
        .partitioning_maximum_per_chunk(700.0)
        .run_local()
        .await
        .expect("ingest");
    assert_eq!(report.rows, 20_000);
    let rows = read_table(&out);
    assert_eq!(rows.len(), 20_000, "every row exactly once");
    for (id, (_, _, x, y)) in &rows {
        assert_eq!((*x, *y), pts[*id as usize], "row {id} keeps its geometry");
    }
    let mut per_file: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_chunk: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (f, c, _, _) in rows.values() {
        *per_file.entry(*f).or_default() += 1;
        *per_chunk.entry((*f, *c)).or_default() += 1;
    }
    assert!(per_file.values().all(|n| *n <= 5_000), "{per_file:?}");
    assert!(per_chunk.values().all(|n| *n <= 700));
    assert_eq!(report.files as usize, per_file.len());
    // Chunks keep their rows within one UTM zone (the default `chunk`).
    let mut zones: BTreeMap<(i64, i64), std::collections::BTreeSet<i64>> = BTreeMap::new();
    for (f, c, x, _) in rows.values() {
        zones
            .entry((*f, *c))
            .or_default()
            .insert(((x + 180.0) / 6.0).floor() as i64);
    }
    assert!(zones.values().all(|z| z.len() == 1));

    // The same input and options give the same bytes.
    let again = tmp.path().join("again");
    ingest(input.to_str().expect("utf8"), again.to_str().expect("utf8"))
        .partitioning_maximum_per_file(5_000.0)
        .partitioning_maximum_per_chunk(700.0)
        .run_local()
        .await
        .expect("ingest again");
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    for n in &names {
        assert_eq!(
            std::fs::read(out.join(n)).expect("a"),
            std::fs::read(again.join(n)).expect("b"),
            "{n:?} differs between runs"
        );
    }

    // A box query opens the chunks that meet it and keeps exactly the rows inside.
    let bbox = [0.0, 47.0, 4.0, 50.0];
    let got: usize = read_bbox(&out, bbox, Some(&["id"]))
        .expect("bbox")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let want = pts
        .iter()
        .filter(|(x, y)| *x >= 0.0 && *x <= 4.0 && *y >= 47.0 && *y <= 50.0)
        .count();
    assert_eq!(got, want);

    // An existing table is kept unless overwrite is asked; then it is replaced whole.
    let refused = ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .run_local()
        .await
        .expect_err("output exists");
    assert!(refused.to_string().contains("overwrite"), "{refused}");
    let replaced = ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .partitioning_force_utm(None)
        .overwrite(true)
        .run_local()
        .await
        .expect("overwrite");
    assert_eq!(read_table(&out).len(), 20_000);
    assert_eq!(
        read_chunk_index(&out).expect("index").len() as u64,
        replaced.chunks
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn inputs_larger_than_the_memory_limit_stream_through_runs_with_the_same_guarantees() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("points.parquet");
    let pts = points(30_000);
    write_geoparquet(
        &input,
        pts.iter().map(|(x, y)| point(*x, *y)).collect(),
        4_000,
    );
    let run = |out: &Path| {
        ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
            .partitioning_maximum_per_file(6_000.0)
            .partitioning_maximum_per_chunk(900.0)
            .memory_limit(64 << 10)
            .run_local()
    };
    let out = tmp.path().join("streamed");
    let report = run(&out).await.expect("ingest");
    assert_eq!(report.rows, 30_000);
    let rows = read_table(&out);
    assert_eq!(rows.len(), 30_000, "every row exactly once");
    for (id, (_, _, x, y)) in &rows {
        assert_eq!((*x, *y), pts[*id as usize]);
    }
    let mut per_file: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_chunk: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (f, c, _, _) in rows.values() {
        *per_file.entry(*f).or_default() += 1;
        *per_chunk.entry((*f, *c)).or_default() += 1;
    }
    assert!(per_file.values().all(|n| *n <= 6_000), "{per_file:?}");
    assert!(per_chunk.values().all(|n| *n <= 900));
    // Reproducible too.
    let again = tmp.path().join("again");
    run(&again).await.expect("again");
    for e in std::fs::read_dir(&out).expect("ls") {
        let n = e.expect("entry").file_name();
        assert_eq!(
            std::fs::read(out.join(&n)).expect("a"),
            std::fs::read(again.join(&n)).expect("b"),
            "{n:?}"
        );
    }
    // Predefined boxes: a new ingest keeps the first table's files and chunks.
    let boxed = tmp.path().join("boxed");
    ingest(input.to_str().expect("utf8"), boxed.to_str().expect("utf8"))
        .partitioning_schema_input(out.to_str().expect("utf8"))
        .memory_limit(64 << 10)
        .run_local()
        .await
        .expect("boxes");
    let first = read_chunk_index(&out).expect("index");
    let second = read_chunk_index(&boxed).expect("index");
    assert_eq!(
        first
            .iter()
            .map(|c| (c.file_id, c.chunk_id, c.num_rows))
            .collect::<Vec<_>>(),
        second
            .iter()
            .map(|c| (c.file_id, c.chunk_id, c.num_rows))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn polygons_by_area_and_subdivision_account_for_every_piece() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("polys.parquet");
    let mut geoms: Vec<Vec<u8>> = points(2_000)
        .iter()
        .map(|(x, y)| square(*x, *y, 0.01))
        .collect();
    geoms.push(square(10.0, 10.0, 4.0)); // 16 deg², cut into pieces of ≤ 1
    write_geoparquet(&input, geoms, 500);
    let out = tmp.path().join("t");
    let report = ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .partitioning_method(PartitioningMethod::Area)
        .partitioning_force_utm(Some(ForceUtm::File))
        .subdivide((1.0, None))
        .write_covering_bbox(true)
        .run_local()
        .await
        .expect("ingest");
    assert_eq!(report.counts.added_by_subdivide, 15, "{report:?}");
    assert_eq!(report.rows, 2_016);
    let index = read_chunk_index(&out).expect("index");
    assert_eq!(index.iter().map(|c| c.num_rows).sum::<u64>(), 2_016);
    // The covering column holds each row's box.
    let b = &get_chunk_from_table(&out, 0, Some(&[0]), Some(&["bbox"])).expect("chunk")[0];
    assert_eq!(b.schema().field(0).name(), "bbox");
}

#[tokio::test]
async fn text_formats_are_read_with_their_geometry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("a.csv"),
        "id,name,lon,lat\n1,a,10.5,20.5\n2,b,-3.25,40\n3,c,,\n",
    )
    .expect("csv");
    std::fs::write(
        dir.join("b.geojson"),
        r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"id":4,"name":"d"},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Feature","properties":{"id":5,"name":"e"},"geometry":{"type":"Point","coordinates":[500,2]}}]}"#,
    )
    .expect("geojson");
    std::fs::write(
        dir.join("c.geojsonl"),
        "{\"type\":\"Feature\",\"properties\":{\"id\":6},\"geometry\":{\"type\":\"LineString\",\"coordinates\":[[0,0],[1,1]]}}\n",
    )
    .expect("ndjson");
    std::fs::write(dir.join("d.csv.txt"), "ignored").expect("other");
    let out = tmp.path().join("t");
    let report = ingest(dir.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .run_local()
        .await
        .expect_err("d.csv.txt is no known format");
    assert!(report.to_string().contains("d.csv.txt"), "{report}");
    let report = ingest(
        [
            dir.join("a.csv"),
            dir.join("b.geojson"),
            dir.join("c.geojsonl"),
        ]
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>(),
        out.to_str().expect("utf8"),
    )
    .run_local()
    .await
    .expect("ingest");
    // Row 3 has no coordinates, feature 5 is out of range: counted, not written.
    assert_eq!(report.counts.dropped_empty, 1);
    assert_eq!(report.counts.dropped_out_of_bounds, 1);
    assert_eq!(report.rows, 4);
    let mut ids: Vec<i64> = Vec::new();
    for c in read_chunk_index(&out).expect("index") {
        for b in get_chunk_from_table(
            &out,
            c.file_id,
            Some(&[c.chunk_id as usize]),
            Some(&["id", "name"]),
        )
        .expect("read")
        {
            ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 4, 6]);
}

#[tokio::test]
async fn bad_input_is_named_and_nothing_is_published() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("t");
    let out_s = out.to_str().expect("utf8");
    // A truncated Parquet file.
    let good = tmp.path().join("good.parquet");
    write_geoparquet(&good, vec![point(1.0, 1.0); 10], 5);
    let bytes = std::fs::read(&good).expect("read");
    let broken = tmp.path().join("broken.parquet");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("write");
    let e = ingest(broken.to_str().expect("utf8"), out_s)
        .run_local()
        .await
        .expect_err("broken");
    assert!(e.to_string().contains("broken.parquet"), "{e}");
    // Invalid WKB names the row.
    let bad = tmp.path().join("bad.parquet");
    write_geoparquet(&bad, vec![point(1.0, 1.0), vec![1, 3, 0, 0, 0, 9]], 5);
    let e = ingest(bad.to_str().expect("utf8"), out_s)
        .run_local()
        .await
        .expect_err("bad wkb");
    assert!(e.to_string().contains("bad.parquet, row 1"), "{e}");
    // An unknown load column.
    let e = ingest(good.to_str().expect("utf8"), out_s)
        .load_columns(vec!["nope".into()])
        .run_local()
        .await
        .expect_err("unknown column");
    assert!(e.to_string().contains("\"nope\""), "{e}");
    // Nothing but empty geometries.
    let csv = tmp.path().join("empty.csv");
    std::fs::write(&csv, "lon,lat\n,\n").expect("csv");
    let e = ingest(csv.to_str().expect("utf8"), out_s)
        .run_local()
        .await
        .expect_err("empty");
    assert!(e.to_string().contains("nothing to ingest"), "{e}");
    // A CRS we cannot transform.
    std::fs::write(
        tmp.path().join("x.geojson"),
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::2154"}},"features":[]}"#,
    )
    .expect("geojson");
    let e = ingest(tmp.path().join("x.geojson").to_str().expect("utf8"), out_s)
        .run_local()
        .await
        .expect_err("crs");
    assert!(e.to_string().contains("EPSG:2154"), "{e}");
    assert!(!out.exists(), "no table published");
    let staging: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("staging"))
        .collect();
    assert!(staging.is_empty());
}

#[tokio::test]
async fn object_storage_tables_are_replaced_file_by_file_with_sample_last() {
    use fused_core::storage::Storage;
    let storage: Arc<dyn Storage> = Arc::new(fused_storage::ObjectStorage::memory());
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("p.parquet");
    write_geoparquet(
        &input,
        points(5_000).iter().map(|(x, y)| point(*x, *y)).collect(),
        1_000,
    );
    storage
        .put(
            "fd://in/p.parquet",
            std::fs::read(&input).expect("read").into(),
        )
        .await
        .expect("put");
    let run = |overwrite: bool| {
        ingest("fd://in/p.parquet", "fd://tables/p")
            .storage(storage.clone())
            .overwrite(overwrite)
            .run_local()
    };
    let first = run(false).await.expect("first");
    assert!(
        run(false)
            .await
            .expect_err("exists")
            .to_string()
            .contains("overwrite")
    );
    let second = run(true).await.expect("second");
    let names: Vec<String> = storage
        .list("fd://tables/p/")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.file_name)
        .collect();
    // Only the new table is left: its files got ids after the old ones.
    assert_eq!(names.len() as u64, second.files + 1, "{names:?}");
    assert!(
        names.contains(&format!("{}.parquet", first.files)),
        "{names:?}"
    );
    assert!(!names.contains(&"0.parquet".to_owned()), "{names:?}");
    let sample = storage
        .get("fd://tables/p/_sample", None)
        .await
        .expect("sample")
        .collect(usize::MAX)
        .await
        .expect("bytes");
    let index =
        fused_ingest::chunk_index_of_sample(Path::new("fd://tables/p"), sample).expect("index");
    assert_eq!(index.iter().map(|c| c.num_rows).sum::<u64>(), 5_000);
    assert!(index.iter().all(|c| c.file_id >= first.files as i64));
    // The storage root is no place for a table.
    let e = ingest("fd://in/p.parquet", "fd://")
        .storage(storage.clone())
        .overwrite(true)
        .run_local()
        .await
        .expect_err("root");
    assert!(e.to_string().contains("storage root"), "{e}");
}

#[tokio::test]
async fn non_finite_coordinates_are_dropped_and_geojson_errors_name_the_feature() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("nan.parquet");
    write_geoparquet(
        &input,
        vec![
            point(1.0, 1.0),
            point(f64::NAN, 2.0),
            point(3.0, f64::INFINITY),
        ],
        5,
    );
    let out = tmp.path().join("t");
    let r = ingest(input.to_str().expect("utf8"), out.to_str().expect("utf8"))
        .run_local()
        .await
        .expect("ingest");
    assert_eq!((r.rows, r.counts.dropped_invalid), (1, 2));
    let bad = tmp.path().join("bad.geojson");
    std::fs::write(
        &bad,
        r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Circle","coordinates":[1,2]}}]}"#,
    )
    .expect("write");
    let e = ingest(
        bad.to_str().expect("utf8"),
        tmp.path().join("u").to_str().expect("utf8"),
    )
    .run_local()
    .await
    .expect_err("bad geometry");
    assert!(
        e.to_string().contains("bad.geojson, row 2") && e.to_string().contains("Circle"),
        "{e}"
    );
}

#[tokio::test]
async fn web_mercator_input_is_reprojected() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("m.geojson"),
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:3857"}},"features":[
            {"type":"Feature","properties":{"id":1},"geometry":{"type":"Point","coordinates":[-8235542.0,4975309.0]}}]}"#,
    )
    .expect("geojson");
    let out = tmp.path().join("t");
    ingest(
        tmp.path().join("m.geojson").to_str().expect("utf8"),
        out.to_str().expect("utf8"),
    )
    .run_local()
    .await
    .expect("ingest");
    let index = read_chunk_index(&out).expect("index");
    let [x, y, _, _] = index[0].bbox;
    assert!(
        (x + 73.98).abs() < 1e-2 && (y - 40.75).abs() < 1e-2,
        "{x} {y}"
    );
    let f = std::fs::File::open(out.join("0.parquet")).expect("open");
    let meta = ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet");
    let geo = meta
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| {
            kv.iter()
                .find(|k| k.key == "geo")
                .and_then(|k| k.value.clone())
        })
        .expect("geo metadata");
    assert!(geo.contains("\"Point\"") && geo.contains("4326"), "{geo}");
    let _ = Array::len(&Int64Array::from(vec![1]));
}
