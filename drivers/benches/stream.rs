//! Streaming throughput: the 4 MB benchy G-code through the real driver to a zero-delay
//! simulated Marlin over a real pty. Prints lines/s and host CPU µs per line.
//!
//! How CPU is split: the simulator runs on its own thread with its own current-thread tokio
//! runtime, and measures its thread's CPU time with `getrusage(RUSAGE_THREAD)` at the end.
//! Host CPU = the process's `getrusage(RUSAGE_SELF)` user+system time during the print minus
//! the simulator thread's. The driver runs on the main thread's current-thread runtime (plus
//! tokio's blocking pool, which reads the file), as on a single Pi core.
//!
//! Run: `cargo bench -p drivers --bench stream`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drivers::marlin::MarlinConfig;
use drivers::marlin::sim::{MarlinSim, Quirks, SimHandle, SimOptions};
use nix::sys::resource::{UsageWho, getrusage};

const FILE: &str = "3DBenchy.stl_prusa25-mk3s-0.20.gcode";

fn cpu(who: UsageWho) -> Duration {
    match getrusage(who) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// A simulator on its own thread; returns its handle and a way to stop it and get its CPU time.
fn sim_thread(
    opts: SimOptions,
) -> (
    SimHandle,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<Duration>,
) {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("simulator runtime");
        rt.block_on(async {
            let sim = MarlinSim::spawn(opts).expect("simulator starts");
            let _ = handle_tx.send(sim);
            let _ = stop_rx.await;
        });
        cpu(UsageWho::RUSAGE_THREAD)
    });
    let sim = handle_rx.recv().expect("simulator handle");
    (sim, stop_tx, thread)
}

fn run(label: &str, file: &Path, quirks: Quirks) {
    let (sim, stop, thread) = sim_thread(SimOptions {
        quirks,
        ..SimOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("driver runtime");
    let cfg = MarlinConfig::new(sim.port_path(), 250_000);
    let cpu0 = cpu(UsageWho::RUSAGE_SELF);
    let t0 = Instant::now();
    let result = rt.block_on(drivers::print_file_with(
        cfg,
        false,
        file.to_path_buf(),
        |_| {},
    ));
    let wall = t0.elapsed();
    let process = cpu(UsageWho::RUSAGE_SELF) - cpu0;
    let lines = sim.stats().numbered;
    let _ = stop.send(());
    let sim_cpu = thread.join().expect("simulator thread");
    drop(sim);
    if let Err(e) = result {
        println!("{label}: print failed: {e}");
        return;
    }
    let host = process.saturating_sub(sim_cpu);
    println!(
        "{label}: {lines} lines in {:.2} s = {:.0} lines/s; host CPU {:.2} µs/line \
         (process {:.2} s - simulator {:.2} s)",
        wall.as_secs_f64(),
        lines as f64 / wall.as_secs_f64(),
        host.as_secs_f64() * 1e6 / lines as f64,
        process.as_secs_f64(),
        sim_cpu.as_secs_f64(),
    );
}

fn main() {
    let file = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/gcode"
    ))
    .join(FILE);
    if !file.is_file() {
        eprintln!(
            "corpus file {} is missing: put shared/ beside the repository",
            file.display()
        );
        std::process::exit(1);
    }
    println!(
        "streaming {} ({} bytes)",
        FILE,
        std::fs::metadata(&file).map_or(0, |m| m.len())
    );
    run("window 1 (plain ok)", &file, Quirks::default());
    run(
        "ADVANCED_OK (window up to 8)",
        &file,
        Quirks {
            advanced_ok: true,
            bufsize: 9,
            ..Quirks::default()
        },
    );
}
