//! A process killed (SIGKILL) while it holds a cache lock and is writing: the next caller
//! takes the lock over once the dead holder's heartbeat stops, computes, and the cache is whole.
//!
//! The holder is this test binary re-run with `FUSED_TEST_HOLD_LOCK` set (see `holder`).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fused_cache::{LockSettings, StorageCache};
use fused_core::Cache;
use fused_core::cache::{Compute, Computed};

fn settings() -> LockSettings {
    LockSettings {
        concurrent_lock_timeout: Duration::from_secs(60),
        heartbeat: Duration::from_millis(100),
        stale_after: Duration::from_millis(600),
    }
}

/// In the child: takes the lock of "k" and computes forever (until killed).
#[tokio::test]
async fn holder() {
    let Ok(dir) = std::env::var("FUSED_TEST_HOLD_LOCK") else {
        return; // a no-op unless re-run by the test below
    };
    let c = StorageCache::local(&dir)
        .unwrap()
        .with_lock_settings(settings());
    let forever: Compute = Box::pin(async {
        println!("holding");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Computed {
            value: Bytes::new(),
            store: true,
            ttl: Duration::from_secs(1),
        })
    });
    let _ = c
        .get_or_compute("k", Duration::from_secs(60), forever)
        .await;
}

#[tokio::test]
async fn a_killed_holder_leaves_a_cache_the_next_caller_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder", "--nocapture"])
        .env("FUSED_TEST_HOLD_LOCK", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it holds the lock.
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = Arc::new(
        StorageCache::local(dir.path())
            .unwrap()
            .with_lock_settings(settings()),
    );
    loop {
        let locks = walk(dir.path())
            .into_iter()
            .filter(|p| p.ends_with(".lock"))
            .count();
        if locks == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the holder never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it lives, a caller waits; kill -9 it mid-way.
    let waiter = {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            let mine: Compute = Box::pin(async {
                Ok(Computed {
                    value: Bytes::from_static(b"repaired"),
                    store: true,
                    ttl: Duration::from_secs(60),
                })
            });
            c.get_or_compute("k", Duration::from_secs(60), mine)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a live holder is waited for");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t = Instant::now();
    let got = waiter.await.unwrap();
    assert_eq!(got.value, Bytes::from_static(b"repaired"));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "taken over after the heartbeat stopped"
    );
    assert_eq!(
        c.get("k").await.unwrap().unwrap().value,
        Bytes::from_static(b"repaired")
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
