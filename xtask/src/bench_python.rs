//! `cargo xtask bench python`: a warm call of a hello-world code UDF through our Python runtime
//! (Rust → worker → Rust, output decoded) against the official SDK's
//! `fused.run(udf, engine="local", cache=False)` inside one Python process; and how long a new
//! worker takes to be ready.

use std::process::Command;

use crate::bench::{cpu_model, num_cores};
use crate::bench_cache::{field, last_line};
use crate::{cargo, root, sh};

pub(crate) fn python(_args: &[String]) -> Result<(), String> {
    let python = crate::pyenv::ensure()?;
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "fused-python",
        "--example",
        "warm_calls",
    ]))?;
    println!(
        "\nbench python — hello-world code UDF, warm, {}, {} cores",
        cpu_model(),
        num_cores()
    );
    println!(
        "| returns | ours p50 | ours mean | SDK local p50 | SDK local mean | ours / SDK (p50) | new worker ready |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for kind in ["str", "dataframe"] {
        let ours = last_line(
            Command::new(root().join("target/release/examples/warm_calls"))
                .arg(&python)
                .arg("20000")
                .arg(kind),
        )?;
        let sdk = last_line(
            Command::new(&python)
                .arg(root().join("xtask/bench/sdk_local_run.py"))
                .arg("5000")
                .arg(kind),
        )?;
        let (o50, omean) = (field(&ours, "p50_ns")?, field(&ours, "mean_ns")?);
        let (s50, smean) = (field(&sdk, "p50_ns")?, field(&sdk, "mean_ns")?);
        println!(
            "| {kind} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}× | {:.0} ms |",
            o50 / 1e3,
            omean / 1e3,
            s50 / 1e3,
            smean / 1e3,
            o50 / s50,
            field(&ours, "start_ms")?
        );
    }
    http(&python)?;
    println!(
        "\ngoals: ours ≤ 1.5× the SDK's in-process call; a new worker ready in ≤ 1 s; over HTTP \
         p50 ≤ 3 ms and ≥ 400 calls/s"
    );
    Ok(())
}

/// The same UDF served by `fused serve --udfs` and called over HTTP by wrk, uncached.
fn http(python: &std::path::Path) -> Result<(), String> {
    use crate::bench::{
        Proc, ROUNDS, ensure_wrk, free_port, median, read_token, wait_for, wrk_with,
    };
    ensure_wrk()?;
    sh(cargo().args(["build", "--release", "-p", "fused"]))?;
    let work = std::env::temp_dir().join(format!("fused-bench-py-{}", std::process::id()));
    let udfs = work.join("udfs");
    std::fs::create_dir_all(&udfs).map_err(|e| e.to_string())?;
    std::fs::write(
        udfs.join("hello_py.py"),
        "@fused.udf\ndef udf(name: str = 'world'):\n    return f'Hello, {name}!'\n",
    )
    .map_err(|e| e.to_string())?;
    let port = free_port()?;
    let mut child = std::process::Command::new(root().join("target/release/fused"))
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(work.join("data"))
        .arg("--udfs")
        .arg(&udfs)
        .arg("--python")
        .arg(python)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let token = read_token(&mut child, "hello_py")?;
    let _server = Proc(child);
    wait_for(port)?;
    let url =
        format!("http://127.0.0.1:{port}/v1/realtime-shared/{token}/run?name=bench&format=json");
    let _ = Command::new("curl")
        .args(["-s", "-o", "/dev/null", &url])
        .status();
    let secs = 10;
    println!(
        "\nover HTTP (wrk -t2, {secs} s, uncached, median of {ROUNDS} rounds, 2 Python workers)"
    );
    println!("| case | connections | calls/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for connections in [2, 16] {
        let rounds = (0..ROUNDS)
            .map(|_| wrk_with(&url, &["X-Fused-Cache-Disable: true"], secs, connections))
            .collect::<Result<Vec<_>, _>>()?;
        let l = median(rounds);
        println!(
            "| code UDF by shared token | {connections} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            l.rps, l.p50_ms, l.p99_ms, l.errors
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
