//! The scheduler, the tracker and the live stream, end to end: the real daemon with
//! simulated printers on their real transports (Marlin on pseudo-terminals, a generic MQTT
//! printer on a real mosquitto). Jobs are auto-dispatched to the printer whose material
//! fits, wait for a cleared bed, fail and come back, are flagged after too many failures,
//! survive a SIGKILL of the daemon when the printer prints by itself (or finish while it is
//! down, as the MQTT printer reports afterwards), and never stay
//! PRINTING longer than the grace period after their printer vanished.

#[path = "../drivers/tests/common/broker.rs"]
mod broker;
mod common;

use std::time::{Duration, Instant};

use broker::Broker;
use common::*;
use drivers::marlin::sim::{MarlinSim, SimHandle, SimOptions};
use drivers::mqtt::sim::{MqttSim, MqttSimHandle, MqttSimOptions};
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const GUNWALE: &str = "gcode/3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode";
const CUBE: &str = "gcode/20mm-xyz-cube.stl_cura413-ender3-0.20.gcode";

fn marlin(time_scale: f64) -> SimHandle {
    MarlinSim::spawn(SimOptions {
        time_scale,
        keep_log: true,
        ..Default::default()
    })
    .expect("start a simulated Marlin printer")
}

fn mqtt(broker: &Broker, topic: &str, time_scale: f64) -> MqttSimHandle {
    MqttSim::spawn(MqttSimOptions {
        time_scale,
        report_every: Duration::from_millis(200),
        ..MqttSimOptions::new(broker.url(), topic)
    })
    .expect("start a simulated MQTT printer")
}

fn marlin_printer(id: &str, sim: &SimHandle, extra: &str) -> String {
    format!(
        "[[printers]]\nid = \"{id}\"\ndriver = \"marlin\"\nport = \"{}\"\nbuild_volume_mm = [250, 210, 210]\n{extra}\n",
        sim.port_path().display()
    )
}

fn mqtt_printer(id: &str, broker: &Broker, topic: &str, extra: &str) -> String {
    format!(
        "[[printers]]\nid = \"{id}\"\ndriver = \"mqtt\"\nbroker = \"{}\"\ntopic = \"{topic}\"\nbuild_volume_mm = [250, 210, 210]\n{extra}\n",
        broker.url()
    )
}

/// A G-code job from the corpus in `material`, approved and confirmed: READYTOPRINT.
async fn ready_job(farm: &TestFarm, file: &str, material: &str, email: &str) -> String {
    let gcode = std::fs::read(corpus(file)).expect("corpus G-code");
    let form = Form::new()
        .text("student_name", "Sched Uler")
        .text("student_email", email.to_string())
        .text("material", material.to_string())
        .text("color", "Red")
        .text("acknowledged_minimum_charge", "true")
        .part("file", Part::bytes(gcode).file_name("part.gcode"));
    let (status, job) = farm.submit_form(form).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 2 }))
        .await;
    assert_eq!(status, 200, "{body}");
    farm.confirm_by_mail(&id).await;
    id
}

/// Polls the job until `check` holds, failing with the job after `timeout`.
async fn wait_job(
    farm: &TestFarm,
    id: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let job = farm.job(id).await;
        if check(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id}: {what} did not happen within {timeout:?}: {job}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_status(farm: &TestFarm, id: &str, want: &str, timeout: Duration) -> Value {
    wait_job(farm, id, &format!("status {want}"), timeout, |j| {
        j["status"] == want
    })
    .await
}

async fn printer(farm: &TestFarm, id: &str) -> Value {
    let (_, printers) = farm.get("/api/v1/printers").await;
    printers
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == id).cloned())
        .expect("printer listed")
}

async fn wait_printer(farm: &TestFarm, id: &str, state: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let p = printer(farm, id).await;
        if p["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "printer {id} never became {state}: {p}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn clear(farm: &TestFarm, printer: &str) {
    let (status, body) = farm
        .post(
            &format!("/api/v1/printers/{printer}/clear"),
            json!({ "staff": GRACE }),
            STAFF_TOKEN,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn event(farm: &TestFarm, id: &str, event_type: &str) -> Value {
    farm.events(id)
        .await
        .into_iter()
        .rev()
        .find(|e| e["event_type"] == event_type)
        .unwrap_or_else(|| panic!("job {id} has no {event_type} event"))
}

/// Holds for `period`: the job is READYTOPRINT throughout (the scheduler left it alone).
async fn stays_ready(farm: &TestFarm, id: &str, period: Duration) -> Value {
    let until = Instant::now() + period;
    loop {
        let job = farm.job(id).await;
        assert_eq!(job["status"], "READYTOPRINT", "{job}");
        if Instant::now() >= until {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_go_to_the_printer_with_their_material_and_wait_for_a_cleared_bed() {
    let pla = marlin(0.0);
    let petg = marlin(0.0);
    let printers = format!(
        "{}{}[dispatch]\ntick_ms = 200\n",
        marlin_printer(
            "pla-1",
            &pla,
            "materials = [\"PLA\"]\nloaded_material = \"PLA\"\nauto_dispatch = true"
        ),
        marlin_printer(
            "petg-1",
            &petg,
            "materials = [\"PETG\"]\nloaded_material = \"PETG\"\nauto_dispatch = true"
        ),
    );
    let farm = TestFarm::start_custom(&[], &printers).await;
    wait_printer(&farm, "pla-1", "idle", Duration::from_secs(20)).await;
    wait_printer(&farm, "petg-1", "idle", Duration::from_secs(20)).await;

    // Submitted PETG first and PLA second: each lands on its own printer, by itself.
    let petg_job = ready_job(&farm, GUNWALE, "PETG", "p@example.edu").await;
    let pla_job = ready_job(&farm, GUNWALE, "PLA", "q@example.edu").await;
    for (job, printer) in [(&petg_job, "petg-1"), (&pla_job, "pla-1")] {
        let done = wait_status(&farm, job, "COMPLETED", Duration::from_secs(60)).await;
        assert_eq!(done["printer"], printer, "{done}");
        let started = event(&farm, job, "PrintStarted").await;
        assert_eq!(started["triggered_by"], "system:scheduler");
        assert_eq!(
            event(&farm, job, "PrintCompleted").await["triggered_by"],
            "system:tracker"
        );
    }

    // Both beds need clearing: the next PLA job waits, saying why, and is not started.
    wait_printer(&farm, "pla-1", "needs_clearing", Duration::from_secs(5)).await;
    let next = ready_job(&farm, GUNWALE, "PLA", "r@example.edu").await;
    let held = wait_job(&farm, &next, "a hold", Duration::from_secs(10), |j| {
        j["waits"].is_string()
    })
    .await;
    let waits = held["waits"].as_str().unwrap_or("");
    assert!(waits.contains("pla-1 needs clearing"), "{waits}");
    stays_ready(&farm, &next, Duration::from_secs(2)).await;
    let (_, queue) = farm.get("/api/v1/queue").await;
    assert_eq!(queue["queue"][0]["id"], next.as_str(), "{queue}");
    assert_eq!(queue["queue"][0]["waits"], waits, "{queue}");

    // Clearing the PETG bed does not help a PLA job; clearing the PLA bed does.
    clear(&farm, "petg-1").await;
    stays_ready(&farm, &next, Duration::from_secs(1)).await;
    clear(&farm, "pla-1").await;
    let done = wait_status(&farm, &next, "COMPLETED", Duration::from_secs(60)).await;
    assert_eq!(done["printer"], "pla-1");
    assert_eq!(done["waits"], Value::Null, "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_print_comes_back_is_flagged_and_a_second_dispatch_completes() {
    let broker = Broker::start();
    let topic = "farmhand/test/fail-1";
    let sim = mqtt(&broker, topic, 0.02);
    let printers = format!(
        "{}[dispatch]\ntick_ms = 200\nmax_failures = 1\n",
        mqtt_printer(
            "mqtt-1",
            &broker,
            topic,
            "materials = [\"PLA\"]\nloaded_material = \"PLA\"\nauto_dispatch = true"
        ),
    );
    let farm = TestFarm::start_custom(&[], &printers).await;
    wait_printer(&farm, "mqtt-1", "idle", Duration::from_secs(20)).await;
    let id = ready_job(&farm, GUNWALE, "PLA", "f@example.edu").await;
    wait_job(&farm, &id, "progress", Duration::from_secs(30), |j| {
        j["status"] == "PRINTING" && j["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;

    sim.fail("Filament runout detected");
    let job = wait_status(&farm, &id, "READYTOPRINT", Duration::from_secs(20)).await;
    assert_eq!(job["attempts"], 1);
    let flag = job["needs_staff"].as_str().unwrap_or("");
    assert!(flag.contains("failed 1 times"), "{job}");
    let failed = event(&farm, &id, "PrintFailed").await;
    let reason = failed["details"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("Filament runout"), "{failed}");
    assert_eq!(failed["details"]["cause"], "printer");
    assert_eq!(failed["details"]["needs_staff"], true);

    // The printer is fixed and its bed cleared; the flagged job is not auto-dispatched…
    sim.clear();
    wait_printer(&farm, "mqtt-1", "needs_clearing", Duration::from_secs(5)).await;
    clear(&farm, "mqtt-1").await;
    wait_printer(&farm, "mqtt-1", "idle", Duration::from_secs(10)).await;
    let held = stays_ready(&farm, &id, Duration::from_secs(2)).await;
    assert!(
        held["waits"].as_str().unwrap_or("").contains("needs staff"),
        "{held}"
    );
    // …until staff dispatch it by hand (no printer named: the best free one).
    let (status, body) = farm.act(&id, "dispatch", json!({ "staff": ADA })).await;
    assert_eq!(
        (status, body["printer"].as_str()),
        (200, Some("mqtt-1")),
        "{body}"
    );
    assert_eq!(body["needs_staff"], Value::Null, "{body}");
    let done = wait_status(&farm, &id, "COMPLETED", Duration::from_secs(60)).await;
    assert_eq!(done["attempts"], 1);
}

/// Reads `event:`/`data:` pairs from an SSE response into a channel.
fn read_events(
    response: reqwest::Response,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut kind = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = k.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                if !kind.is_empty() {
                    let value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    if tx.send((kind, value)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    what: &str,
    check: impl Fn(&str, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((kind, value))) if check(&kind, &value) => return value,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended before {what}"),
            Err(_) => panic!("no {what} on the stream within 60 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_stream_carries_job_and_printer_changes_throttled_per_printer() {
    let sim = marlin(0.02);
    let printers = format!(
        "{}[dispatch]\ntick_ms = 200\nstream_keepalive_s = 1\n",
        marlin_printer("sim-1", &sim, "materials = [\"PLA\"]")
    );
    let farm = TestFarm::start_custom(&[], &printers).await;
    let url = format!("{}/api/v1/stream", farm.url);
    let refused = farm.http.get(&url).send().await.expect("get");
    assert_eq!(refused.status(), 401);
    let response = farm
        .http
        .get(&url)
        .bearer_auth(STAFF_TOKEN)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut rx = read_events(response);
    // First the state of every printer.
    next_event(&mut rx, "the snapshot of manual-1", |k, v| {
        k == "printer" && v["id"] == "manual-1"
    })
    .await;
    next_event(&mut rx, "sim-1 idle", |k, v| {
        k == "printer" && v["id"] == "sim-1" && v["state"] == "idle"
    })
    .await;

    let id = ready_job(&farm, GUNWALE, "PLA", "live@example.edu").await;
    next_event(&mut rx, "the job READYTOPRINT", |k, v| {
        k == "job" && v["id"] == id.as_str() && v["status"] == "READYTOPRINT"
    })
    .await;
    let (status, body) = farm
        .act(&id, "dispatch", json!({ "staff": ADA, "printer": "sim-1" }))
        .await;
    assert_eq!(status, 200, "{body}");
    next_event(&mut rx, "the job PRINTING", |k, v| {
        k == "job" && v["id"] == id.as_str() && v["status"] == "PRINTING"
    })
    .await;

    // Count sim-1's events while the print runs: the driver's status changes with every
    // line acknowledged, but the stream carries at most 2 a second (plus state changes).
    let start = Instant::now();
    let mut printer_events = 0u32;
    let mut progress_seen = false;
    loop {
        let (kind, value) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("events keep coming")
            .expect("stream open");
        if kind == "printer" && value["id"] == "sim-1" {
            printer_events += 1;
        }
        if kind == "job" && value["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0 {
            progress_seen = true;
        }
        if kind == "job" && value["id"] == id.as_str() && value["status"] == "COMPLETED" {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("{printer_events} printer events for sim-1 in {seconds:.1} s of printing");
    assert!(progress_seen, "progress reached the stream");
    assert!(printer_events >= 2, "{printer_events} printer events");
    // The driver publishes every 250 ms while printing (4/s, more with temperature reports);
    // the stream may carry 2/s plus each change of state and the workflow's own announcements
    // (dispatch, completion).
    assert!(
        f64::from(printer_events) <= 2.0 * seconds + 6.0,
        "{printer_events} printer events in {seconds:.1} s"
    );
    next_event(&mut rx, "sim-1 needs clearing", |k, v| {
        k == "printer" && v["id"] == "sim-1" && v["state"] == "needs_clearing"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_mqtt_and_sd_prints_are_tracked_to_completion_and_streamed_ones_return() {
    let broker = Broker::start();
    let topic = "farmhand/test/restart-1";
    let mqtt_sim = mqtt(&broker, topic, 0.03);
    let quick_topic = "farmhand/test/restart-2";
    let quick_sim = mqtt(&broker, quick_topic, 0.01);
    let sd_sim = marlin(0.01);
    let streamed_sim = marlin(0.05);
    let printers = format!(
        "{}{}{}{}",
        mqtt_printer("mqtt-1", &broker, topic, "materials = [\"PLA\"]"),
        mqtt_printer("mqtt-2", &broker, quick_topic, "materials = [\"PLA\"]"),
        marlin_printer("sd-1", &sd_sim, "materials = [\"PLA\"]\nsd_card = true"),
        marlin_printer("serial-1", &streamed_sim, "materials = [\"PLA\"]"),
    );
    let mut farm = TestFarm::start_custom(&[], &printers).await;
    for p in ["mqtt-1", "mqtt-2", "sd-1", "serial-1"] {
        wait_printer(&farm, p, "idle", Duration::from_secs(20)).await;
    }
    let on_mqtt = ready_job(&farm, GUNWALE, "PLA", "m@example.edu").await;
    let on_sd = ready_job(&farm, CUBE, "PLA", "s@example.edu").await;
    let streamed = ready_job(&farm, GUNWALE, "PLA", "t@example.edu").await;
    let finishes_unseen = ready_job(&farm, GUNWALE, "PLA", "v@example.edu").await;
    for (job, printer) in [
        (&on_mqtt, "mqtt-1"),
        (&on_sd, "sd-1"),
        (&streamed, "serial-1"),
    ] {
        let (status, body) = farm
            .act(job, "dispatch", json!({ "staff": ADA, "printer": printer }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    wait_job(&farm, &on_mqtt, "progress", Duration::from_secs(30), |j| {
        j["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    // The SD print has begun once the firmware accepted M24 (the upload is over).
    wait_for("the SD print to start", Duration::from_secs(30), || {
        sd_started(&sd_sim, 1).then_some(())
    })
    .await;

    // A quick print that will end while the daemon is down.
    let (status, body) = farm
        .act(
            &finishes_unseen,
            "dispatch",
            json!({ "staff": ADA, "printer": "mqtt-2" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_job(
        &farm,
        &finishes_unseen,
        "progress",
        Duration::from_secs(30),
        |j| j["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0,
    )
    .await;

    farm.kill();
    let quick_status = quick_sim.status();
    wait_for(
        "the quick print to end unseen",
        Duration::from_secs(30),
        || quick_status.borrow().last_job.is_some().then_some(()),
    )
    .await;
    farm.restart();
    let done = wait_status(
        &farm,
        &finishes_unseen,
        "COMPLETED",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["attempts"], 0, "{done}");
    let back = wait_status(&farm, &streamed, "READYTOPRINT", Duration::from_secs(10)).await;
    assert_eq!(back["attempts"], 1);
    for job in [&on_mqtt, &on_sd] {
        let status = farm.job(job).await["status"].clone();
        assert!(
            status == "PRINTING" || status == "COMPLETED",
            "{job}: {status}"
        );
    }
    for job in [&on_mqtt, &on_sd] {
        let done = wait_status(&farm, job, "COMPLETED", Duration::from_secs(90)).await;
        assert_eq!(done["attempts"], 0, "{done}");
        let completed = event(&farm, job, "PrintCompleted").await;
        assert_eq!(completed["triggered_by"], "system:tracker");
    }
    drop(mqtt_sim);
    drop(quick_sim);
}

/// Whether the simulated firmware has accepted `M24` (start the SD print) `n` times.
fn sd_started(sim: &SimHandle, n: usize) -> bool {
    sim.stats().log.is_some_and(|log| {
        log.iter()
            .filter(|l| l.split_whitespace().next() == Some("M24"))
            .count()
            >= n
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn no_job_stays_printing_longer_than_the_grace_period_after_its_printer_vanished() {
    const GRACE_S: u64 = 3;
    let broker = Broker::start();
    let topic = "farmhand/test/vanish-1";
    let mqtt_sim = mqtt(&broker, topic, 0.05);
    let sd_sim = marlin(0.02);
    let printers = format!(
        "{}{}[dispatch]\nlink_grace_s = {GRACE_S}\n",
        mqtt_printer("mqtt-1", &broker, topic, "materials = [\"PLA\"]"),
        marlin_printer("sd-1", &sd_sim, "materials = [\"PLA\"]\nsd_card = true"),
    );
    let mut farm = TestFarm::start_custom(&[], &printers).await;
    wait_printer(&farm, "mqtt-1", "idle", Duration::from_secs(20)).await;
    wait_printer(&farm, "sd-1", "idle", Duration::from_secs(20)).await;

    // A power cut on the MQTT printer mid-print: offline, then failed after the grace period.
    let on_mqtt = ready_job(&farm, GUNWALE, "PLA", "m@example.edu").await;
    let (status, body) = farm
        .act(
            &on_mqtt,
            "dispatch",
            json!({ "staff": ADA, "printer": "mqtt-1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_job(&farm, &on_mqtt, "progress", Duration::from_secs(30), |j| {
        j["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    mqtt_sim.power_loss();
    wait_printer(&farm, "mqtt-1", "offline", Duration::from_secs(15)).await;
    let offline = Instant::now();
    let back = wait_status(
        &farm,
        &on_mqtt,
        "READYTOPRINT",
        Duration::from_secs(GRACE_S + 10),
    )
    .await;
    let took = offline.elapsed();
    eprintln!("mqtt-1 offline → job READYTOPRINT after {took:?} (grace {GRACE_S} s)");
    assert_eq!(back["attempts"], 1);
    let failed = event(&farm, &on_mqtt, "PrintFailed").await;
    let reason = failed["details"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("lost the link to printer mqtt-1"),
        "{reason}"
    );
    // Not before the grace period (the offline state was seen up to a poll late).
    assert!(
        took >= Duration::from_millis(GRACE_S * 1000 - 500),
        "failed {took:?} after going offline: before the grace period"
    );
    assert_eq!(printer(&farm, "mqtt-1").await["state"], "offline");

    // An SD print the daemon would re-attach to, but the printer is gone when it restarts.
    let on_sd = ready_job(&farm, CUBE, "PLA", "s@example.edu").await;
    let (status, body) = farm
        .act(
            &on_sd,
            "dispatch",
            json!({ "staff": ADA, "printer": "sd-1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for("the SD print to start", Duration::from_secs(30), || {
        sd_started(&sd_sim, 1).then_some(())
    })
    .await;
    farm.kill();
    drop(sd_sim);
    let restarted = Instant::now();
    farm.restart();
    let back = wait_status(
        &farm,
        &on_sd,
        "READYTOPRINT",
        Duration::from_secs(GRACE_S + 10),
    )
    .await;
    let took = restarted.elapsed();
    eprintln!("restart without sd-1 → job READYTOPRINT after {took:?} (grace {GRACE_S} s)");
    assert_eq!(back["attempts"], 1);
    assert!(
        took <= Duration::from_secs(GRACE_S + 8),
        "still PRINTING {took:?} after the restart"
    );
    let failed = event(&farm, &on_sd, "PrintFailed").await;
    assert_eq!(failed["triggered_by"], "system:tracker", "{failed}");
}
