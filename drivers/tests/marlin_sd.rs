//! Printing from the printer's SD card survives the link going away and the host restarting.

mod common;

use std::time::Duration;

use common::*;
use drivers::marlin::MarlinHandle;
use drivers::marlin::sim::{MarlinSim, SimOptions};
use drivers::{PrintOutcome, Printer, PrinterState, PrinterStatus};
use tokio_util::sync::CancellationToken;

fn driver(port: &std::path::Path) -> (MarlinHandle, CancellationToken) {
    let (printer, runner) = MarlinHandle::new(test_config(port));
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    (printer, stop)
}

fn sd_bytes(s: &PrinterStatus) -> u64 {
    s.job.as_ref().map_or(0, |j| j.bytes_sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_print_is_found_again_after_reconnect_and_after_a_host_restart() {
    // 100× real time: the cube prints from the card in about ten seconds.
    let sim = MarlinSim::spawn(SimOptions {
        time_scale: 0.01,
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let file = corpus_gcode(CUBE);
    let file_size = std::fs::metadata(&file).expect("corpus file").len();
    let (printer, stop_a) = driver(sim.port_path());
    printer.connect().await.expect("connects");
    printer
        .sd_card()
        .expect("Marlin has an SD card")
        .start_sd_job(file)
        .await
        .expect("upload starts");
    let mut status = printer.status();
    // The card holds the file without comments, so once M27 reports, the total is smaller
    // than the host file: that is how the test tells the SD print from the upload.
    let before = wait_status(
        &mut status,
        "the SD print to run",
        Duration::from_secs(30),
        |s| {
            s.job
                .as_ref()
                .is_some_and(|j| j.bytes_total < file_size && j.bytes_sent > 1000)
        },
    )
    .await;

    sim.unplug();
    let offline = wait_status(&mut status, "offline", Duration::from_secs(10), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    assert_eq!(
        offline.last_outcome, None,
        "an SD print does not fail with the link"
    );
    sim.plug();
    let after = wait_status(
        &mut status,
        "tracking after reconnect",
        Duration::from_secs(10),
        |s| s.state == PrinterState::Printing && sd_bytes(s) > sd_bytes(&before),
    )
    .await;

    // The host restarts: a brand-new driver finds the print on the printer.
    stop_a.cancel();
    let (printer_b, stop_b) = driver(sim.port_path());
    let mut status_b = printer_b.status();
    wait_status(
        &mut status_b,
        "found by a new driver",
        Duration::from_secs(10),
        |s| s.state == PrinterState::Printing && sd_bytes(s) > sd_bytes(&after),
    )
    .await;
    let done = wait_status(
        &mut status_b,
        "the SD print to finish",
        Duration::from_secs(40),
        |s| s.last_outcome.is_some(),
    )
    .await;
    assert_eq!(done.last_outcome, Some(PrintOutcome::Completed));
    assert_eq!(done.state, PrinterState::Idle);
    stop_b.cancel();
}
