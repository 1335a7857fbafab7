//! A real CPython worker (the test virtualenv's, created by `cargo xtask test`) compiling and
//! calling UDFs: values, tables and arrays back, exceptions with their line, deadlines, crashes,
//! and a clean environment.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use arrow::array::AsArray;
use common::python;
use fused_python::{Error, PythonWorker, Returned, WorkerConfig};
use serde_json::{Map, Value, json};

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn worker() -> PythonWorker {
    PythonWorker::start(&WorkerConfig::new(python()))
        .await
        .unwrap()
}

const SECOND: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_udf_compiles_once_and_answers_values_with_its_prints() {
    let mut w = worker().await;
    let code = "import fused\n\n@fused.udf\ndef udf(name: str = 'world', times: int = 1):\n    print('greeting', name)\n    return {'message': f'Hello, {name}!' * times}\n";
    let c = w.compile(code, None).await.unwrap();
    assert_eq!(c.entrypoint, "udf");
    let names: Vec<_> = c
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.annotation.as_deref(), p.default.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("name", Some("str"), Some(json!("world"))),
            ("times", Some("int"), Some(json!(1)))
        ]
    );
    for n in ["Fused", "again"] {
        let r = w
            .call(&c.udf, &params(json!({"name": n})), SECOND)
            .await
            .unwrap();
        assert_eq!(
            r.result,
            Ok(Returned::Json(json!({"message": format!("Hello, {n}!")})))
        );
        assert_eq!(r.stdout, format!("greeting {n}\n"));
    }
}

#[tokio::test]
async fn tables_and_arrays_come_back_as_arrow_and_bytes() {
    let mut w = worker().await;
    let code = r#"
import fused

@fused.udf
def udf(n: int = 3):
    import geopandas as gpd, shapely
    return gpd.GeoDataFrame({"id": list(range(n))},
                            geometry=[shapely.Point(i, -i) for i in range(n)], crs=4326)
"#;
    let c = w.compile(code, None).await.unwrap();
    let r = w
        .call(&c.udf, &params(json!({"n": 4})), SECOND)
        .await
        .unwrap();
    let Ok(Returned::Arrow { ipc, geometry, crs }) = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(
        (geometry.as_deref(), crs.as_deref()),
        (Some("geometry"), Some("EPSG:4326"))
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    let g = batches[0].column_by_name("geometry").unwrap();
    assert_eq!(g.as_binary::<i32>().value(1).len(), 21, "a WKB point");
    let code = "@fused.udf\ndef udf(bounds=None):\n    import numpy as np\n    return np.arange(6, dtype='uint8').reshape(2, 3), (0, 1, 2, 3)\n";
    let c = w.compile(code, None).await.unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    assert_eq!(
        r.result,
        Ok(Returned::Array {
            dtype: "|u1".into(),
            shape: vec![2, 3],
            bounds: Some([0.0, 1.0, 2.0, 3.0]),
            data: vec![0, 1, 2, 3, 4, 5]
        })
    );
}

#[tokio::test]
async fn errors_name_their_class_message_and_line_and_the_worker_goes_on() {
    let mut w = worker().await;
    let Err(Error::Udf(e)) = w.compile("@fused.udf\ndef udf(:\n    pass\n", None).await else {
        panic!()
    };
    assert_eq!((e.class.as_str(), e.line), ("SyntaxError", Some(2)), "{e}");
    let Err(Error::Udf(e)) = w.compile("x = 1\n", None).await else {
        panic!()
    };
    assert!(e.message.contains("no function decorated"), "{e}");
    let Err(Error::Udf(e)) = w
        .compile(
            "import not_a_module_here\n@fused.udf\ndef udf():\n    pass\n",
            None,
        )
        .await
    else {
        panic!()
    };
    assert_eq!(e.class, "ModuleNotFoundError", "{e}");
    let c = w
        .compile(
            "@fused.udf\ndef udf(x: int = 1):\n    y = 2\n    raise ValueError(f'bad x {x}')\n",
            None,
        )
        .await
        .unwrap();
    let r = w
        .call(&c.udf, &params(json!({"x": 7})), SECOND)
        .await
        .unwrap();
    let e = r.result.unwrap_err();
    assert_eq!(
        (e.class.as_str(), e.message.as_str(), e.line),
        ("ValueError", "bad x 7", Some(4))
    );
    let c = w
        .compile("@fused.udf\ndef udf():\n    return object()\n", None)
        .await
        .unwrap();
    let e = w
        .call(&c.udf, &Map::new(), SECOND)
        .await
        .unwrap()
        .result
        .unwrap_err();
    assert!(
        e.class == "TypeError" && e.message.contains("cannot be sent back"),
        "{e}"
    );
    // Megabytes of prints are cut, not sent whole.
    let c = w
        .compile(
            "@fused.udf\ndef udf():\n    print('x' * 5_000_000)\n    return 1\n",
            None,
        )
        .await
        .unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    assert!(r.stdout.len() < 1_100_000 && r.stdout.contains("more characters"));
    // Reading stdin or writing to fd 1 cannot break the protocol.
    let c = w.compile("@fused.udf\ndef udf():\n    import os, sys\n    os.write(1, b'raw')\n    return sys.stdin.read()\n", None).await.unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    assert_eq!(r.result, Ok(Returned::Json(json!(""))));
}

#[tokio::test]
async fn a_call_past_its_deadline_or_a_crash_fails_that_call_only() {
    let mut w = worker().await;
    let c = w
        .compile(
            "@fused.udf\ndef udf():\n    while True:\n        pass\n",
            None,
        )
        .await
        .unwrap();
    let e = w
        .call(&c.udf, &Map::new(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(!w.is_alive());
    let mut w = worker().await;
    let c = w.compile("@fused.udf\ndef udf():\n    import os, sys\n    sys.__stderr__.write('going\\n'); sys.__stderr__.flush()\n    os._exit(3)\n", None).await.unwrap();
    let e = w.call(&c.udf, &Map::new(), SECOND).await.unwrap_err();
    assert!(
        matches!(&e, Error::Died { stderr } if stderr.contains("going")),
        "{e}"
    );
    // A fresh worker serves.
    let mut w = worker().await;
    let c = w
        .compile("@fused.udf\ndef udf():\n    return 2\n", None)
        .await
        .unwrap();
    assert_eq!(
        w.call(&c.udf, &Map::new(), SECOND).await.unwrap().result,
        Ok(Returned::Json(json!(2)))
    );
}

#[tokio::test]
async fn the_worker_sees_none_of_the_hosts_environment() {
    // The test runner's own variables (CARGO_*, NEXTEST_*) must not reach it: only the config's.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let cfg = WorkerConfig::new(python());
    let mut w = PythonWorker::start(&cfg).await.unwrap();
    let c = w
        .compile(
            "@fused.udf\ndef udf():\n    import os\n    return sorted(os.environ)\n",
            None,
        )
        .await
        .unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    let Ok(Returned::Json(Value::Array(keys))) = r.result else {
        panic!("{r:?}")
    };
    let allowed: Vec<&str> = cfg
        .env
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(["LC_CTYPE"])
        .collect();
    for k in &keys {
        assert!(
            allowed.contains(&k.as_str().unwrap_or("")),
            "{k} leaked into the worker"
        );
    }
}

#[tokio::test]
async fn a_udf_past_the_memory_limit_gets_a_memory_error_and_the_worker_lives() {
    let cfg = WorkerConfig::new(python()).with_memory_limit(1 << 30);
    let mut w = PythonWorker::start(&cfg).await.unwrap();
    let c = w
        .compile(
            "@fused.udf\ndef udf(mb: int = 1):\n    return len(bytearray(mb << 20))\n",
            None,
        )
        .await
        .unwrap();
    let r = w
        .call(&c.udf, &params(json!({"mb": 4096})), SECOND)
        .await
        .unwrap();
    assert_eq!(r.result.unwrap_err().class, "MemoryError");
    let r = w
        .call(&c.udf, &params(json!({"mb": 8})), SECOND)
        .await
        .unwrap();
    assert_eq!(r.result, Ok(Returned::Json(json!(8 << 20))));
}

#[tokio::test]
async fn file_path_download_and_submit_inside_a_udf() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data.txt");
    std::fs::write(&src, "payload").unwrap();
    let mut cfg = WorkerConfig::new(python());
    cfg.env.retain(|(k, _)| k != "TMPDIR");
    cfg.env
        .push(("TMPDIR".into(), tmp.path().display().to_string()));
    let mut w = PythonWorker::start(&cfg).await.unwrap();
    let code = format!(
        "@fused.udf\ndef udf():\n    p = fused.download('file://{}')\n    again = fused.download('file://{}')\n    out = fused.file_path('work/out.txt')\n    open(out, 'w').write(open(p).read().upper())\n    squares = fused.submit(lambda n: n * n, [1, 2, 3])\n    return [p == again, open(out).read(), squares, out.startswith(fused.options.cache_directory)]\n",
        src.display(),
        src.display()
    );
    let c = w.compile(&code, None).await.unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    assert_eq!(
        r.result,
        Ok(Returned::Json(json!([true, "PAYLOAD", [1, 4, 9], true])))
    );
}

#[tokio::test]
async fn workers_run_as_another_os_user_when_asked() {
    // Needs root (to switch users) and an interpreter `nobody` can read: the system's.
    let system = Path::new("/usr/bin/python3");
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root || !system.exists() {
        eprintln!("skipped: not root, or no /usr/bin/python3");
        return;
    }
    let secret = tempfile::tempdir().unwrap();
    let file = secret.path().join("server-only.txt");
    std::fs::write(&file, "secret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = WorkerConfig::new(system).with_user("nobody");
    let mut w = PythonWorker::start(&cfg).await.unwrap();
    let code = format!(
        "@fused.udf\ndef udf():\n    import os\n    try:\n        open({:?}).read()\n        readable = True\n    except PermissionError:\n        readable = False\n    return [os.getuid(), readable]\n",
        file.display().to_string()
    );
    let c = w.compile(&code, None).await.unwrap();
    let r = w.call(&c.udf, &Map::new(), SECOND).await.unwrap();
    assert_eq!(r.result, Ok(Returned::Json(json!([65534, false]))));
}
