//! Bambu Lab LAN prints against a real mosquitto over TLS (password file, a printer-shaped
//! certificate) and a real vsftpd over implicit FTPS; the simulated printer is a client of
//! that broker and prints what vsftpd stored (a real printer is broker and FTPS server itself).

mod common;

use std::time::{Duration, Instant};

use common::bambu::{ACCESS_CODE, Certs, Ftps, SERIAL, tls_broker};
use common::broker::Broker;
use common::*;
use drivers::bambu::sim::{BambuSimHandle, BambuSimOptions};
use drivers::bambu::{BambuConfig, BambuHandle, ftps, tls};
use drivers::mqtt::Backoff;
use drivers::{DriverError, DriverSpec, PrintOutcome, Printer, PrinterState, print_with};
use tokio_util::sync::CancellationToken;

/// The cube's slicer estimate (`;TIME:1577`).
const CUBE_S: f64 = 1577.0;
/// A print_error code the simulator fails with, and its HMS entry.
const FAIL_CODE: u64 = 0x0300_8003;
const FAIL_HMS: (u32, u32) = (0x0300_0100, 0x0002_0001);

fn fast_backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(300),
    }
}

/// A printer's worth of real servers.
struct Farm {
    certs: Certs,
    broker: Broker,
    ftps: Ftps,
}

fn farm() -> Farm {
    let certs = Certs::new(SERIAL);
    let broker = tls_broker(&certs, ACCESS_CODE);
    let ftps = Ftps::start(&certs);
    Farm {
        certs,
        broker,
        ftps,
    }
}

/// A simulated printer whose cube print takes `real_s` seconds.
fn sim(f: &Farm, real_s: f64, report_every: Duration) -> BambuSimHandle {
    BambuSimHandle::spawn(BambuSimOptions {
        broker_host: "127.0.0.1".into(),
        broker_port: f.broker.port(),
        serial: SERIAL.into(),
        access_code: ACCESS_CODE.into(),
        tls: tls::client_config(SERIAL, Some(&f.certs.ca)).expect("sim TLS"),
        sdcard: f.ftps.sdcard(),
        time_scale: real_s / CUBE_S,
        report_every,
        backoff: fast_backoff(),
    })
}

fn config(f: &Farm) -> BambuConfig {
    let mut cfg = BambuConfig::new("127.0.0.1", SERIAL, ACCESS_CODE);
    cfg.mqtt_port = f.broker.port();
    cfg.ftps_port = f.ftps.port;
    cfg.ca_file = Some(f.certs.ca.clone());
    cfg.backoff = fast_backoff();
    cfg.keep_alive = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(10);
    cfg
}

struct Driver {
    printer: BambuHandle,
    stop: CancellationToken,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn driver(cfg: BambuConfig) -> Driver {
    let (printer, runner) = BambuHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    printer.connect().await.expect("the simulator reports");
    Driver { printer, stop }
}

async fn printing_past(d: &Driver, percent: f64) -> f64 {
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "progress", Duration::from_secs(30), |s| {
        s.state == PrinterState::Printing && s.job.as_ref().is_some_and(|j| j.percent >= percent)
    })
    .await;
    s.job.map(|j| j.percent).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmhand_print_uploads_over_ftps_and_completes_with_progress() {
    let f = farm();
    // The simulator reports once a second, like a P1 while printing.
    let _sim = sim(&f, 6.0, Duration::from_secs(1));
    let file = corpus_gcode(CUBE);
    let mut progress: Vec<(Instant, f64)> = Vec::new();
    let result = print_with(
        DriverSpec::Bambu {
            host: "127.0.0.1".into(),
            serial: SERIAL.into(),
            access_code: ACCESS_CODE.into(),
            mqtt_port: Some(f.broker.port()),
            ftps_port: Some(f.ftps.port),
            ca_file: Some(f.certs.ca.clone()),
        },
        file.clone(),
        |s| {
            if let Some(j) = &s.job
                && progress.last().is_none_or(|(_, p)| *p != j.percent)
            {
                progress.push((Instant::now(), j.percent));
            }
        },
    )
    .await;
    assert_eq!(result, Ok(()), "FTPS log:\n{}", f.ftps.log());
    // The file reached the "SD card" byte for byte (binary mode: no CRLF).
    let uploaded = std::fs::read(f.ftps.sdcard().join(CUBE)).expect("uploaded file");
    assert_eq!(uploaded, std::fs::read(&file).expect("corpus file"));
    // The FTPS traps, as the server saw them. vsftpd runs with require_ssl_reuse=YES, so the
    // upload succeeding proves the data channel resumed the control channel's TLS session.
    let log = f.ftps.log();
    for cmd in ["\"PBSZ 0\"", "\"PROT P\"", "\"TYPE I\"", "\"STOR "] {
        assert!(log.contains(cmd), "vsftpd never saw {cmd}:\n{log}");
    }
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
    eprintln!(
        "{} progress updates, longest gap between them {worst:?}",
        progress.len()
    );
    assert!(
        worst < Duration::from_millis(2500),
        "a progress gap of {worst:?}: {progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ftps_data_channel_must_resume_the_control_session() {
    let f = farm();
    let file = corpus_gcode(CUBE);
    let tls = tls::client_config(SERIAL, Some(&f.certs.ca)).expect("TLS");
    let target = |tls| ftps::FtpsTarget {
        host: "127.0.0.1".into(),
        port: f.ftps.port,
        user: "bblp".into(),
        access_code: ACCESS_CODE.into(),
        tls,
        timeout: Duration::from_secs(10),
    };
    let sent = ftps::upload(&target(tls.clone()), &file, "a.gcode")
        .await
        .expect("upload with session reuse");
    assert_eq!(sent, std::fs::metadata(&file).expect("size").len());
    // The same client without a session cache: vsftpd (require_ssl_reuse=YES, like a Bambu
    // printer) refuses the data connection, so the upload above did resume the session.
    let mut fresh = (*tls).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let err = ftps::upload(&target(std::sync::Arc::new(fresh)), &file, "b.gcode")
        .await
        .expect_err("no session reuse");
    assert!(err.to_string().contains("session reuse required"), "{err}");
    eprintln!("without session reuse: {err}");
    // And a wrong access code is refused at login, in words.
    let mut wrong = target(tls);
    wrong.access_code = "00000000".into();
    let err = ftps::upload(&wrong, &file, "c.gcode")
        .await
        .expect_err("wrong code");
    assert!(err.to_string().contains("access code"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel() {
    let f = farm();
    let sim = sim(&f, 60.0, Duration::from_millis(250));
    let d = driver(config(&f)).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 3.0).await;
    let mut rx = d.printer.status();

    d.printer.pause().await.expect("pause");
    let paused = wait_status(&mut rx, "paused", Duration::from_secs(5), |s| {
        s.state == PrinterState::Paused
    })
    .await;
    // The printer itself stopped advancing.
    let frozen = paused.job.map(|j| j.percent).unwrap_or_default();
    let mut sim_rx = sim.state();
    let before = sim_rx.borrow_and_update().job.clone().map(|j| j.elapsed_s);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = sim_rx.borrow_and_update().job.clone().map(|j| j.elapsed_s);
    assert!(
        before.is_some() && before == after,
        "{before:?} → {after:?}"
    );
    assert!(
        d.printer
            .status()
            .borrow()
            .job
            .as_ref()
            .is_some_and(|j| j.percent == frozen)
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
    assert_eq!(s.error, None, "a cancel is not an error: {s:?}");
    assert!(matches!(
        d.printer.pause().await,
        Err(DriverError::WrongState { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_print_fails_the_job_with_the_printers_code() {
    let f = farm();
    let sim = sim(&f, 60.0, Duration::from_millis(250));
    let d = driver(config(&f)).await;
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    printing_past(&d, 3.0).await;
    sim.fail(FAIL_CODE, FAIL_HMS);
    let mut rx = d.printer.status();
    let s = wait_status(&mut rx, "failure", Duration::from_secs(5), |s| {
        s.last_outcome.is_some()
    })
    .await;
    let Some(PrintOutcome::Failed { reason }) = &s.last_outcome else {
        panic!("expected a failed print, got {s:?}");
    };
    assert!(reason.contains("error 0300_8003"), "{reason}");
    assert!(reason.contains("HMS_0300_0100_0002_0001"), "{reason}");
    assert_eq!(s.state, PrinterState::Error);
    assert!(matches!(
        d.printer.start_job(corpus_gcode(CUBE)).await,
        Err(DriverError::WrongState { state: "error", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_print_keeps_tracking_until_completion() {
    let mut f = farm();
    let _sim = sim(&f, 10.0, Duration::from_millis(250));
    let d = driver(config(&f)).await;
    let mut rx = d.printer.status();
    d.printer
        .start_job(corpus_gcode(CUBE))
        .await
        .expect("start");
    let before = printing_past(&d, 10.0).await;

    f.broker.kill();
    wait_status(&mut rx, "offline", Duration::from_secs(10), |s| {
        s.state == PrinterState::Offline
    })
    .await;
    f.broker.restart();

    wait_status(
        &mut rx,
        "progress after the restart",
        Duration::from_secs(15),
        |s| s.last_outcome.is_some() || s.job.as_ref().is_some_and(|j| j.percent > before),
    )
    .await;
    let done = wait_status(&mut rx, "completion", Duration::from_secs(20), |s| {
        s.last_outcome.is_some()
    })
    .await;
    assert_eq!(done.last_outcome, Some(PrintOutcome::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_access_code_is_named_in_the_error() {
    let f = farm();
    let _sim = sim(&f, 60.0, Duration::from_millis(250));
    let mut cfg = config(&f);
    cfg.access_code = "00000000".into();
    let (printer, runner) = BambuHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    let err = printer.connect().await.expect_err("the broker refuses");
    stop.cancel();
    assert!(
        matches!(err, DriverError::LinkFailed { .. }) && err.to_string().contains("access code"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_printer_is_refused() {
    // The broker presents a valid certificate from the same CA, but for another serial.
    let other = "01S00A999999999";
    let certs = Certs::new(other);
    let broker = tls_broker(&certs, ACCESS_CODE);
    let ftps = Ftps::start(&certs);
    // The simulator trusts that certificate (it thinks it is `other`), so the broker is live.
    let _sim = BambuSimHandle::spawn(BambuSimOptions {
        broker_host: "127.0.0.1".into(),
        broker_port: broker.port(),
        serial: SERIAL.into(),
        access_code: ACCESS_CODE.into(),
        tls: tls::client_config(other, Some(&certs.ca)).expect("sim TLS"),
        sdcard: ftps.sdcard(),
        time_scale: 1.0,
        report_every: Duration::from_millis(250),
        backoff: fast_backoff(),
    });
    for ca_file in [Some(certs.ca.clone()), None] {
        let mut cfg = BambuConfig::new("127.0.0.1", SERIAL, ACCESS_CODE);
        cfg.mqtt_port = broker.port();
        cfg.ca_file = ca_file.clone();
        let (printer, runner) = BambuHandle::new(cfg).expect("valid config");
        let stop = CancellationToken::new();
        tokio::spawn(runner.run(stop.clone()));
        let err = printer.connect().await.expect_err("refused");
        stop.cancel();
        let text = err.to_string();
        assert!(
            text.contains("CN=01S00A999999999") && text.contains(&format!("not printer {SERIAL}")),
            "ca_file {ca_file:?}: {text}"
        );
    }
    // And a certificate with the right CN from a CA other than the configured one.
    let stranger = Certs::new(SERIAL);
    let mut cfg = BambuConfig::new("127.0.0.1", SERIAL, ACCESS_CODE);
    let stranger_broker = tls_broker(&stranger, ACCESS_CODE);
    cfg.mqtt_port = stranger_broker.port();
    cfg.ca_file = Some(certs.ca.clone());
    let (printer, runner) = BambuHandle::new(cfg).expect("valid config");
    let stop = CancellationToken::new();
    tokio::spawn(runner.run(stop.clone()));
    let err = printer.connect().await.expect_err("refused");
    stop.cancel();
    // Same CA name, other key: webpki finds the issuer by name and the signature fails.
    assert!(
        err.to_string()
            .contains("certificate was refused (BadSignature)"),
        "{err}"
    );
}
