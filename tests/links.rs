//! The links students get by mail: confirmation tokens (single use, expiry that
//! survives a restart, resend, unknown indistinguishable from expired, a 429 limit),
//! the student status page, pickup reminders and the lab's own templates.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The `.eml` files of one job and kind, oldest first.
fn mails_of(farm: &TestFarm, id: &str, kind: &str) -> Vec<std::path::PathBuf> {
    let suffix = format!("-{kind}-job{id}.eml");
    farm.outbox()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(&suffix))
        .collect()
}

async fn wait_mails(farm: &TestFarm, id: &str, kind: &str, n: usize) -> Vec<std::path::PathBuf> {
    wait_for(
        &format!("{n} {kind} mail(s) of job {id}"),
        Duration::from_secs(30),
        || {
            let found = mails_of(farm, id, kind);
            assert!(found.len() <= n, "too many {kind} mails: {found:?}");
            (found.len() == n).then_some(found)
        },
    )
    .await
}

async fn approved(farm: &TestFarm, seed: u32) -> String {
    let (status, job) = farm
        .submit(
            &format!("m{seed}.stl"),
            tiny_stl(seed),
            "Lin K",
            &format!("lin{seed}@example.edu"),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 10 }))
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

/// (status, body text) of a GET.
async fn get_text(farm: &TestFarm, url: &str) -> (u16, String) {
    let response = farm.http.get(url).send().await.expect("get");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

async fn post_text(farm: &TestFarm, url: &str) -> (u16, String) {
    let response = farm.http.post(url).send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

fn api(link: &str) -> String {
    link.replace("/confirm/", "/api/v1/confirm/")
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn links_are_single_use_resend_kills_the_old_one_and_expiry_survives_a_restart() {
    // Links live 0.0001 days (8.6 s) here.
    let mut farm =
        TestFarm::start_with(&[("FARMHAND_EMAIL__CONFIRMATION_TTL_DAYS", "0.0001")]).await;
    let resent = approved(&farm, 1).await;
    let lapsing = approved(&farm, 2).await;
    let first = confirmation_link(&wait_mails(&farm, &resent, "confirmation", 1).await[0]);
    let lapsing_link = confirmation_link(&wait_mails(&farm, &lapsing, "confirmation", 1).await[0]);

    // Resend: a new link; the old one is dead.
    let (status, body) = farm
        .act(&resent, "resend-confirmation", json!({ "staff": ADA }))
        .await;
    assert_eq!(status, 200, "{body}");
    let second = confirmation_link(&wait_mails(&farm, &resent, "confirmation", 2).await[1]);
    assert_ne!(first, second);
    assert_eq!(get_text(&farm, &first).await.0, 404);
    assert_eq!(post_text(&farm, &api(&first)).await.0, 404);
    // The new one works once.
    let (status, body) = post_text(&farm, &api(&second)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(farm.job(&resent).await["status"], "READYTOPRINT");
    let (status, reused) = post_text(&farm, &api(&second)).await;
    assert_eq!(status, 404, "{reused}");

    // The daemon is down when the other link lapses; the timer is in the store.
    farm.kill();
    tokio::time::sleep(Duration::from_secs(9)).await;
    farm.restart();
    let expired_mail = wait_mails(&farm, &lapsing, "expired", 1).await;
    let text = std::fs::read_to_string(&expired_mail[0]).expect("eml");
    assert!(
        text.contains("expired") && text.contains("new link"),
        "{text}"
    );
    let events = farm.events(&lapsing).await;
    let types = event_types(&events);
    assert_eq!(
        types.iter().filter(|t| *t == "ConfirmationExpired").count(),
        1,
        "{types:?}"
    );
    let job = farm.job(&lapsing).await;
    assert_eq!(
        job["status"], "PENDING",
        "an expired job waits for a resend"
    );

    // Expired and never-issued tokens are indistinguishable, page and API alike. (The
    // restarted daemon listens on a new port: same token, new base URL.)
    let token = lapsing_link.rsplit("/confirm/").next().expect("token");
    let lapsing_link = format!("{}/confirm/{token}", farm.url);
    let unknown = format!("{}/confirm/{}", farm.url, "A".repeat(43));
    let (expired_status, expired_page) = get_text(&farm, &lapsing_link).await;
    let (unknown_status, unknown_page) = get_text(&farm, &unknown).await;
    assert_eq!((expired_status, unknown_status), (404, 404));
    assert_eq!(expired_page, unknown_page);
    assert!(expired_page.contains("not valid"), "{expired_page}");
    let (expired_status, expired_json) = post_text(&farm, &api(&lapsing_link)).await;
    let (unknown_status, unknown_json) = post_text(&farm, &api(&unknown)).await;
    assert_eq!((expired_status, unknown_status), (404, 404));
    assert_eq!(expired_json, unknown_json);
    let error: Value = serde_json::from_str(&expired_json).expect("json");
    assert_eq!(error["error"]["code"], "not_found");

    // Staff resend: the student confirms with the fresh link.
    let (status, body) = farm
        .act(&lapsing, "resend-confirmation", json!({ "staff": GRACE }))
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = confirmation_link(&wait_mails(&farm, &lapsing, "confirmation", 2).await[1]);
    let (status, body) = post_text(&farm, &api(&fresh)).await;
    assert_eq!(status, 200, "{body}");
    // No second expiry for a confirmed job, however long we wait for the timer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mails_of(&farm, &lapsing, "expired").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_confirm_endpoints_answer_429_past_the_per_address_limit() {
    let farm = TestFarm::start_with(&[("FARMHAND_EMAIL__CONFIRM_REQUESTS_PER_MINUTE", "5")]).await;
    let guess = |n: usize| format!("{}/api/v1/confirm/{:0>43}", farm.url, n);
    for n in 0..5 {
        let (status, _) = post_text(&farm, &guess(n)).await;
        assert_eq!(status, 404, "guess {n} is within the limit");
    }
    let response = farm.http.post(guess(5)).send().await.expect("post");
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().is_some());
    // The page for browsers is limited too, and says so in HTML.
    let page = farm
        .http
        .get(format!("{}/confirm/{:0>43}", farm.url, 9))
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(page.status().as_u16(), 429);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.expect("html").contains("try again in"));
    // Staff endpoints are not affected.
    let (status, _) = farm.get("/api/v1/jobs").await;
    assert_eq!(status, 200);
}

/// The status link of a job, from its confirmation mail.
async fn status_link(farm: &TestFarm, id: &str) -> String {
    let mail = wait_mails(farm, id, "confirmation", 1).await;
    let text = std::fs::read_to_string(&mail[0]).expect("eml");
    text.split_whitespace()
        .find(|w| w.contains("/status/"))
        .map(str::to_string)
        .expect("a status link")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_the_queue_and_only_with_the_right_token() {
    let farm = TestFarm::start().await;
    let first = approved(&farm, 41).await;
    let second = approved(&farm, 42).await;
    farm.confirm_by_mail(&first).await;
    farm.confirm_by_mail(&second).await;
    let link = status_link(&farm, &second).await;
    let token = link.split("?t=").nth(1).expect("token").to_string();

    let response = farm.http.get(&link).send().await.expect("page");
    assert_eq!(response.status(), 200);
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = response.text().await.expect("html");
    assert!(
        html.contains("READYTOPRINT") && html.contains("m42.stl"),
        "{html}"
    );
    for script in html.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src=\"/static/"),
            "inline script: {script}"
        );
    }
    let (status, js) = get_text(&farm, &format!("{}/static/status.js", farm.url)).await;
    assert!(
        status == 200 && js.contains("/api/v1/status/"),
        "{status} {js}"
    );

    // The JSON the page polls: the second confirmed job is second in the queue.
    let status_api = |id: &str, t: &str| format!("{}/api/v1/status/{id}?t={t}", farm.url);
    let (status, body) = get_text(&farm, &status_api(&second, &token)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (body["status"].as_str(), body["queue_position"].as_u64()),
        (Some("READYTOPRINT"), Some(2))
    );
    let (status, _) = farm.act(&first, "dispatch", json!({ "staff": ADA })).await;
    assert_eq!(status, 200);
    let (_, body) = get_text(&farm, &status_api(&second, &token)).await;
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["queue_position"], 1, "{body}");

    // Another job's token, a damaged token, no token, an unknown job: the same 404.
    let other = status_link(&farm, &first).await;
    let other_token = other.split("?t=").nth(1).expect("token");
    let mut damaged = token.clone();
    damaged.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
    let wrong = [
        format!("{}/status/{second}?t={other_token}", farm.url),
        format!("{}/status/{second}?t={damaged}", farm.url),
        format!("{}/status/{second}", farm.url),
        format!("{}/status/99999?t={token}", farm.url),
        format!("{}/status/not-a-job?t={token}", farm.url),
    ];
    let mut bodies = Vec::new();
    for url in &wrong {
        let (status, body) = get_text(&farm, url).await;
        assert_eq!(status, 404, "{url}");
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the 404 pages differ"
    );
    let (status, body) = get_text(&farm, &status_api(&second, other_token)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uncollected_prints_get_reminders_and_labs_can_replace_templates() {
    let templates = tempfile::tempdir().expect("dir");
    std::fs::write(
        templates.path().join("reminder.txt"),
        "Dear {{ job.student_name }}, job {{ job.id }} waits at {{ lab }}. Open {{ opening_hours }}.\n",
    )
    .expect("template");
    let dir = templates.path().display().to_string();
    // Reminders every 0.00005 days (4.3 s), at most two.
    let farm = TestFarm::start_with(&[
        ("FARMHAND_EMAIL__TEMPLATES_DIR", &dir),
        ("FARMHAND_EMAIL__PICKUP_REMINDER_DAYS", "0.00005"),
        ("FARMHAND_EMAIL__PICKUP_REMINDERS_MAX", "2"),
        ("FARMHAND_EMAIL__LAB_NAME", "Makerspace West"),
        ("FARMHAND_EMAIL__OPENING_HOURS", "daily 9-5"),
    ])
    .await;
    let collected = approved(&farm, 51).await;
    let forgotten = approved(&farm, 52).await;
    for id in [&collected, &forgotten] {
        farm.confirm_by_mail(id).await;
        let (status, body) = farm.act(id, "dispatch", json!({ "staff": ADA })).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = farm.act(id, "complete", json!({ "staff": ADA })).await;
        assert_eq!(status, 200, "{body}");
        let printer = farm.job(id).await["printer"]
            .as_str()
            .expect("printer")
            .to_string();
        let (status, _) = farm
            .post(
                &format!("/api/v1/printers/{printer}/clear"),
                json!({ "staff": ADA }),
                STAFF_TOKEN,
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, body) = farm
        .act(&collected, "pickup", json!({ "staff": ADA }))
        .await;
    assert_eq!(status, 200, "{body}");

    let reminders = wait_mails(&farm, &forgotten, "reminder", 2).await;
    let text = std::fs::read_to_string(&reminders[0]).expect("eml");
    assert!(
        text.contains(&format!(
            "Dear Lin K, job {forgotten} waits at Makerspace West. Open daily 9-5."
        )),
        "the lab's template is used: {text}"
    );
    assert!(
        text.contains("text/html"),
        "the built-in HTML part stays: {text}"
    );
    // The collected print got none, and the forgotten one no third.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(mails_of(&farm, &collected, "reminder").is_empty());
    assert_eq!(mails_of(&farm, &forgotten, "reminder").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_json_shows_live_progress_while_a_simulated_printer_prints() {
    use drivers::marlin::sim::{MarlinSim, SimOptions};
    let sim = MarlinSim::spawn(SimOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .expect("start a simulated Marlin printer");
    let printer = format!(
        "[[printers]]\nid = \"sim-1\"\ndriver = \"marlin\"\nport = \"{}\"\nbuild_volume_mm = [250, 210, 210]\nmaterials = [\"PLA\"]\n",
        sim.port_path().display()
    );
    let farm = TestFarm::start_custom(&[], &printer).await;
    let gcode = std::fs::read(corpus(
        "gcode/3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode",
    ))
    .expect("gcode");
    let (status, job) = farm
        .submit("gunwale.gcode", gcode, "Pro Gress", "progress@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let link = status_link(&farm, &id).await;
    farm.confirm_by_mail(&id).await;
    let json_url = link.replace("/status/", "/api/v1/status/");
    let printing = wait_for(
        "the printer to take the job",
        Duration::from_secs(30),
        || {
            let (status, body) = futures_block(farm.act(
                &id,
                "dispatch",
                json!({ "staff": ADA, "printer": "sim-1" }),
            ));
            (status == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(printing["status"], "PRINTING");
    let progress = wait_for(
        "progress on the status JSON",
        Duration::from_secs(30),
        || {
            let (_, body) = futures_block(get_text(&farm, &json_url));
            let body: Value = serde_json::from_str(&body).ok()?;
            let percent = body["progress"]["percent"].as_f64()?;
            (body["status"] == "PRINTING" && percent > 0.0).then_some(body)
        },
    )
    .await;
    assert!(
        progress["status_text"]
            .as_str()
            .is_some_and(|t| t.contains("Printing")),
        "{progress}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_confirmation_mail_shows_the_thumbnail_inline() {
    let farm = TestFarm::start().await;
    let cube = std::fs::read(corpus("models/20mm-xyz-cube.stl")).expect("cube");
    let (status, job) = farm
        .submit("cube.stl", cube, "Thumb Nail", "thumb@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    wait_for("the thumbnail", Duration::from_secs(60), || {
        let job = futures_block(farm.job(&id));
        job["artifacts"]["thumbnail.png"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 10 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let mail = wait_mails(&farm, &id, "confirmation", 1).await;
    let eml = std::fs::read_to_string(&mail[0]).expect("eml");
    for part in [
        "multipart/related",
        "image/png",
        "Content-ID: <thumbnail>",
        "cid:thumbnail",
    ] {
        assert!(eml.contains(part), "{part} missing from:\n{eml}");
    }
}

/// Runs a future to completion from inside a synchronous polling closure.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}
