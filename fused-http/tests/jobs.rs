//! Batch jobs through the API: start, status, logs, results, cancel, listing.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use fused_core::Body;
use serde_json::{Value, json};

async fn start(s: &TestServer, input: Value) -> (u16, Value) {
    let echo = s.api().get_udf("echo").await.unwrap();
    let udf: Value = serde_json::from_str(&echo.to_json()).unwrap();
    let config = json!({"name": "echo-job", "steps": [{"type": "udf", "name": "echo", "metadata": null,
        "ignore_chunk_error": false, "n_processes": null, "udf": udf, "input": input}], "metadata": null});
    let r = s
        .call(
            "POST",
            "/v1/run",
            json!({"config": config, "send_status_email": false}).to_string(),
        )
        .await;
    (r.status, r.json())
}

async fn wait_done(s: &TestServer, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let r = s
            .call("GET", &format!("/v1/run/by-id/{id}"), Body::empty())
            .await;
        let v = r.json();
        if v["terminal_status"] == true {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "job never finished: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_runs_logs_and_keeps_its_results() {
    let s = TestServer::new().await;
    let (status, v) = start(
        &s,
        json!([{"n": 1, "mode": "json"}, {"n": 2, "mode": "json"}, {"n": 3, "mode": "error"}]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // A worker may already have taken it.
    assert!(
        v["job_status"] == "Pending" || v["job_status"] == "Running",
        "{v}"
    );
    let id = v["job_id"].as_str().unwrap().to_owned();
    let done = wait_done(&s, &id).await;
    assert_eq!(done["job_status"], "Failed", "one task failed: {done}");
    assert_eq!(
        (
            done["total_tasks"].as_u64(),
            done["finished_tasks"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let logs = s
        .call("GET", &format!("/v1/logs/{id}"), Body::empty())
        .await
        .json();
    let text: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|l| l.contains("Run #2") && l.contains("bad mode")),
        "{text:?}"
    );
    let first_ts = logs[0]["timestamp"].as_i64().unwrap();
    let later = s
        .call(
            "GET",
            &format!("/v1/logs/{id}?since_ms={first_ts}"),
            Body::empty(),
        )
        .await
        .json();
    assert!(later.as_array().unwrap().len() < logs.as_array().unwrap().len());
    // Results: one file and a metadata sidecar per task, fetched by signed URL.
    let res = s
        .call("GET", &format!("/v1/run/by-id/{id}/results"), Body::empty())
        .await
        .json();
    let names: Vec<&str> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"0.json") && names.contains(&"0.json.metadata"),
        "{names:?}"
    );
    let url = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "1.json")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://test")
        .unwrap()
        .to_owned();
    assert_eq!(s.get(&url).await.json()["n"], 2);
    let meta_url = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "2.json.metadata")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://test")
        .unwrap()
        .to_owned();
    let meta = s.get(&meta_url).await.json();
    assert_eq!(meta["has_exception"], true, "{meta}");
    for key in [
        "stdout",
        "stderr",
        "errormsg",
        "exception_class",
        "error_type",
        "exception",
    ] {
        assert!(meta.get(key).is_some(), "{key} missing: {meta}");
    }
    // Listed for its owner.
    let mine = s.call("GET", "/v1/job/self", Body::empty()).await.json();
    assert_eq!(mine[0]["id"], id);
}

#[tokio::test]
async fn cancel_stops_a_running_job() {
    let s = TestServer::new().await;
    let (_, v) = start(
        &s,
        json!([{"n": 1, "mode": "slow"}, {"n": 2, "mode": "sleep"}]),
    )
    .await;
    let id = v["job_id"].as_str().unwrap().to_owned();
    // Let it start.
    let t = Instant::now();
    loop {
        let v = s
            .call("GET", &format!("/v1/run/by-id/{id}"), Body::empty())
            .await
            .json();
        if v["job_status"] == "Running" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = s
        .call("POST", &format!("/v1/run/by-id/{id}/cancel"), Body::empty())
        .await;
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let done = wait_done(&s, &id).await;
    assert_eq!(done["job_status"], "Canceled", "{done}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped within seconds"
    );
}

#[tokio::test]
async fn bad_jobs_are_refused_before_they_start() {
    let s = TestServer::new().await;
    let (status, v) = start(&s, json!([])).await;
    assert_eq!(status, 400, "{v}");
    let r = s
        .call(
            "POST",
            "/v1/run",
            json!({"config": {"steps": [{"type": "partition_geospatial"}]}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
    let mut code = fused_core::UdfMeta::new("py");
    code.code = "@fused.udf\ndef py(): return 1\n".into();
    let udf: Value = serde_json::from_str(&code.to_json()).unwrap();
    let r = s
        .call(
            "POST",
            "/v1/run",
            json!({"config": {"steps": [{"type": "udf", "udf": udf, "input": [1]}]}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("Python"));
    assert_eq!(
        s.call("GET", "/v1/run/by-id/nope", Body::empty())
            .await
            .status,
        404
    );
    assert_eq!(s.get("/v1/job/self").await.status, 401);
}

#[tokio::test]
async fn the_rust_client_starts_and_follows_jobs() {
    let s = TestServer::new().await;
    let api = s.api();
    let echo = api.get_udf("echo").await.unwrap();
    let udf: Value = serde_json::from_str(&echo.to_json()).unwrap();
    let config = json!({"name": "from-rust", "steps": [{"type": "udf", "udf": udf,
        "input": [{"n": 2, "mode": "json"}, {"n": 3, "mode": "json"}]}]});
    let job = api.start_job(config).await.unwrap();
    let done = job.wait(&api, Some(Duration::from_secs(20))).await.unwrap();
    assert_eq!(done.job_status.as_deref(), Some("Done"));
    assert_eq!((done.total_tasks, done.finished_tasks), (2, 2));
    assert!(job.exec_time(&api).await.unwrap() < Duration::from_secs(20));
    let logs = job.logs(&api, None).await.unwrap();
    assert!(logs.iter().any(|l| l.message.contains("Run #1 success")));
    let listed = api.get_jobs(5).await.unwrap();
    assert_eq!(listed[0]["id"], job.job_id.as_str());
    let tail = api
        .tail_logs(&job.job_id, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(tail.terminal_status);
}
