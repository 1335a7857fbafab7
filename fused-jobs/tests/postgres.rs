//! The PostgreSQL job store against a real PostgreSQL server (Debian's package, which
//! `cargo xtask test` installs), started for the test in a temporary folder.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fused_jobs::store::{JobStatus, JobStore, NewJob, PostgresJobStore};
use serde_json::json;

/// A PostgreSQL server in a temporary folder, stopped on drop.
struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|b| b.join("initdb").exists());
    found.unwrap_or_else(|| {
        panic!("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: run `cargo xtask test` (it installs Debian's postgresql)")
    })
}

impl TempPostgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = pg_bin();
        // PostgreSQL refuses to run as root: then its own user runs it.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if as_postgres {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let me = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = me.dir.path().join("data");
        me.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            me.dir.path().display()
        );
        let log = me.dir.path().join("log");
        me.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        me
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "stop",
                ],
            );
        });
    }
}

fn job(i: usize) -> NewJob {
    NewJob {
        kind: "udf".into(),
        name: format!("j{i}"),
        owner: "ann".into(),
        config: json!({"input": [i]}),
        total_tasks: 1,
    }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn jobs_on_postgres_claims_leases_cancel_and_logs() {
    let pg = TempPostgres::start();
    let s = PostgresJobStore::connect(&pg.url()).await.unwrap();
    let j = s.create(job(0)).await.unwrap();
    assert_eq!(s.list(Some("ann"), 0, 10).await.unwrap().len(), 1);
    assert_eq!(s.list(None, 0, 10).await.unwrap().len(), 1);
    let c = s
        .claim("w1", Duration::from_millis(50), 2, &["udf"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.id.as_str(), c.attempts), (j.id.as_str(), 1));
    assert!(s.claim("w2", LEASE, 2, &["udf"]).await.unwrap().is_none());
    // w1 stops: after its lease, w2 takes it; w1 can no longer finish it.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let again = s.claim("w2", LEASE, 2, &["udf"]).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    assert!(!s.finish(&j.id, "w1", JobStatus::Succeeded).await.unwrap());
    s.log(&j.id, "working").await.unwrap();
    let logs = s.logs(&j.id, None).await.unwrap();
    assert!(logs.iter().any(|l| l.message == "working"));
    let since = s.logs(&j.id, Some(logs[0].timestamp)).await.unwrap();
    assert!(since.len() < logs.len());
    s.cancel(&j.id).await.unwrap();
    assert!(
        !s.heartbeat(&j.id, "w2", LEASE).await.unwrap(),
        "told to stop"
    );
    assert!(s.finish(&j.id, "w2", JobStatus::Cancelled).await.unwrap());
    assert_eq!(
        s.get(&j.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
}

#[tokio::test]
async fn two_workers_on_one_postgres_run_a_thousand_jobs_exactly_once() {
    let pg = TempPostgres::start();
    // Two stores (two pools of connections) stand for two machines.
    let a = Arc::new(PostgresJobStore::connect(&pg.url()).await.unwrap());
    let b = Arc::new(PostgresJobStore::connect(&pg.url()).await.unwrap());
    for i in 0..1000 {
        a.create(job(i)).await.unwrap();
    }
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
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
    let taken = taken.lock().unwrap().clone();
    let unique: HashSet<_> = taken.iter().collect();
    assert_eq!(
        (taken.len(), unique.len()),
        (1000, 1000),
        "every job exactly once"
    );
    assert!(
        a.list(None, 0, 2000)
            .await
            .unwrap()
            .iter()
            .all(|j| j.status == JobStatus::Succeeded)
    );
}
