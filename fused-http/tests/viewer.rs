//! The viewer's routes: the page and its bundled assets, the catalog it lists UDFs from
//! (owner only), TileJSON documents, and vector tiles on the tile route.

#![allow(clippy::unwrap_used)]

mod common;

use common::{OWNER_TOKEN, TestServer};

#[tokio::test]
async fn the_page_and_its_bundled_assets_are_served() {
    let s = TestServer::new().await;
    let page = s.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("/viewer/maplibre-gl.js"), "{html}");
    let lib = s.get("/viewer/maplibre-gl.js").await;
    assert_eq!(lib.status, 200);
    assert!(
        lib.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    // The real library (about a megabyte), not the placeholder of a build without npm.
    assert!(lib.body.len() > 500_000, "{} bytes", lib.body.len());
    assert!(s.get("/viewer/maplibre-LICENSE.txt").await.body.len() > 100);
    for bad in ["/viewer/nope.js", "/viewer/..%2FCargo.toml", "/viewer/"] {
        assert_eq!(s.get(bad).await.status, 404, "{bad}");
    }
}

#[tokio::test]
async fn the_catalog_lists_udfs_with_their_parameters_for_the_owner_only() {
    let s = TestServer::with_config(|c| {
        c.basemap_url = Some("https://tiles.example/{z}/{x}/{y}.png".into());
    })
    .await;
    assert_eq!(s.get("/v1/viewer/catalog").await.status, 401);
    let r = s.call("GET", "/v1/viewer/catalog", "").await;
    assert_eq!(r.status, 200);
    let c = r.json();
    assert_eq!(c["basemap"], "https://tiles.example/{z}/{x}/{y}.png");
    let echo = &c["udfs"][0];
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["kind"], "tile", "echo takes bounds");
    assert_eq!(echo["code"], false);
    assert_eq!(echo["token"], s.token());
    let params = echo["params"].as_array().unwrap();
    let n = params.iter().find(|p| p["name"] == "n").unwrap();
    assert_eq!(
        (n["type"].as_str(), n["default"].as_i64()),
        (Some("int"), Some(1))
    );
    let b = params.iter().find(|p| p["name"] == "bounds").unwrap();
    assert_eq!(b["type"], "bounds");

    // A disabled token is not offered.
    let r = s
        .call(
            "POST",
            &format!("/v1/udf-access-token/by-token/{}", s.token()),
            serde_json::json!({"enabled": false}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let c = s.call("GET", "/v1/viewer/catalog", "").await.json();
    assert!(c["udfs"][0]["token"].is_null(), "{c}");

    // Another user of the server is not shown the owner's tokens.
    let user = s
        .state
        .store
        .ensure_user("someone@example.com", None)
        .await
        .unwrap();
    let token = fused_http::store::generate_api_token();
    s.state
        .store
        .add_api_token(&user, &token, "t")
        .await
        .unwrap();
    let auth = format!("Bearer {token}");
    let r = s
        .get_with("/v1/viewer/catalog", &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, 403);
    assert_ne!(OWNER_TOKEN, token);
}

#[tokio::test]
async fn tilejson_points_at_the_tile_route_with_the_parameters() {
    let s = TestServer::new().await;
    let t = s.token();
    let r = s
        .get_with(
            &format!("/v1/realtime-shared/{t}/run/tiles.json?n=3&text=a%20b"),
            &[("host", "maps.example:8783")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let doc = r.json();
    assert_eq!(doc["tilejson"], "3.0.0");
    assert_eq!(doc["vector_layers"][0]["id"], "echo");
    assert_eq!(
        doc["tiles"][0],
        format!(
            "http://maps.example:8783/v1/realtime-shared/{t}/run/tiles/{{z}}/{{x}}/{{y}}?format=mvt&n=3&text=a+b"
        )
    );
    let png = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles.json?format=png"
        ))
        .await
        .json();
    assert!(png.get("vector_layers").is_none());
    assert_eq!(
        s.get(&format!(
            "/v1/realtime-shared/{t}/run/tiles.json?format=npy"
        ))
        .await
        .status,
        400
    );
    assert_eq!(
        s.get("/v1/realtime-shared/fsh_unknown/run/tiles.json")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn tables_without_geometry_are_not_vector_tiles() {
    let s = TestServer::new().await;
    let t = s.token();
    // echo returns a table without geometry: a clear 400 naming why.
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/2/1/1?format=mvt"
        ))
        .await;
    assert_eq!(r.status, 400);
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("no geometry column"), "{detail}");
    // Listed with a fallback, the fallback answers.
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/2/1/1?format=mvt,json"
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Outside a tile call, mvt is refused with the route to use.
    let r = s
        .get(&format!("/v1/realtime-shared/{t}/run?format=mvt"))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("tile calls"),
        "{}",
        r.json()
    );
}
