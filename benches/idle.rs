//! Idle footprint: `farmhand demo --printers 50` (50 simulated Marlin printers on real
//! pseudo-terminals, driven through the real serial driver, plus the demo's manual
//! and MQTT printers), left alone for a minute: the daemon's RSS and CPU.
//!
//! Run with `cargo bench -p farmhand --bench idle` (`IDLE_SECS=…`, `IDLE_PRINTERS=…`
//! change the minute and the 50; `FARMHAND_BIN=path` measures another build, e.g. the
//! `ci-release` or a cross binary under qemu). Targets: RSS under 40 MB, CPU under 2 %
//! of one core.
//! The simulators run inside the demo process, so their CPU and memory count against
//! Farmhand's figure: on a real farm the printers do that work. mosquitto is a
//! separate process and is not counted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "procfs.rs"]
mod procfs;
use procfs::{cpu_seconds, status_mb};

const RSS_TARGET_MB: f64 = 40.0;
const CPU_TARGET_PERCENT: f64 = 2.0;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds: u64 = env_or("IDLE_SECS", 60);
    let printers: usize = env_or("IDLE_PRINTERS", 50);
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = std::env::var("FARMHAND_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_farmhand").to_string());
    let mut child = Command::new(&binary)
        .args(["demo", "--listen", "127.0.0.1:0", "--printers"])
        .arg(printers.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start farmhand demo");
    let pid = child.id();
    let mut listed = 0;
    for line in BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
    {
        listed += usize::from(line.starts_with("Printer "));
        if line.starts_with("Try:") {
            break;
        }
    }
    println!("{binary} demo with {listed} printers ({printers} simulated Marlin), pid {pid}");
    // Let the drivers finish their handshakes before measuring "idle".
    std::thread::sleep(Duration::from_secs(5));

    let start = Instant::now();
    let cpu_start = cpu_seconds(pid);
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        rss.push(status_mb(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_start;
    let peak = status_mb(pid, "VmHWM:");
    child.kill().ok();
    child.wait().ok();

    let mean = rss.iter().sum::<f64>() / rss.len().max(1) as f64;
    let max = rss.iter().copied().fold(0.0, f64::max);
    let percent = 100.0 * cpu / wall;
    let verdict = |ok: bool| if ok { "ok" } else { "OVER TARGET" };
    println!("over {wall:.0} s idle:");
    println!(
        "  RSS   mean {mean:.1} MB, max {max:.1} MB, peak (VmHWM, incl. start-up) {peak:.1} MB; target < {RSS_TARGET_MB} MB: {}",
        verdict(max < RSS_TARGET_MB)
    );
    println!(
        "  CPU   {cpu:.2} s = {percent:.2} % of one core; target < {CPU_TARGET_PERCENT} %: {}",
        verdict(percent < CPU_TARGET_PERCENT)
    );
}
