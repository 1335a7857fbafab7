//! The SQLite job store: claims, leases, cancellation, logs, and exclusive claiming by several
//! "processes" (stores over one file).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fused_jobs::store::{JobStatus, JobStore, NewJob, SqliteJobStore};
use serde_json::json;

fn job(name: &str) -> NewJob {
    NewJob {
        kind: "udf".into(),
        name: name.into(),
        owner: "ann".into(),
        config: json!({"udf": "square", "input": [1, 2]}),
        total_tasks: 2,
    }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_job_s_life() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteJobStore::open(&dir.path().join("jobs.db"))
        .await
        .unwrap();
    let j = s.create(job("a")).await.unwrap();
    assert_eq!(j.status, JobStatus::Pending);
    assert_eq!(s.list(Some("ann"), 0, 10).await.unwrap().len(), 1);
    assert!(s.list(Some("bob"), 0, 10).await.unwrap().is_empty());
    let c = s.claim("w1", LEASE, 3, &["udf"]).await.unwrap().unwrap();
    assert_eq!(
        (c.id.as_str(), c.status, c.attempts),
        (j.id.as_str(), JobStatus::Running, 1)
    );
    assert!(
        s.claim("w2", LEASE, 3, &["udf"]).await.unwrap().is_none(),
        "held by w1"
    );
    assert!(s.heartbeat(&j.id, "w1", LEASE).await.unwrap());
    assert!(!s.heartbeat(&j.id, "w2", LEASE).await.unwrap(), "not w2's");
    s.progress(&j.id, 1).await.unwrap();
    let before = s.logs(&j.id, None).await.unwrap().last().unwrap().timestamp;
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.log(&j.id, "half way").await.unwrap();
    let later = s.logs(&j.id, Some(before)).await.unwrap();
    assert_eq!(
        later.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["half way"]
    );
    assert!(!s.finish(&j.id, "w2", JobStatus::Succeeded).await.unwrap());
    assert!(s.finish(&j.id, "w1", JobStatus::Succeeded).await.unwrap());
    let done = s.get(&j.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.finished_tasks),
        (JobStatus::Succeeded, 1)
    );
    assert_eq!(done.status.sdk_name(), "Done");
}

#[tokio::test]
async fn a_stopped_worker_s_job_is_taken_again_then_failed() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteJobStore::open(&dir.path().join("jobs.db"))
        .await
        .unwrap();
    let j = s.create(job("b")).await.unwrap();
    let short = Duration::from_millis(50);
    s.claim("dead1", short, 2, &["udf"]).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let again = s.claim("w2", short, 2, &["udf"]).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (j.id.as_str(), 2));
    assert!(
        !s.heartbeat(&j.id, "dead1", short).await.unwrap(),
        "the first worker lost it"
    );
    assert!(
        !s.finish(&j.id, "dead1", JobStatus::Succeeded)
            .await
            .unwrap()
    );
    // w2 stops too: with max_attempts 2 the job fails instead of running a third time.
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(s.claim("w3", short, 2, &["udf"]).await.unwrap().is_none());
    let failed = s.get(&j.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        s.logs(&j.id, None)
            .await
            .unwrap()
            .iter()
            .any(|l| l.message.contains("ERROR"))
    );
}

#[tokio::test]
async fn cancelling_pending_and_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteJobStore::open(&dir.path().join("jobs.db"))
        .await
        .unwrap();
    let a = s.create(job("a")).await.unwrap();
    let c = s.cancel(&a.id).await.unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert!(
        s.claim("w", LEASE, 3, &["udf"]).await.unwrap().is_none(),
        "a cancelled job is not taken"
    );
    let b = s.create(job("b")).await.unwrap();
    s.claim("w", LEASE, 3, &["udf"]).await.unwrap().unwrap();
    let c = s.cancel(&b.id).await.unwrap().unwrap();
    assert!(c.cancel_requested && c.status == JobStatus::Running);
    assert!(
        !s.heartbeat(&b.id, "w", LEASE).await.unwrap(),
        "the worker is told to stop"
    );
    assert!(s.finish(&b.id, "w", JobStatus::Cancelled).await.unwrap());
    assert!(s.cancel("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn workers_in_two_processes_take_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let a = Arc::new(SqliteJobStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteJobStore::open(&path).await.unwrap());
    for i in 0..200 {
        a.create(job(&format!("j{i}"))).await.unwrap();
    }
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..6 {
        let store = if w % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let taken = Arc::clone(&taken);
        workers.push(tokio::spawn(async move {
            let name = format!("w{w}");
            while let Some(j) = store.claim(&name, LEASE, 3, &["udf"]).await.unwrap() {
                taken.lock().unwrap().push(j.id.clone());
                assert!(
                    store
                        .finish(&j.id, &name, JobStatus::Succeeded)
                        .await
                        .unwrap()
                );
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let taken = taken.lock().unwrap();
    let unique: HashSet<_> = taken.iter().collect();
    assert_eq!(
        (taken.len(), unique.len()),
        (200, 200),
        "every job exactly once"
    );
}
