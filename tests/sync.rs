//! Cloud sync against a real S3 server (`s3s-fs`: SigV4 checked, multipart handled),
//! with a counting HTTP proxy in front of it so the tests can tell exactly which
//! objects were uploaded how often; and the same against a local folder (`file://`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use common::{ADA, TestFarm, corpus, tiny_stl, wait_for, walk};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BUCKET: &str = "farm-bucket";
const PREFIX: &str = "lab-1";
const ACCESS_KEY: &str = "farmhand-test-key";
const SECRET_KEY: &str = "farmhand-test-secret-0123456789";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `s3s-fs`, installed by scripts/install-test-deps.sh.
fn s3s_fs_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::split_paths(&path)
        .chain([home.join(".cargo/bin")])
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3 server these tests run against) is not installed: \
                 run scripts/install-test-deps.sh"
            )
        })
}

/// A real S3 server on a fixed port that can be stopped and started again.
struct S3Server {
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    fn start() -> S3Server {
        let root = tempfile::tempdir().expect("s3 root");
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket dir");
        let mut server = S3Server {
            root,
            port: free_port(),
            child: None,
        };
        server.resume();
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Where s3s-fs keeps the object `key` (below the farm's prefix) on disk.
    fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(PREFIX).join(key)
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.object_path(key)).ok()
    }

    /// Every object key below the prefix (s3s-fs's own bookkeeping files left out).
    fn keys(&self) -> Vec<String> {
        let base = self.root.path().join(BUCKET).join(PREFIX);
        let mut keys: Vec<String> = walk(&base)
            .into_iter()
            .filter_map(|p| {
                p.strip_prefix(&base)
                    .ok()
                    .map(|k| k.to_string_lossy().to_string())
            })
            .filter(|k| !k.split('/').any(|part| part.starts_with('.')))
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request the proxy passed on.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// The key below the bucket and prefix (`blobs/ab/…`), or the raw path.
    key: String,
    query: String,
    status: u16,
}

/// An HTTP proxy that forwards every request unchanged (the `Host` header too, so
/// SigV4 signatures stay valid) and records it with the answer's status.
struct CountingProxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl CountingProxy {
    async fn start(upstream: String) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            forward(client.clone(), upstream.clone(), log.clone(), request)
        });
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        CountingProxy { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Successful uploads (single PUTs and completed multipart uploads) per key.
    fn uploads(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in self.seen() {
            let single = s.method == "PUT" && !s.query.contains("partNumber");
            let completed = s.method == "POST" && s.query.contains("uploadId");
            if (single || completed) && (200..300).contains(&s.status) {
                *out.entry(s.key).or_insert(0) += 1;
            }
        }
        out
    }
}

async fn forward(
    client: reqwest::Client,
    upstream: String,
    log: Arc<Mutex<Vec<Seen>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut outgoing = client.request(parts.method.clone(), format!("{upstream}{path_query}"));
    for (name, value) in &parts.headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            outgoing = outgoing.header(name, value);
        }
    }
    let prefix = format!("/{BUCKET}/{PREFIX}/");
    let mut seen = Seen {
        method: parts.method.to_string(),
        key: parts
            .uri
            .path()
            .strip_prefix(&prefix)
            .unwrap_or(parts.uri.path())
            .to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        status: 502,
    };
    let response = match outgoing.body(body).send().await {
        Ok(answer) => {
            seen.status = answer.status().as_u16();
            let mut builder = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "transfer-encoding" && name != "connection" {
                    builder = builder.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            builder.body(Body::from(bytes)).expect("response")
        }
        Err(_) => Response::builder()
            .status(502)
            .body(Body::from("upstream down"))
            .expect("response"),
    };
    log.lock().expect("lock").push(seen);
    response
}

fn sync_config(endpoint: &str, extra: &str) -> String {
    format!(
        "[sync]\nurl = \"s3://{BUCKET}/{PREFIX}\"\nendpoint = \"{endpoint}\"\n\
         access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n{extra}\n"
    )
}

async fn sync_status(farm: &TestFarm) -> Value {
    let (status, body) = farm.get("/api/v1/sync").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the outbox is empty.
async fn drained(farm: &TestFarm, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let status = sync_status(farm).await;
        if status["pending"] == 0 {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sync still behind after {timeout:?}: {status}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every processing result is in (analysis, preview, thumbnail).
async fn processed(farm: &TestFarm, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let job = farm.analysed(id, Duration::from_secs(180)).await;
        let artifacts = job["artifacts"].as_object().map_or(0, |a| a.len());
        let expected = if job["format"] == "gcode" { 1 } else { 2 };
        if job["analysis"]["state"] != "done" || artifacts >= expected {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never got its previews: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn all_jobs(farm: &TestFarm) -> Vec<Value> {
    let (status, body) = farm.get("/api/v1/jobs?limit=500").await;
    assert_eq!(status, 200, "{body}");
    body["jobs"].as_array().cloned().expect("jobs")
}

/// The API form of a job (as `job_json`) from the bucket's metadata document.
fn api_form(job: &Value) -> Value {
    let mut job = job.clone();
    job["is_new"] = json!(job["staff_viewed_at"].is_null());
    job
}

/// Checks that the bucket holds every job exactly as the API shows it, every blob
/// it refers to with the right hash, and the artifact copies beside it.
async fn assert_bucket_matches(farm: &TestFarm, s3: &S3Server) {
    for job in all_jobs(farm).await {
        let id = job["id"].as_str().expect("id").to_string();
        let raw = s3
            .object(&format!("jobs/{id}/metadata.json"))
            .unwrap_or_else(|| panic!("jobs/{id}/metadata.json is missing; keys: {:?}", s3.keys()));
        let doc: Value = serde_json::from_slice(&raw).expect("metadata json");
        assert_eq!(api_form(&doc["job"]), job, "job {id} in the bucket");
        assert_eq!(
            doc["events"].as_array().expect("events"),
            &farm.events(&id).await
        );
        let mut hashes: Vec<String> = doc["file_versions"]
            .as_array()
            .expect("file versions")
            .iter()
            .map(|v| v["hash"].as_str().expect("hash").to_string())
            .collect();
        assert!(
            !hashes.is_empty(),
            "job {id} has no file versions in the bucket"
        );
        for (name, hash) in job["artifacts"].as_object().expect("artifacts") {
            let hash = hash.as_str().expect("hash").to_string();
            let file = match name.as_str() {
                "gcode" => "print.gcode",
                other => other,
            };
            let copy = s3
                .object(&format!("jobs/{id}/{file}"))
                .unwrap_or_else(|| panic!("jobs/{id}/{file} missing"));
            assert_eq!(sha256(&copy), hash, "jobs/{id}/{file}");
            hashes.push(hash);
        }
        for hash in hashes {
            let key = format!("blobs/{}/{hash}", &hash[..2]);
            let bytes = s3
                .object(&key)
                .unwrap_or_else(|| panic!("{key} (of job {id}) is missing"));
            assert_eq!(sha256(&bytes), hash, "{key} holds other bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_appear_in_the_bucket_with_the_documented_layout() {
    let s3 = S3Server::start();
    let proxy = CountingProxy::start(s3.url()).await;
    let extra = sync_config(&proxy.url, "snapshot_interval_s = 1");
    let farm = TestFarm::start_custom(&[("FARMHAND_STORAGE__MAX_UPLOAD_MB", "40")], &extra).await;

    let cube = std::fs::read(corpus("models/20mm-xyz-cube.stl")).expect("corpus cube");
    let (status, job) = farm
        .submit("cube.stl", cube.clone(), "Ada Student", "ada@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    processed(&farm, &id).await;
    let (status, body) = farm
        .act(&id, "approve", json!({ "staff": ADA, "weight_g": 12.0 }))
        .await;
    assert_eq!(status, 200, "{body}");

    // A file above the multipart threshold (8 MiB): 12 MB of G-code.
    let mut big = String::from("; farmhand sync test\nG28\nG90\nM82\nG92 E0\n");
    let mut layer = 0u32;
    while big.len() < 12_000_000 {
        layer += 1;
        big.push_str(&format!("G1 Z{:.2} F600\n", layer as f64 * 0.2));
        for i in 0..100u32 {
            let (x, y) = (10.0 + (i % 10) as f64, 10.0 + (i / 10) as f64);
            big.push_str(&format!(
                "G1 X{x:.3} Y{y:.3} E{:.5}\n",
                (layer * 100 + i) as f64 * 0.01
            ));
        }
    }
    let big = big.into_bytes();
    let (status, big_job) = farm
        .submit("big.gcode", big.clone(), "Bo Big", "bo@example.edu")
        .await;
    assert_eq!(status, 201, "{big_job}");
    let big_id = big_job["id"].as_str().expect("id").to_string();
    processed(&farm, &big_id).await;

    let status = drained(&farm, Duration::from_secs(120)).await;
    assert!(status["last_success_at"].is_string(), "{status}");
    assert_bucket_matches(&farm, &s3).await;

    // The documented layout, key by key.
    let keys = s3.keys();
    let cube_key = format!("blobs/{}/{}", &sha256(&cube)[..2], sha256(&cube));
    for key in [
        cube_key.clone(),
        format!("jobs/{id}/metadata.json"),
        format!("jobs/{id}/preview.glb"),
        format!("jobs/{id}/thumbnail.png"),
        format!("jobs/{big_id}/metadata.json"),
    ] {
        assert!(keys.contains(&key), "{key} not in the bucket: {keys:?}");
    }
    let (_, preview) = farm
        .download(&format!("/api/v1/jobs/{id}/files/preview.glb"))
        .await;
    assert_eq!(s3.object(&format!("jobs/{id}/preview.glb")), Some(preview));

    // The big file went up in parts.
    let big_key = format!("blobs/{}/{}", &sha256(&big)[..2], sha256(&big));
    let parts = proxy
        .seen()
        .into_iter()
        .filter(|s| s.key == big_key && s.query.contains("partNumber") && s.status == 200)
        .count();
    assert!(parts >= 3, "12 MB in 5 MiB parts is 3 parts, saw {parts}");
    assert_eq!(proxy.uploads().get(&big_key), Some(&1));

    // A snapshot of the store follows.
    wait_for("a snapshot in the bucket", Duration::from_secs(60), || {
        s3.keys()
            .into_iter()
            .find(|k| k.starts_with("snapshots/") && k.ends_with(".redb"))
    })
    .await;
    let (status, status_body) = farm.get("/api/v1/sync").await;
    assert_eq!(status, 200);
    assert_eq!(status_body["url"], format!("s3://{BUCKET}/{PREFIX}"));
    let anonymous = reqwest::get(format!("{}/api/v1/sync", farm.url))
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401, "the backlog is for staff only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_catches_up_with_nothing_missing_or_sent_twice() {
    let mut s3 = S3Server::start();
    let proxy = CountingProxy::start(s3.url()).await;
    let extra = sync_config(&proxy.url, "max_backoff_s = 1\nsnapshot_interval_s = 3600");
    let mut farm = TestFarm::start_custom(&[], &extra).await;

    let mut ids = Vec::new();
    for seed in 0..3 {
        let (status, job) = farm
            .submit(
                "before.stl",
                tiny_stl(seed),
                "Early Bird",
                &format!("e{seed}@example.edu"),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        ids.push(job["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        processed(&farm, id).await;
    }
    drained(&farm, Duration::from_secs(60)).await;
    let before_outage = proxy.uploads();

    let before_stop = proxy.seen().len();
    s3.stop();
    // Load while the bucket is gone: new jobs (one file twice, from two students),
    // and changes to the jobs the bucket already has.
    let shared = tiny_stl(999);
    for seed in 100..112u32 {
        let bytes = if seed < 102 {
            shared.clone()
        } else {
            tiny_stl(seed)
        };
        let (status, job) = farm
            .submit(
                "during.stl",
                bytes,
                "Night Owl",
                &format!("n{seed}@example.edu"),
            )
            .await;
        assert!(status == 201, "{status} {job}");
        ids.push(job["id"].as_str().expect("id").to_string());
    }
    for id in &ids[..3] {
        let (status, body) = farm
            .act(id, "approve", json!({ "staff": ADA, "weight_g": 5.0 }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for id in &ids {
        processed(&farm, id).await;
    }
    // The farm keeps working and shows the backlog while the bucket is unreachable.
    let (health, _) = farm.get("/healthz").await;
    assert_eq!(health, 200);
    let behind = wait_for_status(&farm, |s| {
        s["last_error"].is_string() && s["pending"].as_u64() >= Some(12)
    })
    .await;
    assert!(
        behind["oldest_pending_age_s"].as_f64().is_some(),
        "{behind}"
    );
    // The backlog is in the store: a power cut (SIGKILL) while offline loses none of it.
    farm.restart();
    let after_crash = sync_status(&farm).await;
    assert_eq!(
        after_crash["pending"], behind["pending"],
        "the backlog survives a crash: {after_crash}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = proxy.uploads();
    assert_eq!(
        during, before_outage,
        "nothing can have been uploaded while down"
    );

    let requests_while_down = proxy.seen().len() - before_stop;
    s3.resume();
    let resumed = Instant::now();
    drained(&farm, Duration::from_secs(120)).await;
    let catch_up = resumed.elapsed();
    assert_bucket_matches(&farm, &s3).await;

    // Nothing uploaded twice needlessly: every blob once, and every job created or
    // changed during the outage had its metadata uploaded once after it.
    let uploads = proxy.uploads();
    for (key, count) in &uploads {
        if key.starts_with("blobs/") || key.ends_with(".glb") || key.ends_with(".png") {
            assert_eq!(*count, 1, "{key} was uploaded {count} times");
        }
    }
    for id in &ids {
        let key = format!("jobs/{id}/metadata.json");
        let after =
            uploads.get(&key).copied().unwrap_or(0) - before_outage.get(&key).copied().unwrap_or(0);
        assert_eq!(after, 1, "{key}: {after} uploads after the outage");
    }
    let shared_key = format!("blobs/{}/{}", &sha256(&shared)[..2], sha256(&shared));
    assert_eq!(
        uploads.get(&shared_key),
        Some(&1),
        "one file, two jobs, one blob"
    );
    eprintln!(
        "outage: {} jobs, {} requests in all ({} while the bucket was down), \
         {} objects uploaded once each, caught up {:.1} s after it came back",
        ids.len(),
        proxy.seen().len(),
        requests_while_down,
        uploads.len(),
        catch_up.as_secs_f64()
    );
}

async fn wait_for_status(farm: &TestFarm, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sync_status(farm).await;
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sync status never matched: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One job in each of the eight statuses, on the test farm's manual printers.
async fn farm_in_every_status(farm: &TestFarm) -> BTreeMap<&'static str, String> {
    let mut jobs = BTreeMap::new();
    let statuses = [
        "UPLOADED",
        "PENDING",
        "READYTOPRINT",
        "COMPLETED",
        "PAIDPICKEDUP",
        "REJECTED",
        "ARCHIVED",
        "PRINTING",
    ];
    for (seed, want) in statuses.into_iter().enumerate() {
        let (status, job) = farm
            .submit(
                "part.stl",
                tiny_stl(500 + seed as u32),
                "Sam Student",
                &format!("s{seed}@example.edu"),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        let id = job["id"].as_str().expect("id").to_string();
        processed(farm, &id).await;
        let staff = json!({ "staff": ADA });
        let mut steps: Vec<(&str, Value)> = Vec::new();
        match want {
            "UPLOADED" => {}
            "REJECTED" | "ARCHIVED" => steps.push((
                "reject",
                json!({ "staff": ADA, "reasons": ["walls too thin"] }),
            )),
            _ => steps.push(("approve", json!({ "staff": ADA, "weight_g": 10.0 }))),
        }
        for (action, body) in steps.drain(..) {
            let (status, answer) = farm.act(&id, action, body).await;
            assert_eq!(status, 200, "{action} {id}: {answer}");
        }
        if !matches!(want, "UPLOADED" | "PENDING" | "REJECTED" | "ARCHIVED") {
            farm.confirm_by_mail(&id).await;
        }
        match want {
            "ARCHIVED" => steps.push(("archive", staff.clone())),
            "PRINTING" => steps.push(("dispatch", json!({ "staff": ADA, "printer": "manual-1" }))),
            "COMPLETED" | "PAIDPICKEDUP" => {
                steps.push(("dispatch", json!({ "staff": ADA, "printer": "manual-1" })));
                steps.push(("complete", staff.clone()));
            }
            _ => {}
        }
        if want == "PAIDPICKEDUP" {
            steps.push((
                "pickup",
                json!({ "staff": ADA, "paid_usd": 3.0, "payment_ref": "CARD-1" }),
            ));
        }
        for (action, body) in steps {
            let (status, answer) = farm.act(&id, action, body).await;
            assert_eq!(status, 200, "{action} {id}: {answer}");
        }
        if matches!(want, "COMPLETED" | "PAIDPICKEDUP") {
            let (status, answer) = farm
                .post(
                    "/api/v1/printers/manual-1/clear",
                    staff.clone(),
                    common::STAFF_TOKEN,
                )
                .await;
            assert_eq!(status, 200, "clear: {answer}");
        }
        assert_eq!(farm.job(&id).await["status"], want);
        jobs.insert(want, id);
    }
    jobs
}

fn restore_command(from: &str, data_dir: &Path, endpoint: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_farmhand"));
    command
        .args(["restore", "--from", from, "--data-dir"])
        .arg(data_dir)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("RUST_LOG", "warn");
    if let Some(endpoint) = endpoint {
        command.args(["--endpoint", endpoint]);
    }
    command.output().expect("run farmhand restore")
}

async fn everything(farm: &TestFarm) -> (Vec<Value>, HashMap<String, Vec<Value>>, Value) {
    let jobs = all_jobs(farm).await;
    let mut events = HashMap::new();
    for job in &jobs {
        let id = job["id"].as_str().expect("id").to_string();
        events.insert(id.clone(), farm.events(&id).await);
    }
    let (_, log) = farm.get("/api/v1/events?limit=500").await;
    (jobs, events, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_farm_is_restored_from_the_bucket_alone() {
    let mut s3 = S3Server::start();
    let extra = sync_config(&s3.url(), "snapshot_interval_s = 1");
    let mut farm = TestFarm::start_custom(&[], &extra).await;
    let jobs = farm_in_every_status(&farm).await;
    assert_eq!(jobs.len(), 8);
    // Wait for the bucket to hold everything, including a snapshot taken after the
    // last change.
    let in_step = |s: &Value| s["pending"] == 0 && s["snapshot_current"] == true;
    let before = loop {
        wait_for_status(&farm, in_step).await;
        let seen = everything(&farm).await;
        // Still in step afterwards: nothing changed while we looked (late mail).
        if in_step(&sync_status(&farm).await) {
            break seen;
        }
    };
    let original = farm
        .download(&format!("/api/v1/jobs/{}/files/original", jobs["PRINTING"]))
        .await;
    assert_eq!(original.0, 200);

    // Destroy the farm.
    farm.kill();
    let data = farm.data_dir();
    std::fs::remove_dir_all(&data).expect("remove data dir");

    let url = format!("s3://{BUCKET}/{PREFIX}");
    let out = restore_command(&url, &data, Some(&s3.url()));
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(report.contains("Restored 8 jobs"), "{report}");

    // A second restore into the now non-empty dir is refused.
    let again = restore_command(&url, &data, Some(&s3.url()));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    farm.restart();
    let after = everything(&farm).await;
    assert_eq!(after.0, before.0, "the restored jobs");
    assert_eq!(after.1, before.1, "the restored events of each job");
    assert_eq!(after.2, before.2, "the restored audit log");
    let restored = farm
        .download(&format!("/api/v1/jobs/{}/files/original", jobs["PRINTING"]))
        .await;
    assert_eq!(restored, original);
    // The restored farm works: the next job gets the next id.
    let (status, job) = farm
        .submit("new.stl", tiny_stl(4242), "New Student", "new@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["id"], "9");

    // A damaged blob in the bucket stops a restore.
    let blob_key = before.0[0]["file_hash"].as_str().expect("hash").to_string();
    let damaged = s3.object_path(&format!("blobs/{}/{blob_key}", &blob_key[..2]));
    let mut bytes = std::fs::read(&damaged).expect("blob");
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("damage");
    let other = tempfile::tempdir().expect("dir");
    let out = restore_command(&url, &other.path().join("data"), Some(&s3.url()));
    assert!(
        !out.status.success(),
        "a damaged blob must fail the restore"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s3.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_folder_bucket_syncs_and_restores() {
    let cloud = tempfile::tempdir().expect("cloud dir");
    let url = format!("file://{}", cloud.path().display());
    let extra = format!("[sync]\nurl = \"{url}\"\n");
    let mut farm = TestFarm::start_custom(&[], &extra).await;
    let bytes = tiny_stl(7);
    let (status, job) = farm
        .submit("local.stl", bytes.clone(), "Lou Local", "lou@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    processed(&farm, &id).await;
    drained(&farm, Duration::from_secs(60)).await;
    let hash = sha256(&bytes);
    let blob = cloud.path().join(format!("blobs/{}/{hash}", &hash[..2]));
    assert_eq!(std::fs::read(&blob).ok(), Some(bytes));
    let meta: Value = serde_json::from_slice(
        &std::fs::read(cloud.path().join(format!("jobs/{id}/metadata.json"))).expect("metadata"),
    )
    .expect("json");
    assert_eq!(api_form(&meta["job"]), farm.job(&id).await);
    let before = everything(&farm).await;

    farm.kill();
    std::fs::remove_dir_all(farm.data_dir()).expect("remove");
    let out = restore_command(&url, &farm.data_dir(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    farm.restart();
    let after = everything(&farm).await;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_submissions_are_ingested_once_through_the_http_validation() {
    let cloud = tempfile::tempdir().expect("cloud dir");
    let inbox = cloud.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let drop = |name: &str, doc: Value, file: Option<(&str, Vec<u8>)>| {
        if let Some((file_name, bytes)) = file {
            std::fs::write(inbox.join(file_name), bytes).expect("model");
        }
        std::fs::write(inbox.join(format!("{name}.json")), doc.to_string()).expect("doc");
    };
    let form = |file: &str, email: &str| {
        json!({
            "file": file, "student_name": "Ivy Inbox", "student_email": email,
            "material": "PLA", "color": "Blue", "acknowledged_minimum_charge": true,
        })
    };
    let model = tiny_stl(31337);
    drop(
        "good",
        form("good.stl", "ivy@example.edu"),
        Some(("good.stl", model.clone())),
    );
    drop(
        "renamed-exe",
        form("tool.stl", "ivy@example.edu"),
        Some(("tool.stl", b"MZ\x90\x00this is a windows program".to_vec())),
    );
    drop(
        "bad-email",
        form("other.stl", "not-an-address"),
        Some(("other.stl", tiny_stl(1))),
    );
    std::fs::write(inbox.join("garbage.json"), b"{not json").expect("garbage");

    let url = format!("file://{}", cloud.path().display());
    let extra = format!("[sync]\nurl = \"{url}\"\ninbox = true\ninbox_interval_s = 1\n");
    let farm = TestFarm::start_custom(&[], &extra).await;
    let done = inbox.join("done/good.json");
    wait_for("the accepted submission", Duration::from_secs(60), || {
        std::fs::read(&done).ok()
    })
    .await;
    for name in ["renamed-exe", "bad-email", "garbage"] {
        let path = inbox.join(format!("rejected/{name}.json"));
        wait_for(
            &format!("the rejection of {name}"),
            Duration::from_secs(60),
            || std::fs::read(&path).ok(),
        )
        .await;
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&done).expect("done")).expect("json");
    let id = report["job_id"].as_str().expect("job id").to_string();
    let job = farm.job(&id).await;
    assert_eq!(job["student_email"], "ivy@example.edu");
    assert_eq!(job["file_hash"], sha256(&model));
    assert_eq!(job["original_filename"], "good.stl");
    let code = |name: &str| -> Value {
        let raw = std::fs::read(inbox.join(format!("rejected/{name}.json"))).expect("rejected");
        serde_json::from_slice::<Value>(&raw).expect("json")["error"]["code"].clone()
    };
    // The same codes as POST /api/v1/jobs gives.
    assert_eq!(code("renamed-exe"), "not_a_model");
    assert_eq!(code("bad-email"), "invalid_email");
    assert_eq!(code("garbage"), "bad_form");
    assert!(!inbox.join("good.json").exists() && !inbox.join("good.stl").exists());
    assert!(
        inbox.join("rejected/tool.stl").exists(),
        "a rejected model is kept beside its report"
    );

    // Exactly once: the same submission dropped again (as after a crash before it was
    // moved) is the same job, and passes later change nothing.
    drop(
        "good-again",
        form("good.stl", "ivy@example.edu"),
        Some(("good.stl", model.clone())),
    );
    let again = inbox.join("done/good-again.json");
    let raw = wait_for("the re-dropped submission", Duration::from_secs(60), || {
        std::fs::read(&again).ok()
    })
    .await;
    let report: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(report["job_id"], id.as_str());
    assert_eq!(report["duplicate"], true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(all_jobs(&farm).await.len(), 1, "one job from the inbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_cap_paces_uploads() {
    let cloud = tempfile::tempdir().expect("cloud dir");
    let url = format!("file://{}", cloud.path().display());
    let extra = format!("[sync]\nurl = \"{url}\"\nmax_upload_kib_s = 200\n");
    let farm = TestFarm::start_custom(&[], &extra).await;
    // A valid 1 MB binary STL.
    let triangles = 20_000u32;
    let mut model = vec![b' '; 80];
    model.extend_from_slice(&triangles.to_le_bytes());
    for i in 0..triangles {
        let z = i as f32 * 0.001;
        for v in [0.0f32, 0.0, 1.0, 0.0, 0.0, z, 10.0, 0.0, z, 0.0, 10.0, z] {
            model.extend_from_slice(&v.to_le_bytes());
        }
        model.extend_from_slice(&[0, 0]);
    }
    let started = Instant::now();
    let (status, job) = farm
        .submit("paced.stl", model.clone(), "Pat Paced", "pat@example.edu")
        .await;
    assert_eq!(status, 201, "{job}");
    let hash = sha256(&model);
    let blob = cloud.path().join(format!("blobs/{}/{hash}", &hash[..2]));
    wait_for("the blob in the bucket", Duration::from_secs(120), || {
        blob.is_file().then_some(())
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "1 MB at a 200 KiB/s cap reached the bucket after {:.1} s",
        took.as_secs_f64()
    );
    // 1,000,084 bytes at 200 KiB/s with at most one second of burst: 3.9 s at least.
    assert!(
        took >= Duration::from_millis(3800),
        "uploaded in {took:?}: not paced"
    );
    assert_eq!(std::fs::read(&blob).expect("blob"), model);
}
