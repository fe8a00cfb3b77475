//! A fleet of 200 generic-MQTT printers: each reports once a second through a real mosquitto,
//! and `farmhand serve` (a separate process, 200 `driver = "mqtt"` printers in its config)
//! tracks them. Prints the daemon's CPU (% of one core), its RSS, and the delay from a
//! printer's report to the daemon's state.
//!
//! Run with `cargo bench -p farmhand --bench mqtt_fleet`. `FLEET_PRINTERS`, `FLEET_WARMUP_S`
//! and `FLEET_SECS` change the 200 printers, the 10 s warm-up and the 30 s measured window;
//! `FARMHAND_BIN=path` measures another build. Targets: < 10 % of one core, < 60 MB,
//! p99 < 100 ms.
//!
//! How the delay is measured: the simulators (`drivers::mqtt::sim`, the real schema over the
//! real broker) run in this process with `stamp_reports`, so every status carries its send
//! time (Unix ms, as the chamber temperature). This process also reads the daemon's live
//! stream (`GET /api/v1/stream`, Server-Sent Events), which announces a printer with the
//! status the daemon holds at that moment. Delay = time the event arrived − the stamp it
//! carries: the whole path, simulator → mosquitto → the daemon's MQTT link → its driver state
//! → tracker → stream → client, on one machine and one clock. Polling `GET /api/v1/printers`
//! instead would add the poll interval and its own load on the daemon.
//!
//! The printers start spread over one second (real printers are not phase-locked); each
//! report changes (its stamp), so every one goes the whole way through the daemon. mosquitto
//! and the simulators are separate from the daemon and not counted in its figures (theirs
//! are printed beside them).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drivers::mqtt::sim::{MqttSim, MqttSimHandle, MqttSimOptions};
use futures_util::StreamExt;
use serde_json::Value;

#[path = "procfs.rs"]
mod procfs;
use procfs::{cpu_seconds, status_mb};

const CPU_TARGET_PERCENT: f64 = 10.0;
const RSS_TARGET_MB: f64 = 60.0;
const P99_TARGET_MS: f64 = 100.0;
const TOKEN: &str = "bench-kiosk-token-0001";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Kills its process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// mosquitto on a free port with a throw-away config (as the driver tests start it).
fn start_mosquitto(dir: &Path) -> (Proc, u16) {
    let bin = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the benchmark needs a real broker: install the Debian package `mosquitto` \
                 (scripts/install-test-deps.sh does)"
            )
        });
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"),
    )
    .expect("write mosquitto config");
    let log = std::fs::File::create(dir.join("mosquitto.log")).expect("log file");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mosquitto starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), port)
}

fn topic(i: usize) -> String {
    format!("farmhand/bench/fleet-{i:03}")
}

fn config(dir: &Path, broker: &str, printers: usize) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[storage]
data_dir = "{data}"

[[workstations]]
id = "kiosk-1"
token = "{TOKEN}"
role = "staff"

[staff]
initial = ["Ada Lovelace"]

[pricing]
minimum_charge_usd = 3.00
[pricing.materials.PLA]
usd_per_gram = 0.05

[email]
from = "Bench Fab Lab <fablab@example.edu>"
"#,
        data = dir.join("data").display()
    );
    for i in 0..printers {
        text.push_str(&format!(
            "\n[[printers]]\nid = \"fleet-{i:03}\"\ndriver = \"mqtt\"\nbroker = \"{broker}\"\n\
             topic = \"{}\"\nmaterials = [\"PLA\"]\nbuild_volume_mm = [250, 210, 210]\n",
            topic(i)
        ));
    }
    text
}

/// `farmhand serve` and the URL it listens on.
fn start_daemon(dir: &Path) -> (Proc, String) {
    let binary = std::env::var("FARMHAND_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_farmhand").to_string());
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    let mut child = Command::new(&binary)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("farmhand.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start farmhand serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Farmhand listening on ") {
                tx.send(url.to_string()).ok();
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "{binary} did not start within 60 s: {}",
                std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            )
        });
    println!("{binary} serve, pid {}, {url}", child.id());
    (Proc(child), url)
}

/// One printer event from the stream: (printer id, the report's stamp in Unix ms).
fn stamp_of(data: &str) -> Option<(String, f64)> {
    let v: Value = serde_json::from_str(data).ok()?;
    let id = v.get("id")?.as_str()?.to_string();
    let stamp = v.pointer("/temps/chamber/actual")?.as_f64()?;
    Some((id, stamp))
}

/// What the stream reader saw.
#[derive(Default)]
struct Seen {
    /// Delays (ms) of reports sent inside the measured window.
    delays: Vec<f64>,
    /// Printers seen with a stamped report at all.
    printers: HashMap<String, f64>,
    /// "skipped n changes" comments: the client fell behind the broadcast.
    skipped: u64,
}

/// Reads the daemon's SSE stream until `stop`, recording each stamped printer event.
async fn read_stream(
    url: String,
    window: std::sync::Arc<std::sync::Mutex<(f64, f64)>>,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/stream"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("open the daemon's stream");
    let mut body = response.bytes_stream();
    let mut buf = Vec::<u8>::new();
    let mut event = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return,
            c = body.next() => match c {
                Some(Ok(c)) => c,
                _ => panic!("the daemon's stream ended"),
            },
        };
        let arrived = unix_ms();
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event != "printer" {
                    continue;
                }
                let Some((id, stamp)) = stamp_of(data.trim()) else {
                    continue;
                };
                let (from, to) = *window.lock().expect("window");
                let mut seen = seen.lock().expect("seen");
                let first = seen.printers.insert(id, stamp).is_none_or(|s| s != stamp);
                if first && stamp >= from && stamp < to {
                    seen.delays.push(arrived - stamp);
                }
            } else if line.starts_with(": skipped") {
                let n = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(1);
                seen.lock().expect("seen").skipped += n;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let printers: usize = env_or("FLEET_PRINTERS", 200);
    let warmup: u64 = env_or("FLEET_WARMUP_S", 10);
    let seconds: u64 = env_or("FLEET_SECS", 30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(printers, warmup, seconds));
}

async fn run(printers: usize, warmup: u64, seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mosquitto, port) = start_mosquitto(dir.path());
    let broker = format!("mqtt://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("farmhand.toml"),
        config(dir.path(), &broker, printers),
    )
    .expect("write config");
    let (daemon, url) = start_daemon(dir.path());
    let pid = daemon.0.id();

    let window = std::sync::Arc::new(std::sync::Mutex::new((f64::MAX, f64::MAX)));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn(read_stream(
        url.clone(),
        window.clone(),
        seen.clone(),
        stop.clone(),
    ));

    // The printers, started spread over one second.
    let mut sims: Vec<MqttSimHandle> = Vec::with_capacity(printers);
    let gap = Duration::from_secs(1) / printers.max(1) as u32;
    for i in 0..printers {
        let mut opts = MqttSimOptions::new(broker.clone(), topic(i));
        opts.report_every = Duration::from_secs(1);
        opts.stamp_reports = true;
        sims.push(MqttSim::spawn(opts).expect("start a simulated printer"));
        tokio::time::sleep(gap).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = seen.lock().expect("seen").printers.len();
        if n >= printers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {printers} printers reached the daemon's stream within 60 s; its log:\n{}",
            std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{printers} simulated printers reporting once a second; warm-up {warmup} s");
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    let me = std::process::id();
    let cpu = |p: u32| cpu_seconds(p);
    let (d0, m0, b0) = (cpu(pid), cpu(mosquitto.0.id()), cpu(me));
    let start = Instant::now();
    {
        let mut w = window.lock().expect("window");
        *w = (unix_ms(), unix_ms() + seconds as f64 * 1000.0);
    }
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        rss.push(status_mb(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let (d1, m1, b1) = (cpu(pid), cpu(mosquitto.0.id()), cpu(me));
    let peak = status_mb(pid, "VmHWM:");
    // Reports sent in the last moments of the window are still on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let _ = reader.await;
    drop(sims);
    drop(daemon);
    drop(mosquitto);

    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let mut delays = seen.delays;
    delays.sort_by(f64::total_cmp);
    let expected = printers as f64 * seconds as f64;
    let mean_rss = rss.iter().sum::<f64>() / rss.len().max(1) as f64;
    let max_rss = rss.iter().copied().fold(0.0, f64::max);
    let percent = 100.0 * (d1 - d0) / wall;
    let p99 = percentile(&delays, 99.0);
    let verdict = |ok: bool| if ok { "ok" } else { "OVER TARGET" };
    println!("over {wall:.0} s with {printers} printers:");
    println!(
        "  CPU    daemon {:.2} s = {percent:.2} % of one core; target < {CPU_TARGET_PERCENT} %: {}",
        d1 - d0,
        verdict(percent < CPU_TARGET_PERCENT)
    );
    println!(
        "         (not counted: mosquitto {:.2} %, this process with the {printers} simulators {:.2} %)",
        100.0 * (m1 - m0) / wall,
        100.0 * (b1 - b0) / wall
    );
    println!(
        "  RSS    daemon mean {mean_rss:.1} MB, max {max_rss:.1} MB, peak (VmHWM, incl. start-up) {peak:.1} MB; target < {RSS_TARGET_MB} MB: {}",
        verdict(peak < RSS_TARGET_MB)
    );
    println!(
        "  delay  report → daemon's stream: {} reports of ~{expected:.0} sent ({} skipped by the stream); \
         p50 {:.1} ms, p90 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms; target p99 < {P99_TARGET_MS} ms: {}",
        delays.len(),
        seen.skipped,
        percentile(&delays, 50.0),
        percentile(&delays, 90.0),
        delays.last().copied().unwrap_or(f64::NAN),
        verdict(p99 < P99_TARGET_MS)
    );
}
