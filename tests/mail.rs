//! Student e-mail against a real SMTP server (aiosmtpd): the whole lifecycle sends the
//! right mails to the right people with links that work; an SMTP outage with a daemon
//! restart in the middle loses and doubles nothing; STARTTLS and implicit TLS with a
//! campus CA; the outbox as the kiosk lists it.

mod common;
mod smtp;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use smtp::{Received, Security, SmtpServer, free_port, make_tls};

/// Waits until the server holds `n` messages; fails if it ever holds more.
async fn received(server: &SmtpServer, n: usize, timeout: Duration) -> Vec<Received> {
    wait_for(&format!("{n} mails at the SMTP server"), timeout, || {
        let files = server.files();
        assert!(files.len() <= n, "more than {n} mails arrived: {files:?}");
        (files.len() == n).then(|| server.messages())
    })
    .await
}

fn to(mails: &[Received], rcpt: &str) -> Vec<Received> {
    mails
        .iter()
        .filter(|m| m.rcpt_to() == rcpt)
        .cloned()
        .collect()
}

async fn submitted(farm: &TestFarm, seed: u32, email: &str) -> String {
    let (status, job) = farm
        .submit(
            &format!("part-{seed}.stl"),
            tiny_stl(seed),
            "Ada Student",
            email,
        )
        .await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().expect("id").to_string()
}

async fn approve(farm: &TestFarm, id: &str) {
    let body = json!({ "staff": ADA, "material": "PLA", "color": "Red", "weight_g": 80.0, "time_hours": 1.5 });
    let (status, job) = farm.act(id, "approve", body).await;
    assert_eq!(status, 200, "{job}");
}

async fn outbox_api(farm: &TestFarm, query: &str) -> Vec<Value> {
    let (status, body) = farm.get(&format!("/api/v1/mail{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["mail"].as_array().cloned().expect("mail list")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_mails_the_right_student_with_links_that_work() {
    let server = SmtpServer::start(free_port());
    let farm = TestFarm::start_with(&[
        ("FARMHAND_EMAIL__SMTP_URL", &server.url()),
        (
            "FARMHAND_EMAIL__OPENING_HOURS",
            "Mon-Fri 10:00-16:00, room B12",
        ),
    ])
    .await;

    // Approval mails the student who submitted, with cost, time, material and the link.
    let ada = submitted(&farm, 1, "ada@student.example.edu").await;
    let bob = submitted(&farm, 2, "bob@student.example.edu").await;
    approve(&farm, &ada).await;
    let mails = received(&server, 1, Duration::from_secs(20)).await;
    let confirmation = &mails[0];
    assert_eq!(confirmation.rcpt_to(), "ada@student.example.edu");
    assert_eq!(
        confirmation.header("To").as_deref(),
        Some("ada@student.example.edu")
    );
    assert!(
        confirmation.subject().contains("confirm") && confirmation.subject().contains(&ada),
        "{}",
        confirmation.subject()
    );
    let text = &confirmation.text;
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(
        text.contains("text/plain") && text.contains("text/html"),
        "{text}"
    );
    for fact in ["$4.00", "1 h 30 min", "PLA (Red)"] {
        assert!(text.contains(fact), "{fact} missing from:\n{text}");
    }
    let link = confirmation
        .word_with("/confirm/")
        .expect("a confirmation link");
    assert!(
        link.starts_with(&format!("{}/confirm/", farm.url)),
        "{link}"
    );
    assert_eq!(
        link.len(),
        format!("{}/confirm/", farm.url).len() + 43,
        "{link}"
    );
    assert!(farm.outbox().is_empty(), "no .eml files when SMTP is set");

    // The student follows the link: the page shows the job, its button confirms it.
    let page = farm.http.get(&link).send().await.expect("confirm page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("part-1.stl") && html.contains("$4.00"),
        "{html}"
    );
    let confirmed = farm.http.post(&link).send().await.expect("confirm");
    assert_eq!(confirmed.status(), 200);
    assert_eq!(farm.job(&ada).await["status"], "READYTOPRINT");

    // Bob's model is rejected: he gets the reasons in plain words.
    let reasons = ["Walls thinner than 0.8 mm", "The model is not watertight"];
    let (status, body) = farm
        .act(
            &bob,
            "reject",
            json!({ "staff": GRACE, "reasons": reasons }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mails = received(&server, 2, Duration::from_secs(20)).await;
    let rejection = to(&mails, "bob@student.example.edu");
    assert_eq!(rejection.len(), 1, "{mails:?}");
    assert!(rejection[0].subject().contains("cannot be printed"));
    for reason in reasons {
        assert!(rejection[0].text.contains(reason), "{}", rejection[0].text);
    }

    // Printed and completed: Ada hears it is ready, with the lab's hours.
    let (status, body) = farm.act(&ada, "dispatch", json!({ "staff": GRACE })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = farm.act(&ada, "complete", json!({ "staff": GRACE })).await;
    assert_eq!(status, 200, "{body}");
    let mails = received(&server, 3, Duration::from_secs(20)).await;
    let to_ada = to(&mails, "ada@student.example.edu");
    assert_eq!(to_ada.len(), 2, "{mails:?}");
    let pickup = to_ada
        .iter()
        .find(|m| m.subject().contains("ready for pickup"))
        .expect("pickup mail");
    assert!(
        pickup.text.contains("Mon-Fri 10:00-16:00, room B12"),
        "{}",
        pickup.text
    );

    // The status link in the mail opens Ada's job page, showing it is ready.
    let status_link = pickup.word_with("/status/").expect("status link");
    let page = farm
        .http
        .get(&status_link)
        .send()
        .await
        .expect("status page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("COMPLETED") && html.contains("ready for pickup"),
        "{html}"
    );

    // Every mail is one `EmailSent` event and one outbox row, with the same Message-ID.
    let ids: BTreeSet<String> = mails.iter().map(Received::message_id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    // (The server has a mail a moment before the daemon records it sent.)
    let listed = wait_for("three mails recorded sent", Duration::from_secs(20), || {
        let listed = futures_block(outbox_api(&farm, "?state=sent"));
        (listed.len() == 3).then_some(listed)
    })
    .await;
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(listed_ids, ids);
    assert!(
        listed
            .iter()
            .all(|m| m["attempts"] == 0 && m["state"] == "sent")
    );
    let mut sent_events = BTreeSet::new();
    for job in [&ada, &bob] {
        for event in farm.events(job).await {
            if event["event_type"] == "EmailSent" {
                assert_eq!(event["triggered_by"], "system:mail");
                sent_events.insert(
                    event["details"]["message_id"]
                        .as_str()
                        .expect("id")
                        .to_string(),
                );
            }
        }
    }
    assert_eq!(sent_events, ids);
    assert!(outbox_api(&farm, "?state=queued").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_smtp_outage_across_a_restart_delivers_every_mail_exactly_once() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let mut farm = TestFarm::start_with(&[("FARMHAND_EMAIL__SMTP_URL", &url)]).await;

    // Three mails caused while nobody listens on the SMTP port.
    let jobs = [
        submitted(&farm, 11, "s11@example.edu").await,
        submitted(&farm, 12, "s12@example.edu").await,
        submitted(&farm, 13, "s13@example.edu").await,
        submitted(&farm, 14, "s14@example.edu").await,
    ];
    approve(&farm, &jobs[0]).await;
    approve(&farm, &jobs[1]).await;
    let (status, body) = farm
        .act(
            &jobs[2],
            "reject",
            json!({ "staff": ADA, "reason": "too big" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut failing = Vec::new();
    for _ in 0..400 {
        failing = outbox_api(&farm, "?state=queued").await;
        if failing.len() == 3 && failing.iter().all(|m| m["attempts"].as_u64() >= Some(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failing.len(), 3, "{failing:?}");
    for mail in &failing {
        assert!(mail["attempts"].as_u64() >= Some(1), "{mail}");
        let error = mail["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&port.to_string()),
            "the error names the server: {mail}"
        );
    }

    // The daemon dies and comes back while the server is still down; one more mail.
    farm.restart();
    approve(&farm, &jobs[3]).await;
    assert_eq!(outbox_api(&farm, "?state=queued").await.len(), 4);

    // The server comes up: all four arrive, none twice.
    let server = SmtpServer::start(port);
    let mails = received(&server, 4, Duration::from_secs(60)).await;
    wait_for(
        "the outbox to show every mail sent",
        Duration::from_secs(20),
        || {
            let listed = futures_block(outbox_api(&farm, "?state=sent"));
            (listed.len() == 4).then_some(())
        },
    )
    .await;

    // One more restart and one more mail prove the worker ran again over the outbox
    // without resending anything it had delivered.
    farm.restart();
    let (status, body) = farm
        .act(&jobs[0], "resend-confirmation", json!({ "staff": ADA }))
        .await;
    assert_eq!(status, 200, "{body}");
    let mails_after = received(&server, 5, Duration::from_secs(30)).await;
    let ids: Vec<String> = mails_after.iter().map(Received::message_id).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 5, "a Message-ID arrived twice: {ids:?}");
    let listed: BTreeSet<String> = outbox_api(&farm, "")
        .await
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect::<BTreeSet<_>>());
    let rcpts: BTreeSet<String> = mails.iter().map(Received::rcpt_to).collect();
    let expected: BTreeSet<String> = (11..=14).map(|n| format!("s{n}@example.edu")).collect();
    assert_eq!(rcpts, expected);
}

/// Runs a future to completion from inside a synchronous polling closure.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_implicit_tls_with_a_campus_ca() {
    let certs = tempfile::tempdir().expect("dir");
    let tls = make_tls(certs.path());
    let ca = tls.ca.display().to_string();
    for (security, url) in [
        (
            Security::StartTls(&tls),
            "smtp://127.0.0.1:{port}?tls=required",
        ),
        (Security::Implicit(&tls), "smtps://127.0.0.1:{port}"),
    ] {
        let port = free_port();
        let server = SmtpServer::start_with(port, security);
        let url = url.replace("{port}", &port.to_string());
        let farm = TestFarm::start_with(&[
            ("FARMHAND_EMAIL__SMTP_URL", &url),
            ("FARMHAND_EMAIL__CA_FILE", &ca),
        ])
        .await;
        let id = submitted(&farm, 21, "tls@example.edu").await;
        approve(&farm, &id).await;
        let mails = received(&server, 1, Duration::from_secs(20)).await;
        assert_eq!(mails[0].rcpt_to(), "tls@example.edu", "{url}");
        let link = mails[0].word_with("/confirm/").expect("link");
        let confirmed = farm.http.post(&link).send().await.expect("confirm");
        assert_eq!(confirmed.status(), 200, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_campus_ca_tls_fails_and_the_mail_waits() {
    let certs = tempfile::tempdir().expect("dir");
    let tls = make_tls(certs.path());
    let port = free_port();
    let server = SmtpServer::start_with(port, Security::Implicit(&tls));
    let url = format!("smtps://127.0.0.1:{port}");
    let farm = TestFarm::start_with(&[("FARMHAND_EMAIL__SMTP_URL", &url)]).await;
    let id = submitted(&farm, 31, "untrusted@example.edu").await;
    approve(&farm, &id).await;
    let mail = wait_for("a failed TLS attempt", Duration::from_secs(20), || {
        let listed = futures_block(outbox_api(&farm, "?state=queued"));
        listed
            .into_iter()
            .find(|m| m["attempts"].as_u64() >= Some(1))
    })
    .await;
    assert!(mail["last_error"].as_str().is_some(), "{mail}");
    assert!(
        server.files().is_empty(),
        "nothing is sent over an untrusted connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_auth_with_credentials_in_the_url_or_as_separate_keys() {
    let port = free_port();
    let server = SmtpServer::start_with(
        port,
        Security::Auth {
            user: "fablab",
            password: "s3cret pass",
        },
    );
    // In the URL (percent-encoded).
    let url = format!("smtp://fablab:s3cret%20pass@127.0.0.1:{port}");
    let farm = TestFarm::start_with(&[("FARMHAND_EMAIL__SMTP_URL", &url)]).await;
    let id = submitted(&farm, 61, "auth-url@example.edu").await;
    approve(&farm, &id).await;
    received(&server, 1, Duration::from_secs(20)).await;
    drop(farm);

    // As separate keys, the password from a file.
    let secrets = tempfile::tempdir().expect("dir");
    let password_file = secrets.path().join("smtp.password");
    std::fs::write(&password_file, "s3cret pass\n").expect("password file");
    let plain = format!("smtp://127.0.0.1:{port}");
    let farm = TestFarm::start_with(&[
        ("FARMHAND_EMAIL__SMTP_URL", &plain),
        ("FARMHAND_EMAIL__USERNAME", "fablab"),
        (
            "FARMHAND_EMAIL__PASSWORD_FILE",
            &password_file.display().to_string(),
        ),
    ])
    .await;
    let id = submitted(&farm, 62, "auth-keys@example.edu").await;
    approve(&farm, &id).await;
    let mails = received(&server, 2, Duration::from_secs(20)).await;
    assert!(mails.iter().any(|m| m.rcpt_to() == "auth-keys@example.edu"));
    assert_eq!(server.files().len(), 2);
}
