//! Whole prints through the PrusaLink driver and the simulated PrusaLink over real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drivers::prusalink::sim::{PrusaLinkSim, PrusaLinkSimHandle, PrusaLinkSimOptions};
use drivers::prusalink::{PrusaLinkConfig, PrusaLinkHandle};
use drivers::{DriverError, DriverSpec, PrintOutcome, Printer, PrinterState, print_with};
use tokio_util::sync::CancellationToken;

/// The cube's slicer estimate (`;TIME:1577`).
const CUBE_S: f64 = 1577.0;

async fn sim(real_s: f64, api_key: Option<&str>) -> PrusaLinkSimHandle {
    PrusaLinkSim::spawn(PrusaLinkSimOptions {
        time_scale: real_s / CUBE_S,
        api_key: api_key.map(str::to_string),
        ..PrusaLinkSimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// A simulator that demands digest login as `maker` with `PASSWORD`.
async fn digest_sim(real_s: f64, qop: bool) -> PrusaLinkSimHandle {
    PrusaLinkSim::spawn(PrusaLinkSimOptions {
        time_scale: real_s / CUBE_S,
        digest: Some(("maker".into(), PASSWORD.into())),
        digest_qop: qop,
        ..PrusaLinkSimOptions::default()
    })
    .await
    .expect("simulator starts")
}

const PASSWORD: &str = "hunter2 on the screen";

fn digest_spec(sim: &PrusaLinkSimHandle, password: &str) -> DriverSpec {
    DriverSpec::PrusaLink {
        url: sim.url().to_string(),
        api_key: None,
        username: Some("maker".into()),
        password: Some(password.into()),
    }
}

struct Driver {
    printer: PrusaLinkHandle,
    stop: CancellationToken,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn driver(sim: &PrusaLinkSimHandle) -> Driver {
    driver_with(PrusaLinkConfig::new(sim.url(), Some("k".into()))).await
}

async fn driver_with(mut cfg: PrusaLinkConfig) -> Driver {
    cfg.poll_every = Duration::from_millis(200);
    let (printer, runner) = PrusaLinkHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("the simulator answers");
    Driver { printer, stop }
}

async fn printing_past(d: &Driver, percent: f64) {
    let mut rx = d.printer.status();
    wait_status(&mut rx, "progress", Duration::from_secs(20), |s| {
        s.state == PrinterState::Printing && s.job.as_ref().is_some_and(|j| j.percent >= percent)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmhand_print_completes_with_progress_every_poll() {
    let sim = sim(3.0, Some("s3cret")).await;
    let mut progress: Vec<(Instant, f64)> = Vec::new();
    let result = print_with(
        DriverSpec::PrusaLink {
            url: sim.url().to_string(),
            api_key: Some("s3cret".into()),
            username: None,
            password: None,
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
    assert_eq!(sim.state(), "FINISHED");
    assert!(progress.len() >= 2, "progress was reported: {progress:?}");
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
async fn auth_problems_are_named() {
    let sim = sim(3.0, Some("s3cret")).await;
    let spec = |api_key: Option<&str>, username: Option<&str>| DriverSpec::PrusaLink {
        url: sim.url().to_string(),
        api_key: api_key.map(str::to_string),
        username: username.map(str::to_string),
        password: username.map(|_| "pw".to_string()),
    };
    let err = print_with(spec(Some("wrong"), None), corpus_gcode(CUBE), |_| {})
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("401") && err.to_string().contains("api_key"),
        "{err}"
    );
    // A username without its password is a setting problem, named before any request.
    let err = print_with(
        DriverSpec::PrusaLink {
            url: sim.url().to_string(),
            api_key: None,
            username: Some("maker".into()),
            password: None,
        },
        corpus_gcode(CUBE),
        |_| {},
    )
    .await
    .expect_err("no password");
    assert!(
        matches!(
            err,
            DriverError::InvalidSetting {
                key: "password",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmhand_print_completes_with_digest_login() {
    let sim = digest_sim(3.0, false).await;
    let mut last = 0.0;
    let result = print_with(digest_spec(&sim, PASSWORD), corpus_gcode(CUBE), |s| {
        if let Some(j) = &s.job {
            last = j.percent;
        }
    })
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(sim.state(), "FINISHED");
    assert!(last > 0.0, "progress was reported through the login");
    // One challenge for the first request; every later one reused the nonce.
    assert_eq!(sim.challenges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_naming_the_login() {
    let sim = digest_sim(3.0, false).await;
    let err = print_with(
        digest_spec(&sim, "not the password"),
        corpus_gcode(CUBE),
        |_| {},
    )
    .await
    .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("401")
            && text.contains("digest login")
            && text.contains("\"maker\"")
            && text.contains("password"),
        "{text}"
    );
    assert_eq!(sim.state(), "IDLE", "nothing was printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_with_qop_survives_stale_nonces_mid_print() {
    let sim = digest_sim(60.0, true).await;
    let mut cfg = PrusaLinkConfig::new(sim.url(), None);
    cfg.username = Some("maker".into());
    cfg.password = Some(PASSWORD.into());
    let d = driver_with(cfg).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.2).await;
    let before = sim.challenges();
    sim.expire_nonce();
    let mut rx = d.printer.status();
    d.printer
        .pause()
        .await
        .expect("pause after the nonce expired");
    wait_status(&mut rx, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    assert!(sim.challenges() > before, "the printer renewed the nonce");
    sim.expire_nonce();
    d.printer.resume().await.expect("resume");
    d.printer.cancel().await.expect("stop");
    let s = wait_status(&mut rx, "stopped", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(s.last_outcome, Some(PrintOutcome::Cancelled));
    assert_eq!(sim.state(), "STOPPED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop() {
    let sim = sim(60.0, Some("k")).await;
    let d = driver(&sim).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.3).await;
    let mut rx = d.printer.status();
    d.printer.pause().await.expect("pause");
    wait_status(&mut rx, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    d.printer.resume().await.expect("resume");
    wait_status(&mut rx, "printing again", Duration::from_secs(5), |s| {
        s.state == PrinterState::Printing
    })
    .await;
    d.printer.cancel().await.expect("stop");
    let s = wait_status(&mut rx, "stopped", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(s.last_outcome, Some(PrintOutcome::Cancelled));
    assert_eq!(sim.state(), "STOPPED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_error_mid_print_fails_the_job() {
    let sim = sim(60.0, Some("k")).await;
    let d = driver(&sim).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 0.5).await;
    sim.fail("Thermal runaway");
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "failure", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(
        s.last_outcome,
        Some(PrintOutcome::Failed {
            reason: "Thermal runaway".into()
        })
    );
    assert_eq!(s.state, PrinterState::Error);
}
