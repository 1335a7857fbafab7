//! Rasters written with the `tiff` encoder (GeoTIFF tags by hand), ingested, and the output
//! checked against a straightforward computation: every valid pixel's centre → cell at
//! `res + res_offset` → its k-ring → parents at `res`, aggregated in a plain map.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use fused_h3::{Georef, Metric, run_ingest_raster_to_h3, write_f32};
use h3o::{LatLng, Resolution};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tiff::encoder::{TiffEncoder, colortype};

const W: u32 = 120;
const H: u32 = 90;
const X0: f64 = 10.0;
const Y0: f64 = 45.0;
const PX: f64 = 0.001;
const NODATA: f32 = -9999.0;

fn value(c: u32, r: u32) -> f32 {
    if (c + r).is_multiple_of(17) {
        NODATA
    } else {
        ((c * 7 + r * 3) % 11) as f32
    }
}

fn write_tif(path: &Path, epsg: u16) {
    write_tif_with(path, epsg, W, H, value);
}

fn write_tif_with(path: &Path, epsg: u16, w: u32, h: u32, value: impl Fn(u32, u32) -> f32) {
    let data: Vec<f32> = (0..h)
        .flat_map(|r| (0..w).map(|c| value(c, r)).collect::<Vec<_>>())
        .collect();
    let georef = Georef {
        x0: X0,
        y0: Y0,
        pixel: PX,
        epsg,
    };
    write_f32(path, georef, (w, h), Some(NODATA), &data).expect("write");
}

/// A primitive column of a batch.
fn column<T: arrow::datatypes::ArrowPrimitiveType>(
    b: &RecordBatch,
    name: &str,
) -> arrow::array::PrimitiveArray<T> {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_primitive::<T>()
        .clone()
}

/// Hits, sum, min and max per hex.
type StatsRef = BTreeMap<u64, (u64, f64, f64, f64)>;
/// Hits per (hex, value bits).
type CountsRef = HashMap<(u64, u64), u64>;

/// The reference: hex → (hits, sum, min, max), and (hex, value) → hits.
fn reference(res: u8, k: u32, offset: u8) -> (StatsRef, CountsRef) {
    let (rr, ar) = (
        Resolution::try_from(res).expect("res"),
        Resolution::try_from(res + offset).expect("res"),
    );
    let mut stats = BTreeMap::new();
    let mut counts = HashMap::new();
    for r in 0..H {
        for c in 0..W {
            let v = f64::from(value(c, r));
            if v == f64::from(NODATA) {
                continue;
            }
            let (lon, lat) = (
                X0 + (f64::from(c) + 0.5) * PX,
                Y0 - (f64::from(r) + 0.5) * PX,
            );
            let cell = LatLng::new(lat, lon).expect("ll").to_cell(ar);
            for d in cell.grid_disk::<Vec<_>>(k) {
                let p = u64::from(d.parent(rr).expect("parent"));
                let e = stats
                    .entry(p)
                    .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
                e.0 += 1;
                e.1 += v;
                e.2 = e.2.min(v);
                e.3 = e.3.max(v);
                *counts.entry((p, v.to_bits())).or_insert(0) += 1;
            }
        }
    }
    (stats, counts)
}

fn read_all(dir: &Path) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        out.extend(r.map(|b| b.expect("batch")));
    }
    out
}

#[tokio::test]
async fn statistics_match_a_straightforward_computation() {
    // The last case spills every partial to the temporary folder.
    for (k, offset, res, limit) in [
        (0u8, 0u8, 9u8, None),
        (1, 1, 8, None),
        (1, 2, 8, None),
        (0, 1, 10, None),
        (1, 1, 9, Some(1)),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let tif = tmp.path().join("r.tif");
        write_tif(&tif, 4326);
        let out = tmp.path().join("h3");
        let mut run = run_ingest_raster_to_h3(vec![tif], &out);
        if let Some(l) = limit {
            run = run.memory_limit(l);
        }
        let report = run
            .metrics(vec![Metric::Avg, Metric::Min, Metric::Max, Metric::Sum])
            .res(res)
            .k_ring(k)
            .res_offset(offset)
            .overview_res(vec![res - 2])
            .run_local()
            .await
            .expect("ingest");
        let (want, _) = reference(res, u32::from(k), offset);
        assert_eq!(report.rows as usize, want.len(), "k={k} offset={offset}");
        let disk = 1.0 + 3.0 * f64::from(k) * (f64::from(k) + 1.0);
        let mut seen = 0;
        for b in read_all(&out) {
            let hex = column::<UInt64Type>(&b, "hex");
            let col = |n: &str| {
                b.column_by_name(n)
                    .expect(n)
                    .as_primitive::<Float64Type>()
                    .clone()
            };
            let (avg, min, max, sum) = (
                col("data_avg"),
                col("data_min"),
                col("data_max"),
                col("data_sum"),
            );
            let cnt = column::<Int64Type>(&b, "cnt");
            for i in 0..b.num_rows() {
                let (n, s, lo, hi) = want[&hex.value(i)];
                assert_eq!(cnt.value(i) as u64, n);
                assert!((avg.value(i) - s / n as f64).abs() < 1e-9);
                assert_eq!((min.value(i), max.value(i)), (lo, hi));
                assert!((sum.value(i) - s / disk).abs() < 1e-6);
                seen += 1;
            }
            // Rows are sorted by hex.
            assert!(hex.values().windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(seen, want.len());
        assert!(out.join("_sample").exists());
        assert!(
            out.join(format!("overview/hex{}.parquet", res - 2))
                .exists()
        );
        let index = fused_ingest::read_chunk_index(&out).expect("index");
        assert_eq!(
            index.iter().map(|c| c.num_rows).sum::<u64>(),
            want.len() as u64
        );
    }
}

#[tokio::test]
async fn categories_count_hits_per_value_with_totals() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tif = tmp.path().join("r.tif");
    write_tif(&tif, 4326);
    let out = tmp.path().join("h3");
    run_ingest_raster_to_h3(vec![tif], &out)
        .res(8)
        .overview_res(vec![6, 7])
        .memory_limit(1)
        .run_local()
        .await
        .expect("ingest");
    let (_, want) = reference(8, 1, 1);
    let mut totals: HashMap<u64, u64> = HashMap::new();
    for ((h, _), n) in &want {
        *totals.entry(*h).or_default() += n;
    }
    let mut seen = 0;
    for b in read_all(&out) {
        let hex = column::<UInt64Type>(&b, "hex");
        let data = column::<Float64Type>(&b, "data");
        let cnt = column::<Int64Type>(&b, "cnt");
        let total = column::<Int64Type>(&b, "cnt_total");
        for i in 0..b.num_rows() {
            let h = hex.value(i);
            assert_eq!(cnt.value(i) as u64, want[&(h, data.value(i).to_bits())]);
            assert_eq!(total.value(i) as u64, totals[&h]);
            seen += 1;
        }
    }
    assert_eq!(seen, want.len());
    // Overviews, spilled like the rows (memory limit 1 byte): hits per (parent, value),
    // totals per parent, sorted by cell.
    for r in [6u8, 7] {
        let rr = Resolution::try_from(r).expect("res");
        let mut up: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for ((h, v), n) in &want {
            let p = h3o::CellIndex::try_from(*h)
                .expect("cell")
                .parent(rr)
                .expect("p");
            *up.entry((u64::from(p), *v)).or_default() += n;
        }
        let path = out.join(format!("overview/hex{r}.parquet"));
        let f = std::fs::File::open(&path).expect("overview");
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("pq")
            .build()
            .expect("r");
        let mut got: Vec<(u64, u64, u64)> = Vec::new();
        for b in reader {
            let b = b.expect("batch");
            let hex = column::<UInt64Type>(&b, "hex");
            let data = column::<Float64Type>(&b, "data");
            let cnt = column::<Int64Type>(&b, "cnt");
            for i in 0..b.num_rows() {
                got.push((hex.value(i), data.value(i).to_bits(), cnt.value(i) as u64));
            }
        }
        assert!(
            got.is_sorted_by(|a, b| a.0 <= b.0),
            "res {r}: sorted by hex"
        );
        let got: BTreeMap<(u64, u64), u64> = got.into_iter().map(|(h, v, n)| ((h, v), n)).collect();
        assert_eq!(got, up, "overview res {r}");
    }
}

#[tokio::test]
async fn bad_rasters_and_options_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let plain = tmp.path().join("plain.tif");
    {
        let mut f = std::fs::File::create(&plain).expect("create");
        let mut enc = TiffEncoder::new(&mut f).expect("encoder");
        enc.write_image::<colortype::Gray8>(4, 4, &[0u8; 16])
            .expect("write");
    }
    let e = run_ingest_raster_to_h3(vec![plain.clone()], tmp.path().join("a"))
        .res(5)
        .run_local()
        .await
        .expect_err("no georeferencing");
    assert!(
        e.to_string().contains("plain.tif") && e.to_string().contains("GeoTIFF"),
        "{e}"
    );
    let tif = tmp.path().join("r.tif");
    write_tif(&tif, 4326);
    let e = run_ingest_raster_to_h3(vec![tif.clone()], tmp.path().join("b"))
        .res(15)
        .run_local()
        .await
        .expect_err("16");
    assert!(e.to_string().contains("15"), "{e}");
    let e = run_ingest_raster_to_h3(vec![tif.clone()], tmp.path().join("c"))
        .res(8)
        .overview_res(vec![8])
        .run_local()
        .await
        .expect_err("overview");
    assert!(e.to_string().contains("not below res"), "{e}");
    let e = run_ingest_raster_to_h3(vec![tif.clone()], tmp.path().join("c2"))
        .res(8)
        .overview_res(vec![5, 5])
        .run_local()
        .await
        .expect_err("twice");
    assert!(e.to_string().contains("given twice"), "{e}");
    // `cnt` (the default) on a continuous band: refused before it fills the disk.
    let smooth = tmp.path().join("smooth.tif");
    write_tif_with(&smooth, 4326, 300, 300, |c, r| (c * 1000 + r) as f32);
    let e = run_ingest_raster_to_h3(vec![smooth], tmp.path().join("e"))
        .res(8)
        .run_local()
        .await
        .expect_err("continuous");
    assert!(
        e.to_string().contains("distinct values") && e.to_string().contains("avg"),
        "{e}"
    );
    assert!(!tmp.path().join("e").exists(), "nothing published");
    let odd = tmp.path().join("odd.tif");
    write_tif(&odd, 2154);
    let e = run_ingest_raster_to_h3(vec![odd], tmp.path().join("d"))
        .res(8)
        .run_local()
        .await
        .expect_err("crs");
    assert!(e.to_string().contains("EPSG:2154"), "{e}");
    let bytes = std::fs::read(&tif).expect("read");
    let cut = tmp.path().join("cut.tif");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let e = run_ingest_raster_to_h3(vec![cut], tmp.path().join("e"))
        .res(8)
        .run_local()
        .await
        .expect_err("truncated");
    assert!(e.to_string().contains("cut.tif"), "{e}");
    for d in ["a", "b", "c", "d", "e"] {
        assert!(!tmp.path().join(d).exists(), "nothing published at {d}");
    }
}

#[tokio::test]
async fn the_reader_uses_overviews_or_reaggregates_the_chunks() {
    use fused_h3::{Query, read_h3_dataset};
    let tmp = tempfile::tempdir().expect("tmp");
    let tif = tmp.path().join("r.tif");
    write_tif(&tif, 4326);
    let out = tmp.path().join("h3");
    run_ingest_raster_to_h3(vec![tif], &out)
        .metrics(vec![Metric::Avg, Metric::Min, Metric::Max])
        .res(9)
        .k_ring(0)
        .res_offset(0)
        .overview_res(vec![7])
        .run_local()
        .await
        .expect("ingest");
    let (fine, _) = reference(9, 0, 0);
    // The reference at a coarser resolution: hits, sum, min, max per parent.
    let coarse = |r: u8| {
        let rr = Resolution::try_from(r).expect("res");
        let mut m: BTreeMap<u64, (u64, f64, f64, f64)> = BTreeMap::new();
        for (h, (n, s, lo, hi)) in &fine {
            let p = u64::from(
                h3o::CellIndex::try_from(*h)
                    .expect("cell")
                    .parent(rr)
                    .expect("p"),
            );
            let e = m
                .entry(p)
                .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
            e.0 += n;
            e.1 += s;
            e.2 = e.2.min(*lo);
            e.3 = e.3.max(*hi);
        }
        m
    };
    let everything = Query::Bbox([-180.0, -90.0, 180.0, 90.0]);
    for (res, want) in [(9u8, fine.clone()), (7, coarse(7)), (8, coarse(8))] {
        // 7 comes from the overview, 8 is re-aggregated from the chunks.
        let b = read_h3_dataset(&out, &everything, Some(res)).expect("read");
        assert_eq!(b.num_rows(), want.len(), "res {res}");
        let hex = column::<UInt64Type>(&b, "hex");
        let avg = column::<Float64Type>(&b, "data_avg");
        let max = column::<Float64Type>(&b, "data_max");
        for i in 0..b.num_rows() {
            let (n, s, _, hi) = want[&hex.value(i)];
            assert!((avg.value(i) - s / n as f64).abs() < 1e-9, "res {res}");
            assert_eq!(max.value(i), hi);
        }
        assert!(b.column_by_name("lat").is_some() && b.column_by_name("lng").is_some());
    }
    // A box keeps the cells whose centre is inside; a list of cells keeps those.
    let bbox = [10.02, 44.95, 10.06, 44.98];
    let b = read_h3_dataset(&out, &Query::Bbox(bbox), None).expect("bbox");
    let inside = fine
        .keys()
        .filter(|h| {
            let c = LatLng::from(h3o::CellIndex::try_from(**h).expect("cell"));
            c.lng() >= bbox[0] && c.lng() <= bbox[2] && c.lat() >= bbox[1] && c.lat() <= bbox[3]
        })
        .count();
    assert_eq!(b.num_rows(), inside);
    let some: Vec<u64> = fine.keys().take(5).copied().collect();
    let b = read_h3_dataset(&out, &Query::Hexes(some.clone()), None).expect("hexes");
    assert_eq!(b.num_rows(), 5);
    assert!(
        read_h3_dataset(&out, &everything, Some(10)).is_err(),
        "finer than the dataset"
    );
}

/// Every row group, as listed by `_sample`: its file, rows, and box.
fn row_groups(dir: &Path) -> Vec<(fused_ingest::ChunkEntry, Vec<u64>)> {
    let index = fused_ingest::read_chunk_index(dir).expect("index");
    index
        .into_iter()
        .map(|e| {
            let f = std::fs::File::open(dir.join(format!("{}.parquet", e.file_id))).expect("file");
            let b = ParquetRecordBatchReaderBuilder::try_new(f)
                .expect("pq")
                .with_row_groups(vec![e.chunk_id as usize])
                .build()
                .expect("reader");
            let mut hexes = Vec::new();
            for batch in b {
                let batch = batch.expect("batch");
                let h = column::<UInt64Type>(&batch, "hex");
                hexes.extend(h.values().iter().copied());
            }
            (e, hexes)
        })
        .collect()
}

#[tokio::test]
async fn row_groups_follow_chunk_cells_or_row_counts_and_the_index_lists_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tif = tmp.path().join("r.tif");
    write_tif(&tif, 4326);
    let (want, _) = reference(10, 0, 0);
    let inside = |b: [f64; 4], h: u64| {
        let c = LatLng::from(h3o::CellIndex::try_from(h).expect("cell"));
        c.lng() >= b[0] && c.lng() <= b[2] && c.lat() >= b[1] && c.lat() <= b[3]
    };
    // A row group per `chunk_res` cell (buckets spill under a 1-byte budget): statistics, and
    // categories, whose buckets are finer than their row groups.
    let check = |dir: &Path, chunk: u8, rows: usize| {
        let rc = Resolution::try_from(chunk).expect("res");
        let mut all: Vec<u64> = Vec::new();
        let mut cells = std::collections::HashSet::new();
        for (e, hexes) in &row_groups(dir) {
            assert_eq!(e.num_rows as usize, hexes.len());
            let parents: std::collections::HashSet<_> = hexes
                .iter()
                .map(|h| {
                    h3o::CellIndex::try_from(*h)
                        .expect("c")
                        .parent(rc)
                        .expect("p")
                })
                .collect();
            assert_eq!(parents.len(), 1, "one cell per row group");
            assert!(
                cells.insert(*parents.iter().next().expect("p")),
                "one row group per cell"
            );
            assert!(
                hexes.iter().all(|h| inside(e.bbox, *h)),
                "the box covers its cells"
            );
            all.extend(hexes);
        }
        assert!(all.is_sorted(), "rows sorted by hex across row groups");
        assert_eq!(all.len(), rows);
    };
    let by_cell = tmp.path().join("by-cell");
    run_ingest_raster_to_h3(vec![tif.clone()], &by_cell)
        .metrics(vec![Metric::Avg])
        .res(10)
        .k_ring(0)
        .res_offset(0)
        .file_res(5)
        .chunk_res(7)
        .memory_limit(1)
        .run_local()
        .await
        .expect("ingest");
    check(&by_cell, 7, want.len());
    let categories = tmp.path().join("categories");
    run_ingest_raster_to_h3(vec![tif.clone()], &categories)
        .res(8)
        .chunk_res(2)
        .memory_limit(1)
        .run_local()
        .await
        .expect("ingest");
    check(&categories, 2, reference(8, 1, 1).1.len());
    // Cut by rows instead.
    let by_rows = tmp.path().join("by-rows");
    run_ingest_raster_to_h3(vec![tif], &by_rows)
        .metrics(vec![Metric::Avg])
        .res(10)
        .k_ring(0)
        .res_offset(0)
        .max_rows_per_chunk(50)
        .run_local()
        .await
        .expect("ingest");
    let groups = row_groups(&by_rows);
    let sizes: Vec<usize> = groups.iter().map(|(_, h)| h.len()).collect();
    assert!(
        sizes.iter().all(|n| *n <= 50) && sizes.iter().rev().skip(1).all(|n| *n == 50),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<usize>(), want.len());
    for (e, hexes) in &groups {
        assert!(
            hexes.iter().all(|h| inside(e.bbox, *h)),
            "the box covers its cells"
        );
    }
}

#[tokio::test]
async fn steps_debug_mode_and_temporary_files_follow_the_options() {
    let tmp = tempfile::tempdir().expect("tmp");
    // 300 rows: five strips of 64.
    let tif = tmp.path().join("r.tif");
    write_tif_with(&tif, 4326, W, 300, value);
    let run = |out: &str| {
        run_ingest_raster_to_h3(vec![tif.clone()], tmp.path().join(out))
            .metrics(vec![Metric::Avg])
            .res(9)
    };
    // Without the overview step: no overviews.
    let r = run("a")
        .steps(vec![
            "extract".into(),
            "partition".into(),
            "metadata".into(),
        ])
        .run_local()
        .await
        .expect("no overview");
    assert_eq!(r.overviews, 0);
    assert!(!tmp.path().join("a/overview").exists());
    for (steps, want) in [
        (vec!["extract", "sharpen"], "unknown step"),
        (vec!["extract", "overview"], "leave out partition"),
    ] {
        let e = run("b")
            .steps(steps.into_iter().map(String::from).collect())
            .run_local()
            .await
            .expect_err("bad steps");
        assert!(e.to_string().contains(want), "{e}");
    }
    // A trial reads two chunks (strips), not all five.
    let all = run("c").run_local().await.expect("all").pixels;
    let trial = run("d")
        .debug_mode(true)
        .run_local()
        .await
        .expect("trial")
        .pixels;
    assert!(trial > 0 && trial < all / 2, "{trial} of {all}");
    // Temporary files where asked, kept when asked (spilled under a 1-byte budget).
    let scratch = tmp.path().join("scratch");
    let r = run("e")
        .tmp_path(scratch.display().to_string())
        .remove_tmp_files(false)
        .memory_limit(1)
        .run_local()
        .await
        .expect("kept");
    assert_eq!(
        r.kept_tmp.as_deref(),
        Some(scratch.display().to_string().as_str())
    );
    let kept: Vec<_> = std::fs::read_dir(&scratch).expect("scratch").collect();
    assert!(!kept.is_empty(), "partials kept in {}", scratch.display());
    let r = run("f")
        .tmp_path(scratch.display().to_string())
        .memory_limit(1)
        .run_local()
        .await
        .expect("removed");
    assert!(r.kept_tmp.is_none());
    assert_eq!(
        std::fs::read_dir(&scratch).expect("scratch").count(),
        kept.len()
    );
}
