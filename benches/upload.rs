//! Upload throughput and memory: a 100 MB model through `POST /api/v1/jobs` into the
//! real daemon, beside `openssl dgst -sha256` and `sha256sum` on the same file.
//!
//! Run with `cargo bench -p farmhand --bench upload`. Prints MB/s for each, our ratio
//! to openssl (target ≥ 70 %), and the daemon's peak RSS (VmHWM, target < 60 MB).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MB: f64 = 1024.0 * 1024.0;
const TRIANGLES: u32 = 2_000_000; // 84 + 50 × 2 M bytes ≈ 100 MB

fn write_model(path: &Path, seed: u64) -> u64 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut header = vec![b' '; 80];
    header[..8].copy_from_slice(&seed.to_le_bytes());
    file.write_all(&header).expect("write");
    file.write_all(&TRIANGLES.to_le_bytes()).expect("write");
    let mut state = seed | 1;
    let mut triangle = [0u8; 50];
    for _ in 0..TRIANGLES {
        for chunk in triangle.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        file.write_all(&triangle).expect("write");
    }
    file.flush().expect("flush");
    std::fs::metadata(path).expect("size").len()
}

/// Best of three wall-clock runs of a command over the (page-cached) file.
fn time_tool(program: &str, args: &[&str]) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    for _ in 0..3 {
        let start = Instant::now();
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let took = start.elapsed();
        best = Some(best.map_or(took, |b| b.min(took)));
    }
    best
}

/// (user, system) CPU seconds a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest.split(' ').map(|f| f.parse().unwrap_or(0.0)).collect();
    let tick = 100.0; // USER_HZ on Linux
    (
        fields.get(11).copied().unwrap_or(0.0) / tick,
        fields.get(12).copied().unwrap_or(0.0) / tick,
    )
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn upload(client: &reqwest::Client, url: &str, path: &Path, email: &str) -> Duration {
    let file = tokio::fs::File::open(path).await.expect("open");
    let size = file.metadata().await.expect("meta").len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
            .file_name("big.stl");
    let form = reqwest::multipart::Form::new()
        .text("student_name", "Bench Mark")
        .text("student_email", email.to_string())
        .text("acknowledged_minimum_charge", "true")
        .part("file", part);
    let start = Instant::now();
    let response = client
        .post(format!("{url}/api/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "upload failed: {status} {body}");
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = dir.path().join("big.stl");
    let size = write_model(&model, 7);
    let mb = size as f64 / MB;
    let model_arg = model.to_str().expect("path");

    let config = dir.path().join("farmhand.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmax_upload_mb = 200\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_farmhand"))
        .args(["serve", "--config", config.to_str().expect("path")])
        .env("FARMHAND_SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start farmhand");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let url = line
        .trim()
        .strip_prefix("Farmhand listening on ")
        .expect("listening line")
        .to_string();
    let idle_rss = peak_rss_mb(child.id());

    let client = reqwest::Client::new();
    // Warm-up (and page-cache the file), then the best of three.
    upload(&client, &url, &model, "warm@example.edu").await;
    let mut best = Duration::MAX;
    let (daemon_before, client_before) =
        (cpu_seconds(&child.id().to_string()), cpu_seconds("self"));
    for i in 0..3 {
        best = best.min(upload(&client, &url, &model, &format!("run{i}@example.edu")).await);
    }
    let (daemon_after, client_after) = (cpu_seconds(&child.id().to_string()), cpu_seconds("self"));
    let per_run = |a: (f64, f64), b: (f64, f64)| ((b.0 - a.0) / 3.0, (b.1 - a.1) / 3.0);
    let daemon_cpu = per_run(daemon_before, daemon_after);
    let client_cpu = per_run(client_before, client_after);
    let peak = peak_rss_mb(child.id());
    child.kill().ok();
    child.wait().ok();

    let ours = mb / best.as_secs_f64();
    println!("upload benchmark: {mb:.1} MB binary STL, best of 3, this machine");
    println!("{:<34} {:>10}", "", "MB/s");
    let openssl =
        time_tool("openssl", &["dgst", "-sha256", model_arg]).map(|d| mb / d.as_secs_f64());
    let sha256sum = time_tool("sha256sum", &[model_arg]).map(|d| mb / d.as_secs_f64());
    let show = |v: Option<f64>| v.map_or("not installed".to_string(), |v| format!("{v:.0}"));
    println!(
        "{:<34} {:>10}",
        "openssl dgst -sha256 (hash only)",
        show(openssl)
    );
    println!("{:<34} {:>10}", "sha256sum (hash only)", show(sha256sum));
    println!("{:<34} {:>10.0}", "farmhand HTTP upload (hash+fsync)", ours);
    if let Some(o) = openssl {
        println!(
            "ratio to openssl: {:.0} % (target >= 70 %)",
            100.0 * ours / o
        );
    }
    if let Some(s) = sha256sum {
        println!("ratio to sha256sum: {:.0} %", 100.0 * ours / s);
    }
    println!(
        "CPU per upload: daemon {:.3} s user + {:.3} s sys; client {:.3} s user + {:.3} s sys; wall {:.3} s",
        daemon_cpu.0,
        daemon_cpu.1,
        client_cpu.0,
        client_cpu.1,
        best.as_secs_f64()
    );
    println!(
        "daemon RSS: idle {idle_rss:.1} MB, peak during uploads {peak:.1} MB (target < 60 MB)"
    );
}
