//! Everything the API must refuse, and how: auth, sizes, non-models, bad fields,
//! duplicates, inactive staff, illegal transitions from every status, lock conflicts.

mod common;

use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// Form fields, and the status and error code they must get.
type FormCase = (&'static [(&'static str, &'static str)], u16, &'static str);

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_endpoints_need_a_valid_token() {
    let farm = TestFarm::start().await;
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/1",
        "/api/v1/printers",
        "/api/v1/staff",
        "/api/v1/events",
    ] {
        let response = farm
            .http
            .get(format!("{}{path}", farm.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(code(&body), "missing_token", "{path}");
        let wrong = farm
            .http
            .get(format!("{}{path}", farm.url))
            .bearer_auth("test-kiosk-token-0002")
            .send()
            .await
            .expect("get");
        assert_eq!(wrong.status(), 401, "{path}");
    }
    let (status, body) = farm
        .post(
            "/api/v1/jobs/1/approve",
            json!({ "staff": ADA }),
            "nope-nope-nope",
        )
        .await;
    assert_eq!((status, code(&body)), (401, "invalid_token"));
    // Staff may not manage the staff list; admins may.
    let (status, body) = farm
        .post("/api/v1/staff", json!({ "name": "Mallory" }), STAFF_TOKEN)
        .await;
    assert_eq!((status, code(&body)), (403, "admin_only"));
    let (status, _) = farm
        .post(
            "/api/v1/staff",
            json!({ "name": "Margaret Hamilton", "staff": ADA }),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_checked_for_size_kind_and_fields() {
    let farm = TestFarm::start().await;
    // 413: max_upload_mb is 5 in the test config.
    let big = vec![b'x'; 6 << 20];
    let (status, body) = farm
        .submit("big.stl", big, "Ada Student", "a@example.edu")
        .await;
    assert_eq!((status, code(&body)), (413, "file_too_large"), "{body}");

    // 415: executables renamed .stl, with what they really are in the message.
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    pe.resize(4096, 0);
    let (status, body) = farm
        .submit("homework.stl", pe, "Ada Student", "a@example.edu")
        .await;
    assert_eq!((status, code(&body)), (415, "not_a_model"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Windows executable"),
        "{body}"
    );
    let elf = std::fs::read(env!("CARGO_BIN_EXE_farmhand")).expect("own binary");
    let (status, body) = farm
        .submit(
            "model.stl",
            elf[..100_000].to_vec(),
            "Ada Student",
            "a@example.edu",
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Linux executable"),
        "{body}"
    );
    let (status, body) = farm
        .submit("empty.stl", vec![], "Ada Student", "a@example.edu")
        .await;
    assert_eq!((status, code(&body)), (415, "not_a_model"));

    // 400: no file, missing required fields; 422: invalid values.
    let form = Form::new()
        .text("student_name", "Ada")
        .text("student_email", "a@example.edu");
    let (status, body) = farm
        .submit_form(form.text("acknowledged_minimum_charge", "true"))
        .await;
    assert_eq!((status, code(&body)), (400, "missing_file"));
    let cases: &[FormCase] = &[
        (
            &[
                ("student_email", "a@example.edu"),
                ("acknowledged_minimum_charge", "true"),
            ],
            400,
            "missing_field",
        ),
        (
            &[
                ("student_name", "Ada"),
                ("acknowledged_minimum_charge", "true"),
            ],
            400,
            "missing_field",
        ),
        (
            &[("student_name", "Ada"), ("student_email", "a@example.edu")],
            400,
            "missing_field",
        ),
        (
            &[
                ("student_name", "Ada"),
                ("student_email", "not an address"),
                ("acknowledged_minimum_charge", "true"),
            ],
            422,
            "invalid_email",
        ),
        (
            &[
                ("student_name", "Ada"),
                ("student_email", "a@example.edu"),
                ("acknowledged_minimum_charge", "false"),
            ],
            422,
            "minimum_charge_not_acknowledged",
        ),
        (
            &[
                ("student_name", "Ada"),
                ("student_email", "a@example.edu"),
                ("acknowledged_minimum_charge", "true"),
                ("material", "Unobtainium"),
            ],
            422,
            "unknown_material",
        ),
        (
            &[
                ("student_name", "Ada"),
                ("student_email", "a@example.edu"),
                ("acknowledged_minimum_charge", "true"),
                ("printer", "nope"),
            ],
            422,
            "unknown_printer",
        ),
    ];
    for (fields, want_status, want_code) in cases {
        let mut form = Form::new().part("file", Part::bytes(tiny_stl(9)).file_name("m.stl"));
        for (k, v) in *fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let (status, body) = farm.submit_form(form).await;
        assert_eq!(
            (status, code(&body)),
            (*want_status, *want_code),
            "{fields:?}: {body}"
        );
    }
    // Not multipart at all.
    let response = farm
        .http
        .post(format!("{}/api/v1/jobs", farm.url))
        .body("hello")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    // Nothing refused was kept: no job, no blob, no temp file.
    let (_, jobs) = farm.get("/api/v1/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0));
    let leftovers = std::fs::read_dir(farm.data_dir().join("tmp"))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0);

    // A hostile file name is made safe.
    let (status, job) = farm
        .submit(
            "../../etc/passwd<script>.stl",
            tiny_stl(10),
            "Ada Student",
            "a@example.edu",
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(job["original_filename"], "passwd_script_.stl");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_follow_the_contract() {
    let farm = TestFarm::start().await;
    let model = std::fs::read(corpus("models/calibrate_size.stl")).expect("model");
    let (status, first) = farm
        .submit("cal.stl", model.clone(), "Ada Student", "ada@example.edu")
        .await;
    assert_eq!(status, 201);
    let first_id = first["id"].as_str().expect("id").to_string();

    // Same file, same student (any case): 200, the same job, nothing stored twice.
    let (status, again) = farm
        .submit(
            "renamed.stl",
            model.clone(),
            "Ada Student",
            "ADA@example.edu",
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["duplicate"].clone(), again["id"].clone()),
        (json!(true), json!(first_id))
    );

    // Same file, someone else: a new job that points at the first.
    let (status, other) = farm
        .submit("cal.stl", model.clone(), "Bob Student", "bob@example.edu")
        .await;
    assert_eq!(status, 201);
    assert_eq!(other["duplicate_of"], first_id.as_str());
    assert_eq!(other["duplicate"], false);
    let blobs = walk(&farm.data_dir().join("blobs"));
    assert_eq!(blobs.len(), 1, "one copy on disk: {blobs:?}");

    // Once the first job is no longer active, the same student may submit it again.
    farm.act(
        &first_id,
        "reject",
        json!({ "staff": ADA, "reasons": ["walls too thin"] }),
    )
    .await;
    let (status, fresh) = farm
        .submit("cal.stl", model, "Ada Student", "ada@example.edu")
        .await;
    assert_eq!(status, 201, "{fresh}");
    assert_ne!(fresh["id"], first_id.as_str());
}

/// Builds one job in each status through the API; returns (status, job id).
async fn one_job_per_status(farm: &TestFarm) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut seed = 100;
    let mut new_job = async |farm: &TestFarm| {
        seed += 1;
        let (_, job) = farm
            .submit(
                "m.stl",
                tiny_stl(seed),
                "Stu Dent",
                &format!("s{seed}@example.edu"),
            )
            .await;
        job["id"].as_str().expect("id").to_string()
    };
    let act = async |id: &str, action: &str, body: Value| {
        let (status, job) = farm.act(id, action, body).await;
        assert_eq!(status, 200, "{action} on {id}: {job}");
    };
    let staff = json!({ "staff": ADA });
    let uploaded = new_job(farm).await;
    out.push(("UPLOADED", uploaded));
    let rejected = new_job(farm).await;
    act(
        &rejected,
        "reject",
        json!({ "staff": ADA, "reasons": ["no"] }),
    )
    .await;
    out.push(("REJECTED", rejected));
    let pending = new_job(farm).await;
    act(&pending, "approve", json!({ "staff": ADA, "weight_g": 10 })).await;
    out.push(("PENDING", pending));
    let mut advanced = Vec::new();
    for _ in 0..5 {
        let id = new_job(farm).await;
        act(&id, "approve", json!({ "staff": ADA, "weight_g": 10 })).await;
        farm.confirm_by_mail(&id).await;
        advanced.push(id);
    }
    out.push(("READYTOPRINT", advanced[0].clone()));
    for (i, id) in advanced[1..].iter().enumerate() {
        act(
            id,
            "dispatch",
            json!({ "staff": ADA, "printer": "manual-1" }),
        )
        .await;
        if i == 0 {
            out.push(("PRINTING", id.clone()));
            break;
        }
    }
    // The printing job keeps manual-1; finish the others on manual-2 after clearing.
    for (i, id) in advanced[2..].iter().enumerate() {
        farm.post(
            "/api/v1/printers/manual-2/clear",
            staff.clone(),
            STAFF_TOKEN,
        )
        .await;
        act(
            id,
            "dispatch",
            json!({ "staff": ADA, "printer": "manual-2" }),
        )
        .await;
        act(id, "complete", staff.clone()).await;
        if i >= 1 {
            act(id, "pickup", staff.clone()).await;
        }
        if i == 2 {
            act(id, "archive", staff.clone()).await;
        }
    }
    out.push(("COMPLETED", advanced[2].clone()));
    out.push(("PAIDPICKEDUP", advanced[3].clone()));
    out.push(("ARCHIVED", advanced[4].clone()));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_illegal_transition_from_every_status_is_a_409_naming_the_status() {
    let farm = TestFarm::start().await;
    let jobs = one_job_per_status(&farm).await;
    for (status, id) in &jobs {
        assert_eq!(farm.job(id).await["status"], *status, "setup of {status}");
    }
    let actions: &[(&str, &[&str], Value)] = &[
        (
            "approve",
            &["UPLOADED"],
            json!({ "staff": ADA, "weight_g": 10 }),
        ),
        (
            "reject",
            &["UPLOADED", "PENDING", "READYTOPRINT"],
            json!({ "staff": ADA, "reasons": ["x"] }),
        ),
        ("resend-confirmation", &["PENDING"], json!({ "staff": ADA })),
        ("dispatch", &["READYTOPRINT"], json!({ "staff": ADA })),
        (
            "fail",
            &["PRINTING"],
            json!({ "staff": ADA, "reason": "x" }),
        ),
        ("complete", &["PRINTING"], json!({ "staff": ADA })),
        ("pickup", &["COMPLETED"], json!({ "staff": ADA })),
        (
            "archive",
            &["PAIDPICKEDUP", "REJECTED"],
            json!({ "staff": ADA }),
        ),
    ];
    let mut refused = 0;
    for (status, id) in &jobs {
        let events_before = farm.events(id).await.len();
        for (action, allowed_from, body) in actions {
            if allowed_from.contains(status) {
                continue;
            }
            let (code_, body) = farm.act(id, action, body.clone()).await;
            assert_eq!(code_, 409, "{action} from {status}: {body}");
            assert_eq!(code(&body), "illegal_transition");
            let message = body["error"]["message"].as_str().unwrap_or("");
            assert!(
                message.contains(status),
                "{action} from {status}: {message}"
            );
            refused += 1;
        }
        assert_eq!(
            farm.job(id).await["status"],
            *status,
            "a refused action changed nothing"
        );
        assert_eq!(
            farm.events(id).await.len(),
            events_before,
            "a refused action records nothing"
        );
    }
    // 8 statuses × 8 actions, less the 11 legal pairs.
    assert_eq!(refused, 8 * 8 - 11);
    // Confirming is the student's: a PENDING job's confirmation with a bad token is a 404.
    let bad = farm
        .http
        .post(format!("{}/api/v1/confirm/not-a-token", farm.url))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_must_be_active_and_locks_are_respected() {
    let farm = TestFarm::start().await;
    let (_, job) = farm
        .submit("m.stl", tiny_stl(1), "Stu Dent", "s@example.edu")
        .await;
    let id = job["id"].as_str().expect("id").to_string();

    let (status, body) = farm
        .act(
            &id,
            "notes",
            json!({ "staff": "Nobody Known", "notes": "x" }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "unknown_staff"));
    let (status, body) = farm.act(&id, "notes", json!({ "notes": "x" })).await;
    assert_eq!((status, code(&body)), (400, "missing_staff"));
    let (status, _) = farm
        .post(
            "/api/v1/staff/Alan%20Turing/deactivate",
            json!({ "staff": ADA }),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = farm
        .act(
            &id,
            "approve",
            json!({ "staff": "Alan Turing", "weight_g": 3 }),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "inactive_staff"));
    let (_, staff) = farm.get("/api/v1/staff").await;
    let alan = staff["staff"]
        .as_array()
        .expect("list")
        .iter()
        .find(|m| m["name"] == "Alan Turing")
        .cloned();
    assert_eq!(alan.map(|m| m["active"].clone()), Some(json!(false)));

    // Ada locks the job: Grace is refused until Ada unlocks; Ada may still act.
    let (status, locked) = farm
        .act(&id, "lock", json!({ "staff": ADA, "minutes": 10 }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(locked["locked_by"], ADA);
    let (status, body) = farm
        .act(&id, "notes", json!({ "staff": GRACE, "notes": "mine now" }))
        .await;
    assert_eq!((status, code(&body)), (409, "locked"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(ADA)
    );
    let (status, body) = farm.act(&id, "lock", json!({ "staff": GRACE })).await;
    assert_eq!((status, code(&body)), (409, "locked"));
    let (status, _) = farm
        .act(
            &id,
            "notes",
            json!({ "staff": ADA, "notes": "checking walls" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = farm.act(&id, "unlock", json!({ "staff": ADA })).await;
    assert_eq!(status, 200);
    let (status, noted) = farm
        .act(&id, "notes", json!({ "staff": GRACE, "notes": "walls ok" }))
        .await;
    assert_eq!((status, noted["notes"].as_str()), (200, Some("walls ok")));
    let kinds: Vec<Value> = farm
        .events(&id)
        .await
        .into_iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("JobCreated"),
            json!("JobLocked"),
            json!("NotesUpdated"),
            json!("JobUnlocked"),
            json!("NotesUpdated")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_json_error_shape_never_a_500() {
    let farm = TestFarm::start().await;
    let (_, job) = farm
        .submit("m.stl", tiny_stl(1), "Stu Dent", "s@example.edu")
        .await;
    let id = job["id"].as_str().expect("id").to_string();
    let cases: Vec<(String, &str, u16)> = vec![
        ("/api/v1/jobs/999".into(), "GET", 404),
        ("/api/v1/jobs/abc".into(), "GET", 404),
        ("/api/v1/jobs?status=SHIPPED".into(), "GET", 400),
        ("/api/v1/jobs?limit=0".into(), "GET", 400),
        ("/api/v1/jobs?cursor=x".into(), "GET", 400),
        ("/api/v1/events?since=yesterday".into(), "GET", 400),
        (format!("/api/v1/jobs/{id}/files/preview.glb"), "GET", 404),
        ("/api/v1/nothing-here".into(), "GET", 404),
        (format!("/api/v1/jobs/{id}/teleport"), "POST", 404),
        ("/api/v1/printers/nope/clear".into(), "POST", 404),
    ];
    for (path, method, want) in cases {
        let request = match method {
            "GET" => farm.http.get(format!("{}{path}", farm.url)),
            _ => farm
                .http
                .post(format!("{}{path}", farm.url))
                .json(&json!({ "staff": ADA })),
        };
        let response = request.bearer_auth(STAFF_TOKEN).send().await.expect("send");
        assert_eq!(response.status().as_u16(), want, "{method} {path}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{path}: not JSON"));
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{path}: {body}"
        );
    }
    let garbage = farm
        .http
        .post(format!("{}/api/v1/jobs/{id}/notes", farm.url))
        .bearer_auth(STAFF_TOKEN)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(garbage.status(), 400);
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": "heavy" }))
        .await;
    assert_eq!((status, code(&body)), (400, "invalid_json"));
    let (status, body) = farm.act(&id, "approve", json!({ "staff": ADA })).await;
    assert_eq!((status, code(&body)), (422, "missing_estimate"));
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": -5 }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid"));
}
