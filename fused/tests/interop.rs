//! Interop with clients nobody here wrote: the official `fused` Python SDK 2.9.5, pyarrow and
//! geopandas, run from the virtualenv that `cargo xtask test` creates under `target/py`, against
//! the real `fused serve` binary.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fused_http::ServerSecret;

const SECRET: [u8; 32] = [42; 32];
/// The owner's API token on interop servers (given through FUSED_SERVER_TOKEN).
const OWNER_TOKEN: &str = "fsk_interop_owner_0123456789abcdef0123456789";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The interpreter of the test virtualenv; its absence is a failure with the fix in the message.
fn python() -> PathBuf {
    // A relative FUSED_TEST_PYTHON is taken from the workspace root, where commands are typed.
    let p = std::env::var_os("FUSED_TEST_PYTHON")
        .map(|p| workspace().join(p))
        .unwrap_or_else(|| workspace().join("target/py/bin/python"));
    assert!(
        p.exists(),
        "no Python test environment at {}: run `cargo xtask test` (it creates it), or set FUSED_TEST_PYTHON",
        p.display()
    );
    p
}

/// A `fused serve` process on a free port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The self-signed certificate (PEM file) when serving HTTPS.
    cert: Option<PathBuf>,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `tls`, serves HTTPS with a fresh self-signed certificate for localhost.
    fn start_with(tls: bool) -> Self {
        Self::start_args(tls, &[])
    }

    /// With extra `fused serve` arguments.
    fn start_args(tls: bool, extra: &[&str]) -> Self {
        Self::start_env(tls, extra, &[])
    }

    /// With extra arguments and environment variables.
    fn start_env(tls: bool, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("server.key"), hex(&SECRET)).unwrap();
        Self::start_in(data, tls, extra, env)
    }

    /// Stops the server and starts a new one on the same data folder.
    fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        Self::start_in(data, false, &[], &[])
    }

    fn start_in(data: tempfile::TempDir, tls: bool, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fused"));
        cmd.args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data.path())
            .args(extra)
            .env("FUSED_PYTHON", python())
            .envs(env.iter().copied())
            .env("FUSED_SERVER_TOKEN", OWNER_TOKEN);
        let mut cert = None;
        if tls {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let (c, k) = (data.path().join("cert.pem"), data.path().join("key.pem"));
            std::fs::write(&c, ck.cert.pem()).unwrap();
            std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
            cmd.arg("--tls-cert").arg(&c).arg("--tls-key").arg(&k);
            cert = Some(c);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The banner's first line says where it serves.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(
            first.contains(&format!(":{port}/v1")),
            "unexpected banner: {first}"
        );
        // Keep draining the banner so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            addr,
            cert,
            _data: data,
        }
    }

    fn base(&self) -> String {
        match self.cert {
            Some(_) => format!("https://localhost:{}/v1", self.addr.port()),
            None => format!("http://{}/v1", self.addr),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `tests/interop/<script>` with the server's URLs and tokens in its environment.
fn run_python(script: &str, server: Option<&Server>, extra: &[(&str, String)]) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(workspace().join("tests/interop").join(script))
        .env("HOME", home.path())
        // Scripts' temporary files go with the test's folder.
        .env("TMPDIR", home.path())
        .env("PYTHONUNBUFFERED", "1");
    if let Some(s) = server {
        let tokens = ServerSecret::new(SECRET);
        cmd.env("FUSED_TEST_BASE_URL", s.base())
            .env("FUSED_TEST_OWNER_TOKEN", OWNER_TOKEN);
        if let Some(cert) = &s.cert {
            // The SDK's public switches: requests' own trust (not the OS store), with our CA.
            cmd.env("FUSED_SYSTEM_TRUST", "0")
                .env("REQUESTS_CA_BUNDLE", cert);
        }
        for name in ["hello", "vector_tile", "raster_tile", "h3_relief"] {
            cmd.env(
                format!("FUSED_TEST_TOKEN_{}", name.to_uppercase()),
                tokens.token_for(name),
            );
        }
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
        "{script} did not finish:\n{text}"
    );
}

#[test]
fn sdk_gets_a_geodataframe_from_a_tile() {
    let s = Server::start();
    run_python("sdk_tiles.py", Some(&s), &[]);
}

#[test]
fn sdk_gets_the_h3_demo_as_hexagons_on_tiles() {
    let s = Server::start();
    run_python("h3_tiles.py", Some(&s), &[]);
}

/// A Python tile UDF of every geometry kind MVT encodes: a polygon with a hole, lines leaving
/// and crossing the tile, points inside and out, a polygon across the tile's edge.
const SHAPES_UDF: &str = r#"@fused.udf
def udf(bounds: fused.types.Bounds = None):
    import geopandas as gpd
    import shapely
    w, s, e, n = bounds
    dx, dy = e - w, n - s
    at = lambda fx, fy: (w + fx * dx, s + fy * dy)
    hole = shapely.Polygon([at(.1, .1), at(.6, .1), at(.6, .6), at(.1, .6)],
                           [[at(.2, .2), at(.2, .4), at(.4, .4), at(.4, .2)]])
    lines = shapely.MultiLineString([[at(-.5, .7), at(1.5, .7)], [at(.5, -.5), at(.5, 1.5)]])
    points = shapely.MultiPoint([at(.8, .8), at(.9, .9), at(2, 2)])
    edge = shapely.box(*at(-.3, .75), *at(.3, .95))
    return gpd.GeoDataFrame({"kind": ["hole", "lines", "points", "edge"], "n": [1, 2, 3, 4]},
                            geometry=[hole, lines, points, edge], crs=4326)
"#;

#[test]
fn vector_tiles_decode_as_the_geojson_of_the_same_tile() {
    let udfs = tempfile::tempdir().unwrap();
    std::fs::write(udfs.path().join("shapes.py"), SHAPES_UDF).unwrap();
    let s = Server::start_args(false, &["--udfs", udfs.path().to_str().unwrap()]);
    let shapes = ServerSecret::new(SECRET).token_for("shapes");
    run_python(
        "mvt_tiles.py",
        Some(&s),
        &[("FUSED_TEST_TOKEN_SHAPES", shapes)],
    );
}

/// Drives Debian's Chromium (which `cargo xtask test` installs); screenshots are kept in
/// `target/test-artifacts/`.
#[test]
fn the_viewer_works_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: `cargo xtask test` installs it (apt-get install chromium)"
    );
    let corpus = workspace().join("tests/udfs");
    let s = Server::start_args(false, &["--udfs", corpus.to_str().unwrap()]);
    let artifacts = workspace().join("target/test-artifacts");
    run_python(
        "viewer.py",
        Some(&s),
        &[("FUSED_TEST_ARTIFACTS", artifacts.display().to_string())],
    );
}

#[test]
fn sdk_gets_a_geodataframe_over_https() {
    let s = Server::start_with(true);
    assert!(s.base().starts_with("https://"));
    run_python("sdk_tiles.py", Some(&s), &[]);
}

#[test]
fn sdk_file_runs_rasters_and_errors() {
    let s = Server::start();
    run_python("sdk_files_and_errors.py", Some(&s), &[]);
}

#[test]
fn pyarrow_and_geopandas_read_our_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cells.parquet");
    let status = Command::new(env!("CARGO_BIN_EXE_fused"))
        .args([
            "run",
            "vector_tile",
            "--tile",
            "3/4/2",
            "--param",
            "cells=5",
            "--output",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let s = Server::start();
    run_python(
        "read_parquet.py",
        Some(&s),
        &[("FUSED_TEST_PARQUET", out.display().to_string())],
    );
}

#[test]
fn the_run_command_reports_bad_input() {
    let bin = env!("CARGO_BIN_EXE_fused");
    let run = |args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let o = run(&["run", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("available: hello"),
        "{o:?}"
    );
    let o = run(&["run", "vector_tile", "--param", "cells=many"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("parameter `cells`"),
        "{o:?}"
    );
    let o = run(&["run", "vector_tile", "--tile", "31/0/0"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("zoom"), "{o:?}");
    let o = run(&["run", "hello", "--param", "name="]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ValueError: name must not be empty"),
        "{o:?}"
    );
    let o = run(&["run", "hello", "--param", "name=CLI", "--format", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["message"], "Hello, CLI!");
}

/// Every column type of the lean Parquet writer, with nulls, read by pyarrow.
#[test]
fn pyarrow_reads_every_column_type_we_write() {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array,
        Int32Array, Int64Array, LargeStringArray, StringArray, UInt8Array, UInt16Array,
        UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(-128), Some(127), None])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![None, Some(-32768), Some(32767)])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(0),
                Some(i64::MAX),
            ])),
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![Some(255), None, Some(0)])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![Some(65535), Some(1), None])),
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![Some(u32::MAX), None, Some(7)])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![None, Some(f64::MAX), Some(1e-300)])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("é ü"), None, Some("")])),
        ),
        (
            "ls",
            Arc::new(LargeStringArray::from(vec![Some("large"), Some("x"), None])),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\xff"[..]),
                None,
                Some(&b""[..]),
            ])),
        ),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let bytes = fused_core::encode::encode_parquet(&fused::Table::from_batch(batch)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.parquet");
    std::fs::write(&path, bytes).unwrap();
    run_python(
        "read_types.py",
        None,
        &[("FUSED_TEST_PARQUET", path.display().to_string())],
    );
}

#[test]
fn sdk_uses_the_rest_api() {
    let s = Server::start();
    run_python("sdk_api.py", Some(&s), &[]);
}

#[test]
fn udf_folders_and_zips_cross_between_the_sdk_and_us() {
    let dir = tempfile::tempdir().unwrap();
    let registry = fused::UdfRegistry::new();
    fused::demos::register(&registry).unwrap();
    let hello = registry.get("hello").unwrap();
    let (ours_dir, ours_zip) = (dir.path().join("hello"), dir.path().join("hello.zip"));
    hello.to_directory(&ours_dir, false).unwrap();
    hello.to_file(&ours_zip, false).unwrap();
    let (sdk_dir, sdk_zip) = (dir.path().join("squares"), dir.path().join("squares.zip"));
    run_python(
        "udf_folders.py",
        None,
        &[
            ("FUSED_TEST_RUST_DIR", ours_dir.display().to_string()),
            ("FUSED_TEST_RUST_ZIP", ours_zip.display().to_string()),
            ("FUSED_TEST_SDK_DIR", sdk_dir.display().to_string()),
            ("FUSED_TEST_SDK_ZIP", sdk_zip.display().to_string()),
        ],
    );
    let from_dir = fused::UdfMeta::load(&sdk_dir).unwrap();
    let from_zip = fused::UdfMeta::load(&sdk_zip).unwrap();
    assert_eq!(from_dir, from_zip);
    assert_eq!(from_dir.display_name(), "squares");
    assert_eq!(from_dir.entrypoint, "udf");
    assert!(
        from_dir.code.starts_with("import fused\n\n"),
        "{}",
        from_dir.code
    );
    assert!(
        from_dir.code.contains("def udf(n: int=3"),
        "{}",
        from_dir.code
    );
    assert_eq!(from_dir.cache_max_age, Some(fused::MaxAge::from_secs(600)));
    assert_eq!(from_dir.parameters["n"], 4);
    // And back: what we write from it, the same again.
    let again = dir.path().join("again");
    from_dir.to_directory(&again, false).unwrap();
    assert_eq!(fused::UdfMeta::load(&again).unwrap(), from_dir);
}

/// Runs the `fused` binary against `server` and returns (success, stdout, stderr).
#[test]
fn the_udf_corpus_runs_over_https_by_token_from_the_sdk() {
    let corpus = workspace().join("tests/udfs");
    let names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    let secret = ServerSecret::new(SECRET);
    let tokens: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| (n.clone(), secret.token_for(n).into()))
        .collect();
    let dir = corpus.display().to_string();
    let s = Server::start_args(true, &["--udfs", &dir]);
    run_python(
        "udf_corpus.py",
        Some(&s),
        &[(
            "FUSED_TEST_CORPUS_TOKENS",
            serde_json::Value::Object(tokens).to_string(),
        )],
    );
}

#[test]
fn a_folder_of_udfs_is_served_and_reloaded() {
    let udfs = tempfile::tempdir().unwrap();
    std::fs::write(
        udfs.path().join("greet.py"),
        "@fused.udf\ndef udf(name: str = 'world'):\n    return f'Hello, {name}!'\n",
    )
    .unwrap();
    std::fs::write(udfs.path().join("broken.py"), "@fused.udf\ndef udf(:\n").unwrap();
    // Bad UDFs: one that never returns, one that kills its own process, one printing megabytes.
    std::fs::write(
        udfs.path().join("sleepy.py"),
        "@fused.udf\ndef udf():\n    import time\n    time.sleep(600)\n",
    )
    .unwrap();
    std::fs::write(
        udfs.path().join("killer.py"),
        "@fused.udf\ndef udf():\n    import os\n    os._exit(9)\n",
    )
    .unwrap();
    std::fs::write(
        udfs.path().join("chatty.py"),
        "@fused.udf\ndef udf():\n    print('y' * 8_000_000)\n    return 'done'\n",
    )
    .unwrap();
    // A code UDF calling a native one through the server (a table comes back as a DataFrame).
    std::fs::write(
        udfs.path().join("calls.py"),
        "@fused.udf\ndef udf():\n    df = fused.run('hello', name='inner')\n    df['n'] = len(df)\n    return df\n",
    )
    .unwrap();
    let mut squares = fused::UdfMeta::from_code(
        "@fused.udf\ndef squares(n: int = 2):\n    import pandas as pd\n    return pd.DataFrame({'x': [i * i for i in range(n)]})\n",
        Some("squares"),
    )
    .unwrap();
    squares.name = Some("squares".into());
    squares
        .to_directory(&udfs.path().join("squares"), false)
        .unwrap();
    let dir = udfs.path().display().to_string();
    let s = Server::start_args(false, &["--udfs", &dir, "--run-timeout", "3"]);
    // Each has its default shared token, as native UDFs do.
    let token = ServerSecret::new(SECRET).token_for("greet");
    let head = get_headers(
        s.addr,
        &format!("/v1/realtime-shared/{token}/run?name=t&format=json"),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // fused::load by token and by name, through the server.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = owner_api(&s);
    let by_token = rt.block_on(fused::load::load(&token, Some(&api))).unwrap();
    assert!(
        by_token.code.contains("Hello, {name}!"),
        "{}",
        by_token.code
    );
    let by_name = rt.block_on(fused::load::load("greet", Some(&api))).unwrap();
    assert_eq!(by_name.code, by_token.code);
    run_python("udf_dir.py", Some(&s), &[("FUSED_TEST_UDFS", dir.clone())]);
}

fn cli(server: &Server, args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fused"))
        .args(args)
        .env("FUSED_BASE_URL", server.base())
        .env("FUSED_AUTH_TOKEN", token.unwrap_or(OWNER_TOKEN))
        .env("HOME", server._data.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_manages_files_udfs_and_tokens() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("a.txt");
    std::fs::write(&local, "hello files").unwrap();
    let p = |x: &Path| x.display().to_string();

    assert!(cli(&s, &["files", "put", &p(&local), "fd://cli/"], None).0);
    let (ok, out, _) = cli(&s, &["files", "ls", "fd://cli/"], None);
    assert!(ok && out.trim() == "fd://cli/a.txt", "{out}");
    let (ok, out, _) = cli(&s, &["files", "get", "fd://cli/a.txt", "-"], None);
    assert!(ok && out == "hello files", "{out}");
    let (ok, out, _) = cli(&s, &["files", "sign", "fd://cli/a.txt"], None);
    assert!(ok && out.contains("/v1/files/signed?"), "{out}");
    let (ok, _, err) = cli(&s, &["files", "ls", "fd://../etc/"], None);
    assert!(!ok && err.contains("400"), "{err}");

    let (ok, out, _) = cli(&s, &["udf", "ls"], None);
    assert!(
        ok && out.contains("default/hello") && out.contains("native"),
        "{out}"
    );
    let folder = dir.path().join("hello");
    assert!(cli(&s, &["udf", "pull", "hello", &p(&folder)], None).0);
    assert!(folder.join("meta.json").exists());
    let py = dir.path().join("mine.py");
    std::fs::write(&py, "@fused.udf\ndef mine(n: int = 1):\n    return n\n").unwrap();
    let (ok, _, err) = cli(&s, &["udf", "save", &p(&py)], None);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&s, &["udf", "save", &p(&py)], None);
    assert!(
        !ok && err.contains("409"),
        "saving twice is a conflict: {err}"
    );
    let (ok, out, _) = cli(&s, &["udf", "show", "mine"], None);
    assert!(ok && out.contains("def mine(n: int = 1)"), "{out}");
    let (ok, out, _) = cli(&s, &["udf", "share", "hello"], None);
    assert!(ok && out.contains("token: fsh_"), "{out}");
    assert!(cli(&s, &["udf", "rm", "mine"], None).0);
    assert!(!cli(&s, &["udf", "show", "mine"], None).0);

    // API tokens live in the data folder: create one, use it, revoke it.
    let data = s._data.path().display().to_string();
    let (ok, token, err) = cli(
        &s,
        &[
            "token",
            "create",
            "--email",
            "ann@example.com",
            "--data-dir",
            &data,
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("fsk_"), "{token}");
    assert!(cli(&s, &["files", "ls"], Some(&token)).0);
    let (ok, out, _) = cli(&s, &["token", "ls", "--data-dir", &data], None);
    assert!(
        ok && out.contains("ann@example.com") && !out.contains(&token),
        "{out}"
    );
    assert!(cli(&s, &["token", "revoke", &token, "--data-dir", &data], None).0);
    // The server caches token lookups for a few seconds.
    std::thread::sleep(Duration::from_millis(5200));
    let (ok, _, err) = cli(&s, &["files", "ls"], Some(&token));
    assert!(!ok && err.contains("401"), "{err}");
    assert!(cli(&s, &["files", "rm", "fd://cli/"], None).0);
}

#[test]
fn sdk_saves_code_udfs_and_polls_long_runs() {
    let s = Server::start_args(false, &["--run-start-wait", "0"]);
    let data = s._data.path().display().to_string();
    let (ok, token, err) = cli(
        &s,
        &[
            "token",
            "create",
            "--email",
            "bob@example.com",
            "--data-dir",
            &data,
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(cli(&s, &["token", "revoke", &token, "--data-dir", &data], None).0);
    run_python(
        "sdk_save_and_poll.py",
        Some(&s),
        &[("FUSED_TEST_REVOKED_TOKEN", token)],
    );
}

/// moto's S3 server on a free port, killed on drop.
struct Moto(Child, u16);

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = python().parent().unwrap().join("moto_server");
        let child = Command::new(&bin)
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run `cargo xtask test` to install it)",
                    bin.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Create the bucket (moto accepts any credentials).
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        write!(s, "PUT /fused HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        Moto(child, port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sdk_files_on_an_s3_root() {
    let moto = Moto::start();
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let aws = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let s = Server::start_env(false, &["--storage", "s3://fused/team"], &aws);
    run_python(
        "s3_root.py",
        Some(&s),
        &[("AWS_ENDPOINT", endpoint.clone())],
    );
}

/// A GET over a plain socket: the status line and the headers, lowercased.
fn get_headers(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

#[test]
fn the_response_cache_survives_a_restart() {
    let s = Server::start();
    let token = ServerSecret::new(SECRET).token_for("vector_tile");
    let path = format!("/v1/realtime-shared/{token}/run/tiles/5/10/12?format=geojson&cells=3");
    let first = get_headers(s.addr, &path);
    assert!(
        first.starts_with("http/1.1 200") && first.contains("x-cache: miss"),
        "{first}"
    );
    let second = get_headers(s.addr, &path);
    assert!(
        second.contains("x-cache: hit") && !second.contains("x-fused-cached"),
        "{second}"
    );
    let s = s.restart();
    let third = get_headers(s.addr, &path);
    assert!(
        third.contains("x-cache: storage") && third.contains("x-fused-cached: true"),
        "{third}"
    );
    // Read back into memory: the next one is a memory hit.
    let fourth = get_headers(s.addr, &path);
    assert!(fourth.contains("x-cache: hit"), "{fourth}");
    // `fused cache` sees the server's cache, and clears it.
    let data = s._data.path().display().to_string();
    let (ok, out, _) = cli(&s, &["cache", "ls", "--data-dir", &data], None);
    let line = out
        .lines()
        .find(|l| l.contains(&data))
        .unwrap_or_default()
        .to_owned();
    assert!(
        ok && line.trim_start().starts_with('2'),
        "url and response entries: {out}"
    );
    let (ok, _, err) = cli(
        &s,
        &["cache", "clear", "--data-dir", &data, "--only", &data],
        None,
    );
    assert!(ok && err.contains("removed 2"), "{err}");
}

#[test]
fn sdk_runs_and_follows_batch_jobs() {
    let s = Server::start();
    run_python("sdk_jobs.py", Some(&s), &[]);
}

#[test]
fn sdk_ingests_through_a_batch_job_and_reads_the_table() {
    let s = Server::start();
    let files = s._data.path().join("files").display().to_string();
    run_python("sdk_ingest.py", Some(&s), &[("FUSED_TEST_FILES", files)]);
}

/// A client of the test server, as its owner.
fn owner_api(s: &Server) -> fused::FusedApi {
    let transport =
        fused::HttpTransport::new(Duration::from_secs(30), 0, Duration::from_millis(10)).unwrap();
    fused::FusedApi::new(std::sync::Arc::new(transport), s.base()).with_token(OWNER_TOKEN)
}

/// Waits (at most `secs`) for a job to end; its state and log lines.
async fn finish_job(
    api: &fused::FusedApi,
    id: &str,
    secs: u64,
) -> (fused::api::RunResponse, Vec<String>) {
    let done = api
        .wait_for_job(
            id,
            Duration::from_millis(100),
            Some(Duration::from_secs(secs)),
        )
        .await
        .unwrap();
    let logs = api
        .get_logs(id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    (done, logs)
}

#[test]
fn rust_run_batch_ingests_on_the_server_and_refuses_server_paths() {
    use fused::ingest_job::RunBatch;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start();
    rt.block_on(async {
        let api = owner_api(&s);
        let csv = "id,lon,lat\n1,-122.41,37.77\n2,2.35,48.85\n3,139.69,35.68\n4,,\n";
        api.upload(csv.as_bytes().to_vec(), "fd://in/places.csv")
            .await
            .unwrap();
        let job = fused::crates::ingest::ingest("fd://in/places.csv", "fd://tables/places")
            .partitioning_maximum_per_chunk(1.0)
            .run_batch(&api)
            .await
            .unwrap();
        let (done, logs) = finish_job(&api, &job.job_id, 30).await;
        assert_eq!(done.job_status.as_deref(), Some("Done"), "{logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("3 rows") && l.contains("dropped 1 without geometry")),
            "{logs:?}"
        );
        let table = s._data.path().join("files/tables/places");
        let index = fused::crates::ingest::read_chunk_index(&table).unwrap();
        assert_eq!(index.iter().map(|c| c.num_rows).sum::<u64>(), 3);
        // A path on the server is refused before anything is sent.
        let e = fused::crates::ingest::ingest("/etc/passwd", "fd://tables/x")
            .run_batch(&api)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("path on the server"), "{e}");
    });
}

/// Writes a float32 GeoTIFF (`epsg`, top-left corner `x0`, `y0`, square pixels of `px`) with
/// nodata, and `<path>.centres.csv`: its valid pixels' centres in its CRS, and their values.
fn write_test_raster(path: &Path, epsg: u16, x0: f64, y0: f64, px: f64) {
    let (w, h) = (80u32, 60u32);
    let value = |c: u32, r: u32| -> f32 {
        if (c * 3 + r).is_multiple_of(13) {
            -1.0
        } else {
            ((c + r * 5) % 4) as f32
        }
    };
    let data: Vec<f32> = (0..h)
        .flat_map(|r| (0..w).map(move |c| value(c, r)))
        .collect();
    let georef = fused::crates::h3::Georef {
        x0,
        y0,
        pixel: px,
        epsg,
    };
    fused::crates::h3::write_f32(path, georef, (w, h), Some(-1.0), &data).unwrap();
    let mut csv = String::new();
    for r in 0..h {
        for c in 0..w {
            let v = value(c, r);
            if v != -1.0 {
                let (x, y) = (
                    x0 + (f64::from(c) + 0.5) * px,
                    y0 - (f64::from(r) + 0.5) * px,
                );
                csv.push_str(&format!("{x},{y},{v}\n"));
            }
        }
    }
    std::fs::write(format!("{}.centres.csv", path.display()), csv).unwrap();
}

#[test]
fn h3_cells_match_the_reference_implementation_and_readers_read_them() {
    let dir = tempfile::tempdir().unwrap();
    write_test_raster(&dir.path().join("wgs84.tif"), 4326, 12.0, 45.0, 0.0005);
    write_test_raster(
        &dir.path().join("utm33.tif"),
        32633,
        500_000.0,
        4_650_000.0,
        20.0,
    );
    run_python(
        "h3_reference.py",
        None,
        &[
            ("FUSED_TEST_BIN", env!("CARGO_BIN_EXE_fused").to_owned()),
            ("FUSED_TEST_RASTERS", dir.path().display().to_string()),
        ],
    );
}

/// Compares one GDAL-written GeoTIFF with what GDAL read from it.
fn check_geotiff(m: &serde_json::Value, want: &[f64]) -> Result<(), String> {
    use fused::crates::h3::geotiff::GeoTiff;
    let path = PathBuf::from(m["file"].as_str().unwrap());
    let t = GeoTiff::open(&path).map_err(|e| e.to_string())?;
    let (w, h) = (
        m["width"].as_u64().unwrap() as u32,
        m["height"].as_u64().unwrap() as u32,
    );
    if (t.width, t.height) != (w, h) {
        return Err(format!("size {}×{}, GDAL {w}×{h}", t.width, t.height));
    }
    let gt: Vec<f64> = serde_json::from_value(m["transform"].clone()).unwrap();
    if t.transform
        .iter()
        .zip(&gt)
        .any(|(a, b)| (a - b).abs() > 1e-9 * b.abs().max(1.0))
    {
        return Err(format!("geotransform {:?}, GDAL {gt:?}", t.transform));
    }
    if t.epsg.map(u64::from) != m["epsg"].as_u64() {
        return Err(format!("EPSG {:?}, GDAL {}", t.epsg, m["epsg"]));
    }
    if t.nodata != m["nodata"].as_f64() {
        return Err(format!("nodata {:?}, GDAL {}", t.nodata, m["nodata"]));
    }
    let mut got = vec![f64::NAN; want.len()];
    let mut reader = t.reader().map_err(|e| e.to_string())?;
    for c in 0..t.chunks {
        let win = reader.read(c).map_err(|e| e.to_string())?;
        for r in 0..win.height {
            for col in 0..win.width {
                let at = ((win.y0 + r) * w + win.x0 + col) as usize;
                got[at] = win.values[(r * win.width + col) as usize];
            }
        }
    }
    match got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        Some(i) => Err(format!(
            "pixel ({}, {}) is {}, GDAL {}",
            i % w as usize,
            i / w as usize,
            got[i],
            want[i]
        )),
        None => Ok(()),
    }
}

#[test]
fn geotiffs_written_by_gdal_read_as_gdal_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    run_python(
        "tiff_variants.py",
        None,
        &[("FUSED_TEST_OUT", dir.path().display().to_string())],
    );
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() > 100, "{} variants", manifest.len());
    let mut failures = Vec::new();
    for m in &manifest {
        let name = m["name"].as_str().unwrap();
        if let Some(reason) = m["error"].as_str() {
            let path = PathBuf::from(m["file"].as_str().unwrap());
            match fused::crates::h3::geotiff::GeoTiff::open(&path) {
                Ok(_) => failures.push(format!("{name}: opened, expected an error ({reason})")),
                Err(e) if e.to_string().contains(reason) && e.to_string().contains(name) => {}
                Err(e) => failures.push(format!("{name}: {e} (expected {reason})")),
            }
            continue;
        }
        let bytes = std::fs::read(dir.path().join(format!("{name}.f64"))).unwrap();
        let want: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        if let Err(e) = check_geotiff(m, &want) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        manifest.len(),
        failures.join("\n")
    );
}

#[test]
fn raster_to_h3_runs_as_a_batch_job_against_the_servers_storage() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let tif = dir.path().join("r.tif");
    write_test_raster(&tif, 4326, 12.0, 45.0, 0.0005);
    rt.block_on(async {
        let api = owner_api(&s);
        api.upload(std::fs::read(&tif).unwrap(), "fd://rasters/r.tif")
            .await
            .unwrap();
        let step = serde_json::json!({"type": "raster_to_h3", "input_path": "fd://rasters/r.tif",
            "output_path": "fd://h3/r", "metrics": ["avg", "max"], "res": 9, "overview_res": [7]});
        let job = api
            .start_job(serde_json::json!({"name": "h3", "steps": [step]}))
            .await
            .unwrap();
        let (done, logs) = finish_job(&api, &job.job_id, 60).await;
        assert_eq!(done.job_status.as_deref(), Some("Done"), "{logs:?}");
        let out = s._data.path().join("files/h3/r");
        let index = fused::crates::ingest::read_chunk_index(&out).unwrap();
        assert!(index.iter().map(|c| c.num_rows).sum::<u64>() > 0);
        assert!(out.join("overview/hex7.parquet").exists());
        // Again: refused without overwrite; with it, files the new dataset lacks are removed.
        let again = |overwrite: bool| {
            serde_json::json!({"name": "h3", "steps": [{"type": "raster_to_h3",
                "input_path": "fd://rasters/r.tif", "output_path": "fd://h3/r",
                "metrics": ["avg"], "res": 9, "overview_res": [6], "overwrite": overwrite}]})
        };
        let job = api.start_job(again(false)).await.unwrap();
        let (done, logs) = finish_job(&api, &job.job_id, 60).await;
        assert_eq!(done.job_status.as_deref(), Some("Failed"), "{logs:?}");
        assert!(format!("{logs:?}").contains("overwrite"), "{logs:?}");
        assert!(out.join("overview/hex7.parquet").exists(), "untouched");
        let job = api.start_job(again(true)).await.unwrap();
        let (done, logs) = finish_job(&api, &job.job_id, 60).await;
        assert_eq!(done.job_status.as_deref(), Some("Done"), "{logs:?}");
        assert!(out.join("overview/hex6.parquet").exists());
        assert!(
            !out.join("overview/hex7.parquet").exists(),
            "the replaced overview is gone"
        );
        // Bad steps are refused at once.
        let bad = serde_json::json!({"type": "raster_to_h3", "input_path": "/etc/x.tif",
            "output_path": "fd://h3/x"});
        let e = api
            .start_job(serde_json::json!({"steps": [bad]}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("path on the server"), "{e}");
        let bad = serde_json::json!({"type": "raster_to_h3", "input_path": "fd://rasters/r.tif",
            "output_path": "fd://h3/y", "res": 15});
        let e = api
            .start_job(serde_json::json!({"steps": [bad]}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("15"), "{e}");
        let bad = serde_json::json!({"type": "raster_to_h3", "input_path": "fd://rasters/r.tif",
            "output_path": "fd://h3/z", "tmp_path": "/tmp/elsewhere"});
        let e = api
            .start_job(serde_json::json!({"steps": [bad]}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("tmp_path"), "{e}");
    });
}

/// A `udf` job config running `udf` over `input`.
fn job_config(udf: &str, input: serde_json::Value) -> serde_json::Value {
    let registry = fused::UdfRegistry::new();
    fused::demos::register(&registry).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&registry.get(udf).unwrap().sdk_meta().to_json()).unwrap();
    serde_json::json!({"name": udf, "steps": [{"type": "udf", "udf": meta, "input": input}]})
}

#[test]
fn a_batch_job_runs_a_python_udf_over_its_inputs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start();
    let mut meta = fused::UdfMeta::from_code(
        "@fused.udf\ndef udf(x: int = 1):\n    print(f'doubling {x}')\n    return x * 2\n",
        Some("doubler"),
    )
    .unwrap();
    meta.name = Some("doubler".into());
    let udf: serde_json::Value = serde_json::from_str(&meta.to_json()).unwrap();
    rt.block_on(async {
        let api = owner_api(&s);
        let config = serde_json::json!({"name": "py", "steps": [{"type": "udf", "udf": udf,
            "input": [1, 2, 3]}]});
        let job = api.start_job(config).await.unwrap();
        let (done, logs) = finish_job(&api, &job.job_id, 60).await;
        assert_eq!(done.job_status.as_deref(), Some("Done"), "{logs:?}");
        let text = logs.join("\n");
        assert!(text.contains("Run #2 success"), "{text}");
        // Code that does not compile is refused at start, with the reason.
        let mut broken = meta.clone();
        broken.code = "@fused.udf\ndef udf(:\n".into();
        let udf: serde_json::Value = serde_json::from_str(&broken.to_json()).unwrap();
        let e = api
            .start_job(serde_json::json!({"steps": [{"type": "udf", "udf": udf, "input": [1]}]}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("SyntaxError"), "{e}");
    });
}

#[test]
fn the_cli_follows_jobs_and_workers_run_them() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Server::start();
    let store = rt
        .block_on(fused_jobs::store::SqliteJobStore::open(
            &s._data.path().join("jobs.db"),
        ))
        .unwrap();
    let new = |input| fused_jobs::store::NewJob {
        kind: "udf".into(),
        name: "cli".into(),
        owner: String::new(),
        config: job_config("hello", input),
        total_tasks: 2,
    };
    use fused_jobs::store::JobStore;
    // The owner's id: jobs are listed per owner.
    let owner = rt
        .block_on(fused_http::store::Store::open(s._data.path()))
        .unwrap();
    let owner_id = rt
        .block_on(owner.user_by_email("owner@fused.local"))
        .unwrap()
        .unwrap()
        .id;
    let job = rt
        .block_on(store.create(fused_jobs::store::NewJob {
            owner: owner_id,
            ..new(serde_json::json!(["a", "b"]))
        }))
        .unwrap();
    let (ok, out, err) = cli(&s, &["jobs", "wait", &job.id, "--timeout", "30"], None);
    assert!(
        ok && out.contains("Done") && out.contains("2/2"),
        "{out}{err}"
    );
    let (ok, out, _) = cli(&s, &["jobs", "logs", &job.id], None);
    assert!(ok && out.contains("Run #1 success"), "{out}");
    let (ok, out, _) = cli(&s, &["jobs", "ls"], None);
    assert!(ok && out.contains(&job.id), "{out}");
    let (ok, out, _) = cli(&s, &["jobs", "status", &job.id], None);
    assert!(ok && out.contains("Done"), "{out}");
    let (ok, _, err) = cli(&s, &["jobs", "status", "nope"], None);
    assert!(!ok && err.contains("404"), "{err}");

    // `fused worker` runs jobs of a data folder nobody serves.
    let data = tempfile::tempdir().unwrap();
    let other = rt
        .block_on(fused_jobs::store::SqliteJobStore::open(
            &data.path().join("jobs.db"),
        ))
        .unwrap();
    let j = rt
        .block_on(other.create(new(serde_json::json!(["c", "d"]))))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fused"))
        .args(["worker", "--once", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ran one job"));
    let done = rt.block_on(other.get(&j.id)).unwrap().unwrap();
    assert_eq!(done.status, fused_jobs::store::JobStatus::Succeeded);
    assert!(
        data.path()
            .join("files/_jobs")
            .join(&j.id)
            .join("0.parquet")
            .exists()
    );
}

#[test]
fn a_killed_worker_s_job_is_taken_over_by_another() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(fused_jobs::store::SqliteJobStore::open(
            &data.path().join("jobs.db"),
        ))
        .unwrap();
    use fused_jobs::store::JobStore;
    // Enough work to be caught in the middle.
    let names: Vec<serde_json::Value> = (0..3_000).map(|i| format!("n{i}").into()).collect();
    let job = rt
        .block_on(store.create(fused_jobs::store::NewJob {
            kind: "udf".into(),
            name: "long".into(),
            owner: String::new(),
            config: job_config("hello", serde_json::Value::Array(names)),
            total_tasks: 3_000,
        }))
        .unwrap();
    let worker = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fused"));
        c.args(["worker", "--lease", "2", "--data-dir"])
            .arg(data.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut first = worker(&[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = rt.block_on(store.get(&job.id)).unwrap().unwrap();
        if j.status == fused_jobs::store::JobStatus::Running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never took the job"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL, mid-job
    first.wait().unwrap();
    // Another worker takes it once the lease (2 s) has run out, and finishes it.
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = worker(&["--once"]).output().unwrap();
        assert!(out.status.success());
        let j = rt.block_on(store.get(&job.id)).unwrap().unwrap();
        if j.status.is_terminal() {
            assert_eq!(j.status, fused_jobs::store::JobStatus::Succeeded);
            assert_eq!(j.attempts, 2, "run once more, not twice at once");
            break;
        }
        assert!(Instant::now() < deadline, "never taken over");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "not before the lease ran out"
    );
    let logs = rt.block_on(store.logs(&job.id, None)).unwrap();
    assert!(
        logs.iter().any(|l| l.message.contains("again")),
        "the takeover is logged"
    );
}
