//! G-code analysis benchmark over the corpus: speed (MB/s), peak memory, and the
//! accuracy of the simulated print time against the estimate the slicer wrote into
//! each file (the target: median |error| < 3 %, worst < 8 % vs PrusaSlicer).
//!
//! `cargo run --release -p slicer-bridge --example gcode_bench [DIR…]`
//!
//! With `OCTOPRINT=/path/to/octoprint` set (e.g. a venv with `pip install octoprint`),
//! OctoPrint's analyser (`octoprint analysis gcode FILE`) runs on the same files in the
//! same run and the speed ratio is printed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use slicer_bridge::gcode::{GcodeAnalysis, analyze_gcode};

fn main() {
    let files = gcode_files();
    let octoprint = std::env::var_os("OCTOPRINT").map(PathBuf::from);
    let (mut bytes, mut ours, mut theirs) = (0u64, 0.0f64, 0.0f64);
    let mut prusa_errors = Vec::new();
    println!(
        "{:<58} {:>7} {:>9} {:>9} {:>7} {:>6} {:>8} {:>9}",
        "file", "MB/s", "ours s", "slicer s", "error", "layers", "peak MB", "OctoPrint"
    );
    for path in &files {
        let started = Instant::now();
        let a = analyse(path);
        let took = started.elapsed().as_secs_f64();
        bytes += a.bytes;
        ours += took;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let error = a
            .slicer_estimate_s
            .filter(|_| a.moves > 0)
            .map(|s| (a.estimated_time_s - s) / s * 100.0);
        if let (Some(e), true) = (error, name.contains("prusa")) {
            prusa_errors.push(e.abs());
        }
        let peer = octoprint.as_deref().map(|exe| run_octoprint(exe, path));
        theirs += peer.unwrap_or(0.0);
        println!(
            "{:<58} {:>7.1} {:>9.0} {:>9} {:>7} {:>6} {:>8.1} {:>9}",
            name,
            a.bytes as f64 / took / 1e6,
            a.estimated_time_s,
            a.slicer_estimate_s
                .map_or("-".into(), |s| format!("{s:.0}")),
            error.map_or("-".into(), |e| format!("{e:+.1}%")),
            a.layers,
            peak_rss_mb(),
            peer.map_or("-".into(), |s| format!(
                "{:.2} MB/s",
                a.bytes as f64 / s / 1e6
            )),
        );
    }
    let mb = bytes as f64 / 1e6;
    println!("ours: {mb:.1} MB in {ours:.2} s = {:.1} MB/s", mb / ours);
    if theirs > 0.0 {
        println!(
            "OctoPrint: {mb:.1} MB in {theirs:.2} s = {:.2} MB/s; ours is {:.0}x faster",
            mb / theirs,
            theirs / ours
        );
    }
    prusa_errors.sort_by(f64::total_cmp);
    if let Some(worst) = prusa_errors.last() {
        let median = prusa_errors[prusa_errors.len() / 2];
        println!(
            "time vs PrusaSlicer's own estimate ({} files): median |error| {median:.2}%, worst {worst:.2}%",
            prusa_errors.len()
        );
    }
}

fn gcode_files() -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let dirs = if dirs.is_empty() {
        vec![PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/gcode"
        ))]
    } else {
        dirs
    };
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gcode"))
        .collect();
    files.sort();
    files
}

fn analyse(path: &Path) -> GcodeAnalysis {
    let file = std::fs::File::open(path).expect("open");
    analyze_gcode(std::io::BufReader::with_capacity(256 * 1024, file)).expect("analyse")
}

/// Seconds OctoPrint's analyser takes on one file (its Python start-up included, as a
/// user running it would see).
fn run_octoprint(exe: &Path, file: &Path) -> f64 {
    let started = Instant::now();
    let status = std::process::Command::new(exe)
        .args(["analysis", "gcode"])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run octoprint");
    assert!(status.success(), "octoprint failed on {}", file.display());
    started.elapsed().as_secs_f64()
}

/// This process's peak resident memory (VmHWM), MB: shows memory does not grow with
/// the file (the 66 MB file must not raise it).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
