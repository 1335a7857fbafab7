//! `/v1/files/…` through `FusedApi` and raw requests: round trips, signed URLs, uploads, and a
//! table of paths that try to leave the root.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{OWNER_TOKEN, TestServer};
use fused_core::{Body, Error};
use futures::StreamExt;

fn q(path: &str) -> String {
    form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

#[tokio::test]
async fn files_round_trip() {
    let s = TestServer::new().await;
    let api = s.api();
    api.upload(b"abc".to_vec(), "fd://d/a.txt").await.unwrap();
    let big = vec![7u8; 3 << 20];
    api.upload(big.clone(), "fd://d/sub/big.bin").await.unwrap();
    assert_eq!(
        api.list("fd://d/").await.unwrap(),
        ["fd://d/a.txt", "fd://d/sub/"]
    );
    let details = api.list_details("fd://d/").await.unwrap();
    assert_eq!(details[0].size, Some(3));
    assert!(details[0].last_modified.is_some());
    assert!(details[1].is_directory);
    assert_eq!(api.get("fd://d/sub/big.bin").await.unwrap().len(), 3 << 20);

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("out/big.bin");
    api.download("fd://d/sub/big.bin", &local).await.unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), big);
    // A file uploads under its own name into a folder path.
    api.upload(local.as_path(), "fd://e/").await.unwrap();
    assert_eq!(api.list("fd://e/").await.unwrap(), ["fd://e/big.bin"]);

    let resolved = api.resolve("fd://d/a.txt").await.unwrap();
    assert!(
        resolved.starts_with("file:///") && resolved.ends_with("/d/a.txt"),
        "{resolved}"
    );

    // Depth: a.txt is 1 level below d/, big.bin 2.
    let e = api.delete("fd://d/", Some(1)).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 400, .. }), "{e}");
    assert_eq!(
        api.list("fd://d/").await.unwrap().len(),
        2,
        "nothing deleted"
    );
    assert!(api.delete("fd://d/", None).await.unwrap());
    assert!(api.list("fd://d/").await.unwrap().is_empty());
    let e = api.get("fd://d/a.txt").await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
}

#[tokio::test]
async fn tables_upload_as_parquet() {
    use arrow::array::Int64Array;
    use arrow::record_batch::RecordBatch;
    let s = TestServer::new().await;
    let batch = RecordBatch::try_from_iter([(
        "x",
        std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as _,
    )])
    .unwrap();
    s.api().upload(batch, "fd://t.parquet").await.unwrap();
    let bytes = s.api().get("fd://t.parquet").await.unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 1024).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn files_need_a_token() {
    let s = TestServer::new().await;
    for (m, p) in [
        ("GET", "/v1/files/list?path=fd://"),
        ("GET", "/v1/files/get?path=fd://a"),
        ("DELETE", "/v1/files/delete?path=fd://a"),
        ("GET", "/v1/files/sign?path=fd://a"),
        ("GET", "/v1/files/sign-upload?path=fd://a"),
        ("PUT", "/v1/files/upload?path=fd://a"),
    ] {
        assert_eq!(
            s.send(m, p, &[], Body::empty()).await.status,
            401,
            "{m} {p}"
        );
    }
}

#[tokio::test]
async fn signed_urls_expire_and_resist_tampering() {
    let s = TestServer::new().await;
    let api = s.api();
    api.upload(b"secret".to_vec(), "fd://s/a.txt")
        .await
        .unwrap();
    api.upload(b"other".to_vec(), "fd://s/b.txt").await.unwrap();
    let url = api.sign_url("fd://s/a.txt").await.unwrap();
    assert!(url.starts_with("http://test/v1/files/signed?"), "{url}");
    let path = url.strip_prefix("http://test").unwrap();
    let r = s.get(path).await; // no credentials
    assert_eq!((r.status, r.body.as_ref()), (200, b"secret".as_ref()));
    // Another object, a later expiry, a changed signature: 403.
    for bad in [
        path.replace("a.txt", "b.txt"),
        path.replace("expires=", "expires=9"),
        path.replace("sig=", "sig=00"),
    ] {
        assert_eq!(s.get(&bad).await.status, 403, "{bad}");
    }
    // Expired: signed correctly, in the past.
    let past = "1000";
    let sig = s
        .state
        .secret
        .sign(&[b"GET", b"fd://s/a.txt", past.as_bytes()]);
    let r = s
        .get(&format!(
            "/v1/files/signed?path={}&expires={past}&sig={sig}",
            q("fd://s/a.txt")
        ))
        .await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("expired"));

    let all = api.sign_url_prefix("fd://s/").await.unwrap();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["fd://s/a.txt", "fd://s/b.txt"]
    );
}

#[tokio::test]
async fn signed_uploads_stream_a_multipart_form() {
    let s = TestServer::new().await;
    let r = s
        .call(
            "GET",
            &format!(
                "/v1/files/sign-upload?path={}&content_length=5",
                q("fd://up/x.bin")
            ),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let fields = v["fields"].as_object().unwrap();
    let form = |payload: &str, fields: &serde_json::Map<String, serde_json::Value>| {
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!(
                "--XX\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{}\r\n",
                v.as_str().unwrap()
            ));
        }
        body.push_str(&format!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\r\n{payload}\r\n--XX--\r\n"
        ));
        body
    };
    let ct = [("content-type", "multipart/form-data; boundary=XX")];
    // Larger than announced: 413, nothing visible.
    let r = s
        .send(
            "POST",
            "/v1/files/signed-upload",
            &ct,
            form("123456", fields).into(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(s.api().list("fd://up/").await.unwrap().is_empty());
    // A forged signature: 403.
    let mut forged = fields.clone();
    forged.insert("path".into(), "fd://up/other.bin".into());
    let r = s
        .send(
            "POST",
            "/v1/files/signed-upload",
            &ct,
            form("12345", &forged).into(),
        )
        .await;
    assert_eq!(r.status, 403);
    // Fields are small and few before anything is verified.
    let mut huge = serde_json::Map::new();
    huge.insert("path".into(), "p".repeat(10_000).into());
    let r = s
        .send(
            "POST",
            "/v1/files/signed-upload",
            &ct,
            form("1", &huge).into(),
        )
        .await;
    assert_eq!(r.status, 413);
    let mut many = serde_json::Map::new();
    for i in 0..20 {
        many.insert(format!("f{i}"), "x".into());
    }
    let r = s
        .send(
            "POST",
            "/v1/files/signed-upload",
            &ct,
            form("1", &many).into(),
        )
        .await;
    assert_eq!(r.status, 400);
    // The real thing.
    let r = s
        .send(
            "POST",
            "/v1/files/signed-upload",
            &ct,
            form("12345", fields).into(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        s.api().get("fd://up/x.bin").await.unwrap(),
        Bytes::from("12345")
    );
}

#[tokio::test]
async fn aborted_and_oversized_uploads_leave_nothing() {
    let s = TestServer::with_config(|c| c.max_upload_bytes = 1 << 20).await;
    let auth = format!("Bearer {OWNER_TOKEN}");
    let h = [("authorization", auth.as_str())];
    let broken = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 256 << 10])),
        Err(std::io::Error::other("connection reset")),
    ]);
    let r = s
        .send(
            "PUT",
            "/v1/files/upload?path=fd://x/a.bin",
            &h,
            Body::from_stream(broken),
        )
        .await;
    assert!(r.status >= 400, "{}", r.status);
    let big = vec![0u8; (1 << 20) + 1];
    let r = s
        .send("PUT", "/v1/files/upload?path=fd://x/b.bin", &h, big.into())
        .await;
    assert_eq!(r.status, 413);
    assert!(s.api().list("fd://x/").await.unwrap().is_empty());
    // Nothing half-written hides in the folder either.
    let leftovers: Vec<_> = walk(s.root.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Paths that try to leave the root, or are not paths at all.
fn hostile_paths() -> Vec<String> {
    let mut out = Vec::new();
    let escapes = [
        "..",
        "../",
        "../secret",
        "../../etc/passwd",
        "a/../../secret",
        "a/./../b",
        "./a",
        "a//b",
        "%2e%2e/secret",
        "%2E%2E/secret",
        "%2e%2e%2fsecret",
        "a/%2e%2e/%2e%2e/secret",
        "%252e%252e/secret",
        "%25252e%25252e/secret",
        "a%2f..%2f..%2fsecret",
        "..%5csecret",
        "a\\..\\..\\secret",
        "\\etc\\passwd",
        "a/\0/b",
        "a%00b",
        "nul\0",
        "a/\n/b",
        "link/secret",
        "link/",
        "link",
        "link/deeper/x",
        "/etc/passwd",
        "//etc/passwd",
        "/../secret",
        ".../..",
    ];
    for e in escapes {
        out.push(format!("fd://{e}"));
    }
    for raw in [
        "/etc/passwd",
        "../secret",
        "file:///etc/passwd",
        "file:///tmp",
        "s3://bucket/key",
        "gs://bucket/key",
        "http://example.com/x",
        "ftp://x/y",
        "C:\\Windows\\win.ini",
        "fd:/etc/passwd",
        "fd:..",
        "~/.ssh/id_rsa",
        "memory:///x",
        "fd://",
        "",
        "fd://a/..",
        "fd://a/../",
        "fd://%2e%2e",
        "fd://..%2f",
        "fd://%c0%ae%c0%ae/secret",
    ] {
        out.push(raw.to_owned());
    }
    out.push(format!("fd://{}", "a/".repeat(600)));
    out
}

#[tokio::test]
async fn paths_that_leave_the_root_are_refused_on_every_endpoint() {
    let s = TestServer::new().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "do not touch").unwrap();
    std::fs::create_dir(outside.path().join("deeper")).unwrap();
    std::os::unix::fs::symlink(outside.path(), s.root.path().join("link")).unwrap();
    s.api()
        .upload(b"keep".to_vec(), "fd://keep.txt")
        .await
        .unwrap();
    let paths = hostile_paths();
    assert!(paths.len() >= 50, "{}", paths.len());
    let auth = format!("Bearer {OWNER_TOKEN}");
    let h = [("authorization", auth.as_str())];
    // Paths that are legal but name nothing useful: the root itself.
    let root_ok = ["fd://", "", "memory:///x", "~/.ssh/id_rsa"];
    let mut checked = 0;
    for p in &paths {
        let qp = q(p);
        let endpoints: Vec<(&str, String, Body)> = vec![
            ("GET", format!("/v1/files/list?path={qp}"), Body::empty()),
            (
                "GET",
                format!("/v1/files/list-details?path={qp}"),
                Body::empty(),
            ),
            ("GET", format!("/v1/files/get?path={qp}"), Body::empty()),
            (
                "DELETE",
                format!("/v1/files/delete?path={qp}&max_deletion_depth=unlimited"),
                Body::empty(),
            ),
            ("GET", format!("/v1/files/sign?path={qp}"), Body::empty()),
            (
                "GET",
                format!("/v1/files/sign_prefix?path={qp}"),
                Body::empty(),
            ),
            (
                "GET",
                format!("/v1/files/sign-upload?path={qp}"),
                Body::empty(),
            ),
            (
                "POST",
                format!("/v1/files/resolve?path={qp}"),
                Body::empty(),
            ),
            (
                "PUT",
                format!("/v1/files/upload?path={qp}"),
                Body::from("x"),
            ),
        ];
        for (m, url, body) in endpoints {
            let r = s.send(m, &url, &h, body).await;
            let root_like = root_ok.contains(&p.as_str());
            if root_like {
                // The root may be listed; it can never be written, read as a file or deleted.
                assert!(
                    r.status == 400
                        || r.status == 404
                        || (r.status == 200
                            && matches!(m, "GET" | "POST")
                            && !url.contains("/get?")
                            && !url.contains("sign-upload")),
                    "{m} {p:?}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            } else {
                assert_eq!(
                    r.status,
                    400,
                    "{m} {p:?}: {}",
                    String::from_utf8_lossy(&r.body)
                );
                assert!(r.json()["detail"].is_string());
            }
            checked += 1;
        }
    }
    assert!(checked >= 450);
    // Nothing outside was touched, nothing inside lost.
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "do not touch"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 2);
    assert_eq!(
        s.api().get("fd://keep.txt").await.unwrap(),
        Bytes::from("keep")
    );
}

#[tokio::test]
async fn stalled_uploads_are_abandoned() {
    let s =
        TestServer::with_config(|c| c.upload_idle_timeout = std::time::Duration::from_millis(100))
            .await;
    let auth = format!("Bearer {OWNER_TOKEN}");
    let h = [("authorization", auth.as_str())];
    let stalled = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from("start"))])
        .chain(futures::stream::pending());
    let r = s
        .send(
            "PUT",
            "/v1/files/upload?path=fd://slow/a.bin",
            &h,
            Body::from_stream(stalled),
        )
        .await;
    assert_eq!(r.status, 408);
    assert!(
        String::from_utf8_lossy(&r.body).contains("stalled"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(s.api().list("fd://").await.unwrap().is_empty());
}
