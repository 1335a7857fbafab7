//! `cached`: one computation per key, typed keys, errors never cached, resets, values of every
//! kind, and entries that survive the process (read back from the folder).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use fused_cache::{CacheKey, CacheOptions, Json, cached};

fn opts(dir: &std::path::Path) -> CacheOptions {
    CacheOptions {
        directory: Some(dir.to_owned()),
        verbose: Some(false),
        ..CacheOptions::default()
    }
}

async fn square(o: &CacheOptions, runs: &AtomicUsize, x: i64) -> Result<i64, String> {
    cached(CacheKey::new("square").arg("x", &x), o, || async {
        runs.fetch_add(1, Ordering::SeqCst);
        if x < 0 {
            return Err(format!("negative: {x}"));
        }
        Ok(x * x)
    })
    .await
}

#[tokio::test]
async fn computes_once_per_key_and_never_caches_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let runs = AtomicUsize::new(0);
    assert_eq!(square(&o, &runs, 7).await, Ok(49));
    assert_eq!(square(&o, &runs, 7).await, Ok(49));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(square(&o, &runs, 8).await, Ok(64));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(square(&o, &runs, -1).await.is_err());
    assert!(square(&o, &runs, -1).await.is_err());
    assert_eq!(runs.load(Ordering::SeqCst), 4, "errors are recomputed");
    // reset recomputes and overwrites; max age 0 bypasses.
    let reset = CacheOptions {
        reset: true,
        ..o.clone()
    };
    assert_eq!(square(&reset, &runs, 7).await, Ok(49));
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    let zero = o.clone().max_age("0").unwrap();
    square(&zero, &runs, 7).await.unwrap();
    square(&zero, &runs, 7).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 7);
    // A different max age is a different key.
    let hour = o.clone().max_age("1h").unwrap();
    square(&hour, &runs, 7).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn concurrent_callers_compute_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = Arc::new(opts(dir.path()));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (o, runs) = (Arc::clone(&o), Arc::clone(&runs));
        tasks.push(tokio::spawn(async move {
            cached(CacheKey::new("slow"), &o, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Ok::<_, String>("done".to_owned())
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "done");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Report {
    name: String,
    values: Vec<f64>,
}

#[tokio::test]
async fn tables_serde_values_and_bytes_round_trip_through_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
        (
            "name",
            Arc::new(StringArray::from(vec!["a", "b", "c"])) as _,
        ),
    ])
    .unwrap();
    let b2 = batch.clone();
    let got: RecordBatch = cached(
        CacheKey::new("table"),
        &o,
        || async move { Ok::<_, ()>(b2) },
    )
    .await
    .unwrap();
    assert_eq!(got, batch);
    let report = || Report {
        name: "r".into(),
        values: vec![1.5, 2.5],
    };
    let got = cached(CacheKey::new("report"), &o, || async {
        Ok::<_, ()>(Json(report()))
    })
    .await
    .unwrap();
    assert_eq!(got.0, report());
    // Entries are files under cached_data/<folder>.
    let data = dir.path().join("cached_data").join("tmp");
    assert!(data.is_dir());
    // A second "process" (no memory tier shared) would read them back: the storage tier has them.
    let storage = fused_cache::StorageCache::local(&data).unwrap();
    assert_eq!(storage.entries().await.unwrap().len(), 2);
}

#[tokio::test]
async fn bad_folders_are_refused_but_the_function_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let o = CacheOptions {
        folder_path: "../escape".into(),
        ..opts(dir.path())
    };
    let v = cached(CacheKey::new("x"), &o, || async { Ok::<_, ()>(5_i64) })
        .await
        .unwrap();
    assert_eq!(v, 5);
    assert!(!dir.path().join("escape").exists());
}
