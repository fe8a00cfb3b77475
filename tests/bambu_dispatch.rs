//! A Bambu Lab printer in the daemon's config: the fleet holds its one TLS MQTT connection, a
//! dispatched job is uploaded over real implicit FTPS (vsftpd) and started, and the tracker
//! follows the simulated printer (a client of a real mosquitto) to COMPLETED.

mod common;

// The drivers crate's Bambu stand-ins (certificates, mosquitto with TLS, vsftpd), shared as files.
#[allow(dead_code)]
#[path = "../drivers/tests/common/bambu.rs"]
mod bambu;
#[allow(dead_code)]
#[path = "../drivers/tests/common/broker.rs"]
mod broker;

use std::time::{Duration, Instant};

use bambu::{ACCESS_CODE, Certs, Ftps, SERIAL, tls_broker};
use common::*;
use drivers::bambu::sim::{BambuSimHandle, BambuSimOptions};
use drivers::bambu::tls;
use drivers::mqtt::Backoff;
use serde_json::{Value, json};

const GCODE: &str = "gcode/3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode";

async fn printer(farm: &TestFarm, id: &str) -> Value {
    let (_, printers) = farm.get("/api/v1/printers").await;
    printers
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == id).cloned())
        .expect("printer listed")
}

/// A G-code job, approved, confirmed and dispatched to `printer`.
async fn dispatched(farm: &TestFarm, printer: &str, gcode: Vec<u8>) -> String {
    let (status, job) = farm
        .submit("gunwale.gcode", gcode, "Bam Bu", "b@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    farm.confirm_by_mail(&id).await;
    let (status, body) = farm
        .act(
            &id,
            "dispatch",
            json!({ "staff": GRACE, "printer": printer }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

fn bambu_config(broker: &broker::Broker, ftps: &Ftps, certs: &Certs) -> String {
    format!(
        "[[printers]]\nid = \"x1c-1\"\ndriver = \"bambu\"\nhost = \"127.0.0.1\"\nserial = \"{SERIAL}\"\n\
         access_code = \"{ACCESS_CODE}\"\nmqtt_port = {}\nftps_port = {}\nca_file = \"{}\"\n\
         build_volume_mm = [256, 256, 256]\n",
        broker.port(),
        ftps.port,
        certs.ca.display()
    )
}

async fn wait_idle(farm: &TestFarm) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while printer(farm, "x1c-1").await["state"] != "idle" {
        assert!(
            Instant::now() < deadline,
            "the Bambu printer never showed idle: {}\n{}",
            printer(farm, "x1c-1").await,
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_print_that_finishes_while_farmhand_is_down_completes_after_the_restart() {
    let certs = Certs::new(SERIAL);
    let broker = tls_broker(&certs, ACCESS_CODE);
    let ftps = Ftps::start(&certs);
    let sim = BambuSimHandle::spawn(BambuSimOptions {
        broker_host: "127.0.0.1".into(),
        broker_port: broker.port(),
        serial: SERIAL.into(),
        access_code: ACCESS_CODE.into(),
        tls: tls::client_config(SERIAL, Some(&certs.ca)).expect("sim TLS"),
        sdcard: ftps.sdcard(),
        // About 8 s for the gunwale.
        time_scale: 0.007,
        report_every: Duration::from_millis(250),
        backoff: Backoff::default(),
    });
    let mut farm = TestFarm::start_custom(&[], &bambu_config(&broker, &ftps, &certs)).await;
    wait_idle(&farm).await;
    let gcode = std::fs::read(corpus(GCODE)).expect("gcode");
    let id = dispatched(&farm, "x1c-1", gcode).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while farm.job(&id).await["progress"]["percent"]
        .as_f64()
        .unwrap_or(0.0)
        <= 0.0
    {
        assert!(
            Instant::now() < deadline,
            "no progress: {}",
            farm.job(&id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    farm.kill();
    // The printer prints on by itself and finishes while Farmhand is down.
    let mut state = sim.state();
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|s| s.state == drivers::bambu::protocol::GcodeState::Finish),
    )
    .await
    .expect("the simulated print finishes")
    .expect("simulator running");
    farm.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = farm.job(&id).await;
        if job["status"] == "COMPLETED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finished print was not recognised after the restart: {job}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = farm.events(&id).await;
    assert!(
        events.iter().any(|e| e["event_type"] == "PrintCompleted"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bambu_printer_in_the_config_gets_a_job_dispatched_and_completed() {
    let certs = Certs::new(SERIAL);
    let broker = tls_broker(&certs, ACCESS_CODE);
    let ftps = Ftps::start(&certs);
    let _sim = BambuSimHandle::spawn(BambuSimOptions {
        broker_host: "127.0.0.1".into(),
        broker_port: broker.port(),
        serial: SERIAL.into(),
        access_code: ACCESS_CODE.into(),
        tls: tls::client_config(SERIAL, Some(&certs.ca)).expect("sim TLS"),
        sdcard: ftps.sdcard(),
        // The gunwale's Cura estimate is ~19 minutes: about 4 s here.
        time_scale: 0.004,
        report_every: Duration::from_millis(250),
        backoff: Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_millis(300),
        },
    });
    let farm = TestFarm::start_custom(&[], &bambu_config(&broker, &ftps, &certs)).await;
    wait_idle(&farm).await;
    let gcode = std::fs::read(corpus(GCODE)).expect("gcode");
    let id = dispatched(&farm, "x1c-1", gcode.clone()).await;

    let mut saw_progress = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let job = farm.job(&id).await;
        saw_progress |= job["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0;
        if job["status"] == "COMPLETED" {
            break job;
        }
        assert!(
            job["status"] == "PRINTING" && Instant::now() < deadline,
            "job never completed: {job}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["printer"], "x1c-1");
    assert!(saw_progress, "progress reached the job while it printed");
    // What the printer printed is what the student sent, uploaded byte for byte.
    let on_card: Vec<_> = std::fs::read_dir(ftps.sdcard())
        .expect("sdcard")
        .filter_map(Result::ok)
        .map(|e| std::fs::read(e.path()).expect("read upload"))
        .collect();
    assert_eq!(
        on_card,
        vec![gcode],
        "exactly the job's file is on the card"
    );
    let events = farm.events(&id).await;
    assert!(
        events.iter().any(|e| e["event_type"] == "PrintCompleted"),
        "{events:?}"
    );
    // One MQTT connection for the printer however many parts of Farmhand watch it (tracker,
    // scheduler, API, stream): the broker counts the simulator, the daemon and this probe.
    assert_eq!(connected_clients(&broker, &certs).await, 3);
}

/// The broker's own count of connected clients (`$SYS`, published every second).
async fn connected_clients(broker: &broker::Broker, certs: &Certs) -> u64 {
    use drivers::mqtt::conn::{Link, LinkEvent, LinkOptions, client_id};
    let stop = tokio_util::sync::CancellationToken::new();
    let mut link = Link::spawn(
        LinkOptions {
            host: "127.0.0.1".into(),
            port: broker.port(),
            client_id: client_id("probe"),
            subscribe: vec!["$SYS/broker/clients/connected".into()],
            will: None,
            keep_alive: Duration::from_secs(5),
            backoff: Backoff::default(),
            credentials: Some(("bblp".into(), ACCESS_CODE.into())),
            tls: Some(tls::client_config(SERIAL, Some(&certs.ca)).expect("TLS")),
        },
        &stop,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The first figure may predate this probe's own connection: take one from after it.
    let mut seen = 0;
    loop {
        let ev = tokio::time::timeout_at(deadline, link.events.recv())
            .await
            .expect("$SYS/broker/clients/connected within 10 s")
            .expect("probe link");
        if let LinkEvent::Message { payload, .. } = ev {
            seen += 1;
            if seen >= 2 {
                stop.cancel();
                return String::from_utf8_lossy(&payload)
                    .trim()
                    .parse()
                    .expect("a count");
            }
        }
    }
}

/// `farmhand print --driver bambu` with exactly the contract's flags, as staff would test a
/// printer before adding it: exit 0 after a completed print; a wrong access code exits non-zero
/// with a line that names it.
#[tokio::test(flavor = "multi_thread")]
async fn farmhand_print_drives_a_bambu_printer_with_the_contract_flags() {
    let certs = Certs::new(SERIAL);
    let broker = tls_broker(&certs, ACCESS_CODE);
    let ftps = Ftps::start(&certs);
    let _sim = BambuSimHandle::spawn(BambuSimOptions {
        broker_host: "127.0.0.1".into(),
        broker_port: broker.port(),
        serial: SERIAL.into(),
        access_code: ACCESS_CODE.into(),
        tls: tls::client_config(SERIAL, Some(&certs.ca)).expect("sim TLS"),
        sdcard: ftps.sdcard(),
        time_scale: 0.002,
        report_every: Duration::from_millis(250),
        backoff: Backoff::default(),
    });
    let run = |code: &'static str| {
        let args: Vec<String> = vec![
            "print".into(),
            "--driver".into(),
            "bambu".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--serial".into(),
            SERIAL.into(),
            "--access-code".into(),
            code.into(),
            "--mqtt-port".into(),
            broker.port().to_string(),
            "--ftps-port".into(),
            ftps.port.to_string(),
            "--ca-file".into(),
            certs.ca.display().to_string(),
            corpus(GCODE).display().to_string(),
        ];
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_farmhand"))
                .args(&args)
                .output()
                .expect("run farmhand print")
        })
    };
    let ok = run(ACCESS_CODE).await.expect("join");
    assert!(
        ok.status.success(),
        "farmhand print failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run("00000000").await.expect("join");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "a wrong access code must fail");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("access code"), "{stderr}");
}
