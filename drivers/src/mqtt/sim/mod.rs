//! A simulated generic-MQTT printer: an MQTT client speaking schema v1 against a real broker,
//! the way an ESP32 or a Raspberry Pi bridge would. It downloads the job over HTTP, checks size
//! and SHA-256, "prints" it in the slicer's estimated time scaled by `time_scale`, and publishes
//! its retained status every `report_every` and on every change.
//!
//! ```no_run
//! # async fn demo() -> Result<(), drivers::DriverError> {
//! use drivers::mqtt::sim::{MqttSim, MqttSimOptions};
//! let sim = MqttSim::spawn(MqttSimOptions::new("mqtt://127.0.0.1:1883", "farmhand/printers/sim-1"))?;
//! sim.fail("Thermal runaway"); // the next report says the job failed
//! # Ok(()) }
//! ```

pub mod printer;

use std::time::Duration;

use rumqttc::QoS;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::printer::{Fetch, Plan, SimPrinter, plan_for};
use super::conn::{Backoff, Link, LinkEvent, LinkOptions, client_id};
use super::schema::{self, StatusMsg};
use crate::{DriverError, Temp};

/// How the simulated printer behaves.
#[derive(Debug, Clone)]
pub struct MqttSimOptions {
    /// `mqtt://host:port` of the broker.
    pub broker: String,
    /// Base topic, as in the printer's config.
    pub topic: String,
    /// Real seconds per simulated second: 1 = real time, 0.001 = 1000× faster.
    pub time_scale: f64,
    /// Status publication interval (also the time step).
    pub report_every: Duration,
    pub backoff: Backoff,
    /// For benchmarks: every report carries the time it was sent (Unix milliseconds) as the
    /// chamber temperature's `actual` (target 0), so whoever sees the report later (the daemon's
    /// stream) can tell how long it took. Schema-valid, but not a temperature: off by default.
    pub stamp_reports: bool,
}

impl MqttSimOptions {
    pub fn new(broker: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            broker: broker.into(),
            topic: topic.into(),
            time_scale: 1.0,
            report_every: Duration::from_secs(1),
            backoff: Backoff::default(),
            stamp_reports: false,
        }
    }
}

#[derive(Debug)]
enum Ctl {
    Fail(String),
    Clear,
    PowerLoss,
}

/// Entry point: see [`MqttSim::spawn`].
pub struct MqttSim;

impl MqttSim {
    /// Start the simulated printer on the current tokio runtime; it connects (and keeps
    /// reconnecting) to `opts.broker` and stops when the handle is dropped.
    pub fn spawn(opts: MqttSimOptions) -> Result<MqttSimHandle, DriverError> {
        Self::spawn_until(opts, &CancellationToken::new())
    }

    /// Like [`MqttSim::spawn`], but also stops when `shutdown` is cancelled (`farmhand demo`).
    pub fn spawn_until(
        opts: MqttSimOptions,
        shutdown: &CancellationToken,
    ) -> Result<MqttSimHandle, DriverError> {
        let (host, port) =
            schema::parse_broker(&opts.broker).map_err(|hint| DriverError::InvalidSetting {
                key: "broker",
                value: opts.broker.clone(),
                hint,
            })?;
        let stop = shutdown.child_token();
        let offline = serde_json::to_vec(&StatusMsg::offline()).unwrap_or_default();
        let link = Link::spawn(
            LinkOptions {
                host,
                port,
                client_id: client_id("farmhand-sim"),
                subscribe: vec![schema::command_topic(&opts.topic)],
                will: Some((schema::status_topic(&opts.topic), offline)),
                keep_alive: Duration::from_secs(2),
                backoff: opts.backoff,
                credentials: None,
                tls: None,
            },
            &stop,
        );
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(SimPrinter::default().status());
        tokio::spawn(run(opts, link, ctl_rx, state_tx, stop.clone()));
        Ok(MqttSimHandle {
            ctl,
            state,
            _stop: stop.drop_guard(),
        })
    }
}

/// The running simulator; dropping it stops the printer (it publishes `offline` first).
pub struct MqttSimHandle {
    ctl: mpsc::UnboundedSender<Ctl>,
    state: watch::Receiver<StatusMsg>,
    _stop: DropGuard,
}

impl MqttSimHandle {
    /// The printer fails mid-print with `reason` (its own words) and halts until [`Self::clear`].
    pub fn fail(&self, reason: &str) {
        let _ = self.ctl.send(Ctl::Fail(reason.to_string()));
    }

    /// A person cleared the fault: the printer reports idle again.
    pub fn clear(&self) {
        let _ = self.ctl.send(Ctl::Clear);
    }

    /// Cut the power: the TCP connection drops without an MQTT DISCONNECT, so the broker
    /// publishes the last will (`offline`). The simulator is dead afterwards.
    pub fn power_loss(&self) {
        let _ = self.ctl.send(Ctl::PowerLoss);
    }

    /// What the printer last published (or would have, while the broker is away).
    pub fn status(&self) -> watch::Receiver<StatusMsg> {
        self.state.clone()
    }
}

async fn run(
    opts: MqttSimOptions,
    link: Link,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    state: watch::Sender<StatusMsg>,
    stop: CancellationToken,
) {
    let mut link = link;
    let status_topic = schema::status_topic(&opts.topic);
    let http = reqwest::Client::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Result<Plan, String>)>();
    let mut printer = SimPrinter::default();
    let mut tick = tokio::time::interval(opts.report_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let stamp = opts.stamp_reports;
    let publish = |link: &Link, p: &SimPrinter| {
        let mut msg = p.status();
        if stamp {
            msg.temps.chamber = Some(Temp {
                actual: unix_ms(),
                target: 0.0,
            });
        }
        let payload = serde_json::to_vec(&msg).unwrap_or_default();
        // try_: while the broker is away the queue may fill; the next tick sends a fresh one.
        let _ = link
            .client
            .try_publish(status_topic.clone(), QoS::AtLeastOnce, true, payload);
        state.send_replace(msg);
    };
    loop {
        let before = printer.clone();
        tokio::select! {
            _ = stop.cancelled() => {
                let payload = serde_json::to_vec(&StatusMsg::offline()).unwrap_or_default();
                let _ = link.client.try_publish(status_topic.clone(), QoS::AtLeastOnce, true, payload);
                // Dropping the link sends the DISCONNECT after the queued offline status.
                break;
            }
            c = ctl.recv() => match c {
                Some(Ctl::Fail(reason)) => printer.fail(reason),
                Some(Ctl::Clear) => printer.clear(),
                Some(Ctl::PowerLoss) => {
                    link.abort();
                    return;
                }
                None => {}
            },
            ev = link.events.recv() => match ev {
                Some(LinkEvent::Up) => publish(&link, &printer),
                Some(LinkEvent::Message { payload, .. }) => match schema::parse_command(&payload) {
                    Ok(msg) => {
                        if let Some(fetch) = printer.command(msg.cmd) {
                            tokio::spawn(download(http.clone(), fetch, done_tx.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(topic = %opts.topic, "simulator ignored a command: {e}"),
                },
                Some(LinkEvent::Down(_)) => {}
                // The connection task only ends when we are stopping.
                None => break,
            },
            Some((id, result)) = done_rx.recv() => printer.downloaded(&id, result),
            _ = tick.tick() => {
                let now = Instant::now();
                let real = now.duration_since(last).as_secs_f64();
                last = now;
                let sim_s = if opts.time_scale > 0.0 { real / opts.time_scale } else { f64::INFINITY };
                printer.advance(sim_s);
                publish(&link, &printer);
                continue;
            }
        }
        if printer != before {
            publish(&link, &printer);
        }
    }
    // A deliberate stop: give the queued offline status a moment to leave.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while link.events.recv().await.is_some() {}
    })
    .await;
}

/// Now as Unix milliseconds (exact in an f64 for the next 280,000 years).
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// Fetch and check the job file like a careful printer firmware would.
async fn download(
    http: reqwest::Client,
    fetch: Fetch,
    done: mpsc::UnboundedSender<(String, Result<Plan, String>)>,
) {
    let result = async {
        let resp = http
            .get(&fetch.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("download of {} failed: {e}", fetch.url))?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("download of {} broke off: {e}", fetch.url))?;
        if bytes.len() as u64 != fetch.size {
            return Err(format!(
                "downloaded {} bytes, the start command said {}",
                bytes.len(),
                fetch.size
            ));
        }
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !fetch.sha256.is_empty() && !got.eq_ignore_ascii_case(&fetch.sha256) {
            return Err(format!(
                "downloaded file has SHA-256 {got}, expected {}",
                fetch.sha256
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        Ok(plan_for(&text))
    }
    .await;
    let _ = done.send((fetch.job_id, result));
}
