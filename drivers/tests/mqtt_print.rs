//! Whole prints through the generic MQTT driver and its simulator over a real mosquitto.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::*;
use drivers::mqtt::sim::{MqttSim, MqttSimHandle, MqttSimOptions};
use drivers::mqtt::{Backoff, LocalFileServer, MqttConfig, MqttHandle};
use drivers::{DriverError, DriverSpec, PrintOutcome, Printer, PrinterState, print_with};
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "farmhand/printers/lab-mqtt-1";
/// The cube's slicer estimate (`;TIME:1577`).
const CUBE_S: f64 = 1577.0;

fn fast_backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(300),
    }
}

/// A simulator whose cube print takes `real_s` seconds.
fn sim(broker: &Broker, real_s: f64) -> MqttSimHandle {
    let mut opts = MqttSimOptions::new(broker.url(), TOPIC);
    opts.time_scale = real_s / CUBE_S;
    opts.report_every = Duration::from_millis(250);
    opts.backoff = fast_backoff();
    MqttSim::spawn(opts).expect("simulator starts")
}

struct Driver {
    printer: MqttHandle,
    stop: CancellationToken,
    _files: Arc<LocalFileServer>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn driver(broker: &Broker) -> Driver {
    let files = Arc::new(
        LocalFileServer::start(([127, 0, 0, 1], 0).into(), "127.0.0.1")
            .await
            .expect("file server"),
    );
    let mut cfg = MqttConfig::new(broker.url(), TOPIC, files.clone());
    cfg.backoff = fast_backoff();
    let (printer, runner) = MqttHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("the simulator reports");
    Driver {
        printer,
        stop,
        _files: files,
    }
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
async fn farmhand_print_completes_with_progress_every_second() {
    let broker = Broker::start();
    // The simulator's default: a status every second.
    let mut opts = MqttSimOptions::new(broker.url(), TOPIC);
    opts.time_scale = 4.0 / CUBE_S;
    let _sim = MqttSim::spawn(opts).expect("simulator starts");
    let mut progress: Vec<(Instant, f64)> = Vec::new();
    let result = print_with(
        DriverSpec::Mqtt {
            broker: broker.url(),
            topic: TOPIC.into(),
        },
        corpus_gcode(CUBE),
        |s| {
            if let Some(j) = &s.job
                && progress.last().is_none_or(|(_, p)| *p != j.percent)
            {
                progress.push((Instant::now(), j.percent));
            }
        },
    )
    .await;
    assert_eq!(result, Ok(()));
    assert!(progress.len() >= 4, "progress was reported: {progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress never goes back: {progress:?}"
    );
    let worst = progress
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    assert!(
        worst < Duration::from_millis(1600),
        "a progress gap of {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel() {
    let broker = Broker::start();
    let sim = sim(&broker, 60.0);
    let d = driver(&broker).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.5).await;
    let mut rx = d.printer.status();

    d.printer.pause().await.expect("pause");
    let paused = wait_status(&mut rx, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    // The simulator stops advancing while paused: its own status says so.
    let mut sim_rx = sim.status();
    let frozen = paused.job.map(|j| j.percent).unwrap_or_default();
    let sim_now = sim_rx.borrow_and_update().job.clone().map(|j| j.percent);
    assert!(
        sim_now.is_some_and(|p| (p - frozen).abs() < 1.0),
        "{sim_now:?} vs {frozen}"
    );

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
    assert!(matches!(
        d.printer.pause().await,
        Err(DriverError::WrongState { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_print_fails_the_job_with_the_printers_words() {
    let broker = Broker::start();
    let sim = sim(&broker, 60.0);
    let d = driver(&broker).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 1.0).await;
    sim.fail("Thermal runaway on the hotend (E0)");
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "failure", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(
        s.last_outcome,
        Some(PrintOutcome::Failed {
            reason: "Thermal runaway on the hotend (E0)".into()
        })
    );
    assert_eq!(s.state, PrinterState::Error);
    // A halted printer refuses a new job until someone clears it.
    assert!(matches!(
        d.printer.start_job(corpus_gcode(CUBE)).await,
        Err(DriverError::WrongState { state: "error", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_print_keeps_tracking_until_completion() {
    let mut broker = Broker::start();
    let _sim = sim(&broker, 6.0);
    let d = driver(&broker).await;
    let mut rx = d.printer.status();
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    let before = printing_past(&d, 10.0).await;

    broker.kill();
    wait_status(&mut rx, "offline", Duration::from_secs(5), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    broker.restart();

    // Tracking resumes: progress beyond what was seen before the broker died.
    wait_status(
        &mut rx,
        "progress after the restart",
        Duration::from_secs(10),
        |s| s.last_outcome.is_some() || s.job.as_ref().is_some_and(|j| j.percent > before),
    )
    .await;
    let done = wait_status(&mut rx, "completion", Duration::from_secs(15), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(done.last_outcome, Some(PrintOutcome::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_shows_offline_through_the_last_will_and_keeps_the_job() {
    let broker = Broker::start();
    let sim = sim(&broker, 60.0);
    let d = driver(&broker).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.5).await;
    sim.power_loss();
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "last will", Duration::from_secs(10), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    assert_eq!(s.last_outcome, None, "the job is not given up: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_a_printer_says_what_to_check() {
    let broker = Broker::start();
    let files = Arc::new(
        LocalFileServer::start(([127, 0, 0, 1], 0).into(), "127.0.0.1")
            .await
            .expect("file server"),
    );
    let mut cfg = MqttConfig::new(broker.url(), "farmhand/printers/nobody", files);
    cfg.connect_timeout = Duration::from_millis(500);
    let (printer, runner) = MqttHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    let err = printer.connect().await.expect_err("nobody answers");
    assert!(
        err.to_string().contains("farmhand/printers/nobody/status"),
        "{err}"
    );
    stop.cancel();
    assert!(matches!(
        MqttHandle::new(MqttConfig::new(
            "http://x",
            "t",
            Arc::new(
                LocalFileServer::start(([127, 0, 0, 1], 0).into(), "127.0.0.1")
                    .await
                    .expect("file server")
            )
        )),
        Err(DriverError::InvalidSetting { key: "broker", .. })
    ));
}
