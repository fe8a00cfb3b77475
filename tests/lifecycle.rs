//! One job through every status of the happy path, against the real binary, confirming
//! through the link in the `.eml` file as a student would; then the audit trail.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_walks_the_happy_path_with_an_attributed_audit_trail() {
    let farm = TestFarm::start().await;
    let model = std::fs::read(corpus("models/20mm-xyz-cube.stl")).expect("cube");
    let (status, job) = farm
        .submit(
            "20mm cube.stl",
            model,
            "Katherine Johnson",
            "kj@example.edu",
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(job["status"], "UPLOADED");
    assert_eq!(
        job["display_name"],
        format!("KatherineJohnson_PLA_Red_{id}")
    );
    assert_eq!(job["format"], "stl");
    assert_eq!(job["is_new"], true);

    // Staff open it (clears NEW), then approve with a weight: cost = max($3, 80 g × $0.05).
    let (status, viewed) = farm.act(&id, "viewed", json!({ "staff": ADA })).await;
    assert_eq!((status, viewed["is_new"].clone()), (200, json!(false)));
    let (status, pending) = farm
        .act(&id, "approve", json!({ "staff": ADA, "material": "PLA", "color": "Red", "weight_g": 80.0, "time_hours": 1.5 }))
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(pending["cost_usd"], 4.0);

    // The confirmation mail arrives in the outbox; the student follows its link.
    let mails = wait_for("the confirmation mail", Duration::from_secs(10), || {
        let files = farm.outbox();
        (!files.is_empty()).then_some(files)
    })
    .await;
    let eml = std::fs::read_to_string(&mails[0]).expect("eml");
    assert!(eml.contains("To: kj@example.edu"), "{eml}");
    assert!(eml.contains("$4.00"), "{eml}");
    let link = confirmation_link(&mails[0]);
    assert!(
        link.starts_with(&farm.url),
        "{link} should start with {}",
        farm.url
    );
    let page = farm.http.get(&link).send().await.expect("confirm page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("20mm cube.stl") && html.contains("$4.00"),
        "{html}"
    );
    let api_link = link.replace("/confirm/", "/api/v1/confirm/");
    let confirmed = farm.http.post(&api_link).send().await.expect("confirm");
    assert_eq!(confirmed.status(), 200);
    let confirmed: Value = confirmed.json().await.expect("json");
    assert_eq!(confirmed["status"], "READYTOPRINT");
    // The link is single-use.
    let again = farm
        .http
        .post(&api_link)
        .send()
        .await
        .expect("confirm again");
    assert_eq!(again.status(), 404);

    // Print on a manual printer, complete, pick up, archive.
    let (status, printing) = farm.act(&id, "dispatch", json!({ "staff": GRACE })).await;
    assert_eq!(status, 200, "{printing}");
    assert_eq!(
        (printing["status"].as_str(), printing["printer"].as_str()),
        (Some("PRINTING"), Some("manual-1"))
    );
    let (_, printers) = farm.get("/api/v1/printers").await;
    assert_eq!(printers[0]["state"], "printing");
    assert_eq!(printers[0]["job_id"], id.as_str());
    let (status, completed) = farm.act(&id, "complete", json!({ "staff": GRACE })).await;
    assert_eq!(
        (status, completed["status"].as_str()),
        (200, Some("COMPLETED"))
    );
    wait_for("the pickup mail", Duration::from_secs(10), || {
        (farm.outbox().len() == 2).then_some(())
    })
    .await;
    let (status, _) = farm
        .post(
            "/api/v1/printers/manual-1/clear",
            json!({ "staff": GRACE }),
            STAFF_TOKEN,
        )
        .await;
    assert_eq!(status, 200);
    let (status, paid) = farm
        .act(&id, "pickup", json!({ "staff": ADA, "paid_usd": 4.0, "payment_ref": "CARD-991", "picked_up_by": "Katherine Johnson" }))
        .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("PAIDPICKEDUP"))
    );
    let (status, archived) = farm.act(&id, "archive", json!({ "staff": ADA })).await;
    assert_eq!(
        (status, archived["status"].as_str()),
        (200, Some("ARCHIVED"))
    );

    // The audit trail: one event per action, oldest first, attributed.
    let events = farm.events(&id).await;
    assert_eq!(
        types(&events),
        [
            "JobCreated",
            "StaffApproved",
            "EmailSent",
            "StudentConfirmed",
            "PrintStarted",
            "PrintCompleted",
            "EmailSent",
            "BedCleared",
            "StatusChanged",
            "JobArchived",
        ]
    );
    let who: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e["triggered_by"].as_str().unwrap_or("?"),
                e["workstation_id"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("student", None),
            (ADA, Some("kiosk-1")),
            ("system:mail", None),
            ("student", None),
            (GRACE, Some("kiosk-1")),
            (GRACE, Some("kiosk-1")),
            ("system:mail", None),
            (GRACE, Some("kiosk-1")),
            (ADA, Some("kiosk-1")),
            (ADA, Some("kiosk-1")),
        ]
    );
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");
    let times: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().expect("ts"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    assert!(events.iter().all(|e| e["job_id"] == id.as_str()));
    assert_eq!(events[1]["details"]["from"], "UPLOADED");
    assert_eq!(events[1]["details"]["to"], "PENDING");
    assert_eq!(events[8]["details"]["payment_ref"], "CARD-991");

    // The global audit log filters by staff and type.
    let (_, by_grace) = farm.get("/api/v1/events?staff=Grace%20Hopper").await;
    assert_eq!(
        types(by_grace["events"].as_array().expect("events")),
        ["PrintStarted", "PrintCompleted", "BedCleared"]
    );
    let (_, mails) = farm
        .get(&format!("/api/v1/events?type=EmailSent&job={id}"))
        .await;
    assert_eq!(mails["events"].as_array().map(Vec::len), Some(2));

    // The original file comes back byte for byte.
    let original = farm
        .http
        .get(format!("{}/api/v1/jobs/{id}/files/original", farm.url))
        .bearer_auth(STAFF_TOKEN)
        .send()
        .await
        .expect("download");
    assert_eq!(original.status(), 200);
    let bytes = original.bytes().await.expect("bytes");
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(corpus("models/20mm-xyz-cube.stl")).expect("cube")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_print_goes_back_to_ready_and_keeps_its_cost() {
    let farm = TestFarm::start().await;
    let (_, job) = farm
        .submit("part.stl", tiny_stl(1), "Ada Student", "ada.s@example.edu")
        .await;
    let id = job["id"].as_str().expect("id").to_string();
    farm.act(&id, "approve", json!({ "staff": ADA, "cost_usd": 7.5 }))
        .await;
    farm.confirm_by_mail(&id).await;
    farm.act(
        &id,
        "dispatch",
        json!({ "staff": ADA, "printer": "manual-1" }),
    )
    .await;
    let (status, failed) = farm
        .act(
            &id,
            "fail",
            json!({ "staff": ADA, "reason": "spaghetti at layer 12", "cause": "printer" }),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "READYTOPRINT");
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["cost_usd"], 7.5);
    assert_eq!(failed["student_confirmed"], true);
    // The printer's bed needs clearing before anything else starts on it.
    let (status, busy) = farm
        .act(
            &id,
            "dispatch",
            json!({ "staff": ADA, "printer": "manual-1" }),
        )
        .await;
    assert_eq!(
        (status, busy["error"]["code"].as_str()),
        (409, Some("printer_busy"))
    );
    farm.post(
        "/api/v1/printers/manual-1/clear",
        json!({ "staff": ADA }),
        STAFF_TOKEN,
    )
    .await;
    let (status, again) = farm.act(&id, "dispatch", json!({ "staff": ADA })).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("PRINTING")));
    let event = farm
        .events(&id)
        .await
        .into_iter()
        .find(|e| e["event_type"] == "PrintFailed")
        .expect("PrintFailed");
    assert_eq!(event["details"]["reason"], "spaghetti at layer 12");
    assert_eq!(event["details"]["cause"], "printer");
    // Only one confirmation mail: a failure asks the student for nothing.
    assert_eq!(farm.outbox().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_and_everything_is_still_there() {
    let mut farm = TestFarm::start().await;
    let (_, job) = farm
        .submit("a.stl", tiny_stl(2), "Ada Student", "ada.s@example.edu")
        .await;
    let id = job["id"].as_str().expect("id").to_string();
    let status = farm.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        farm.log()
    );
    farm.restart();
    assert_eq!(farm.job(&id).await["status"], "UPLOADED");
    let (status, health) = farm.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}
