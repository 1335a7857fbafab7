//! Fused-format code UDFs as fused-rs UDFs on a pool of real CPython workers: parameters
//! coerced from the signature, outputs decoded, prints in the logs, failures with their line,
//! header modules, and a pool that heals.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::python;
use fused_core::udf::Header;
use fused_core::{Args, Output, RunContext, Tile, UdfMeta};
use fused_python::{PythonPool, WorkerConfig, code_udf};
use serde_json::json;

fn meta(name: &str, code: &str) -> UdfMeta {
    let mut m = UdfMeta::new(name);
    m.code = code.to_owned();
    m.entrypoint = "udf".to_owned();
    m
}

const HELLO: &str = "@fused.udf\ndef udf(name: str = 'world', times: int = 1, bounds=None):\n    print(f'hi {name}')\n    return {'message': f'Hello, {name}!' * times, 'bounds': bounds}\n";

#[tokio::test]
async fn a_code_udf_binds_coerces_and_runs_like_a_native_one() {
    let pool = PythonPool::new(WorkerConfig::new(python()), 2);
    pool.warm().await.unwrap();
    assert_eq!(pool.idle_count(), 2);
    let udf = code_udf(&pool, meta("hello", HELLO), Duration::from_secs(20))
        .await
        .unwrap();
    let spec = udf.schema().get("times").unwrap();
    assert_eq!(spec.default, Some(json!(1)));
    // Strings from a query are coerced by the annotations; a tile sets `bounds`.
    let args = Args::from_pairs([("name", "Fused"), ("times", "2")]);
    let tile = Tile { x: 1, y: 1, z: 1 };
    let bound = udf.bind(&args, Some(tile)).unwrap();
    let ctx = RunContext::new("r1", "hello", Some(tile), 0);
    let out = udf.invoke(ctx.clone(), bound).await.unwrap();
    let Output::Json(v) = out else {
        panic!("{out:?}")
    };
    assert_eq!(v["message"], json!("Hello, Fused!Hello, Fused!"));
    assert_eq!(v["bounds"].as_array().map(Vec::len), Some(4));
    assert_eq!(ctx.logs().stdout.trim(), "hi Fused");
    // A wrong type is the caller's error, before any Python runs.
    let e = udf
        .bind(&Args::from_pairs([("times", "many")]), None)
        .unwrap_err();
    assert!(e.to_string().contains("times"), "{e}");
}

#[tokio::test]
async fn tables_arrays_failures_and_header_modules() {
    let pool = PythonPool::new(WorkerConfig::new(python()), 1);
    let points = "@fused.udf\ndef udf(n: int = 3):\n    import geopandas as gpd, shapely\n    return gpd.GeoDataFrame({'id': range(n)}, geometry=[shapely.Point(i, i) for i in range(n)], crs=3857)\n";
    let udf = code_udf(&pool, meta("points", points), Duration::from_secs(20))
        .await
        .unwrap();
    let bound = udf.bind(&Args::from_pairs([("n", "5")]), None).unwrap();
    let out = udf
        .invoke(RunContext::new("r", "points", None, 0), bound)
        .await
        .unwrap();
    let Output::Table(t) = out else {
        panic!("{out:?}")
    };
    assert_eq!(t.num_rows(), 5);
    assert_eq!(
        t.geometry().map(|g| g.crs.clone()),
        Some(fused_core::Crs::Epsg(3857))
    );
    let raster = "@fused.udf\ndef udf(bounds=None):\n    import numpy as np\n    return np.full((2, 4, 4), 7, dtype='float32'), (0, 0, 1, 1)\n";
    let udf = code_udf(&pool, meta("raster", raster), Duration::from_secs(20))
        .await
        .unwrap();
    let bound = udf.bind(&Args::new(), None).unwrap();
    let out = udf
        .invoke(RunContext::new("r", "raster", None, 0), bound)
        .await
        .unwrap();
    let Output::Raster(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!((r.bands(), r.height(), r.width()), (2, 4, 4));
    // A header module the code imports.
    let mut m = meta(
        "with_header",
        "import helper\n@fused.udf\ndef udf():\n    return helper.double(21)\n",
    );
    m.headers = vec![Header {
        module_name: "helper".into(),
        source_code: Some("def double(x):\n    return 2 * x\n".into()),
        source_file: None,
    }];
    let udf = code_udf(&pool, m, Duration::from_secs(20)).await.unwrap();
    let bound = udf.bind(&Args::new(), None).unwrap();
    let out = udf
        .invoke(RunContext::new("r", "h", None, 0), bound)
        .await
        .unwrap();
    assert!(
        matches!(out, Output::Json(ref v) if v == &json!(42)),
        "{out:?}"
    );
    // An exception: class, message, line.
    let udf = code_udf(
        &pool,
        meta(
            "raises",
            "@fused.udf\ndef udf():\n    raise KeyError('nope')\n",
        ),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let bound = udf.bind(&Args::new(), None).unwrap();
    let e = udf
        .invoke(RunContext::new("r", "raises", None, 0), bound)
        .await
        .unwrap_err();
    assert_eq!((e.class.as_str(), e.lineno), ("KeyError", Some(3)), "{e:?}");
    // Code that does not compile is refused when the UDF is made.
    let e = code_udf(
        &pool,
        meta("broken", "@fused.udf\ndef udf(:\n"),
        Duration::from_secs(20),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("SyntaxError"), "{e}");
}

#[tokio::test]
async fn a_timed_out_call_fails_alone_and_the_pool_heals() {
    let pool = PythonPool::new(WorkerConfig::new(python()), 1);
    pool.warm().await.unwrap();
    let slow = "@fused.udf\ndef udf(seconds: float = 60):\n    import time\n    time.sleep(seconds)\n    return 'woke'\n";
    let udf = code_udf(&pool, meta("slow", slow), Duration::from_millis(700))
        .await
        .unwrap();
    let bound = udf.bind(&Args::new(), None).unwrap();
    let e = udf
        .invoke(RunContext::new("r", "slow", None, 0), bound)
        .await
        .unwrap_err();
    assert_eq!(e.kind, fused_core::FailureKind::Timeout, "{e:?}");
    // A replacement comes up in the background; the next call is served.
    let start = std::time::Instant::now();
    while pool.idle_count() == 0 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.idle_count(), 1, "the pool healed");
    let bound = udf
        .bind(&Args::from_pairs([("seconds", "0")]), None)
        .unwrap();
    let out = udf
        .invoke(RunContext::new("r", "slow", None, 0), bound)
        .await
        .unwrap();
    assert!(
        matches!(out, Output::Json(ref v) if v == &json!("woke")),
        "{out:?}"
    );
    let _ = Arc::strong_count(&pool);
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DoubleParams {
    n: i64,
}

#[tokio::test]
async fn a_code_udf_calls_other_udfs_through_the_host_within_the_recursion_limit() {
    use fused_core::{Executor, UdfCall, UdfRef, UdfRegistry};
    let registry = Arc::new(UdfRegistry::new());
    registry
        .register(fused_core::Udf::native(
            "double",
            |_ctx: RunContext, p: DoubleParams| async move {
                Ok::<_, std::convert::Infallible>(Output::Json(json!(p.n * 2)))
            },
        ))
        .unwrap();
    let executor: Arc<dyn Executor> =
        Arc::new(fused_jobs::LocalExecutor::new(Arc::clone(&registry)));
    let pool = PythonPool::new(WorkerConfig::new(python()), 2);
    let t = Duration::from_secs(20);
    let services = fused_python::Services {
        executor: Some(Arc::clone(&executor)),
        cache: None,
    };
    let caller = "@fused.udf\ndef udf(n: int = 1):\n    local = fused.load('@fused.udf\\ndef udf(k: int = 0):\\n    return k\\n')\n    return fused.run('double', n=n) + fused.load('double')(n=local(k=0)) + 1\n";
    let udf = fused_python::code_udf_calling(&pool, meta("caller", caller), t, services.clone())
        .await
        .unwrap();
    registry.register(udf).unwrap();
    let r = executor
        .execute(UdfCall::new(
            UdfRef::Name("caller".into()),
            Args::from_pairs([("n", "20")]),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.into_output().ok().and_then(|o| match o {
            Output::Json(v) => Some(v),
            _ => None,
        }),
        Some(json!(41))
    );
    // A UDF calling itself stops at the limit with the host's error, inside Python.
    let looping = "@fused.udf\ndef udf():\n    return fused.run('looping')\n";
    let udf = fused_python::code_udf_calling(&pool, meta("looping", looping), t, services.clone())
        .await
        .unwrap();
    registry.register(udf).unwrap();
    let r = executor
        .execute(UdfCall::new(UdfRef::Name("looping".into()), Args::new()))
        .await
        .unwrap();
    let e = r.into_output().unwrap_err();
    assert!(e.message.contains("recursion"), "{e:?}");
}

#[tokio::test]
async fn fused_cache_keeps_results_in_the_hosts_cache() {
    let cache: Arc<dyn fused_core::Cache> = Arc::new(fused_cache::MemoryCache::new(1 << 20));
    let pool = PythonPool::new(WorkerConfig::new(python()), 1);
    let services = fused_python::Services {
        executor: None,
        cache: Some(Arc::clone(&cache)),
    };
    // The cached function counts its real runs in a file: a hit does not run it.
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("runs");
    let code = format!(
        "@fused.udf\ndef udf(n: int = 1):\n    @fused.cache\n    def slow(k):\n        with open({:?}, 'a') as f:\n            f.write('x')\n        return [k, k * k]\n    return slow(n)\n",
        counter.display().to_string()
    );
    let udf = fused_python::code_udf_calling(
        &pool,
        meta("cached", &code),
        Duration::from_secs(20),
        services,
    )
    .await
    .unwrap();
    let mut outs = Vec::new();
    for n in ["3", "3", "4", "3"] {
        let bound = udf.bind(&Args::from_pairs([("n", n)]), None).unwrap();
        let out = udf
            .invoke(RunContext::new("r", "cached", None, 0), bound)
            .await
            .unwrap();
        outs.push(out);
    }
    assert!(
        matches!(&outs[1], Output::Json(v) if v == &json!([3, 9])),
        "{:?}",
        outs[1]
    );
    assert!(
        matches!(&outs[2], Output::Json(v) if v == &json!([4, 16])),
        "{:?}",
        outs[2]
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "xx",
        "two distinct arguments, two runs"
    );
}

#[tokio::test]
async fn the_corpus_loads_and_runs_locally() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/udfs");
    let pool = PythonPool::new(WorkerConfig::new(python()), 1);
    let t = Duration::from_secs(30);
    let mut ran = Vec::new();
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let m = UdfMeta::load(&path).unwrap();
        let name = m.display_name().to_owned();
        let udf = code_udf(&pool, m, t).await.unwrap();
        let tile = Tile { x: 4, y: 2, z: 3 };
        let takes_tile = udf.takes_bounds();
        let bound = udf.bind(&Args::new(), takes_tile.then_some(tile));
        let out = match bound {
            Ok(b) => {
                udf.invoke(
                    RunContext::new("r", &name, takes_tile.then_some(tile), 0),
                    b,
                )
                .await
            }
            Err(e) => panic!("{name}: {e}"),
        };
        match (name.as_str(), out) {
            ("raises", Err(e)) => assert_eq!(e.class, "RuntimeError"),
            ("csv_reader", Err(e)) => assert!(e.message.contains("path is required")),
            ("hello_typed", Ok(Output::Json(v))) => assert_eq!(v, json!("Hello, world!")),
            ("with_header", Ok(Output::Json(v))) => assert_eq!(v, json!({"scaled": 20.0})),
            ("points_gdf" | "nested_cache" | "tile_bounds", Ok(Output::Table(t))) => {
                assert!(t.num_rows() > 0, "{name}")
            }
            ("raster_array", Ok(Output::Raster(r))) => assert_eq!(r.width(), 16),
            (n, other) => panic!("{n}: {other:?}"),
        }
        ran.push(name);
    }
    assert_eq!(ran.len(), 8, "{ran:?}");
}
