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
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
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

    // A UDF saved through the API is listed with its shared token; this server has no
    // Python runtime, so it is listed with the reason it cannot run.
    let mut code = fused_core::UdfMeta::new("saved_one");
    code.code = "@fused.udf\ndef saved_one(n: int = 1):\n    return n\n".into();
    s.api().save_udf(&code, false).await.unwrap();
    let shared = s.api().create_udf_access_token("saved_one").await.unwrap();
    let c = s.call("GET", "/v1/viewer/catalog", "").await.json();
    let saved = c["udfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "saved_one")
        .unwrap_or_else(|| panic!("{c}"));
    assert_eq!(saved["token"], shared.token.as_str());
    assert_eq!(saved["code"], true);
    assert!(
        saved["error"]
            .as_str()
            .unwrap()
            .contains("no Python runtime"),
        "{saved}"
    );

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

/// `dots`: one point at the centre of the tile it is called for, with its zoom; with
/// `empty`, no rows (and no attribute column).
fn dots() -> fused_core::Udf {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BinaryArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use fused_core::{Bounds, Crs, Output, RunContext, Table, UdfError};

    #[derive(serde::Deserialize, schemars::JsonSchema, Default)]
    #[serde(default)]
    struct P {
        bounds: Option<Bounds>,
        empty: bool,
    }
    fused_core::Udf::native("dots", |_ctx: RunContext, p: P| async move {
        let b = p.bounds.ok_or_else(|| UdfError::value("a tile UDF"))?;
        let mut wkb = vec![1u8, 1, 0, 0, 0];
        wkb.extend(((b.west + b.east) / 2.0).to_le_bytes());
        wkb.extend(((b.south + b.north) / 2.0).to_le_bytes());
        let (schema, cols): (Schema, Vec<ArrayRef>) = if p.empty {
            (
                Schema::new(vec![Field::new("geometry", DataType::Binary, false)]),
                vec![Arc::new(BinaryArray::from(Vec::<&[u8]>::new()))],
            )
        } else {
            (
                Schema::new(vec![
                    Field::new("z", DataType::Int64, false),
                    Field::new("geometry", DataType::Binary, false),
                ]),
                vec![
                    Arc::new(Int64Array::from(vec![7])),
                    Arc::new(BinaryArray::from(vec![wkb.as_slice()])),
                ],
            )
        };
        let schema = Arc::new(schema);
        let batch =
            RecordBatch::try_new(schema, cols).map_err(|e| UdfError::value(e.to_string()))?;
        let t = Table::from_batch(batch)
            .with_geometry("geometry", Crs::WGS84)
            .map_err(|e| UdfError::value(e.to_string()))?;
        Ok::<_, UdfError>(Output::Table(t))
    })
}

#[tokio::test]
async fn a_tile_udf_s_table_is_a_vector_tile_whose_layer_tilejson_names() {
    let s = TestServer::new().await;
    s.state.registry.register(dots()).unwrap();
    s.state.share_registered().await.unwrap();
    let t = s.state.default_token("dots");
    let before = s
        .get(&format!("/v1/realtime-shared/{t}/run/tiles.json"))
        .await
        .json();
    assert_eq!(before["vector_layers"][0]["fields"], serde_json::json!({}));
    let r = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/5/17/11?format=mvt"
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.mapbox-vector-tile")
    );
    // tile { layers (3): { version 2, name "dots", feature { …, POINT at the centre }, keys,
    // values, extent 4096 } }: the bytes of the header, name and point are fixed.
    let body = r.body.to_vec();
    assert_eq!(body[0], 0x1a, "field 3, length-delimited");
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        find(b"\x78\x02\x0a\x04dots"),
        "version 2, then the layer name"
    );
    // MoveTo(1) to x = 2048 (zigzag 4096: varint 0x80 0x20); y a little south of the middle
    // (the lon/lat centre of a tile is not its Web Mercator centre).
    assert!(find(&[0x09, 0x80, 0x20]), "{body:02x?}");
    assert!(find(b"\x1a\x01z"), "the attribute's key");
    assert!(find(&[0x28, 0x80, 0x20]), "extent 4096");
    let doc = s
        .get(&format!("/v1/realtime-shared/{t}/run/tiles.json"))
        .await
        .json();
    assert_eq!(doc["vector_layers"][0]["id"], "dots");
    // Once a tile was made, its attributes are listed.
    assert_eq!(
        doc["vector_layers"][0]["fields"],
        serde_json::json!({"z": "Number"})
    );
    // Cached: the second answer is the same bytes.
    let again = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/5/17/11?format=mvt"
        ))
        .await;
    assert_eq!(again.body, r.body);
    assert_eq!(again.header("x-cache"), Some("hit"));

    // An empty tile (0 bytes) does not make the fields forgotten.
    let empty = s
        .get(&format!(
            "/v1/realtime-shared/{t}/run/tiles/5/17/11?format=mvt&empty=true"
        ))
        .await;
    assert_eq!((empty.status, empty.body.len()), (200, 0));
    let fields = |doc: serde_json::Value| doc["vector_layers"][0]["fields"].clone();
    let tilejson = format!("/v1/realtime-shared/{t}/run/tiles.json");
    assert_eq!(
        fields(s.get(&tilejson).await.json()),
        serde_json::json!({"z": "Number"})
    );
    // A new version of the UDF (another identity) has not made a tile yet.
    s.state.registry.register(dots().with_version("2")).unwrap();
    assert_eq!(fields(s.get(&tilejson).await.json()), serde_json::json!({}));
}
