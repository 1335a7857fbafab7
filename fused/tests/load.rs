//! `fused::load::load`: code, files, folders and zips here, and GitHub URLs fetched over HTTP
//! from a real server (Python's http.server laid out like raw.githubusercontent.com).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fused::load::load_with;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/udfs")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[tokio::test]
async fn code_files_folders_zips_and_github_urls_load() {
    let tmp = tempfile::tempdir().unwrap();
    // Raw code, a folder, a .py, a zip.
    let m = load_with(
        "@fused.udf\ndef hi(x: int = 1):\n    return x\n",
        None,
        "http://unused",
    )
    .await
    .unwrap();
    assert_eq!((m.entrypoint.as_str(), m.display_name()), ("hi", "hi"));
    let folder = corpus().join("with_header");
    let m = load_with(folder.to_str().unwrap(), None, "http://unused")
        .await
        .unwrap();
    assert_eq!(m.headers[0].module_name, "utils");
    assert!(
        m.headers[0]
            .source_code
            .as_deref()
            .unwrap_or("")
            .contains("def scale")
    );
    let py = tmp.path().join("one.py");
    std::fs::write(&py, "@fused.udf\ndef udf():\n    return 1\n").unwrap();
    assert_eq!(
        load_with(py.to_str().unwrap(), None, "x")
            .await
            .unwrap()
            .display_name(),
        "one"
    );
    let zip = tmp.path().join("w.zip");
    m.to_file(&zip, false).unwrap();
    let z = load_with(zip.to_str().unwrap(), None, "x").await.unwrap();
    assert_eq!(z.headers.len(), 1);
    // Without a server, a name is refused with the reason.
    let e = load_with("some_saved_udf", None, "x").await.unwrap_err();
    assert!(e.to_string().contains("FUSED_BASE_URL"), "{e}");

    // GitHub: acme/udfs at ref main, served by a real HTTP server.
    let raw = tmp.path().join("raw");
    let repo = raw.join("acme/udfs/main/catalog");
    copy_dir(&corpus().join("with_header"), &repo.join("with_header"));
    std::fs::write(
        repo.join("single.py"),
        "@fused.udf\ndef udf(n: int = 2):\n    return n\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&raw)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "http.server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let m = load_with(
        "https://github.com/acme/udfs/tree/main/catalog/with_header",
        None,
        &base,
    )
    .await
    .unwrap();
    assert_eq!(m.display_name(), "with_header");
    assert!(m.code.contains("from utils import scale"), "{}", m.code);
    assert!(
        m.headers[0]
            .source_code
            .as_deref()
            .unwrap_or("")
            .contains("x * 10")
    );
    let m = load_with(
        "https://github.com/acme/udfs/blob/main/catalog/single.py",
        None,
        &base,
    )
    .await
    .unwrap();
    assert_eq!(m.display_name(), "single");
    let e = load_with(
        "https://github.com/acme/udfs/tree/main/catalog/missing",
        None,
        &base,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let _ = server.kill();
    let _ = server.wait();
}
