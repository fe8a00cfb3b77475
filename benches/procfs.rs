//! What the benchmarks read about a process from `/proc`: CPU time and memory.
//! Shared by the benchmark binaries with `#[path = "procfs.rs"] mod procfs;` (each
//! bench is its own crate; not every one uses every function).
#![allow(dead_code)]

use std::fmt::Display;
use std::process::Command;
use std::sync::OnceLock;

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know of).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (user, system) CPU seconds a process (a pid, or `self`) has used, from /proc/PID/stat.
pub fn cpu_split(pid: impl Display) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest.split(' ').map(|f| f.parse().unwrap_or(0.0)).collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0) / ticks_per_second();
    (field(11), field(12))
}

/// User + system CPU seconds a process has used.
pub fn cpu_seconds(pid: impl Display) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// A `kB` line of /proc/PID/status (`VmRSS:`, `VmHWM:`) in MB; NaN when unreadable.
pub fn status_mb(pid: impl Display, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
