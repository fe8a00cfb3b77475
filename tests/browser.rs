//! The kiosk and the student pages in a real browser: headless Chromium driven over
//! WebDriver (chromedriver + fantoccini), against the real daemon with a simulated
//! Marlin printer on a real pseudo-terminal and PrusaSlicer slicing the model.
//!
//! The walk is what a new staff member is shown on their first day; the second test
//! holds the gate: no staff page without a session, no form without its CSRF token.
//! Screenshots of the dashboard and the job page at 800×480 and 1920×1080 are saved
//! in `target/screenshots/`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drivers::marlin::sim::{MarlinSim, SimHandle, SimOptions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts chromedriver and a headless Chromium session. Fails, naming the part, when
/// either is missing (scripts/install-test-deps.sh installs them).
async fn browser() -> (Driver, Client) {
    for (binary, package) in [
        ("chromedriver", "chromium-driver"),
        ("chromium", "chromium"),
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {binary}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{binary} is missing: install the Debian package {package} (scripts/install-test-deps.sh does)"
        );
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        // WebGL in software, for the 3D preview without a GPU.
        "--use-angle=swiftshader".into(),
        "--enable-unsafe-swiftshader".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1280,800".into(),
        format!("--user-data-dir={}", driver._profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session through chromedriver");
    (driver, client)
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves the page at `width`×`height` as `target/screenshots/{name}-{w}x{h}.png`.
async fn screenshot(client: &Client, name: &str, width: u32, height: u32) -> PathBuf {
    // The window includes the browser's frame: size it so the page itself (the
    // viewport) is exactly width × height.
    client.set_window_size(width, height).await.expect("resize");
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("viewport");
    let frame = |i: usize, want: u32| {
        let got = inner[i].as_u64().unwrap_or(u64::from(want)) as u32;
        want + want.saturating_sub(got)
    };
    client
        .set_window_size(frame(0, width), frame(1, height))
        .await
        .expect("resize");
    // Let layout (and the preview's resize observer) settle on the new size.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = screenshot_dir().join(format!("{name}-{width}x{height}.png"));
    std::fs::write(&path, png).expect("save screenshot");
    path
}

/// Polls `script` (a function body returning a value) until `done` accepts it.
async fn wait_js(
    client: &Client,
    what: &str,
    timeout: Duration,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value = client.execute(script, vec![]).await.unwrap_or(Value::Null);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last value {value}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (20 s) for the page a form post leads to, with its `.flash.ok` message saying
/// `expected`: a click returns before the browser has followed the redirect.
async fn wait_flash(client: &Client, expected: &str) {
    wait_js(
        client,
        &format!("the message {expected:?}"),
        Duration::from_secs(20),
        "const f = document.readyState === 'complete' && document.querySelector('.flash.ok'); return f ? f.textContent : null;",
        |v| v.as_str().is_some_and(|t| t.contains(expected)),
    )
    .await;
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

fn sliced_printer(sim: &SimHandle) -> String {
    let profile = corpus("slicer-configs/prusa25_mk3s_0.20mm_quality_prusament_pla.ini");
    format!(
        "[[printers]]\nid = \"sim-1\"\nname = \"Marlin sim\"\ndriver = \"marlin\"\nport = \"{}\"\nbuild_volume_mm = [250, 210, 210]\nmaterials = [\"PLA\"]\nslicer_profile = \"{}\"\n",
        sim.port_path().display(),
        profile.display()
    )
}

/// Counts the preview's pixels that are not the scene's background colour.
const CANVAS_PIXELS: &str = r#"
const c = document.getElementById('preview');
if (!c || c.dataset.state !== 'rendered') return null;
const off = document.createElement('canvas');
off.width = c.width; off.height = c.height;
const g = off.getContext('2d');
g.drawImage(c, 0, 0);
const d = g.getImageData(0, 0, off.width, off.height).data;
let model = 0;
for (let i = 0; i < d.length; i += 4) {
  if (Math.abs(d[i] - 0xee) + Math.abs(d[i + 1] - 0xf1) + Math.abs(d[i + 2] - 0xf4) > 60) model++;
}
return { model: model, total: d.length / 4 };
"#;

/// The progress bar of a tile and a marker that survives only without a reload.
const TILE_PROGRESS: &str = r#"
const bar = document.querySelector('#tile-sim-1 progress');
return { marker: window.__farmhandNoReload === true, value: bar ? bar.value : null,
         state: (document.querySelector('#tile-sim-1') || {}).className || '',
         updates: Number(document.getElementById('tiles').dataset.updates || 0),
         transport: document.getElementById('tiles').dataset.transport || '',
         clear: !!document.querySelector('#tile-sim-1 button.action-clear') };
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_new_staff_member_walks_a_job_from_upload_to_a_cleared_bed() {
    let sim = MarlinSim::spawn(SimOptions {
        time_scale: 0.01,
        ..Default::default()
    })
    .expect("start a simulated Marlin printer");
    let farm = TestFarm::start_custom(&[], &sliced_printer(&sim)).await;
    let (_driver, client) = browser().await;
    let url = |path: &str| format!("{}{path}", farm.url);

    // The student submits through the form; the upload shows its progress.
    client.goto(&url("/submit")).await.expect("open /submit");
    fill(&client, "#student_name", "Ada Student").await;
    fill(&client, "#student_email", "ada.student@example.edu").await;
    client
        .find(Locator::Css("select[name=material]"))
        .await
        .expect("material choice")
        .select_by_value("PLA")
        .await
        .expect("pick PLA");
    let model = corpus("models/20mm-xyz-cube.stl")
        .canonicalize()
        .expect("the corpus model");
    fill(&client, "#file", &model.display().to_string()).await;
    click(&client, "input[name=acknowledged_minimum_charge]").await;
    click(&client, "#submit-button").await;
    let done = wait_js(
        &client,
        "the submission to be accepted",
        Duration::from_secs(30),
        "const d = document.getElementById('submit-done'); return d && !d.classList.contains('hidden') ? d.textContent : null;",
        Value::is_string,
    )
    .await;
    assert!(
        done.as_str().unwrap_or("").contains("job is number 1"),
        "{done}"
    );
    let progress = client
        .execute(
            "return document.getElementById('upload-progress').value",
            vec![],
        )
        .await
        .expect("progress");
    assert_eq!(progress, json!(100), "the upload progress bar reached 100%");

    // A staff page without a session sends the kiosk to sign in.
    client.goto(&url("/jobs/1")).await.expect("open job");
    assert!(
        client
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/login")
    );
    fill(&client, "input[name=token]", STAFF_TOKEN).await;
    click(&client, "button[type=submit]").await;
    // The click returns before the redirect's page has loaded: wait for it.
    wait_js(
        &client,
        "the dashboard after signing in",
        Duration::from_secs(20),
        "return document.readyState === 'complete' ? location.pathname : null;",
        |path| path == "/",
    )
    .await;

    // Pick a name: the dropdown applies at once and is remembered.
    client
        .find(Locator::Css("#staff-select"))
        .await
        .expect("staff dropdown")
        .select_by_value(ADA)
        .await
        .expect("pick Ada");
    wait_js(
        &client,
        "the staff pick to apply",
        Duration::from_secs(10),
        "const f = document.querySelector('.flash.ok'); return f ? f.textContent : null;",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("Ada Lovelace is acting"))
        },
    )
    .await;

    // The new job is counted with a NEW badge; its queue lists it.
    let badge = text_of(&client, ".count[data-status=UPLOADED] [data-field=new]").await;
    assert_eq!(badge, "1 NEW");
    click(&client, ".count[data-status=UPLOADED]").await;
    click(&client, "a[href='/jobs/1']").await;

    // Wait for the analysis, preview and PrusaSlicer's G-code, then see the model.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let job = farm.job("1").await;
        if job["artifacts"]["gcode"].is_string() && job["artifacts"]["preview.glb"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "never processed: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.refresh().await.expect("reload the job page");
    let pixels = wait_js(
        &client,
        "the 3D preview to render",
        Duration::from_secs(30),
        CANVAS_PIXELS,
        Value::is_object,
    )
    .await;
    let (model_px, total) = (
        pixels["model"].as_f64().unwrap_or(0.0),
        pixels["total"].as_f64().unwrap_or(1.0),
    );
    assert!(
        model_px / total > 0.01 && model_px / total < 0.9,
        "the preview shows a model, not a blank canvas: {pixels}"
    );
    assert_eq!(
        farm.job("1").await["is_new"],
        false,
        "opening it cleared NEW"
    );
    for (w, h) in [(800, 480), (1920, 1080)] {
        screenshot(&client, "job", w, h).await;
    }
    client.set_window_size(1280, 800).await.expect("resize");

    // Approve with the prefilled form (material, printer, the slicer's estimates).
    let weight = client
        .find(Locator::Css("#approve-form input[name=weight_g]"))
        .await
        .expect("weight field")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(
        weight.parse::<f64>().is_ok_and(|g| g > 1.0),
        "prefilled weight {weight:?}"
    );
    click(&client, "#approve").await;
    wait_flash(&client, "Job 1 approved").await;
    assert_eq!(
        text_of(&client, ".job-head .status").await,
        "Awaiting student"
    );

    // The student follows the link in the mail and confirms.
    let mail = wait_for("the confirmation mail", Duration::from_secs(20), || {
        farm.outbox()
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with("-confirmation-job1.eml"))
    })
    .await;
    client
        .goto(&confirmation_link(&mail))
        .await
        .expect("open the mail link");
    click(&client, "button[type=submit]").await;
    // The confirm page has an <h1> too: wait for the answer page's, not the first found.
    let thanks = wait_js(
        &client,
        "the confirmation answer",
        Duration::from_secs(20),
        "const h = document.querySelector('h1'); return h ? h.textContent : '';",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("your print is queued"))
        },
    )
    .await;
    assert!(
        thanks
            .as_str()
            .unwrap_or("")
            .contains("your print is queued"),
        "{thanks}"
    );

    // Dispatch to the simulated printer.
    client.goto(&url("/jobs/1")).await.expect("job page");
    client
        .find(Locator::Css("form[action='/jobs/1/dispatch'] select"))
        .await
        .expect("printer choice")
        .select_by_value("sim-1")
        .await
        .expect("pick sim-1");
    click(&client, "#dispatch").await;
    wait_flash(&client, "dispatched to sim-1").await;

    // On the dashboard the progress bar moves while the page stays loaded.
    client.goto(&url("/")).await.expect("dashboard");
    client
        .execute("window.__farmhandNoReload = true; return true;", vec![])
        .await
        .expect("marker");
    let first = wait_js(
        &client,
        "the tile to show progress",
        Duration::from_secs(30),
        TILE_PROGRESS,
        |v| v["value"].is_number(),
    )
    .await;
    let start = first["value"].as_f64().unwrap_or(0.0);
    let moved = wait_js(
        &client,
        "the progress bar to move",
        Duration::from_secs(120),
        TILE_PROGRESS,
        |v| v["marker"] == true && v["value"].as_f64().is_some_and(|p| p > start + 1.0),
    )
    .await;
    assert!(moved["updates"].as_u64().unwrap_or(0) >= 1, "{moved}");
    assert_eq!(
        moved["transport"], "stream",
        "pushed over /ui/stream, not polled"
    );
    for (w, h) in [(800, 480), (1920, 1080)] {
        screenshot(&client, "dashboard", w, h).await;
    }
    client.set_window_size(1280, 800).await.expect("resize");

    // The print finishes; the tile asks for the bed to be cleared, still without a reload.
    let finished = wait_js(
        &client,
        "the tile to ask for the bed to be cleared",
        Duration::from_secs(240),
        TILE_PROGRESS,
        |v| v["clear"] == true,
    )
    .await;
    assert_eq!(
        finished["marker"], true,
        "the page was not reloaded: {finished}"
    );
    click(&client, "#tile-sim-1 button.action-clear").await;
    wait_flash(&client, "bed cleared").await;
    let state = client
        .find(Locator::Css("#tile-sim-1"))
        .await
        .expect("tile")
        .attr("class")
        .await
        .expect("class")
        .unwrap_or_default();
    assert!(state.contains("state-idle"), "{state}");

    // Every step is on the record with the name and the workstation.
    let events = farm.events("1").await;
    for kind in [
        "StaffApproved",
        "StudentConfirmed",
        "PrintStarted",
        "PrintCompleted",
        "BedCleared",
    ] {
        let event = events
            .iter()
            .find(|e| e["event_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"));
        if kind != "StudentConfirmed" && kind != "PrintCompleted" {
            assert_eq!(
                (
                    event["triggered_by"].as_str(),
                    event["workstation_id"].as_str()
                ),
                (Some(ADA), Some("kiosk-1")),
                "{event}"
            );
        }
    }
    assert_eq!(farm.job("1").await["status"], "COMPLETED");
    client.close().await.ok();
}

/// Every staff page, and every staff form with a body that would otherwise be valid.
const STAFF_PAGES: [&str; 13] = [
    "/",
    "/ui/live",
    "/jobs",
    "/jobs?status=PENDING&q=x&sort=cost",
    "/jobs/1",
    "/printers",
    "/admin",
    "/admin/printers",
    "/admin/outbox",
    "/admin/sync",
    "/admin/audit",
    "/admin/audit?type=JobCreated",
    "/admin/audit.csv",
];
const STAFF_FORMS: [(&str, &str); 10] = [
    ("/session/staff", "staff=Ada+Lovelace"),
    ("/logout", ""),
    ("/jobs/1/approve", "weight_g=2"),
    ("/jobs/1/reject", "reasons=Too+big"),
    ("/jobs/1/notes", "notes=hello"),
    ("/jobs/bulk", "action=archive&ids=1"),
    ("/printers/manual-1/clear", ""),
    ("/printers/manual-1/dispatch-next", ""),
    ("/admin/staff", "name=Mallory"),
    ("/admin/staff/deactivate", "name=Grace+Hopper"),
];

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body, as a browser encodes it.
fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in with a token; returns the session cookie (`name=value`) and a page's CSRF token.
async fn sign_in(farm: &TestFarm, http: &reqwest::Client, token: &str) -> (String, String) {
    let response = http
        .post(format!("{}/login", farm.url))
        .header("content-type", FORM)
        .body(encode(&[("token", token)]))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let page = http
        .get(format!("{}/", farm.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("html");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in the page:\n{page}"))
        .to_string();
    (cookie, csrf)
}

/// Picks `name` in the session's staff list, as the header dropdown does.
async fn pick_staff(farm: &TestFarm, http: &reqwest::Client, cookie: &str, csrf: &str, name: &str) {
    let response = http
        .post(format!("{}/session/staff", farm.url))
        .header("cookie", cookie)
        .header("content-type", FORM)
        .body(encode(&[("staff", name), ("csrf", csrf)]))
        .send()
        .await
        .expect("pick staff");
    assert_eq!(response.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_pages_need_a_session_and_forms_need_the_csrf_token() {
    let farm = TestFarm::start().await;
    let (status, _) = farm
        .submit("part.stl", tiny_stl(1), "Stu Dent", "stu@example.edu")
        .await;
    assert_eq!(status, 201);
    let http = plain_client();

    // Without a session: every page and every form goes to sign-in, and nothing changes.
    for path in STAFF_PAGES {
        let response = http
            .get(format!("{}{path}", farm.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 303, "GET {path}");
        assert_eq!(response.headers()["location"], "/login", "GET {path}");
    }
    for (path, body) in STAFF_FORMS {
        let response = http
            .post(format!("{}{path}", farm.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 303, "POST {path}");
        assert_eq!(response.headers()["location"], "/login", "POST {path}");
    }
    let forged = http
        .get(format!("{}/", farm.url))
        .header("cookie", "farmhand_session=forged-session-value")
        .send()
        .await
        .expect("get");
    assert_eq!(
        forged.status(),
        303,
        "an unknown session cookie is no session"
    );

    // A wrong token is refused with a page, slowly.
    let response = http
        .post(format!("{}/login", farm.url))
        .header("content-type", FORM)
        .body(encode(&[("token", "not-the-token")]))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());

    // With a session (admin, so the staff forms would be allowed): a post without the
    // CSRF token, or with another session's, is 403 in the API's error shape.
    let (cookie, csrf) = sign_in(&farm, &http, ADMIN_TOKEN).await;
    let (_, other_csrf) = sign_in(&farm, &http, ADMIN_TOKEN).await;
    for (path, body) in STAFF_FORMS {
        for bad in [String::new(), format!("&csrf={other_csrf}")] {
            let response = http
                .post(format!("{}{path}", farm.url))
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("{body}{bad}"))
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), 403, "POST {path} with {bad:?}");
            let error: Value = response.json().await.expect("JSON error");
            assert_eq!(error["error"]["code"], "csrf_failed", "POST {path}");
            assert!(error["error"]["message"].is_string());
        }
    }
    // Nothing those posts asked for happened.
    let job = farm.job("1").await;
    assert_eq!(
        (job["status"].as_str(), job["notes"].as_str()),
        (Some("UPLOADED"), Some(""))
    );
    let (_, staff) = farm.get("/api/v1/staff").await;
    assert!(!staff.to_string().contains("Mallory"), "{staff}");

    // The right token works; the session cookie reads the API but cannot write it.
    pick_staff(&farm, &http, &cookie, &csrf, ADA).await;
    let read = http
        .get(format!("{}/api/v1/jobs/1", farm.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    let write = http
        .post(format!("{}/api/v1/jobs/1/reject", farm.url))
        .header("cookie", &cookie)
        .json(&json!({ "staff": ADA, "reasons": ["x"] }))
        .send()
        .await
        .expect("write");
    assert_eq!(
        write.status(),
        401,
        "a cookie alone cannot call the write API"
    );

    // The dashboard's event stream: sign-in first, then the whole board at once.
    let refused = http
        .get(format!("{}/ui/stream", farm.url))
        .send()
        .await
        .expect("stream without a session");
    assert_eq!(refused.status(), 303, "GET /ui/stream without a session");
    let mut stream = http
        .get(format!("{}/ui/stream", farm.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("the stream's first update within 10 s")
            .expect("stream read")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first = text.split("\n\n").next().unwrap_or("");
    assert!(first.starts_with("event: update\n"), "{first}");
    let data: Value = serde_json::from_str(
        first
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line"),
    )
    .expect("update JSON");
    assert_eq!(data["tiles"].as_array().map(Vec::len), Some(2), "{data}");
    assert!(
        data["counts"].as_array().is_some_and(|c| !c.is_empty()),
        "{data}"
    );
    drop(stream);

    // Every page carries the security headers and no inline script or style.
    for path in STAFF_PAGES.iter().chain(["/login", "/submit"].iter()) {
        let response = http
            .get(format!("{}{path}", farm.url))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "GET {path}");
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("referrer-policy"));
        let body = response.text().await.expect("body");
        if path.ends_with(".csv") || path.starts_with("/ui/") {
            continue;
        }
        assert!(!body.contains(" style="), "GET {path} has an inline style");
        for tag in body.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or("");
            assert!(
                open.contains("src="),
                "GET {path} has an inline script: <script{open}>"
            );
        }
    }

    // Sign out ends the session for good.
    let response = http
        .post(format!("{}/logout", farm.url))
        .header("cookie", &cookie)
        .header("content-type", FORM)
        .body(encode(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 303);
    let after = http
        .get(format!("{}/", farm.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(after.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_page_adds_a_file_version_only_with_its_csrf_token() {
    let farm = TestFarm::start().await;
    let (status, _) = farm
        .submit("part.stl", tiny_stl(3), "Stu Dent", "stu@example.edu")
        .await;
    assert_eq!(status, 201);
    let http = plain_client();
    let (cookie, csrf) = sign_in(&farm, &http, STAFF_TOKEN).await;
    pick_staff(&farm, &http, &cookie, &csrf, ADA).await;
    let page = http
        .get(format!("{}/jobs/1", farm.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("job page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("action=\"/jobs/1/files\"") && page.contains("multipart/form-data"),
        "the job page offers the upload form"
    );
    let gcode = std::fs::read(corpus("gcode/20mm-xyz-cube.stl_prusa25-mk3s-0.20.gcode"))
        .expect("corpus G-code");
    let upload = |csrf: Option<&str>| {
        let mut form = reqwest::multipart::Form::new();
        if let Some(csrf) = csrf {
            form = form.text("csrf", csrf.to_string());
        }
        let form = form.part(
            "file",
            reqwest::multipart::Part::bytes(gcode.clone()).file_name("sliced.gcode"),
        );
        http.post(format!("{}/jobs/1/files", farm.url))
            .header("cookie", &cookie)
            .multipart(form)
            .send()
    };
    // Without the token: 403 in the API's shape, and nothing recorded.
    let refused = upload(None).await.expect("post");
    assert_eq!(refused.status(), 403);
    let error: Value = refused.json().await.expect("JSON error");
    assert_eq!(error["error"]["code"], "csrf_failed");
    let (_, versions) = farm.get("/api/v1/jobs/1/files/versions").await;
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
    // With it: back to the job page, version 2 by the staff member picked.
    let accepted = upload(Some(&csrf)).await.expect("post");
    assert_eq!(accepted.status(), 303);
    assert_eq!(accepted.headers()["location"], "/jobs/1");
    let (_, versions) = farm.get("/api/v1/jobs/1/files/versions").await;
    let list = versions["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(
        (list[1]["added_by"].as_str(), list[1]["format"].as_str()),
        (Some(ADA), Some("gcode"))
    );
    let (status, served) = farm.download("/api/v1/jobs/1/files/gcode").await;
    assert_eq!((status, served == gcode), (200, true));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_shows_the_sync_backlog_while_the_bucket_is_unreachable() {
    // An S3 endpoint where nothing listens: every upload fails and the backlog stays.
    let farm = TestFarm::start_custom(
        &[],
        "[sync]\nurl = \"s3://farm-bucket/lab\"\nendpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test-secret\"\n",
    )
    .await;
    for seed in 0..2 {
        let (status, _) = farm
            .submit(
                "part.stl",
                tiny_stl(10 + seed),
                "Stu Dent",
                &format!("s{seed}@example.edu"),
            )
            .await;
        assert_eq!(status, 201);
    }
    let http = plain_client();
    let (cookie, _) = sign_in(&farm, &http, STAFF_TOKEN).await;
    let page = wait_for_page(&farm, &http, &cookie, "/admin/sync", |page| {
        page.contains("id=\"sync-pending\">2<") && !page.contains("id=\"sync-error\">none<")
    })
    .await;
    // minijinja escapes `/` in HTML.
    assert!(
        page.contains("s3:&#x2f;&#x2f;farm-bucket&#x2f;lab"),
        "{page}"
    );
    let (_, api) = farm.get("/api/v1/sync").await;
    assert_eq!(api["pending"], 2, "{api}");
    assert!(api["last_error"].is_string(), "{api}");
    // The same backlog on /metrics, for the lab's alerting.
    let metrics = http
        .get(format!("{}/metrics", farm.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "farmhand_outbox_backlog{outbox=\"sync\"} 2"),
        "{metrics}"
    );
}

/// Polls a staff page until `done` accepts its HTML (20 s).
async fn wait_for_page(
    farm: &TestFarm,
    http: &reqwest::Client,
    cookie: &str,
    path: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = http
            .get(format!("{}{path}", farm.url))
            .header("cookie", cookie)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        if done(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{path} never showed it:\n{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
