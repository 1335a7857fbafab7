//! `cargo xtask bench files`: `GET /v1/files/get` of a large object over loopback, against
//! reading the same file from disk in the same run; the server's peak memory shows whether it
//! streams.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::bench::{Proc, cpu_model, free_port, num_cores, wait_for};
use crate::{cargo, root, sh};

const ROUNDS: usize = 7;
const TOKEN: &str = "fsk_bench_files_token_0123456789abcdef";

/// Reads `path` with 1 MiB reads; MiB/s.
fn disk_rate(path: &std::path::Path) -> Result<f64, String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut n = 0usize;
    loop {
        let r = f.read(&mut buf).map_err(|e| e.to_string())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64())
}

/// Drops `path` from the page cache (GNU dd's `nocache`, i.e. posix_fadvise DONTNEED), so the
/// next read comes from the disk.
fn evict(path: &std::path::Path) -> Result<(), String> {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .map_err(|e| format!("dd: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "dd could not drop the file from the page cache".into())
}

/// Sends `path`'s bytes over a loopback TCP socket with plain 1 MiB writes and reads; MiB/s:
/// the ceiling any HTTP server on this machine works under.
fn loopback_rate(path: &std::path::Path) -> Result<f64, String> {
    use std::io::Write;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        for chunk in bytes.chunks(1 << 20) {
            s.write_all(chunk)?;
        }
        Ok(())
    });
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut n = 0usize;
    loop {
        let r = s.read(&mut buf).map_err(|e| e.to_string())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let rate = n as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    sender
        .join()
        .map_err(|_| "the sender panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(rate)
}

/// Downloads `url` with curl to /dev/null; MiB/s.
fn curl_rate(url: &str, auth: bool) -> Result<f64, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-f", "-o", "/dev/null", "-w", "%{speed_download}"]);
    if auth {
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let out = cmd.arg(url).output().map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {url} failed: {}", out.status));
    }
    let bps: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "curl printed no speed".to_owned())?;
    Ok(bps / (1 << 20) as f64)
}

/// Uploads `path` with curl (PUT, streamed); MiB/s.
fn upload_rate(url: &str, path: &std::path::Path) -> Result<f64, String> {
    let out = Command::new("curl")
        .args(["-s", "-f", "-o", "/dev/null", "-w", "%{speed_upload}", "-T"])
        .arg(path)
        .args(["-H", &format!("Authorization: Bearer {TOKEN}"), url])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("upload failed: {}", out.status));
    }
    let bps: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "curl printed no speed".to_owned())?;
    Ok(bps / (1 << 20) as f64)
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn files(args: &[String]) -> Result<(), String> {
    let mib: usize = match args {
        [flag, n] if flag == "--mib" => n.parse().map_err(|_| format!("bad size {n:?}"))?,
        [] => 256,
        _ => return Err("usage: cargo xtask bench files [--mib N]".into()),
    };
    sh(cargo().args(["build", "--release", "-p", "fused"]))?;
    let data = std::env::temp_dir().join(format!("fused-bench-files-{}", std::process::id()));
    let dir = data.join("files").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let blob = dir.join("blob.bin");
    {
        // Pseudo-random bytes, so nothing along the way can shortcut zeros.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let chunk: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut f = std::fs::File::create(&blob).map_err(|e| e.to_string())?;
        for _ in 0..mib {
            std::io::Write::write_all(&mut f, &chunk).map_err(|e| e.to_string())?;
        }
    }
    let port = free_port()?;
    let child = Command::new(root().join("target/release/fused"))
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(&data)
        .env("FUSED_SERVER_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let server = Proc(child);
    wait_for(port)?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let idle_rss = peak_rss_mib(pid);
    let get = format!("{base}/files/get?path=fd://bench/blob.bin");
    let signed = String::from_utf8_lossy(
        &Command::new("curl")
            .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}")])
            .arg(format!("{base}/files/sign?path=fd://bench/blob.bin"))
            .output()
            .map_err(|e| e.to_string())?
            .stdout,
    )
    .trim()
    .trim_matches('"')
    .to_owned();

    // Cold: the file is dropped from the page cache before each read, so both the direct
    // read and the server read from the disk. Warm: both read from the page cache.
    let (mut cold_disk, mut cold_http) = (Vec::new(), Vec::new());
    let (mut disk, mut http, mut sig, mut tcp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        evict(&blob)?;
        cold_disk.push(disk_rate(&blob)?);
        evict(&blob)?;
        cold_http.push(curl_rate(&get, true)?);
        disk.push(disk_rate(&blob)?);
        http.push(curl_rate(&get, true)?);
        sig.push(curl_rate(&signed, false)?);
        tcp.push(loopback_rate(&blob)?);
    }
    let after_get_rss = peak_rss_mib(pid);
    let up = upload_rate(
        &format!("{base}/files/upload?path=fd://bench/up.bin"),
        &blob,
    )?;
    let after_put_rss = peak_rss_mib(pid);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);

    // Ratios are taken per round (neighbouring measurements share the machine's mood), then
    // the median of those.
    let ratio = |num: &[f64], den: &[f64]| {
        median(num.iter().zip(den).map(|(n, d)| 100.0 * n / d).collect())
    };
    let cold_ratio = ratio(&cold_http, &cold_disk);
    let warm_ratio = ratio(&http, &tcp);
    let sig_ratio = ratio(&sig, &tcp);
    let (cd, ch) = (median(cold_disk.clone()), median(cold_http.clone()));
    let (d, h, s, t) = (
        median(disk),
        median(http.clone()),
        median(sig.clone()),
        median(tcp.clone()),
    );
    println!(
        "\nbench files — {mib} MiB object, median of {ROUNDS} rounds (ratios: median of per-round ratios), loopback, {}, {} cores",
        cpu_model(),
        num_cores()
    );
    println!("| case | MiB/s | ratio |");
    println!("|---|---:|---:|");
    println!("| (a) read the file from disk, cold (1 MiB reads) | {cd:.0} | 100 % of (a) |");
    println!("| (b) GET /v1/files/get, cold (curl, token) | {ch:.0} | {cold_ratio:.0} % of (a) |");
    println!("| (c) read the file, page cache | {d:.0} | |");
    println!(
        "| (d) raw loopback TCP, 1 MiB writes (the network ceiling) | {t:.0} | 100 % of (d) |"
    );
    println!(
        "| (e) GET /v1/files/get, page cache (curl, token) | {h:.0} | {warm_ratio:.0} % of (d) |"
    );
    println!(
        "| (f) GET of a signed URL, page cache (curl, no token) | {s:.0} | {sig_ratio:.0} % of (d) |"
    );
    println!(
        "| (g) PUT /v1/files/upload (curl -T, streamed to a local root) | {up:.0} | {:.0} % of (d) |",
        100.0 * up / t
    );
    println!(
        "\nserver peak memory (VmHWM): {idle_rss:.0} MiB at start, {after_get_rss:.0} MiB after the downloads, {after_put_rss:.0} MiB after the upload"
    );
    println!("goal: (b) ≥ 70 % of (a), memory flat (streaming)");
    let _ = (d, ROUNDS);
    Ok(())
}
