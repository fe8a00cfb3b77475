//! Shared helpers for the pty integration tests.
#![allow(dead_code)]

pub mod bambu;
pub mod broker;

use std::path::PathBuf;
use std::time::Duration;

use drivers::PrinterStatus;
use drivers::marlin::MarlinConfig;
use drivers::marlin::sim::{hex, is_housekeeping};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// A corpus G-code file; panics with a clear message when the corpus is missing.
pub fn corpus_gcode(name: &str) -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/gcode"
    ));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "corpus file {} is missing: the tests need the shared/ corpus beside the repository",
        path.display()
    );
    path
}

pub const CUBE: &str = "20mm-xyz-cube.stl_cura413-ender3-0.20.gcode";

/// What the simulator must have accepted for `path`: computed here, independently of the
/// driver's own comment stripping, as SHA-256 over each command plus `\n`.
pub fn expected_stream(path: &PathBuf) -> (String, u64) {
    let text = std::fs::read(path).expect("read corpus file");
    let text = String::from_utf8_lossy(&text);
    let mut hasher = Sha256::new();
    let mut count = 0;
    for line in text.lines() {
        let code = line.split(';').next().unwrap_or("").trim();
        if code.is_empty() || is_housekeeping(code) {
            continue;
        }
        hasher.update(code.as_bytes());
        hasher.update(b"\n");
        count += 1;
    }
    (hex(&hasher.finalize()), count)
}

/// Driver settings for tests: quick reconnects and polls, real protocol timeouts.
pub fn test_config(port: &std::path::Path) -> MarlinConfig {
    let mut cfg = MarlinConfig::new(port, 250_000);
    cfg.reconnect_every = Duration::from_millis(100);
    cfg.temp_interval = Duration::from_millis(500);
    cfg.sd_poll = Duration::from_millis(100);
    cfg.status_every = Duration::from_millis(50);
    cfg
}

/// Wait until the status satisfies `pred`, failing the test after `within`.
pub async fn wait_status(
    rx: &mut watch::Receiver<PrinterStatus>,
    what: &str,
    within: Duration,
    pred: impl FnMut(&PrinterStatus) -> bool,
) -> PrinterStatus {
    let outcome = tokio::time::timeout(within, rx.wait_for(pred))
        .await
        .map(|r| r.map(|s| s.clone()));
    match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("driver stopped while waiting for {what}"),
        Err(_) => panic!(
            "timed out after {within:?} waiting for {what}; last status: {:?}",
            *rx.borrow()
        ),
    }
}

/// Poll a condition outside the driver (the simulator's counters) until it holds.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
