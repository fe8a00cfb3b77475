//! Crash safety: the daemon is SIGKILLed at random moments while a client submits and
//! approves jobs. After every restart, every acknowledged submission and action is
//! there with its event, every blob's SHA-256 matches its name, and every acknowledged
//! approval's confirmation mail is delivered exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

const KILLS: usize = 60;

/// What the client was told, in the order it was told.
#[derive(Debug)]
enum Ack {
    Created { id: String, hash: String },
    Approved { id: String },
}

#[derive(Debug, Default)]
struct Acked {
    hash: String,
    approved: bool,
}

/// A valid binary STL with `n` random triangles.
fn random_stl(rng: &mut StdRng, n: u32) -> Vec<u8> {
    let mut out = vec![b' '; 80];
    out.extend_from_slice(&n.to_le_bytes());
    for _ in 0..n {
        for _ in 0..12 {
            out.extend_from_slice(&rng.random_range(-50.0f32..50.0).to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// Submits and approves until aborted, reporting each acknowledged success.
async fn client(url: String, seed: u64, acks: mpsc::UnboundedSender<Ack>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let http = reqwest::Client::new();
    let mut uploaded: Vec<String> = Vec::new();
    loop {
        if !uploaded.is_empty() && rng.random_bool(0.4) {
            let id = uploaded.swap_remove(rng.random_range(0..uploaded.len()));
            let response = http
                .post(format!("{url}/api/v1/jobs/{id}/approve"))
                .bearer_auth(STAFF_TOKEN)
                .json(&json!({ "staff": ADA, "weight_g": 20 }))
                .send()
                .await;
            if let Ok(r) = response
                && r.status() == 200
            {
                acks.send(Ack::Approved { id }).ok();
            }
            continue;
        }
        let triangles = if rng.random_bool(0.15) {
            rng.random_range(10_000..40_000)
        } else {
            rng.random_range(1..200)
        };
        let bytes = random_stl(&mut rng, triangles);
        let hash = hex::encode(Sha256::digest(&bytes));
        let form = reqwest::multipart::Form::new()
            .text("student_name", "Crash Test")
            .text(
                "student_email",
                format!("s{}@example.edu", rng.random_range(0..5)),
            )
            .text("material", "PLA")
            .text("acknowledged_minimum_charge", "true")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("m.stl"),
            );
        let response = http
            .post(format!("{url}/api/v1/jobs"))
            .multipart(form)
            .send()
            .await;
        let Ok(response) = response else { continue };
        if response.status() != 201 {
            continue;
        }
        let Ok(job) = response.json::<Value>().await else {
            continue;
        };
        let id = job["id"].as_str().unwrap_or_default().to_string();
        uploaded.push(id.clone());
        acks.send(Ack::Created { id, hash }).ok();
    }
}

/// Checks every acknowledged job in `ids` against what the daemon now says.
async fn verify(farm: &TestFarm, acked: &BTreeMap<String, Acked>, ids: &[String]) {
    for id in ids {
        let expected = &acked[id];
        let (status, job) = farm.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(
            status, 200,
            "acknowledged job {id} is missing after a crash"
        );
        assert_eq!(job["file_hash"], expected.hash.as_str(), "job {id}");
        let kinds: Vec<String> = farm
            .events(id)
            .await
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("JobCreated"),
            "job {id}: {kinds:?}"
        );
        if expected.approved {
            assert_eq!(
                job["status"], "PENDING",
                "acknowledged approval of job {id} lost"
            );
            assert_eq!(
                kinds.iter().filter(|k| *k == "StaffApproved").count(),
                1,
                "job {id}: {kinds:?}"
            );
        }
        let blob = farm
            .data_dir()
            .join("blobs")
            .join(&expected.hash[..2])
            .join(&expected.hash);
        assert!(
            blob.is_file(),
            "the file of acknowledged job {id} is missing"
        );
    }
    for path in walk(&farm.data_dir().join("blobs")) {
        let bytes = std::fs::read(&path).expect("read blob");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            name,
            "blob {} is damaged",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_work_survives_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("FARMHAND_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("crash test seed {seed} (rerun with FARMHAND_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut farm = TestFarm::start_with(&[("FARMHAND_STORAGE__MAX_UPLOAD_MB", "5")]).await;
    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    for round in 0..KILLS {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(client(farm.url.clone(), rng.random(), tx));
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
        farm.kill();
        task.abort();
        let mut touched = Vec::new();
        while let Ok(ack) = rx.try_recv() {
            match ack {
                Ack::Created { id, hash } => {
                    acked.insert(
                        id.clone(),
                        Acked {
                            hash,
                            approved: false,
                        },
                    );
                    touched.push(id);
                }
                Ack::Approved { id } => {
                    if let Some(job) = acked.get_mut(&id) {
                        job.approved = true;
                    }
                    touched.push(id);
                }
            }
        }
        farm.restart();
        // This round's acknowledgements, plus a sample of older ones.
        let older: Vec<String> = acked.keys().step_by(7).cloned().collect();
        touched.extend(older);
        verify(&farm, &acked, &touched).await;
        println!("round {round}: {} acknowledged jobs so far", acked.len());
    }
    let all: Vec<String> = acked.keys().cloned().collect();
    verify(&farm, &acked, &all).await;
    assert!(
        acked.len() >= KILLS,
        "the client got too few acknowledgements ({}) to mean much",
        acked.len()
    );

    // The durable outbox: every acknowledged approval's mail is delivered, once.
    let approved: Vec<&String> = acked
        .iter()
        .filter(|(_, a)| a.approved)
        .map(|(id, _)| id)
        .collect();
    assert!(
        approved.len() >= 10,
        "only {} approvals were acknowledged",
        approved.len()
    );
    let mails_of = |id: &str| {
        farm.outbox()
            .iter()
            .filter(|p| {
                p.to_string_lossy()
                    .ends_with(&format!("-confirmation-job{id}.eml"))
            })
            .count()
    };
    let delivered = tokio::time::timeout(Duration::from_secs(20), async {
        while !approved.iter().all(|id| mails_of(id) >= 1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let missing: Vec<&&String> = approved.iter().filter(|id| mails_of(id) == 0).collect();
    assert!(
        delivered.is_ok(),
        "confirmation mails never delivered for jobs {missing:?}; log:\n{}",
        farm.log()
    );
    let twice: Vec<&&String> = approved.iter().filter(|id| mails_of(id) > 1).collect();
    assert!(
        twice.is_empty(),
        "confirmation mails delivered more than once for jobs {twice:?}"
    );
}
