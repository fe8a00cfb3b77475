//! `farmhand demo` as a newcomer runs it: two Marlin printers over real pseudo-terminals
//! and one MQTT printer (on a private mosquitto) come up idle, and a job prints to
//! completion on each kind.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "demo-kiosk-token";

struct Demo {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
    data: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Demo {
    fn start() -> Demo {
        let data = tempfile::tempdir().expect("dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_farmhand"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                tx.send(line).ok();
            }
        });
        let mut url = None;
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            if let Some(u) = line.strip_prefix("Farmhand listening on ") {
                url = Some(u.to_string());
            }
            let done = line.starts_with("Try:");
            lines.push(line);
            if done {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("the demo did not start: {lines:?}"));
        assert!(
            !lines.iter().any(|l| l.contains("no MQTT printer")),
            "mosquitto is missing: scripts/install-test-deps.sh installs it (apt-get install mosquitto)"
        );
        Demo {
            child,
            url,
            http: reqwest::Client::new(),
            data,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        r.json().await.expect("json")
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// A short G-code file whose slicer estimate (`;TIME:`) is 40 s: 2 s at the demo's speed.
fn short_gcode(seed: u32) -> Vec<u8> {
    let mut text =
        format!(";FLAVOR:Marlin\n;TIME:40\n;Generated for the demo test {seed}\nG28\nG90\nM82\n");
    for i in 0..200 {
        text.push_str(&format!(
            ";LAYER:{}\nG1 Z{:.1} F600\nG1 X{} Y{} E{:.2} F1800\n",
            i / 20,
            0.2 + (i / 20) as f64 * 0.2,
            10 + i % 50,
            10 + i % 30,
            i as f64 * 0.1
        ));
    }
    text.into_bytes()
}

async fn ready_job(demo: &Demo, seed: u32) -> String {
    let form = reqwest::multipart::Form::new()
        .text("student_name", "Demo Student")
        .text("student_email", format!("demo{seed}@example.edu"))
        .text("material", "PLA")
        .text("acknowledged_minimum_charge", "true")
        .part(
            "file",
            reqwest::multipart::Part::bytes(short_gcode(seed)).file_name("part.gcode"),
        );
    let r = demo
        .http
        .post(format!("{}/api/v1/jobs", demo.url))
        .multipart(form)
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = demo
        .post(
            &format!("/api/v1/jobs/{id}/approve"),
            json!({ "staff": "Ada Lovelace", "weight_g": 2 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let outbox = demo.data.path().join("outbox");
    let mail = wait_for("the confirmation mail", Duration::from_secs(10), || {
        std::fs::read_dir(&outbox)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("job{id}.eml")))
    })
    .await;
    let link = confirmation_link(&mail).replace("/confirm/", "/api/v1/confirm/");
    assert_eq!(
        demo.http
            .post(&link)
            .send()
            .await
            .expect("confirm")
            .status(),
        200
    );
    id
}

async fn wait_idle(demo: &Demo, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let printers = demo.get("/api/v1/printers").await;
        let idle = ids.iter().all(|id| {
            printers
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["id"] == *id && p["state"] == "idle")
        });
        if idle {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "printers {ids:?} never all idle: {printers}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn print_on(demo: &Demo, id: &str, printer: &str) {
    let (status, body) = demo
        .post(
            &format!("/api/v1/jobs/{id}/dispatch"),
            json!({ "staff": "Ada Lovelace", "printer": printer }),
        )
        .await;
    assert_eq!(status, 200, "dispatch to {printer}: {body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = demo.get(&format!("/api/v1/jobs/{id}")).await;
        if job["status"] == "COMPLETED" {
            return;
        }
        assert!(job["status"] == "PRINTING", "job {id} on {printer}: {job}");
        assert!(
            Instant::now() < deadline,
            "job {id} on {printer} never completed: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_farm_prints_on_its_marlin_and_mqtt_printers() {
    let demo = Demo::start();
    let printers = demo.get("/api/v1/printers").await;
    let drivers: Vec<&str> = printers
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["driver"].as_str())
        .collect();
    assert!(
        drivers.iter().filter(|d| **d == "marlin").count() >= 2,
        "{drivers:?}"
    );
    assert!(drivers.contains(&"mqtt"), "{drivers:?}");
    wait_idle(&demo, &["mk3s-1", "mk3s-2", "mqtt-1"]).await;

    let marlin_job = ready_job(&demo, 1).await;
    let mqtt_job = ready_job(&demo, 2).await;
    print_on(&demo, &marlin_job, "mk3s-1").await;
    print_on(&demo, &mqtt_job, "mqtt-1").await;
    let printers = demo.get("/api/v1/printers").await;
    for id in ["mk3s-1", "mqtt-1"] {
        let p = printers
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == id)
            .expect("listed");
        assert_eq!(p["state"], "needs_clearing", "{p}");
    }
}
