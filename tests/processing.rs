//! The processing queue: every upload is analysed and gets a preview and thumbnail,
//! durably: a restart mid-processing loses nothing, and a task that keeps failing is
//! marked failed with its error, visible on the job.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

async fn submit_corpus(farm: &TestFarm, relative: &str, email: &str) -> String {
    let bytes = std::fs::read(corpus(relative)).expect("corpus file");
    let name = relative.rsplit('/').next().unwrap_or("model");
    let (status, job) = farm.submit(name, bytes, "Pro Cessing", email).await;
    assert_eq!(status, 201, "{relative}: {job}");
    job["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn models_and_gcode_are_analysed_previewed_and_thumbnailed() {
    let farm = TestFarm::start().await;
    let model = submit_corpus(&farm, "models/bp_case.stl", "a@example.edu").await;
    let gcode = submit_corpus(
        &farm,
        "gcode/20mm-xyz-cube.stl_prusa25-mk3s-0.20.gcode",
        "b@example.edu",
    )
    .await;

    let job = farm.analysed(&model, Duration::from_secs(60)).await;
    let analysis = &job["analysis"];
    assert_eq!(analysis["state"], "done", "{analysis}");
    assert_eq!(analysis["triangles"], 6008);
    assert_eq!(analysis["fits"]["manual-1"], true, "{analysis}");
    assert_eq!(analysis["fits"]["manual-2"], false, "{analysis}");
    let artifacts = wait_for_artifacts(&farm, &model, &["preview.glb", "thumbnail.png"]).await;
    assert_eq!(artifacts["preview.glb"].as_str().map(str::len), Some(64));
    let (status, glb) = farm
        .download(&format!("/api/v1/jobs/{model}/files/preview.glb"))
        .await;
    assert_eq!((status, &glb[..4]), (200, &b"glTF"[..]));
    let (status, png) = farm
        .download(&format!("/api/v1/jobs/{model}/files/thumbnail.png"))
        .await;
    assert_eq!((status, &png[..4]), (200, &b"\x89PNG"[..]));
    let (status, _) = farm
        .download(&format!("/api/v1/jobs/{model}/files/gcode"))
        .await;
    assert_eq!(status, 404, "a model has no G-code until it is sliced");

    let job = farm.analysed(&gcode, Duration::from_secs(60)).await;
    let analysis = &job["analysis"];
    assert_eq!(analysis["layers"], 100, "{analysis}");
    let estimate = analysis["estimated_time_s"].as_f64().expect("estimate");
    assert!(
        (estimate - 1877.0).abs() / 1877.0 < 0.05,
        "{estimate} s vs PrusaSlicer's 31m 17s"
    );
    let (status, bytes) = farm
        .download(&format!("/api/v1/jobs/{gcode}/files/gcode"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        bytes.len() as u64,
        job["size_bytes"].as_u64().expect("size")
    );

    // Approval takes its estimates from the analysis when staff give none.
    let (status, approved) = farm
        .act(&gcode, "approve", serde_json::json!({ "staff": ADA }))
        .await;
    assert_eq!(status, 200, "{approved}");
    let grams = analysis["filament_g"].as_f64().expect("grams");
    assert_eq!(approved["weight_g"].as_f64(), Some(grams));
    assert!((approved["time_hours"].as_f64().expect("hours") - estimate / 3600.0).abs() < 1e-9);
}

async fn wait_for_artifacts(farm: &TestFarm, id: &str, names: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = farm.job(id).await;
        if names.iter().all(|n| job["artifacts"][n].is_string()) {
            return job["artifacts"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "artifacts {names:?} of job {id} never appeared: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_in_the_middle_of_processing_loses_no_task() {
    let mut farm = TestFarm::start_with(&[("FARMHAND_PROCESSING__WORKERS", "1")]).await;
    let ids = [
        submit_corpus(&farm, "models/3DBenchy.3mf", "a@example.edu").await,
        submit_corpus(&farm, "models/extruder_idler.obj", "b@example.edu").await,
        submit_corpus(&farm, "models/ADIS16480.stl", "c@example.edu").await,
    ];
    // Killed while the first (slowest) model is still being worked on.
    farm.kill();
    farm.restart();
    for id in &ids {
        let job = farm.analysed(id, Duration::from_secs(90)).await;
        assert_eq!(
            job["analysis"]["state"], "done",
            "job {id}: {}",
            job["analysis"]
        );
        wait_for_artifacts(&farm, id, &["preview.glb", "thumbnail.png"]).await;
        let (_, tasks) = farm.get(&format!("/api/v1/jobs/{id}/tasks")).await;
        assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(0), "{tasks}");
    }
    // The model in metres is recognised as such.
    let adis = farm.job(&ids[2]).await;
    assert!(
        adis["analysis"]["units_guess"].is_string(),
        "{}",
        adis["analysis"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_fails_three_times_is_marked_failed_with_its_error() {
    let farm = TestFarm::start().await;
    let broken = b"solid broken\nfacet normal 0 0 1\n outer loop\n vertex 1 2\nendsolid\n".to_vec();
    let (status, job) = farm
        .submit("broken.stl", broken, "Bro Ken", "bk@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let job = farm.analysed(&id, Duration::from_secs(30)).await;
    let analysis = &job["analysis"];
    assert_eq!(analysis["state"], "failed", "{analysis}");
    let error = analysis["error"].as_str().unwrap_or("");
    assert!(!error.is_empty(), "the failure says why: {analysis}");
    let (_, tasks) = farm.get(&format!("/api/v1/jobs/{id}/tasks")).await;
    let analyze = tasks["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "analyze").cloned())
        .expect("the failed analysis task is kept");
    assert_eq!(analyze["state"], "failed");
    assert_eq!(analyze["attempts"], 3);
    assert_eq!(analyze["last_error"].as_str(), Some(error));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_is_sliced_into_a_new_file_version_when_a_printer_has_a_profile() {
    let profile = corpus("slicer-configs/prusa25_mk3s_0.20mm_quality_prusament_pla.ini");
    let printer = format!(
        "[[printers]]\nid = \"mk3s\"\ndriver = \"manual\"\nbuild_volume_mm = [250, 210, 210]\nslicer_profile = \"{}\"\n",
        profile.display()
    );
    let farm = TestFarm::start_custom(&[], &printer).await;
    let id = submit_corpus(&farm, "models/20mm-xyz-cube.stl", "slice@example.edu").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = farm.job(&id).await;
        if job["artifacts"]["gcode"].is_string() && job["analysis"]["state"] == "done" {
            break job;
        }
        let (_, tasks) = farm.get(&format!("/api/v1/jobs/{id}/tasks")).await;
        let failed = tasks["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["state"] == "failed");
        assert!(
            !failed && std::time::Instant::now() < deadline,
            "never sliced: {job}\n{tasks}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The sliced G-code is version 2; the model stays the current file.
    let (_, versions) = farm.get(&format!("/api/v1/jobs/{id}/files/versions")).await;
    let list = versions["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(
        (list[1]["format"].as_str(), list[1]["filename"].as_str()),
        (Some("gcode"), Some("20mm-xyz-cube.gcode"))
    );
    assert_eq!(job["format"], "stl");
    let (status, gcode) = farm
        .download(&format!("/api/v1/jobs/{id}/files/gcode"))
        .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&gcode[..2000.min(gcode.len())]).contains("PrusaSlicer"));
    // Its analysis is kept beside the model's, and approval uses it: the slicer's own
    // estimate for this cube and profile is 31m 17s and 3.94 g.
    let sliced = &job["analysis"]["sliced"];
    let seconds = sliced["estimated_time_s"].as_f64().expect("time");
    assert!((seconds - 1877.0).abs() / 1877.0 < 0.05, "{seconds}");
    let events = farm.events(&id).await;
    let added = events
        .iter()
        .find(|e| e["event_type"] == "FileAdded")
        .expect("FileAdded");
    assert_eq!(added["triggered_by"], "system:slicer");
    let (status, approved) = farm
        .act(&id, "approve", serde_json::json!({ "staff": ADA }))
        .await;
    assert_eq!(status, 200, "{approved}");
    assert!(
        (approved["weight_g"].as_f64().expect("grams") - 3.94).abs() < 0.3,
        "{approved}"
    );
}
