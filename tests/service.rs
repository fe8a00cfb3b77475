//! Farmhand as systemd sees it: the real binary with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test owns, as systemd's own socket would be.
//!
//! - `READY=1` comes only once the HTTP port answers and the store is open;
//! - `WATCHDOG=1` arrives periodically at half of `WATCHDOG_USEC`;
//! - SIGTERM gives `STOPPING=1` and a clean exit;
//! - a hung store stops the pings. The hang is real: a debug-build-only hook
//!   (`FARMHAND_DEBUG_HANG_STORE_AFTER_MS`, compiled out of release builds) makes a
//!   thread take redb's write lock and never release it, so every write blocks as it
//!   would behind a dead disk;
//! - under systemd the log goes to the journal's socket, each field its own journal
//!   field (`JOB=`), checked by speaking the journal's native protocol.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// What the daemon sent, with when it arrived.
struct Message {
    at: Instant,
    text: String,
}

/// A socket in place of systemd's notify socket, read by a thread.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: String,
    rx: mpsc::Receiver<Message>,
    seen: Vec<Message>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx
                    .send(Message {
                        at: Instant::now(),
                        text,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        NotifySocket {
            _dir: dir,
            path: path.display().to_string(),
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (up to `within`) for a message with this line; returns when it came.
    fn wait_for(&mut self, line: &str, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(message) => {
                    let hit = message.text.lines().any(|l| l == line);
                    let at = message.at;
                    self.seen.push(message);
                    if hit {
                        return at;
                    }
                }
                Err(_) => panic!(
                    "no {line:?} within {within:?}; got {:?}",
                    self.seen.iter().map(|m| &m.text).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits for a message with a line starting with `prefix`; returns the line.
    fn wait_for_prefix(&mut self, prefix: &str, within: Duration) -> (Instant, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(message) => {
                    let hit = message
                        .text
                        .lines()
                        .find(|l| l.starts_with(prefix))
                        .map(String::from);
                    let at = message.at;
                    self.seen.push(message);
                    if let Some(line) = hit {
                        return (at, line);
                    }
                }
                Err(_) => panic!(
                    "no line starting {prefix:?} within {within:?}; got {:?}",
                    self.seen.iter().map(|m| &m.text).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Everything that arrives in the next `period`.
    fn collect_for(&mut self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            if let Ok(message) = self.rx.recv_timeout(left) {
                out.push(message.text.clone());
                self.seen.push(message);
            }
        }
    }
}

/// One second watchdog timeout: pings every 500 ms.
const WATCHDOG_USEC: &str = "1000000";

#[tokio::test]
async fn ready_after_the_port_answers_then_watchdog_pings_then_stopping_on_sigterm() {
    let mut notify = NotifySocket::bind();
    let mut farm = TestFarm::start_with(&[
        ("NOTIFY_SOCKET", notify.path.as_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC),
    ])
    .await;

    notify.wait_for("READY=1", Duration::from_secs(30));
    // READY=1 promises a bound port and an open, writable store.
    let health = farm
        .http
        .get(format!("{}/healthz", farm.url))
        .send()
        .await
        .expect("healthz right after READY=1");
    assert_eq!(health.status(), 200, "healthz after READY=1");

    let mut pings = Vec::new();
    for _ in 0..4 {
        pings.push(notify.wait_for("WATCHDOG=1", Duration::from_secs(10)));
    }
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    // Pings at half the timeout; never as late as the timeout itself (1 s) would allow
    // systemd to kill us, and not a burst either.
    for gap in &gaps {
        assert!(
            *gap >= Duration::from_millis(250) && *gap < Duration::from_millis(1000),
            "watchdog pings should come about every 500 ms, gaps were {gaps:?}"
        );
    }

    let status = farm.terminate();
    notify.wait_for("STOPPING=1", Duration::from_secs(5));
    assert!(status.success(), "SIGTERM should stop cleanly: {status:?}");
}

#[tokio::test]
async fn a_hung_store_stops_the_watchdog_pings() {
    let mut notify = NotifySocket::bind();
    let mut farm = TestFarm::start_with(&[
        ("NOTIFY_SOCKET", notify.path.as_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC),
        ("FARMHAND_DEBUG_HANG_STORE_AFTER_MS", "2000"),
    ])
    .await;

    notify.wait_for("READY=1", Duration::from_secs(30));
    // Healthy first: the pings flow while the store answers.
    notify.wait_for("WATCHDOG=1", Duration::from_secs(10));
    notify.wait_for("WATCHDOG=1", Duration::from_secs(10));

    // Then the hook takes the write lock; the next check times out and says why.
    let (_, status) = notify.wait_for_prefix("STATUS=unhealthy", Duration::from_secs(15));
    assert!(
        status.contains("store"),
        "the status should blame the store: {status}"
    );
    // Not one ping in six intervals (3 s, three times systemd's 1 s timeout).
    let after = notify.collect_for(Duration::from_secs(3));
    assert!(
        !after.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "a hung store must stop the pings, got {after:?}"
    );
    farm.kill();
}

/// The journal's native protocol: `KEY=value` lines, or `KEY\n<u64 le length><bytes>\n`
/// for values with newlines.
fn journal_fields(datagram: &[u8]) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let line_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let line = &rest[..line_end];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            let value = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            fields.insert(key, value);
            rest = rest.get(line_end + 1..).unwrap_or_default();
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let after = &rest[line_end + 1..];
            let len = u64::from_le_bytes(after[..8].try_into().expect("length")) as usize;
            let value = String::from_utf8_lossy(&after[8..8 + len]).into_owned();
            fields.insert(key, value);
            rest = after.get(8 + len + 1..).unwrap_or_default();
        }
    }
    fields
}

/// Under systemd (`INVOCATION_ID` set) the log goes to the journal's socket with the
/// job id as its own field. The daemon runs in a private mount namespace (`unshare`)
/// where the test's own datagram socket is mounted at /run/systemd/journal/socket,
/// so it speaks the real protocol to the real path without a journald on the machine.
#[tokio::test]
async fn under_systemd_logs_go_to_the_journal_with_the_job_as_a_field() {
    let dir = tempfile::tempdir().expect("dir");
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).expect("journal dir");
    let socket = UnixDatagram::bind(journal_dir.join("socket")).expect("bind journal socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let config = dir.path().join("farmhand.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[log]\nlevel = \"info\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    // A tmpfs over /run/systemd hides the host's; the bind puts our socket in place.
    let script = format!(
        "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/journal && \
         mount --bind {journal} /run/systemd/journal && exec {bin} serve --config {config}",
        journal = journal_dir.display(),
        bin = env!("CARGO_BIN_EXE_farmhand"),
        config = config.display(),
    );
    let mut child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env("FARMHAND_SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs the daemon in its own mount namespace");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("Farmhand listening on ") {
                tx.send(url.to_string()).ok();
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => {
            child.kill().ok();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the daemon did not start under unshare (needs CAP_SYS_ADMIN for a mount namespace): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let form = reqwest::multipart::Form::new()
        .text("student_name", "Ada Student")
        .text("student_email", "ada@example.edu")
        .text("acknowledged_minimum_charge", "true")
        .part(
            "file",
            reqwest::multipart::Part::bytes(tiny_stl(7)).file_name("cube.stl"),
        );
    let job: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("job");
    let id = job["id"].as_str().expect("job id").to_string();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let found = loop {
        assert!(
            Instant::now() < deadline,
            "no journal entry for the submitted job; got {seen:?}"
        );
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let fields = journal_fields(&buf[..n]);
        if fields.get("MESSAGE").map(String::as_str) == Some("job submitted") {
            break fields;
        }
        seen.push(fields);
    };
    child.kill().ok();
    child.wait().ok();
    assert_eq!(found.get("JOB"), Some(&id), "{found:?}");
    assert_eq!(found.get("FILE").map(String::as_str), Some("cube.stl"));
    assert_eq!(
        found.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("farmhand")
    );
    // INFO maps to the journal's "notice" priority in tracing-journald.
    assert_eq!(found.get("PRIORITY").map(String::as_str), Some("5"));
}
