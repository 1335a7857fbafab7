//! The Rust side of `cargo xtask bench cache`: per-hit times of (a) a memory hit of `cached()`,
//! (b) a disk hit of a 1 MiB Arrow table (storage tier only, decoded). Prints JSON.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;
use fused_cache::{CacheKey, CacheOptions, CacheValue, StorageCache, cached};
use fused_core::Cache;

fn table() -> RecordBatch {
    let n = 65_536i64; // 2 columns × 8 bytes × 65 536 rows = 1 MiB
    RecordBatch::try_from_iter([
        ("a", Arc::new(Int64Array::from_iter_values(0..n)) as _),
        (
            "b",
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 7))) as _,
        ),
    ])
    .unwrap()
}

/// Median time per iteration over `rounds` rounds of `iters` iterations.
async fn time<F, Fut>(rounds: usize, iters: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            f().await;
        }
        per.push(t.elapsed() / iters as u32);
    }
    per.sort();
    per[per.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CacheOptions {
        directory: Some(dir.path().to_owned()),
        verbose: Some(false),
        ..CacheOptions::default()
    };
    // (a) memory hits of cached() with a small value (key hashing included).
    let key = || {
        CacheKey::new("bench_small")
            .arg("x", &42_i64)
            .arg("label", "tile")
    };
    cached(key(), &opts, || async { Ok::<_, ()>(7_i64) })
        .await
        .unwrap();
    let small = time(7, 20_000, || async {
        let v: i64 = cached(key(), &opts, || async { Ok::<_, ()>(0_i64) })
            .await
            .unwrap();
        assert_eq!(v, 7);
    })
    .await;
    // (a') memory hit of a 1 MiB table through cached() (no copy: Arrow buffers are shared).
    let tkey = || CacheKey::new("bench_table").arg("n", &65_536_i64);
    let t = table();
    cached(tkey(), &opts, || async { Ok::<_, ()>(t.clone()) })
        .await
        .unwrap();
    let table_mem = time(7, 500, || async {
        let b: RecordBatch = cached(tkey(), &opts, || async { Ok::<_, ()>(table()) })
            .await
            .unwrap();
        assert_eq!(b.num_rows(), 65_536);
    })
    .await;
    // (b) disk hits of the table: the storage tier alone (a process with an empty memory
    // tier), read and decoded.
    let disk = StorageCache::local(dir.path().join("disk")).unwrap();
    disk.put(
        "t",
        table().to_cache_bytes().unwrap(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let table_disk = time(7, 200, || async {
        let e = disk.get("t").await.unwrap().unwrap();
        let b = RecordBatch::from_cache_bytes(e.value).unwrap();
        assert_eq!(b.num_rows(), 65_536);
    })
    .await;
    if std::env::var_os("BENCH_PROBE").is_some() {
        let bytes = table().to_cache_bytes().unwrap();
        let d = time(7, 200, || async {
            let _ = RecordBatch::from_cache_bytes(bytes.clone()).unwrap();
        })
        .await;
        eprintln!("decode only: {d:?}");
        let d = time(7, 200, || async {
            let _ = crc32fast::hash(&bytes);
        })
        .await;
        eprintln!("crc32 of 1 MiB: {d:?}");
        let path = walk(dir.path())
            .into_iter()
            .find(|p| p.ends_with(".entry") && p.contains("disk"))
            .unwrap();
        let d = time(7, 200, || async {
            let _ = std::fs::read(&path).unwrap();
        })
        .await;
        eprintln!("std::fs::read: {d:?}");
        let d = time(7, 200, || async {
            let b = disk.get("t").await.unwrap().unwrap();
            assert!(b.value.len() > 1000);
        })
        .await;
        eprintln!("StorageCache::get: {d:?}");
    }
    println!(
        "{{\"memory_hit_small_ns\": {}, \"memory_hit_table_ns\": {}, \"disk_hit_table_ns\": {}}}",
        small.as_nanos(),
        table_mem.as_nanos(),
        table_disk.as_nanos()
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
