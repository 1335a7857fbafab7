//! HTTPS: the server behind rustls, reached by a client that trusts a self-signed certificate.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use fused_http::server::{load_tls_config, serve_tls};

struct Certs {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    pem: String,
}

fn self_signed() -> Certs {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Certs {
        _dir: dir,
        cert,
        key,
        pem: ck.cert.pem(),
    }
}

#[tokio::test]
async fn serves_runs_over_https_and_survives_bad_clients() {
    let s = TestServer::new().await;
    let c = self_signed();
    let tls = load_tls_config(&c.cert, &c.key).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = s.router.clone();
    let server = tokio::spawn(async move {
        serve_tls(
            "127.0.0.1:0".parse().unwrap(),
            router,
            tls,
            move |a| {
                let _ = tx.send(a);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let addr = rx.await.unwrap();

    // A client speaking plain HTTP to the TLS port fails alone.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/v1/health"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(c.pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/v1/realtime-shared/{}/run?n=2&format=json",
        addr.port(),
        s.token()
    );
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("x-fused-metadata"));
    assert_eq!(
        r.json::<serde_json::Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A client that does not trust the certificate is refused by its own TLS stack.
    assert!(
        reqwest::get(format!("https://localhost:{}/v1/health", addr.port()))
            .await
            .is_err()
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn bad_certificate_files_are_clear_errors() {
    let c = self_signed();
    let other = self_signed();
    let missing = c.cert.with_file_name("nope.pem");
    let e = load_tls_config(&missing, &c.key).unwrap_err().to_string();
    assert!(e.contains("nope.pem"), "{e}");
    let e = load_tls_config(&c.cert, &other.key)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not fit"), "{e}");
    std::fs::write(&missing, "not a certificate").unwrap();
    let e = load_tls_config(&missing, &c.key).unwrap_err().to_string();
    assert!(e.contains("no PEM certificate"), "{e}");
}
