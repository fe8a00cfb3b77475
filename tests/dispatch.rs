//! Dispatch to connected printers: simulated Marlin printers on real pseudo-terminals,
//! driven by the daemon through the real serial driver. A job is tracked to COMPLETED;
//! a firmware halt sends it back to READYTOPRINT with the firmware's words; the bed
//! must be cleared before the next print; a model without G-code is refused; a daemon
//! killed mid-stream does not leave the job PRINTING.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drivers::marlin::sim::{MarlinSim, SimHandle, SimOptions};
use serde_json::{Value, json};

fn simulator(time_scale: f64) -> SimHandle {
    MarlinSim::spawn(SimOptions {
        time_scale,
        ..Default::default()
    })
    .expect("start a simulated Marlin printer")
}

fn printer_config(id: &str, sim: &SimHandle) -> String {
    format!(
        "[[printers]]\nid = \"{id}\"\ndriver = \"marlin\"\nport = \"{}\"\nbuild_volume_mm = [250, 210, 210]\nmaterials = [\"PLA\"]\n",
        sim.port_path().display()
    )
}

/// A G-code job, approved and confirmed: READYTOPRINT.
async fn ready_gcode_job(farm: &TestFarm, email: &str) -> String {
    let gcode = std::fs::read(corpus(
        "gcode/3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode",
    ))
    .expect("gcode");
    let (status, job) = farm
        .submit("gunwale.gcode", gcode, "Dis Patch", email)
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    farm.confirm_by_mail(&id).await;
    id
}

async fn wait_for_status(farm: &TestFarm, id: &str, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let job = farm.job(id).await;
        if job["status"] == want {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never reached {want}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn printer(farm: &TestFarm, id: &str) -> Value {
    let (_, printers) = farm.get("/api/v1/printers").await;
    printers
        .as_array()
        .and_then(|list| list.iter().find(|p| p["id"] == id).cloned())
        .expect("printer listed")
}

async fn wait_until_idle(farm: &TestFarm, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while printer(farm, id).await["state"] != "idle" {
        assert!(
            Instant::now() < deadline,
            "printer {id} never became idle: {}",
            printer(farm, id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_print_is_tracked_to_completion_and_the_bed_must_be_cleared() {
    let sim = simulator(0.0);
    let farm = TestFarm::start_custom(&[], &printer_config("sim-1", &sim)).await;
    wait_until_idle(&farm, "sim-1").await;
    let first = ready_gcode_job(&farm, "a@example.edu").await;
    let second = ready_gcode_job(&farm, "b@example.edu").await;

    let (status, job) = farm
        .act(
            &first,
            "dispatch",
            json!({ "staff": GRACE, "printer": "sim-1" }),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    let done = wait_for_status(&farm, &first, "COMPLETED", Duration::from_secs(60)).await;
    assert_eq!(done["printer"], "sim-1");
    let events = farm.events(&first).await;
    let completed = events
        .iter()
        .find(|e| e["event_type"] == "PrintCompleted")
        .expect("PrintCompleted");
    assert_eq!(completed["triggered_by"], "system:tracker");
    // Every command of the file reached the firmware exactly once.
    assert!(
        sim.stats().accepted > 1000,
        "{} commands accepted",
        sim.stats().accepted
    );
    assert_eq!(sim.stats().line_errors, 0);

    // The bed needs clearing: the next job waits until staff say it is clear.
    assert_eq!(printer(&farm, "sim-1").await["state"], "needs_clearing");
    let (status, body) = farm
        .act(
            &second,
            "dispatch",
            json!({ "staff": GRACE, "printer": "sim-1" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("printer_busy")),
        "{body}"
    );
    let (status, _) = farm
        .post(
            "/api/v1/printers/sim-1/clear",
            json!({ "staff": GRACE }),
            STAFF_TOKEN,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = farm
        .act(
            &second,
            "dispatch",
            json!({ "staff": GRACE, "printer": "sim-1" }),
        )
        .await;
    assert_eq!(
        (status, body["printer"].as_str()),
        (200, Some("sim-1")),
        "{body}"
    );
    wait_for_status(&farm, &second, "COMPLETED", Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firmware_halt_sends_the_job_back_with_the_firmware_message() {
    let sim = simulator(0.02);
    let farm = TestFarm::start_custom(&[], &printer_config("sim-1", &sim)).await;
    wait_until_idle(&farm, "sim-1").await;
    let id = ready_gcode_job(&farm, "a@example.edu").await;
    let (status, job) = farm
        .act(&id, "dispatch", json!({ "staff": ADA, "printer": "sim-1" }))
        .await;
    assert_eq!(status, 200, "{job}");
    // Progress arrives on the job while it prints.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = farm.job(&id).await;
        if job["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress reported: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.halt("Thermal Runaway, system stopped! Heater_ID: 0");
    let job = wait_for_status(&farm, &id, "READYTOPRINT", Duration::from_secs(20)).await;
    assert_eq!(job["attempts"], 1);
    let failed = farm
        .events(&id)
        .await
        .into_iter()
        .find(|e| e["event_type"] == "PrintFailed")
        .expect("PrintFailed");
    let reason = failed["details"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("Thermal Runaway"), "{reason}");
    assert_eq!(failed["details"]["cause"], "printer");
}

#[tokio::test(flavor = "multi_thread")]
async fn models_without_gcode_are_refused_and_a_killed_daemon_leaves_no_job_printing() {
    let sim = simulator(0.05);
    let mut farm = TestFarm::start_custom(&[], &printer_config("sim-1", &sim)).await;
    wait_until_idle(&farm, "sim-1").await;

    // An STL cannot go to a G-code printer.
    let (_, stl) = farm
        .submit("cube.stl", tiny_stl(3), "Stu Dent", "s@example.edu")
        .await;
    let stl = stl["id"].as_str().expect("id").to_string();
    farm.act(&stl, "approve", json!({ "staff": ADA, "weight_g": 1 }))
        .await;
    farm.confirm_by_mail(&stl).await;
    let (status, body) = farm
        .act(
            &stl,
            "dispatch",
            json!({ "staff": ADA, "printer": "sim-1" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("needs_gcode")),
        "{body}"
    );

    // A streamed print dies with the daemon: after the restart the job is not PRINTING.
    let id = ready_gcode_job(&farm, "k@example.edu").await;
    let (status, _) = farm
        .act(&id, "dispatch", json!({ "staff": ADA, "printer": "sim-1" }))
        .await;
    assert_eq!(status, 200);
    farm.kill();
    farm.restart();
    let job = farm.job(&id).await;
    assert_eq!(job["status"], "READYTOPRINT", "{job}");
    assert_eq!(job["attempts"], 1);
}
