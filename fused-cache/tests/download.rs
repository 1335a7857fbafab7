//! `download` and `file_path` against a local HTTP server that counts requests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use fused_cache::{Downloader, file_path_in};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `/ok` (a body), `/flaky` (503 twice, then the body), `/missing` (404); counts hits.
async fn server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (hits, flaky) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, f) = (Arc::clone(&hits), Arc::clone(&flaky));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                break;
            };
            let (h, f) = (Arc::clone(&h), Arc::clone(&f));
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                let body = "x".repeat(100_000);
                let ok = req.starts_with("GET /ok")
                    || (req.starts_with("GET /flaky") && f.fetch_add(1, Ordering::SeqCst) >= 2);
                let resp = if ok {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if req.starts_with("GET /flaky") {
                    "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), hits, flaky)
}

#[tokio::test]
async fn downloads_once_across_callers_and_calls() {
    let (base, hits, _) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(Downloader::new().in_dir(dir.path()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (d, url) = (Arc::clone(&d), format!("{base}/ok"));
        tasks.push(tokio::spawn(async move {
            d.download(&url, "data/ok.bin").await.unwrap()
        }));
    }
    let mut paths = Vec::new();
    for t in tasks {
        paths.push(t.await.unwrap());
    }
    assert!(paths.iter().all(|p| p == &paths[0]));
    assert_eq!(std::fs::read(&paths[0]).unwrap().len(), 100_000);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one request for 8 callers");
    // A second downloader (another process, as far as the files go) finds it done.
    let again = Downloader::new().in_dir(dir.path());
    again
        .download(&format!("{base}/ok"), "data/ok.bin")
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(dir.path().join("data/ok.bin.done").exists());
    assert!(
        !dir.path().join("data/ok.bin.lock").exists(),
        "the lock is gone"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_others_leave_nothing() {
    let (base, _, flaky) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Downloader::new().in_dir(dir.path());
    let p = d.download(&format!("{base}/flaky"), "f.bin").await.unwrap();
    assert_eq!(std::fs::read(p).unwrap().len(), 100_000);
    assert_eq!(flaky.load(Ordering::SeqCst), 3, "two 503s, then the file");
    let e = d
        .download(&format!("{base}/missing"), "m.bin")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("m.bin"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for bad in ["../x", "/etc/passwd/../../x", "a/../../b", ""] {
        assert!(
            d.download(&format!("{base}/ok"), bad).await.is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn file_urls_and_a_stopped_holder_s_lock() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.txt");
    std::fs::write(&src, "local").unwrap();
    let out = tempfile::tempdir().unwrap();
    // A lock left by a killed process: never refreshed.
    let lock = out.path().join("copy.txt.lock");
    std::fs::write(&lock, "dead-holder\n3").unwrap();
    let t = std::time::Instant::now();
    let p = Downloader::new()
        .in_dir(out.path())
        .with_stale_after(Duration::from_millis(300))
        .download(&format!("file://{}", src.display()), "copy.txt")
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(p).unwrap(), "local");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "waited for it to go stale"
    );
    // A symlink out of the folder is refused.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), out.path().join("link")).unwrap();
    let e = Downloader::new()
        .in_dir(out.path())
        .download(&format!("file://{}", src.display()), "link/x.txt")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert!(!outside.path().join("x.txt").exists());
}

#[test]
fn file_path_makes_folders_inside_and_sweeps_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = file_path_in(dir.path(), "work/tiles").unwrap();
    assert!(p.is_dir());
    let f = file_path_in(dir.path(), "work/out.parquet").unwrap();
    assert!(!f.exists() && f.parent().unwrap().is_dir());
    let old = dir.path().join("work/old.tmp");
    std::fs::File::create(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(13 * 3600))
        .unwrap();
    std::fs::write(dir.path().join("work/new.tmp"), "x").unwrap();
    file_path_in(dir.path(), "work").unwrap();
    assert!(!old.exists(), "older than 12 h: removed");
    assert!(dir.path().join("work/new.tmp").exists());
    for bad in ["../x", "a/../../b", "", "x/\0"] {
        assert!(file_path_in(dir.path(), bad).is_err(), "{bad:?}");
    }
}
