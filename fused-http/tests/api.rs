//! The REST API through `FusedApi` and `InProcessTransport`: identity and auth, the UDF
//! registry, runs of posted definitions (with 202 polling), shared tokens.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{OWNER_TOKEN, TestServer};
use fused_core::{Body, Error, UdfMeta};
use fused_http::client::{UdfKey, Whose};
use serde_json::json;

fn code_udf(name: &str) -> UdfMeta {
    let mut m = UdfMeta::new(name);
    m.code = format!("@fused.udf\ndef {name}(n: int = 1):\n    return n\n");
    m
}

#[tokio::test]
async fn whoami_needs_a_valid_token() {
    let s = TestServer::new().await;
    let me = s.api().whoami().await.unwrap();
    assert_eq!(me.email, "owner@fused.local");
    assert_eq!(me.handle, "owner");
    assert_eq!(s.api().auth_token().await.unwrap(), OWNER_TOKEN);

    // No token, a wrong one, a wrong scheme: 401 with a JSON detail.
    let r = s.get("/v1/user/self").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"].as_str().unwrap().contains("API token"));
    let r = s
        .get_with("/v1/user/self", &[("authorization", "Bearer fsk_nope")])
        .await;
    assert_eq!(r.status, 401);
    let basic = format!("Basic {OWNER_TOKEN}");
    let r = s
        .get_with("/v1/user/self", &[("authorization", &basic)])
        .await;
    assert_eq!(r.status, 401);
    // Every scheme the SDK sends works.
    for scheme in [
        "Bearer",
        "Fused-Env-Bearer",
        "Fused-Rtenv-Bearer",
        "Fused-Service-Token",
    ] {
        let h = format!("{scheme} {OWNER_TOKEN}");
        let r = s.get_with("/v1/user/self", &[("authorization", &h)]).await;
        assert_eq!(r.status, 200, "{scheme}");
    }
}

#[tokio::test]
async fn revoked_api_tokens_are_refused_at_once() {
    let s = TestServer::new().await;
    let user = s
        .state
        .store
        .ensure_user("ann@example.com", None)
        .await
        .unwrap();
    let token = fused_http::store::generate_api_token();
    s.state
        .store
        .add_api_token(&user, &token, "test")
        .await
        .unwrap();
    let api = fused_http::FusedApi::new(std::sync::Arc::new(s.transport.clone()), "http://test/v1")
        .with_token(&token);
    assert_eq!(api.whoami().await.unwrap().email, "ann@example.com");
    let listed = s.state.store.api_tokens().await.unwrap();
    let id = listed
        .iter()
        .find(|t| t.label == "test")
        .unwrap()
        .id
        .clone();
    assert!(
        listed
            .iter()
            .all(|t| !t.hint.is_empty() && t.hint.len() <= 8)
    );
    s.state.store.revoke_api_token(&id).await.unwrap();
    // The server's own lookups are cached for a few seconds; a revocation through the store
    // is seen once they expire.
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let e = api.whoami().await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 401, .. }), "{e}");
}

#[tokio::test]
async fn native_udfs_are_saved_udfs_of_the_owner() {
    let s = TestServer::new().await;
    let api = s.api();
    let echo = api.get_udf("echo").await.unwrap();
    assert_eq!(echo.display_name(), "echo");
    assert!(
        echo.code
            .starts_with("@fused.udf\ndef echo(n: int = 1, text: str = \"x\""),
        "{}",
        echo.code
    );
    let id = echo.metadata_str("fused:id").unwrap().to_owned();
    for reference in [
        "owner@fused.local/echo",
        "owner/echo",
        "team/echo",
        id.as_str(),
    ] {
        let m = api.get_udf(reference).await.unwrap();
        assert_eq!(m.display_name(), "echo", "{reference}");
    }
    let udfs = api
        .get_udfs(None, 0, UdfKey::Name, Whose::SelfOwned)
        .await
        .unwrap();
    assert!(udfs.contains_key("default/echo"), "{:?}", udfs.keys());
    let e = api.get_udf("nobody").await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
    // Native UDFs cannot be replaced or deleted through the API.
    let e = api.save_udf(&code_udf("echo"), false).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 409, .. }), "{e}");
    let e = api.delete_udf("echo").await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 403, .. }), "{e}");
}

#[tokio::test]
async fn saving_listing_and_deleting_udfs() {
    let s = TestServer::new().await;
    let api = s.api();
    let id = api.save_udf(&code_udf("mine"), false).await.unwrap();
    let e = api.save_udf(&code_udf("mine"), false).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 409, .. }), "{e}");
    let mut changed = code_udf("mine");
    changed.code.push_str("# v2\n");
    assert_eq!(api.save_udf(&changed, true).await.unwrap(), id);
    let back = api.get_udf("mine").await.unwrap();
    assert!(back.code.ends_with("# v2\n"));
    assert_eq!(back.metadata_str("fused:id"), Some(id.as_str()));

    let by_id = api
        .get_udfs(Some(10), 0, UdfKey::Id, Whose::Team)
        .await
        .unwrap();
    assert!(by_id.contains_key(&format!("default/{id}")));
    let one = api
        .get_udfs(Some(1), 0, UdfKey::Name, Whose::SelfOwned)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(
        api.get_udfs(None, 0, UdfKey::Name, Whose::Public)
            .await
            .unwrap()
            .is_empty()
    );

    // A bad body is a 400 naming the problem, not a 500.
    let r = s
        .call(
            "POST",
            "/v1/udf/new",
            json!({"slug": "x", "udf_body": "{\"type\": 1}"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.json());
    let r = s
        .call(
            "POST",
            "/v1/udf/new",
            json!({"slug": "../x", "udf_body": code_udf("x").to_json()}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.json());

    api.delete_udf(&id).await.unwrap();
    let e = api.get_udf("mine").await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
}

/// The body the SDK posts to run a definition.
fn run_body(meta: &UdfMeta) -> String {
    let step = json!({"type": "udf", "name": meta.name, "metadata": null, "ignore_chunk_error": false,
        "n_processes": null, "udf": serde_json::from_str::<serde_json::Value>(&meta.to_json()).unwrap(), "input": null});
    json!({"step_config": step.to_string(), "format": "json,parquet", "profile": false}).to_string()
}

#[tokio::test]
async fn posted_definitions_run_natively_or_say_why_not() {
    let s = TestServer::new().await;
    let mut echo = s.api().get_udf("echo").await.unwrap();
    echo.parameters.insert("mode".into(), json!("json"));
    echo.parameters.insert("n".into(), json!("7")); // the SDK sends some values as text
    let r = s
        .call(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            run_body(&echo),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["n"], 7);
    // Tiles: the tile's box reaches `bounds`.
    let r = s
        .call(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start/tiles/1/0/0",
            run_body(&echo),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bounds"][0], -180.0);
    // A code UDF: a 422 the SDK shows as the UDF's error.
    let r = s
        .call(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            run_body(&code_udf("py")),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.metadata()["errormsg"]
            .as_str()
            .unwrap()
            .contains("Python runtime")
    );
    // Failures of the UDF itself are 422 with the metadata.
    echo.parameters.insert("mode".into(), json!("error"));
    let r = s
        .call(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            run_body(&echo),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.metadata()["errormsg"]
            .as_str()
            .unwrap()
            .contains("bad mode")
    );
    // Malformed bodies are 400s; no token is a 401.
    for body in [
        "",
        "{}",
        "{\"step_config\": \"nope\"}",
        "{\"step_config\": {\"udf\": {}}}",
    ] {
        let r = s
            .call(
                "POST",
                "/v1/realtime/local/api/v1/run/udf/start",
                body.to_owned(),
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = s
        .send(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            &[],
            run_body(&echo).into(),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn long_runs_answer_202_then_the_result_when_polled() {
    let s = TestServer::with_config(|c| c.run_start_wait = Duration::from_millis(20)).await;
    let mut echo = s.api().get_udf("echo").await.unwrap();
    echo.parameters.insert("mode".into(), json!("slow"));
    echo.parameters.insert("n".into(), json!(2));
    let auth = format!("Bearer {OWNER_TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("fused-run-id", "run-123"),
        ("content-type", "application/json"),
    ];
    let r = s
        .send(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            &headers,
            run_body(&echo).into(),
        )
        .await;
    assert_eq!(r.status, 202);
    let mut polls = 0;
    let done = loop {
        let r = s
            .get_with("/v1/realtime/local/api/v1/run/udf/get/run-123", &headers)
            .await;
        polls += 1;
        if r.status != 202 {
            break r;
        }
        assert!(polls < 50, "never finished");
    };
    assert_eq!(done.status, 200);
    assert_eq!(done.json().as_array().map(Vec::len), Some(2), "two rows");
    // Another user cannot see the run; a finished run is gone.
    let r = s
        .get_with("/v1/realtime/local/api/v1/run/udf/get/run-123", &headers)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn recursion_beyond_the_limit_is_refused() {
    let s = TestServer::new().await;
    let echo = s.api().get_udf("echo").await.unwrap();
    let auth = format!("Bearer {OWNER_TOKEN}");
    let r = s
        .send(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            &[("authorization", &auth), ("fused-recursion", "6")],
            run_body(&echo).into(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("recursion"));
}

#[tokio::test]
async fn shared_tokens_run_one_udf_until_revoked() {
    let s = TestServer::new().await;
    let api = s.api();
    let t = api.create_udf_access_token("echo").await.unwrap();
    assert!(t.token.starts_with("fsh_") && t.token.len() == 44);
    assert_eq!(t.udf_slug.as_deref(), Some("echo"));
    let url = format!(
        "/v1/realtime-shared/{}/run?format=json&mode=json&n=3",
        t.token
    );
    assert_eq!(s.get(&url).await.json()["n"], 3);
    assert!(
        api.udf_access_tokens()
            .await
            .unwrap()
            .iter()
            .any(|x| x.token == t.token)
    );
    // The UDF a token runs is fixed: a token of a code UDF never runs echo.
    let id = api.save_udf(&code_udf("other"), false).await.unwrap();
    let other = api.create_udf_access_token(&id).await.unwrap();
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{}/run?mode=json",
            other.token
        ))
        .await;
    assert_eq!(r.status, 422);
    // Disabled: 403; revoked: 404, at once.
    let r = s
        .call(
            "POST",
            &format!("/v1/udf-access-token/by-token/{}", t.token),
            json!({"enabled": false}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&url).await.status, 403);
    api.delete_udf_access_token(&t.token).await.unwrap();
    assert_eq!(s.get(&url).await.status, 404);
    let e = api.delete_udf_access_token(&t.token).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 404, .. }), "{e}");
    // Deleting the UDF stops its tokens.
    api.delete_udf(&id).await.unwrap();
    assert_eq!(
        s.get(&format!("/v1/realtime-shared/{}/run", other.token))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_token_without_cache_always_runs() {
    let s = TestServer::new().await;
    let r = s
        .call(
            "POST",
            "/v1/udf-access-token/new",
            json!({"udf_slug": "echo", "cache": false}).to_string(),
        )
        .await;
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let url = format!("/v1/realtime-shared/{token}/run?format=json&mode=json&n=11");
    let before = s.runs.load(std::sync::atomic::Ordering::SeqCst);
    s.get(&url).await;
    s.get(&url).await;
    assert_eq!(s.runs.load(std::sync::atomic::Ordering::SeqCst) - before, 2);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let s = TestServer::with_config(|c| c.max_body_bytes = 1024).await;
    let big = json!({"slug": "big", "udf_body": "x".repeat(4096)}).to_string();
    let r = s.call("POST", "/v1/udf/new", big).await;
    assert_eq!(r.status, 413);
}

/// A second user and a client for them.
async fn second_user(s: &TestServer, email: &str) -> fused_http::FusedApi {
    let user = s.state.store.ensure_user(email, None).await.unwrap();
    let token = fused_http::store::generate_api_token();
    s.state
        .store
        .add_api_token(&user, &token, "test")
        .await
        .unwrap();
    fused_http::FusedApi::new(std::sync::Arc::new(s.transport.clone()), "http://test/v1")
        .with_token(&token)
}

#[tokio::test]
async fn users_share_reading_within_the_team_but_not_owning() {
    let s = TestServer::new().await;
    let ann = second_user(&s, "ann@example.com").await;
    // The owner's UDF: readable by a team member, not shareable by them.
    assert_eq!(
        ann.get_udf("owner@fused.local/echo")
            .await
            .unwrap()
            .display_name(),
        "echo"
    );
    let e = ann
        .create_udf_access_token("owner@fused.local/echo")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Http { status: 403, .. }), "{e}");
    // Ann's own UDF: she shares it; the owner may manage it too; she cannot delete the root.
    let id = ann.save_udf(&code_udf("annual"), false).await.unwrap();
    let t = ann.create_udf_access_token("annual").await.unwrap();
    assert_eq!(t.udf_id.as_deref(), Some(id.as_str()));
    let t2 = ann.create_udf_access_token("ann/annual").await.unwrap(); // by handle
    assert_ne!(t.token, t2.token);
    assert!(
        ann.udf_access_tokens()
            .await
            .unwrap()
            .iter()
            .all(|x| x.udf_slug.as_deref() == Some("annual"))
    );
    assert!(
        s.api()
            .udf_access_tokens()
            .await
            .unwrap()
            .iter()
            .all(|x| x.udf_slug.as_deref() != Some("annual")),
        "`self` is the caller's own"
    );
    ann.upload(b"x".to_vec(), "fd://ann/x").await.unwrap();
    let e = ann.delete("fd://", None).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 403, .. }), "{e}");
    // The source behind a token is for those who may read the UDF, not for anyone holding it.
    let r = s.get(&format!("/v1/udf/shared/by-token/{}", t.token)).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn public_udfs_load_as_public_slash_name() {
    let s = TestServer::new().await;
    let body = json!({"slug": "shown", "udf_body": code_udf("shown").to_json(), "allow_public_list": true});
    assert_eq!(
        s.call("POST", "/v1/udf/new", body.to_string()).await.status,
        200
    );
    s.api().save_udf(&code_udf("hidden"), false).await.unwrap();
    // What the SDK sends for `fused.load("public/shown")`.
    let r = s
        .get("/v1/udf/by-user-handle/public/by-collection/default/by-slug/shown")
        .await;
    assert_eq!(r.status, 401, "a token is still needed");
    let r = s
        .call(
            "GET",
            "/v1/udf/by-user-handle/public/by-collection/default/by-slug/shown",
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .call(
            "GET",
            "/v1/udf/by-user-handle/public/by-collection/default/by-slug/hidden",
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, 404);
    let public = s
        .api()
        .get_udfs(None, 0, UdfKey::Name, Whose::Public)
        .await
        .unwrap();
    assert_eq!(public.keys().collect::<Vec<_>>(), ["default/shown"]);
    // Nobody can take the handles that mean something else.
    let u = s
        .state
        .store
        .ensure_user("public@example.com", None)
        .await
        .unwrap();
    assert_ne!(u.handle, "public");
}

#[tokio::test]
async fn collections_exist_once_created_or_used() {
    let s = TestServer::new().await;
    assert_eq!(
        s.call("GET", "/v1/collection/by-name/default", Body::empty())
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("GET", "/v1/collection/by-name/maps", Body::empty())
            .await
            .status,
        404
    );
    let r = s
        .call(
            "POST",
            "/v1/collection/new",
            json!({"name": "maps"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "maps");
    let r = s
        .call("GET", "/v1/collection/by-name/maps", Body::empty())
        .await;
    assert_eq!(r.json()["name"], "maps");
    let r = s
        .call(
            "POST",
            "/v1/collection/new",
            json!({"name": "../x"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn run_ids_are_per_caller() {
    let s = TestServer::with_config(|c| c.run_start_wait = Duration::from_millis(1)).await;
    let mut echo = s.api().get_udf("echo").await.unwrap();
    echo.parameters.insert("mode".into(), json!("slow"));
    let auth = format!("Bearer {OWNER_TOKEN}");
    let h = [
        ("authorization", auth.as_str()),
        ("fused-run-id", "same-id"),
    ];
    let r = s
        .send(
            "POST",
            "/v1/realtime/local/api/v1/run/udf/start",
            &h,
            run_body(&echo).into(),
        )
        .await;
    assert_eq!(r.status, 202);
    // Another user polling (or starting) under the same id reaches nothing of the owner's.
    let user = s
        .state
        .store
        .ensure_user("eve@example.com", None)
        .await
        .unwrap();
    let eve = fused_http::store::generate_api_token();
    s.state.store.add_api_token(&user, &eve, "t").await.unwrap();
    let eve_auth = format!("Bearer {eve}");
    let eh = [("authorization", eve_auth.as_str())];
    assert_eq!(
        s.get_with("/v1/realtime/local/api/v1/run/udf/get/same-id", &eh)
            .await
            .status,
        404
    );
    loop {
        let r = s
            .get_with("/v1/realtime/local/api/v1/run/udf/get/same-id", &h)
            .await;
        if r.status != 202 {
            assert_eq!(r.status, 200);
            break;
        }
    }
}

#[tokio::test]
async fn weak_or_foreign_owner_tokens_are_refused_at_start() {
    let registry = std::sync::Arc::new(fused_core::UdfRegistry::new());
    let parts = || fused_http::ServerParts {
        registry: registry.clone(),
        executor: std::sync::Arc::new(fused_jobs::LocalExecutor::new(registry.clone())),
        cache: std::sync::Arc::new(fused_cache::MemoryCache::new(1 << 20)),
        store: futures::executor::block_on(fused_http::store::Store::memory()).unwrap(),
        storage: std::sync::Arc::new(fused_storage::ObjectStorage::memory()),
        jobs: std::sync::Arc::new(
            futures::executor::block_on(fused_jobs::store::SqliteJobStore::open(
                &std::env::temp_dir().join(format!("fused-jobs-{}.db", uuid::Uuid::new_v4())),
            ))
            .unwrap(),
        ),
        secret: fused_http::ServerSecret::new([3; 32]),
    };
    let config = |t: &str| fused_http::ServerConfig {
        owner_token: Some(t.into()),
        ..Default::default()
    };
    let e = fused_http::AppState::new(parts(), config("short"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least 32"), "{e}");
    // A token already issued to someone else cannot become the owner's.
    let p = parts();
    let ann = p.store.ensure_user("ann@example.com", None).await.unwrap();
    let t = fused_http::store::generate_api_token();
    p.store.add_api_token(&ann, &t, "x").await.unwrap();
    let e = fused_http::AppState::new(p, config(&t)).await.unwrap_err();
    assert!(e.to_string().contains("another user"), "{e}");
}
