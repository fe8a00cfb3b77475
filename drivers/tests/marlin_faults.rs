//! Faults mid-print over a real pty: the driver must report a failed print, never hang.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drivers::marlin::MarlinHandle;
use drivers::marlin::sim::{MarlinSim, Quirks, SimHandle, SimOptions};
use drivers::{DriverError, PrintOutcome, Printer, PrinterState, print_file_with};
use tokio_util::sync::CancellationToken;

/// A simulator running 100× faster than real time: heating takes well under a second, the
/// cube about 15 s, so there is time to break things mid-print.
fn slow_sim() -> SimHandle {
    MarlinSim::spawn(SimOptions {
        time_scale: 0.01,
        ..SimOptions::default()
    })
    .expect("simulator starts")
}

fn failed(s: &drivers::PrinterStatus) -> Option<String> {
    match &s.last_outcome {
        Some(PrintOutcome::Failed { reason }) => Some(reason.clone()),
        _ => None,
    }
}

/// Start the cube on a fresh driver and wait until it is well under way.
async fn printing(sim: &SimHandle) -> (drivers::marlin::MarlinHandle, CancellationToken) {
    let (printer, runner) = MarlinHandle::new(test_config(sim.port_path()));
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("connects");
    printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("job starts");
    let mut status = printer.status();
    wait_status(
        &mut status,
        "the print to get going",
        Duration::from_secs(20),
        |s| s.job.as_ref().is_some_and(|j| j.bytes_sent > 20_000),
    )
    .await;
    (printer, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_vanishing_mid_print_fails_the_print_within_10_s_then_reconnects() {
    let sim = slow_sim();
    let (printer, stop) = printing(&sim).await;
    let mut status = printer.status();
    let t0 = Instant::now();
    sim.unplug();
    let s = wait_status(
        &mut status,
        "a failed print",
        Duration::from_secs(10),
        |s| failed(s).is_some(),
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    let reason = failed(&s).unwrap_or_default();
    assert!(reason.contains("went away"), "reason: {reason}");
    wait_status(&mut status, "offline", Duration::from_secs(5), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    // Plugged back in: the driver finds the port again by itself.
    sim.plug();
    wait_status(
        &mut status,
        "idle after replug",
        Duration::from_secs(10),
        |s| s.state == PrinterState::Idle,
    )
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_halt_fails_the_print_with_the_firmware_message() {
    let sim = slow_sim();
    let port = sim.port_path().to_path_buf();
    let print = tokio::spawn(print_file_with(
        test_config(&port),
        false,
        corpus_gcode(CUBE),
        |_| {},
    ));
    wait_until("the print to get going", Duration::from_secs(20), || {
        sim.stats().accepted > 200
    })
    .await;
    sim.halt("Thermal Runaway, system stopped! Heater_ID: 0");
    let result = tokio::time::timeout(Duration::from_secs(10), print)
        .await
        .expect("print_file returns")
        .expect("task ran");
    match result {
        Err(DriverError::PrintFailed { reason }) => {
            assert_eq!(
                reason,
                "Thermal Runaway, system stopped! Heater_ID: 0 Printer halted. kill() called!"
            );
        }
        other => panic!("expected a failed print, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_leaves_the_printer_in_error() {
    let sim = slow_sim();
    let (printer, stop) = printing(&sim).await;
    let mut status = printer.status();
    sim.halt("MAXTEMP triggered, system stopped! Heater_ID: 0");
    let s = wait_status(&mut status, "error state", Duration::from_secs(10), |s| {
        s.state == PrinterState::Error
    })
    .await;
    assert!(failed(&s).is_some_and(|r| r.contains("MAXTEMP")));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_print_is_a_failed_print_not_a_hang() {
    let sim = slow_sim();
    let (printer, stop) = printing(&sim).await;
    let mut status = printer.status();
    sim.reset();
    let s = wait_status(
        &mut status,
        "a failed print",
        Duration::from_secs(10),
        |s| failed(s).is_some(),
    )
    .await;
    assert!(failed(&s).is_some_and(|r| r.contains("restarted")));
    // It handshakes again and is usable.
    wait_status(&mut status, "idle again", Duration::from_secs(10), |s| {
        s.state == PrinterState::Idle
    })
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_that_resets_when_the_port_opens() {
    let sim = MarlinSim::spawn(SimOptions {
        quirks: Quirks {
            reset_on_open: true,
            ..Quirks::default()
        },
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let file = corpus_gcode("3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode");
    let (want_hash, _) = expected_stream(&file);
    let result = print_file_with(test_config(sim.port_path()), false, file, |_| {}).await;
    assert_eq!(result, Ok(()));
    assert_eq!(sim.accepted_hash(), want_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_streaming_and_turns_heaters_off() {
    let sim = MarlinSim::spawn(SimOptions {
        time_scale: 0.01,
        keep_log: true,
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let (printer, stop) = printing(&sim).await;
    let mut status = printer.status();
    printer.cancel().await.expect("cancel accepted");
    let s = wait_status(&mut status, "cancelled", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(s.last_outcome, Some(PrintOutcome::Cancelled));
    wait_until("heaters off", Duration::from_secs(10), || {
        let log = sim.stats().log.unwrap_or_default();
        log.ends_with(
            &[
                "M104 S0",
                "M140 S0",
                "M107",
                "G91",
                "G1 Z10 F600",
                "G90",
                "M84",
            ]
            .map(String::from),
        )
    })
    .await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_port_is_a_clear_error() {
    let (printer, runner) = MarlinHandle::new(test_config(std::path::Path::new(
        "/dev/serial/by-id/no-such-printer",
    )));
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    match printer.connect().await {
        Err(DriverError::PortOpen { port, .. }) => assert!(port.ends_with("no-such-printer")),
        other => panic!("expected PortOpen, got {other:?}"),
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_stream_and_resume_finishes_the_print() {
    let sim = slow_sim();
    let (printer, stop) = printing(&sim).await;
    let mut status = printer.status();
    printer.pause().await.expect("pause accepted");
    wait_status(&mut status, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    // Lines already in flight finish; then nothing more is sent. This sleep is an
    // observation window for the absence of traffic, not a wait for a condition.
    let settled = sim.stats().accepted;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sim.stats().accepted;
    assert!(
        after <= settled + 1,
        "sent {} lines while paused",
        after - settled
    );
    printer.resume().await.expect("resume accepted");
    wait_status(&mut status, "printing again", Duration::from_secs(5), |s| {
        s.state == PrinterState::Printing
    })
    .await;
    wait_until("lines flowing again", Duration::from_secs(5), || {
        sim.stats().accepted > after + 10
    })
    .await;
    printer.cancel().await.expect("cancel accepted");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_printer_is_poked_then_declared_dead() {
    let sim = slow_sim();
    let mut cfg = test_config(sim.port_path());
    cfg.link.poke_after = Duration::from_millis(500);
    cfg.link.dead_after = Duration::from_millis(1000);
    let (printer, runner) = MarlinHandle::new(cfg);
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("connects");
    printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("job starts");
    let mut status = printer.status();
    wait_status(&mut status, "printing", Duration::from_secs(20), |s| {
        s.job.as_ref().is_some_and(|j| j.bytes_sent > 20_000)
    })
    .await;
    sim.freeze();
    let s = wait_status(
        &mut status,
        "a failed print",
        Duration::from_secs(10),
        |s| failed(s).is_some(),
    )
    .await;
    let reason = failed(&s).unwrap_or_default();
    assert!(reason.contains("did not answer M105"), "reason: {reason}");
    stop.cancel();
}
