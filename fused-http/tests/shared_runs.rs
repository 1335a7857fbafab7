//! Shared-token runs through the whole server stack (`InProcessTransport`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;

use common::TestServer;
use fused_core::encode::{decode_npy, decode_parquet};

#[tokio::test]
async fn file_run_as_parquet_json_csv_geojson() {
    let s = TestServer::new().await;
    let t = s.token();
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run/file?n=3&text=hi"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let table = decode_parquet(r.body.clone()).unwrap();
    assert_eq!(table.num_rows(), 3);
    let md = r.metadata();
    assert_eq!(md["stdout"], "echo n=3 mode=ok\n");
    assert_eq!(md["has_exception"], false);

    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?n=2&text=a&format=json"
        ))
        .await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!([{"i": 0, "text": "a"}, {"i": 1, "text": "a"}])
    );

    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?n=2&text=a&format=csv"
        ))
        .await;
    assert_eq!(r.header("content-type"), Some("text/csv"));
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), "i,text\n0,a\n1,a\n");

    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?n=1&format=geojson"))
        .await;
    assert_eq!(r.json()["type"], "FeatureCollection");
    assert_eq!(r.json()["features"][0]["geometry"], serde_json::Value::Null);
}

#[tokio::test]
async fn format_list_is_ordered_and_legacy_dtypes_map_onto_it() {
    let s = TestServer::new().await;
    let t = s.token();
    // The SDK's default list: a raster comes back as npy, a table as parquet, JSON as json.
    let sdk = "format=npy,tiff,parquet,json";
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=raster&{sdk}"))
        .await;
    assert_eq!(r.header("content-type"), Some("application/x-numpy-data"));
    assert_eq!(decode_npy(&r.body).unwrap().shape(), [1, 2, 2]);
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=json&{sdk}"))
        .await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?mode=raster&dtype_out_raster=tiff&dtype_out_vector=parquet"
        ))
        .await;
    assert_eq!(r.header("content-type"), Some("image/tiff"));
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?mode=bytes&format=json"
        ))
        .await;
    assert_eq!(
        (r.header("content-type"), &r.body[..]),
        (Some("text/plain"), &b"plain text"[..])
    );
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=badtype"))
        .await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/octet-stream"))
    );
    // No format that fits: 400 naming what would.
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?mode=raster&format=png,jpeg"
        ))
        .await;
    assert_eq!(r.status, 400);
    let d = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(d.contains("tiff, npy") && d.contains("PNG"), "{d}");
}

#[tokio::test]
async fn any_site_may_fetch_shared_runs() {
    let s = TestServer::new().await;
    let r = s
        .get_with(
            &format!("/v1/realtime-shared/{}/run?n=1", s.token()),
            &[("Origin", "https://maps.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-fused-metadata"), "{exposed}");
}

#[tokio::test]
async fn tile_calls_get_bounds() {
    let s = TestServer::new().await;
    let t = s.token();
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/3/1/2?mode=json"
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["bounds"],
        serde_json::json!([-135.0, 40.97989806962013, -90.0, 66.51326044311186])
    );
}

#[tokio::test]
async fn bad_requests_are_clear() {
    let s = TestServer::new().await;
    let t = s.token();
    let r = s.get("/v1/realtime-shared/fsh_unknown/run").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (404, Some("application/json"))
    );
    assert!(r.json()["detail"].as_str().unwrap().contains("token"));
    assert!(r.header("x-fused-metadata").is_none());

    for (z, x, y) in [
        ("31", "0", "0"),
        ("3", "8", "0"),
        ("3", "0", "8"),
        ("a", "0", "0"),
        ("3", "-1", "0"),
    ] {
        let r = s
            .get(&format!("/v1/realtime-shared/{t}/run/tiles/{z}/{x}/{y}"))
            .await;
        assert_eq!(r.status, 400, "{z}/{x}/{y}");
        assert!(!r.json()["detail"].as_str().unwrap().is_empty());
    }

    let r = s.get(&format!("/v1/realtime-shared/{t}/run?n=many")).await;
    assert_eq!(r.status, 422);
    let md = r.metadata();
    assert_eq!(md["exception_class"], "ValueError");
    let msg = md["errormsg"].as_str().unwrap();
    assert!(
        msg.contains("`n`") && msg.contains("many") && msg.contains("integer"),
        "{msg}"
    );

    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?cache_max_age=soon"))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("cache_max_age")
    );

    let r = s
        .get_with(
            &format!("/v1/realtime-shared/{t}/run"),
            &[("Fused-Recursion", "6")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("recursion depth 6")
    );

    let r = s.get("/v1/nothing-here").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn udf_failures_carry_metadata_and_the_server_keeps_serving() {
    let s = TestServer::new().await;
    let t = s.token();
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=error&text=zz"))
        .await;
    assert_eq!(r.status, 422);
    let md = r.metadata();
    assert_eq!(
        (
            md["has_exception"].as_bool(),
            md["exception_class"].as_str()
        ),
        (Some(true), Some("ValueError"))
    );
    assert_eq!(md["errormsg"], "ValueError: bad mode for zz");
    assert_eq!(md["stdout"], "echo n=1 mode=error\n");

    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=panic"))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.metadata()["exception_class"], "Panic");
    assert!(
        r.metadata()["errormsg"]
            .as_str()
            .unwrap()
            .contains("panicked on purpose")
    );

    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?mode=sleep"))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.metadata()["error_type"], "timeout_error");

    let r = s.get(&format!("/v1/realtime-shared/{t}/run?n=1")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn huge_logs_fit_in_the_header() {
    let s = TestServer::new().await;
    let r = s
        .get(&format!("/v1/realtime-shared/{}/run?mode=loud", s.token()))
        .await;
    assert_eq!(r.status, 200);
    let h = r.header("x-fused-metadata").unwrap();
    assert!(h.len() <= 8_000 && h.is_ascii(), "{}", h.len());
    assert!(
        r.metadata()["stdout"]
            .as_str()
            .unwrap()
            .contains("line 4999")
    );
}

#[tokio::test]
async fn responses_are_cached_unless_disabled() {
    let s = TestServer::new().await;
    let t = s.token();
    let q = format!("/v1/realtime-shared/{t}/run?n=7&text=cache-test");
    let before = s.runs.load(Ordering::SeqCst);
    let a = s.get(&q).await;
    let b = s.get(&q).await;
    assert_eq!(
        (a.header("x-cache"), b.header("x-cache")),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("x-fused-metadata"), b.header("x-fused-metadata"));
    // `?n=7` and `?n=07` bind to the same integer: same entry.
    let c = s
        .get(&format!("/v1/realtime-shared/{t}/run?text=cache-test&n=07"))
        .await;
    assert_eq!(c.header("x-cache"), Some("hit"));
    assert_eq!(s.runs.load(Ordering::SeqCst) - before, 1);

    let d = s.get_with(&q, &[("X-Fused-Cache-Disable", "true")]).await;
    assert_eq!(d.header("x-cache"), Some("disabled"));
    // Encoded or not, a request's own cache_max_age bypasses the URL-keyed entry.
    let enc = s.get(&format!("{q}&cache%5Fmax%5Fage=0")).await;
    assert_eq!(enc.header("x-cache"), Some("disabled"));
    let e = s.get(&format!("{q}&cache_max_age=0")).await;
    assert_eq!(e.header("x-cache"), Some("disabled"));
    assert_eq!(s.runs.load(Ordering::SeqCst) - before, 4);

    // Failures are never cached.
    let f1 = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?mode=error&text=nocache"
        ))
        .await;
    let f2 = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run?mode=error&text=nocache"
        ))
        .await;
    assert_eq!((f1.status, f2.status), (422, 422));
    assert_eq!(f2.header("x-cache"), Some("miss"));
}

#[tokio::test]
async fn concurrent_identical_requests_run_once() {
    let s = std::sync::Arc::new(TestServer::new().await);
    let q = format!(
        "/v1/realtime-shared/{}/run?mode=slow&text=concurrent",
        s.token()
    );
    let before = s.runs.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, q) = (std::sync::Arc::clone(&s), q.clone());
        tasks.push(tokio::spawn(async move { s.get(&q).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(s.runs.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_replaced_udf_is_not_answered_from_the_old_one_s_cache() {
    let s = TestServer::new().await;
    let url = format!("/v1/realtime-shared/{}/run?n=1&format=json", s.token());
    let a = s.get(&url).await;
    assert_eq!(
        (a.status, s.get(&url).await.header("x-cache")),
        (200, Some("hit"))
    );
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Any {}
    let v2 = fused_core::Udf::native("echo", |_: fused_core::RunContext, _: Any| async {
        Ok::<_, std::convert::Infallible>(fused_core::Output::Json("v2".into()))
    });
    s.state.registry.register(v2).unwrap();
    let b = s.get(&url).await;
    assert_eq!(
        (b.header("x-cache"), b.json()),
        (Some("miss"), serde_json::json!("v2"))
    );
}
