//! Farmhand as systemd sees it: the real binary with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test owns, as systemd's own socket would be.
//!
//! - `READY=1` comes only once the HTTP port answers and the store is open;
//! - `WATCHDOG=1` arrives periodically at half of `WATCHDOG_USEC`;
//! - SIGTERM gives `STOPPING=1` and a clean exit;
//! - a hung store stops the pings. The hang is real: a debug-build-only hook
//!   (`FARMHAND_DEBUG_HANG_STORE_AFTER_MS`, compiled out of release builds) makes a
//!   thread take redb's write lock and never release it, so every write blocks as it
//!   would behind a dead disk.

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
