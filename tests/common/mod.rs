//! `TestFarm`: the real `farmhand` binary on a free port with a throw-away data dir,
//! plus the HTTP helpers every end-to-end test uses.
//!
//! Tests talk to the daemon only through its public interface (HTTP, files in the
//! data dir, signals), exactly as lab tools do.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub const STAFF_TOKEN: &str = "test-kiosk-token-0001";
pub const ADMIN_TOKEN: &str = "test-office-token-0001";
pub const ADA: &str = "Ada Lovelace";
pub const GRACE: &str = "Grace Hopper";

/// The shared corpus of real third-party files (../shared/corpus beside the repo).
pub fn corpus(relative: &str) -> PathBuf {
    let root = std::env::var_os("FARMHAND_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let path = root.join(relative);
    assert!(
        path.exists(),
        "missing test corpus file {} (the shared corpus must sit beside the repository)",
        path.display()
    );
    path
}

/// A small valid binary STL whose bytes depend on `seed` (one triangle).
pub fn tiny_stl(seed: u32) -> Vec<u8> {
    let mut out = format!("farmhand test model {seed}").into_bytes();
    out.resize(80, b' ');
    out.extend_from_slice(&1u32.to_le_bytes());
    for v in [
        0.0f32,
        0.0,
        1.0,
        0.0,
        0.0,
        0.0,
        10.0,
        0.0,
        0.0,
        0.0,
        10.0,
        seed as f32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

pub struct TestFarm {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl TestFarm {
    /// A farm with the default test config.
    pub async fn start() -> TestFarm {
        Self::start_with(&[]).await
    }

    /// A farm with `FARMHAND_*` overrides.
    pub async fn start_with(env: &[(&str, &str)]) -> TestFarm {
        Self::start_custom(env, "").await
    }

    /// A farm with overrides and extra TOML appended to the config (more printers).
    pub async fn start_custom(env: &[(&str, &str)], extra_config: &str) -> TestFarm {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("{}\n{extra_config}", config(dir.path()));
        std::fs::write(dir.path().join("farmhand.toml"), text).expect("config");
        let mut farm = TestFarm {
            dir,
            url: String::new(),
            http: reqwest::Client::new(),
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        farm.spawn();
        farm
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the daemon and waits for its "listening" line.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_farmhand"))
            .arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("farmhand.toml"))
            .env("FARMHAND_SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start farmhand");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Farmhand listening on ") {
                    tx.send(url.to_string()).ok();
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => self.url = url,
            Err(_) => panic!(
                "farmhand did not start within 30 s; its log:\n{}",
                self.log()
            ),
        }
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGKILL: no clean shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Kills (if running) and starts again on the same data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERM and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        child.wait().expect("wait")
    }

    pub async fn submit_form(&self, form: Form) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/jobs", self.url))
            .multipart(form)
            .send()
            .await
            .expect("submit");
        parse(response).await
    }

    /// A complete, valid submission of `bytes` as `filename`.
    pub async fn submit(
        &self,
        filename: &str,
        bytes: Vec<u8>,
        name: &str,
        email: &str,
    ) -> (u16, Value) {
        let form = Form::new()
            .text("student_name", name.to_string())
            .text("student_email", email.to_string())
            .text("material", "PLA")
            .text("color", "Red")
            .text("acknowledged_minimum_charge", "true")
            .part("file", Part::bytes(bytes).file_name(filename.to_string()));
        self.submit_form(form).await
    }

    /// POST a staff action on a job (kiosk token).
    pub async fn act(&self, job: &str, action: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/v1/jobs/{job}/{action}"), body, STAFF_TOKEN)
            .await
    }

    pub async fn post(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("post");
        parse(response).await
    }

    /// GET with the kiosk token.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(STAFF_TOKEN)
            .send()
            .await
            .expect("get");
        parse(response).await
    }

    pub async fn job(&self, id: &str) -> Value {
        let (status, job) = self.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Waits until the job's analysis is no longer pending; returns the job.
    pub async fn analysed(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            if job["analysis"]["state"] != "pending" {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still not analysed after {timeout:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET a file with the kiosk token: status and bytes.
    pub async fn download(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(STAFF_TOKEN)
            .send()
            .await
            .expect("download");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("bytes").to_vec())
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/v1/jobs/{id}/events")).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().expect("events array")
    }

    /// Follows job `id`'s confirmation link from its `.eml` file, as the student would.
    pub async fn confirm_by_mail(&self, id: &str) {
        let suffix = format!("-confirmation-job{id}.eml");
        let mail = wait_for("the confirmation mail", Duration::from_secs(10), || {
            self.outbox()
                .into_iter()
                .find(|p| p.to_string_lossy().ends_with(&suffix))
        })
        .await;
        let link = confirmation_link(&mail).replace("/confirm/", "/api/v1/confirm/");
        let status = self
            .http
            .post(&link)
            .send()
            .await
            .expect("confirm")
            .status();
        assert_eq!(status, 200, "confirming job {id} through {link}");
    }

    /// The `.eml` files delivered so far, sorted by name (= by outbox id).
    pub fn outbox(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.data_dir().join("outbox"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for TestFarm {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn parse(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(json!({ "raw": text }));
    (status, value)
}

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The confirmation link in an `.eml` file.
pub fn confirmation_link(eml: &Path) -> String {
    let text = std::fs::read_to_string(eml).expect("read eml");
    text.split_whitespace()
        .find(|word| word.contains("/confirm/"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no confirmation link in {}:\n{text}", eml.display()))
}

/// Every file below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn config(dir: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[storage]
data_dir = "{data}"
max_upload_mb = 5

[[workstations]]
id = "kiosk-1"
token = "{STAFF_TOKEN}"
role = "staff"

[[workstations]]
id = "office"
token = "{ADMIN_TOKEN}"
role = "admin"

[staff]
initial = ["{ADA}", "{GRACE}", "Alan Turing"]

[pricing]
minimum_charge_usd = 3.00
[pricing.materials.PLA]
usd_per_gram = 0.05
[pricing.materials.PETG]
usd_per_gram = 0.06

[[printers]]
id = "manual-1"
driver = "manual"
materials = ["PLA"]
build_volume_mm = [250, 210, 210]

[[printers]]
id = "manual-2"
driver = "manual"
materials = ["PETG"]
build_volume_mm = [80, 80, 80]

[email]
from = "Test Fab Lab <fablab@example.edu>"
"#,
        data = dir.join("data").display()
    )
}
