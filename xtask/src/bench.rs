//! `cargo xtask bench serve`: the server against an axum hello-world, side by side, with wrk.
//! `cargo xtask bench files`: a 256 MiB object over loopback against reading it from disk.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, sh};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("files") => crate::bench_files::files(&args[1..]),
        Some("cache") => crate::bench_cache::cache(&args[1..]),
        Some("submit") => crate::bench_submit::submit(&args[1..]),
        Some("ingest") => crate::bench_ingest::ingest(&args[1..]),
        Some("h3") => crate::bench_h3::h3(&args[1..]),
        Some("python") => crate::bench_python::python(&args[1..]),
        _ => Err(
            "usage: cargo xtask bench serve [--duration SECS] | files [--mib N] | cache | submit | ingest [POINTS [POLYGONS [RUNS]]] | h3 [SIZE [RES,…]] | python"
                .into(),
        ),
    }
}

/// A child process killed on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port())
}

pub(crate) fn wait_for(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub(crate) fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask: wrk not found; installing Debian's package");
    sh(Command::new("apt-get").args(["install", "-y", "-qq", "wrk"]))
        .map_err(|e| format!("{e}\ninstall wrk (apt-get install wrk) and run again"))
}

/// One wrk run: requests/s and latency percentiles in milliseconds.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

fn parse_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

pub(crate) fn wrk(url: &str, headers: &[&str], secs: u64) -> Result<Load, String> {
    wrk_with(url, headers, secs, 64)
}

/// [`wrk`] with `connections` open connections.
pub(crate) fn wrk_with(
    url: &str,
    headers: &[&str],
    secs: u64,
    connections: u32,
) -> Result<Load, String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut load = Load {
        rps: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => load.rps = v.parse().unwrap_or(0.0),
            (Some("50%"), Some(v)) => load.p50_ms = parse_ms(v).unwrap_or(f64::NAN),
            (Some("99%"), Some(v)) => load.p99_ms = parse_ms(v).unwrap_or(f64::NAN),
            (Some("Non-2xx"), _) => {
                load.errors += line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
            (Some("Socket"), _) => load.errors += 1,
            _ => {}
        }
    }
    if load.rps == 0.0 {
        return Err(format!("wrk gave no result for {url}:\n{text}"));
    }
    Ok(load)
}

/// Rounds per case: the machine is shared with the load generator, so single runs are noisy.
pub(crate) const ROUNDS: usize = 3;

/// The round with the median requests/s.
pub(crate) fn median(mut v: Vec<Load>) -> Load {
    v.sort_by(|x, y| x.rps.total_cmp(&y.rps));
    v.swap_remove(v.len() / 2)
}

fn serve(args: &[String]) -> Result<(), String> {
    let secs: u64 = match args {
        [flag, s] if flag == "--duration" => {
            s.parse().map_err(|_| format!("bad duration {s:?}"))?
        }
        [] => 10,
        _ => return Err("usage: cargo xtask bench serve [--duration SECS]".into()),
    };
    ensure_wrk()?;
    sh(cargo().args(["build", "--release", "-p", "fused", "-p", "xtask"]))?;
    let release = root().join("target/release");

    let hello_port = free_port()?;
    let _hello = Proc(
        Command::new(release.join("xtask"))
            .args(["hello-server", "--port", &hello_port.to_string()])
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let data = std::env::temp_dir().join(format!("fused-bench-{}", std::process::id()));
    let fused_port = free_port()?;
    let mut child = Command::new(release.join("fused"))
        .args(["serve", "--port", &fused_port.to_string(), "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let token = read_token(&mut child, "vector_tile")?;
    let _fused = Proc(child);
    wait_for(hello_port)?;
    wait_for(fused_port)?;

    let tile = format!(
        "http://127.0.0.1:{fused_port}/v1/realtime-shared/{token}/run/tiles/12/2200/1343?format=parquet"
    );
    let mvt = tile.replace("format=parquet", "format=mvt");
    // Warm the cache entries of the tiles of (b) and (d).
    for url in [&tile, &mvt] {
        let _ = Command::new("curl")
            .args(["-s", "-o", "/dev/null", url])
            .status();
    }
    let hello = format!("http://127.0.0.1:{hello_port}/");
    let cases: [(&str, &[&str]); 4] = [
        (&hello, &[]),
        (&tile, &[]),
        (&tile, &["X-Fused-Cache-Disable: true"]),
        (&mvt, &[]),
    ];
    eprintln!(
        "xtask: measuring, {ROUNDS} rounds of {secs} s per case, interleaved; the median round is kept"
    );
    let mut rounds: [Vec<Load>; 4] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (url, headers)) in cases.iter().enumerate() {
            rounds[i].push(wrk(url, headers, secs)?);
        }
    }
    let [a, b, c, d] = rounds.map(median);
    let _ = std::fs::remove_dir_all(&data);

    let cpu = cpu_model();
    println!(
        "\nbench serve — wrk -t2 -c64 -d{secs}s, median of {ROUNDS} rounds, loopback, {cpu}, {} cores",
        num_cores()
    );
    println!("| case | requests/s | p50 | p99 | vs hello-world | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, l) in [
        ("(a) axum hello-world", &a),
        ("(b) cached vector tile (parquet, 16 polygons)", &b),
        ("(c) uncached native vector tile (parquet)", &c),
        ("(d) cached vector tile (mvt, 16 polygons)", &d),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0} % | {} |",
            l.rps,
            l.p50_ms,
            l.p99_ms,
            100.0 * l.rps / a.rps,
            l.errors
        );
    }
    println!("\ngoals: (b) and (d) ≥ 50 % of (a) with p99 ≤ 5 ms; (c) ≥ 25 % of (a)");
    mvt_encoding()
}

/// Our vector tile encoder on one core against `mapbox-vector-tile` (Python) on the same
/// 10 000 features.
fn mvt_encoding() -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args([
        "build",
        "--release",
        "-q",
        "-p",
        "fused-core",
        "--example",
        "mvt_bench",
    ]))?;
    let run = |cmd: &mut Command| -> Result<Vec<(String, f64, String)>, String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                // "mvt polygons 10000 features: median 10.82 ms, min …, N bytes"
                let name = l.split_whitespace().nth(1)?.to_owned();
                let ms = l.split("median ").nth(1)?.split(' ').next()?.parse().ok()?;
                let bytes = l.rsplit(", ").next()?.to_owned();
                Some((name, ms, bytes))
            })
            .collect())
    };
    let ours = run(&mut Command::new(
        root().join("target/release/examples/mvt_bench"),
    ))?;
    let peer = run(Command::new(&python).arg(root().join("xtask/bench/mvt_encode.py")))?;
    println!(
        "\nMVT encoding, one zoom-10 tile of 10 000 features with 3 attributes, one core (median)"
    );
    println!(
        "| features | ours | mapbox-vector-tile (Python) | peer / ours | ours size | peer size |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for ((name, ms, bytes), (_, pms, pbytes)) in ours.iter().zip(&peer) {
        println!(
            "| {name} | {ms:.2} ms | {pms:.0} ms | {:.0}× | {bytes} | {pbytes} |",
            pms / ms
        );
    }
    println!("goal: ≤ 20 ms for 10 000 features");
    Ok(())
}

/// Reads the banner of `fused serve` until the token of `udf`.
pub(crate) fn read_token(child: &mut Child, udf: &str) -> Result<String, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut in_udf = false;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        let t = line.trim();
        if t.starts_with(udf) {
            in_udf = true;
        } else if let Some(tok) = t.strip_prefix("token: ").filter(|_| in_udf) {
            let tok = tok.to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(tok);
        }
    }
    Err(format!("the server printed no token for {udf}"))
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub(crate) fn num_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
