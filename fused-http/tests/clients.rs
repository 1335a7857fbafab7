//! The client side: `RemoteExecutor` over `InProcessTransport`, and `HttpTransport` over a real
//! socket.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use fused_core::{Args, Executor, FailureKind, Output, Tile, Transport, UdfCall};
use fused_http::{HttpTransport, RemoteExecutor};

#[tokio::test]
async fn remote_executor_decodes_outputs_and_failures() {
    let s = TestServer::new().await;
    let ex = RemoteExecutor::new(
        Arc::new(s.transport.clone()),
        "http://test/v1/realtime-shared",
    );
    let token = s.token();

    let r = ex
        .execute(UdfCall::new(
            token.as_str(),
            Args::new().with("n", 4).with("text", "rt"),
        ))
        .await
        .unwrap();
    let table = r.output.unwrap();
    assert_eq!(table.as_table().unwrap().num_rows(), 4);
    assert_eq!(r.logs.stdout, "echo n=4 mode=ok\n");

    let call = UdfCall::new(token.as_str(), Args::new().with("mode", "json"))
        .with_tile(Tile::new(0, 0, 1).unwrap());
    let out = ex.execute(call).await.unwrap().output.unwrap();
    let Output::Json(v) = out else {
        panic!("expected JSON")
    };
    assert_eq!(v["bounds"][0], -180.0);

    let out = ex
        .execute(UdfCall::new(
            token.as_str(),
            Args::new().with("mode", "raster"),
        ))
        .await
        .unwrap()
        .output
        .unwrap();
    assert_eq!(out.as_raster().unwrap().shape(), [1, 2, 2]);

    let f = ex
        .execute(UdfCall::new(
            token.as_str(),
            Args::new().with("mode", "error"),
        ))
        .await
        .unwrap()
        .output
        .unwrap_err();
    assert_eq!(
        (f.kind, f.class.as_str()),
        (FailureKind::Runtime, "ValueError")
    );

    for bad in ["fsh_../../health", "fsh_a?x=1", "fsh_a/b"] {
        let e = ex
            .execute(UdfCall::new(bad, Args::new()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not a shared token"), "{bad}: {e}");
    }
    let e = ex
        .execute(UdfCall::new("fsh_nope", Args::new()))
        .await
        .unwrap_err();
    assert!(matches!(e, fused_core::Error::UnknownUdf(_)), "{e}");
    let e = ex
        .execute(UdfCall::new("echo", Args::new()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("shared tokens"), "{e}");
}

#[tokio::test]
async fn http_transport_over_a_socket_and_retries_on_refused_connections() {
    let s = TestServer::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = s.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let http = HttpTransport::new(Duration::from_secs(5), 2, Duration::from_millis(10)).unwrap();
    let ex = RemoteExecutor::new(
        Arc::new(http.clone()),
        format!("http://{addr}/v1/realtime-shared"),
    );
    let r = ex
        .execute(UdfCall::new(s.token().as_str(), Args::new().with("n", 2)))
        .await
        .unwrap();
    assert_eq!(r.output.unwrap().as_table().unwrap().num_rows(), 2);

    // Configured from options as the SDK is: the raster comes back as npy (`npy,tiff` first).
    let o = fused_core::Options {
        shared_udf_base_url: format!("http://{addr}/v1/realtime-shared"),
        ..Default::default()
    };
    let ex = RemoteExecutor::from_options(&o).unwrap();
    let out = ex
        .execute(UdfCall::new(
            s.token().as_str(),
            Args::new().with("mode", "raster"),
        ))
        .await
        .unwrap()
        .output
        .unwrap();
    assert_eq!(out.as_raster().unwrap().shape(), [1, 2, 2]);

    // Nothing listens here: retried, then a transport error that says so.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let req = http::Request::get(format!("http://{dead}/v1/health"))
        .body(fused_core::Body::empty())
        .unwrap();
    let started = std::time::Instant::now();
    let e = http.send(req).await.unwrap_err();
    assert!(matches!(e, fused_core::Error::Transport(_)), "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(10),
        "it retried with a delay"
    );
}

#[tokio::test]
async fn submit_fans_out_over_servers_round_robin() {
    use fused_jobs::{RoundRobin, SubmitOptions, submit};
    let (a, b) = (TestServer::new().await, TestServer::new().await);
    let remote = |s: &TestServer| -> Arc<dyn fused_core::Executor> {
        Arc::new(fused_http::RemoteExecutor::new(
            Arc::new(s.transport.clone()),
            "http://test/v1/realtime-shared",
        ))
    };
    let rr = Arc::new(RoundRobin::new(vec![remote(&a), remote(&b)]).unwrap());
    // Both servers share the secret, so the echo token is the same on each.
    let token = fused_core::UdfRef::Token(a.token());
    let calls: Vec<serde_json::Value> = (0..10)
        .map(|i| serde_json::json!({"n": i, "mode": "json", "text": format!("t{i}")}))
        .collect();
    let pool = submit(
        rr,
        token,
        calls,
        SubmitOptions {
            max_workers: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let out = pool.results().await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    let (ra, rb) = (
        a.runs.load(std::sync::atomic::Ordering::SeqCst),
        b.runs.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert_eq!((ra, rb), (5, 5), "spread evenly");
}
