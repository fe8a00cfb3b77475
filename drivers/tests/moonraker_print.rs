//! Whole prints through the Moonraker driver and the simulated Moonraker over real HTTP and a
//! real websocket.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drivers::moonraker::sim::{MoonrakerSim, MoonrakerSimHandle, MoonrakerSimOptions};
use drivers::moonraker::{MoonrakerConfig, MoonrakerHandle};
use drivers::mqtt::Backoff;
use drivers::{DriverError, DriverSpec, PrintOutcome, Printer, PrinterState, print_with};
use tokio_util::sync::CancellationToken;

/// The cube's slicer estimate (`;TIME:1577`).
const CUBE_S: f64 = 1577.0;

async fn sim(real_s: f64, api_key: Option<&str>) -> MoonrakerSimHandle {
    MoonrakerSim::spawn(MoonrakerSimOptions {
        time_scale: real_s / CUBE_S,
        report_every: Duration::from_millis(250),
        api_key: api_key.map(str::to_string),
    })
    .await
    .expect("simulator starts")
}

struct Driver {
    printer: MoonrakerHandle,
    stop: CancellationToken,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn driver(sim: &MoonrakerSimHandle, api_key: Option<&str>) -> Driver {
    let mut cfg = MoonrakerConfig::new(sim.url(), api_key.map(str::to_string));
    cfg.backoff = Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(300),
    };
    let (printer, runner) = MoonrakerHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("the simulator answers");
    Driver { printer, stop }
}

async fn printing_past(d: &Driver, percent: f64) -> f64 {
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "progress", Duration::from_secs(20), |s| {
        s.state == PrinterState::Printing && s.job.as_ref().is_some_and(|j| j.percent >= percent)
    })
    .await;
    s.job.map(|j| j.percent).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmhand_print_completes_with_progress_and_api_key() {
    let sim = sim(3.0, Some("s3cret")).await;
    let mut progress: Vec<(Instant, f64)> = Vec::new();
    let result = print_with(
        DriverSpec::Moonraker {
            url: sim.url().to_string(),
            api_key: Some("s3cret".into()),
        },
        corpus_gcode(CUBE),
        |s| {
            if let Some(j) = &s.job
                && j.percent > 0.0
                && progress.last().is_none_or(|(_, p)| *p != j.percent)
            {
                progress.push((Instant::now(), j.percent));
            }
        },
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(sim.print_state(), "complete");
    assert!(progress.len() >= 4, "progress was reported: {progress:?}");
    let worst = progress
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    assert!(
        worst < Duration::from_secs(1),
        "a progress gap of {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_refused_with_a_hint() {
    let sim = sim(3.0, Some("s3cret")).await;
    let result = print_with(
        DriverSpec::Moonraker {
            url: sim.url().to_string(),
            api_key: Some("wrong".into()),
        },
        corpus_gcode(CUBE),
        |_| {},
    )
    .await;
    // The websocket is refused too, so connect() already fails, naming the key.
    let err = result.expect_err("refused");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel() {
    let sim = sim(60.0, None).await;
    let d = driver(&sim, None).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.5).await;
    let mut rx = d.printer.status();
    d.printer.pause().await.expect("pause");
    wait_status(&mut rx, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    assert_eq!(sim.print_state(), "paused");
    d.printer.resume().await.expect("resume");
    wait_status(&mut rx, "printing again", Duration::from_secs(5), |s| {
        s.state == PrinterState::Printing
    })
    .await;
    d.printer.cancel().await.expect("cancel");
    let s = wait_status(&mut rx, "cancelled", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(s.last_outcome, Some(PrintOutcome::Cancelled));
    assert_eq!(s.state, PrinterState::Idle);
    // Klipper's own refusal comes back with its words.
    let err = d.printer.pause().await.expect_err("nothing to pause");
    assert!(
        matches!(&err, DriverError::Http { reason, .. } if reason.contains("Cannot pause while cancelled")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_klipper_error_mid_print_fails_the_job() {
    let sim = sim(60.0, None).await;
    let d = driver(&sim, None).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 1.0).await;
    sim.fail("Heater extruder not heating at expected rate");
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "failure", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(
        s.last_outcome,
        Some(PrintOutcome::Failed {
            reason: "Heater extruder not heating at expected rate".into()
        })
    );
    assert_eq!(s.state, PrinterState::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_resubscribes_and_keeps_tracking() {
    let sim = sim(4.0, None).await;
    let d = driver(&sim, None).await;
    let mut rx = d.printer.status();
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    let before = printing_past(&d, 10.0).await;
    sim.drop_websockets();
    wait_status(&mut rx, "offline", Duration::from_secs(5), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    wait_status(
        &mut rx,
        "progress after reconnecting",
        Duration::from_secs(5),
        |s| s.last_outcome.is_some() || s.job.as_ref().is_some_and(|j| j.percent > before),
    )
    .await;
    let done = wait_status(&mut rx, "completion", Duration::from_secs(10), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(done.last_outcome, Some(PrintOutcome::Completed));
}
