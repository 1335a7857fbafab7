//! `#[fused::cache]` on async functions.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Multiplies, slowly; `run` makes every test run's keys new (the cache outlives the process).
#[fused::cache(max_age = "1h", verbose = false, key_exclude = ["note"])]
async fn product(run: String, a: i64, b: i64, note: String) -> Result<i64, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = note;
    if a < 0 {
        return Err(format!("negative {a}"));
    }
    Ok(a * b)
}

/// Not `Serialize`: fine when excluded from the key.
struct Client;

#[fused::cache(verbose = false, key_exclude = ["client"], max_age = "3600")]
async fn with_client(run: String, client: &Client, x: i64) -> Result<i64, String> {
    let _ = client;
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(x + run.len() as i64)
}

#[fused::cache(verbose = false, reset)]
async fn always(run: String) -> Result<String, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(run)
}

#[tokio::test]
async fn the_attribute_caches_by_typed_arguments() {
    let run = uuid::Uuid::new_v4().to_string();
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(product(run.clone(), 6, 7, "x".into()).await, Ok(42));
    assert_eq!(
        product(run.clone(), 6, 7, "y".into()).await,
        Ok(42),
        "note is not in the key"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 1);
    assert_eq!(product(run.clone(), 7, 6, "x".into()).await, Ok(42));
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2);
    assert!(product(run.clone(), -1, 1, "x".into()).await.is_err());
    assert!(product(run.clone(), -1, 1, "x".into()).await.is_err());
    assert_eq!(
        RUNS.load(Ordering::SeqCst) - before,
        4,
        "errors are not cached"
    );
    always(run.clone()).await.unwrap();
    always(run.clone()).await.unwrap();
    assert_eq!(
        RUNS.load(Ordering::SeqCst) - before,
        6,
        "reset always recomputes"
    );
    let c = Client;
    let a = with_client(run.clone(), &c, 1).await.unwrap();
    assert_eq!(with_client(run.clone(), &c, 1).await.unwrap(), a);
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 7);
}
