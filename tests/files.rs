//! `POST /api/v1/jobs/{id}/files`: staff add a file version (the G-code they sliced,
//! a repaired model). Earlier versions stay; the change is audited like any other.

mod common;

use std::time::Duration;

use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Posts `bytes` as a new version of `job`, signed by `staff` (None: no staff field).
async fn add_file(
    farm: &TestFarm,
    job: &str,
    filename: &str,
    bytes: Vec<u8>,
    staff: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(filename.to_string()));
    if let Some(staff) = staff {
        form = form.text("staff", staff.to_string());
    }
    let mut request = farm
        .http
        .post(format!("{}/api/v1/jobs/{job}/files", farm.url))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("post file");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn staff_add_sliced_gcode_and_repaired_models_as_new_versions() {
    let farm = TestFarm::start().await;
    let model = std::fs::read(corpus("models/20mm-xyz-cube.stl")).expect("cube");
    let (status, job) = farm
        .submit("cube.stl", model.clone(), "Ada Student", "ada@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    farm.analysed(&id, Duration::from_secs(60)).await;

    // Refusals first: no token, no staff name, an executable, an unknown job.
    let gcode = std::fs::read(corpus("gcode/20mm-xyz-cube.stl_prusa25-mk3s-0.20.gcode"))
        .expect("corpus G-code");
    // (A small body: the token is checked before the body is read, and a client still
    // sending a large one would see the connection close under it.)
    let (status, body) = add_file(&farm, &id, "cube.gcode", tiny_stl(1), Some(ADA), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = add_file(
        &farm,
        &id,
        "cube.gcode",
        gcode.clone(),
        None,
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "missing_staff"), "{body}");
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    pe.resize(4096, 0);
    let (status, body) = add_file(&farm, &id, "cube.gcode", pe, Some(ADA), Some(STAFF_TOKEN)).await;
    assert_eq!((status, code(&body)), (415, "not_a_model"), "{body}");
    let (status, body) = add_file(
        &farm,
        "999",
        "cube.gcode",
        gcode.clone(),
        Some(ADA),
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // The G-code Ada sliced: version 2, the printers' G-code, its estimate kept beside
    // the model's analysis; the model stays the current file.
    let (status, job) = add_file(
        &farm,
        &id,
        "cube.gcode",
        gcode.clone(),
        Some(ADA),
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["format"], "stl");
    assert_eq!(job["file_hash"], hex::encode(Sha256::digest(&model)));
    let seconds = job["analysis"]["sliced"]["estimated_time_s"]
        .as_f64()
        .expect("sliced estimate");
    assert!((seconds - 1877.0).abs() / 1877.0 < 0.05, "{seconds}");
    let (status, served) = farm
        .download(&format!("/api/v1/jobs/{id}/files/gcode"))
        .await;
    assert_eq!((status, served == gcode), (200, true));
    let (_, versions) = farm.get(&format!("/api/v1/jobs/{id}/files/versions")).await;
    let list = versions["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(
        versions["current"], 1,
        "the model stays current: {versions}"
    );
    assert_eq!(list[1]["added_by"], ADA);
    assert_eq!(list[1]["format"], "gcode");
    let added = farm
        .events(&id)
        .await
        .into_iter()
        .rfind(|e| e["event_type"] == "FileAdded")
        .expect("FileAdded");
    assert_eq!(
        (&added["triggered_by"], &added["workstation_id"]),
        (&json!(ADA), &json!("kiosk-1"))
    );
    assert_eq!(
        added["details"]["sha256"],
        hex::encode(Sha256::digest(&gcode))
    );

    // A repaired model becomes the current file: analysed again, old G-code dropped.
    let repaired = tiny_stl(7);
    let (status, job) = add_file(
        &farm,
        &id,
        "cube-fixed.stl",
        repaired.clone(),
        Some(GRACE),
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["file_hash"], hex::encode(Sha256::digest(&repaired)));
    assert_eq!(job["original_filename"], "cube-fixed.stl");
    let (status, _) = farm
        .download(&format!("/api/v1/jobs/{id}/files/gcode"))
        .await;
    assert_eq!(
        status, 404,
        "the old model's G-code must not stay the job's G-code"
    );
    let analysed = farm.analysed(&id, Duration::from_secs(60)).await;
    assert_eq!(analysed["analysis"]["state"], "done", "{analysed}");
    let (status, original) = farm
        .download(&format!("/api/v1/jobs/{id}/files/original"))
        .await;
    assert_eq!((status, original == repaired), (200, true));
    let (_, versions) = farm.get(&format!("/api/v1/jobs/{id}/files/versions")).await;
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        versions["current"], 3,
        "the repaired model is current: {versions}"
    );

    // Another staff member's lock is respected.
    let (status, _) = farm.act(&id, "lock", json!({ "staff": ADA })).await;
    assert_eq!(status, 200);
    let (status, body) = add_file(
        &farm,
        &id,
        "again.gcode",
        gcode.clone(),
        Some(GRACE),
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    farm.act(&id, "unlock", json!({ "staff": ADA })).await;

    // Once it prints, the file is what the job is: 409 naming the status.
    let (status, body) = farm
        .act(
            &id,
            "approve",
            json!({ "staff": ADA, "material": "PLA", "color": "Red", "weight_g": 10.0, "time_hours": 0.5 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    farm.confirm_by_mail(&id).await;
    let (status, body) = farm
        .act(
            &id,
            "dispatch",
            json!({ "staff": ADA, "printer": "manual-1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_file(
        &farm,
        &id,
        "late.gcode",
        gcode,
        Some(ADA),
        Some(STAFF_TOKEN),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("PRINTING"),
        "{body}"
    );
}
