//! A simulated Bambu Lab printer for tests and demos.
//!
//! A real printer runs its own MQTT broker and FTPS server. This stand-in keeps both parts
//! real but external: it is a TLS client (user `bblp`, the access code) of a real mosquitto,
//! publishing on `device/{serial}/report` and obeying `device/{serial}/request`, and it prints
//! files from `sdcard`, the directory a real FTPS server (vsftpd in the tests) stores uploads
//! in. The driver cannot tell the difference: same topics, same payloads, same TLS checks.
//!
//! It prints in the slicer's estimated time scaled by `time_scale`, publishes a full report on
//! `pushall` and the changed fields every `report_every`, and can be told to fail mid-print.

pub mod printer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::printer::{Effect, SimBambu, delta};
use super::protocol::Request;
use super::{driver::USER, report_topic, request_topic};
use crate::mqtt::conn::{Backoff, Link, LinkEvent, LinkOptions, client_id};
use crate::mqtt::sim::printer::{Plan, plan_for};

/// How the simulated printer behaves and where it finds its broker and SD card.
#[derive(Clone)]
pub struct BambuSimOptions {
    pub broker_host: String,
    pub broker_port: u16,
    pub serial: String,
    pub access_code: String,
    /// TLS to the broker (see [`super::tls::client_config`]).
    pub tls: Arc<rustls::ClientConfig>,
    /// The printer's storage: where the FTPS server puts uploads.
    pub sdcard: PathBuf,
    /// Real seconds per simulated second.
    pub time_scale: f64,
    pub report_every: Duration,
    pub backoff: Backoff,
}

#[derive(Debug)]
enum Ctl {
    Fail { code: u64, hms: (u32, u32) },
}

/// The running simulator; dropping it stops it.
pub struct BambuSimHandle {
    ctl: mpsc::UnboundedSender<Ctl>,
    state: watch::Receiver<SimBambu>,
    _stop: DropGuard,
}

impl BambuSimHandle {
    /// Start on the current tokio runtime; it (re)connects to the broker by itself.
    pub fn spawn(opts: BambuSimOptions) -> BambuSimHandle {
        let stop = CancellationToken::new();
        let link = Link::spawn(
            LinkOptions {
                host: opts.broker_host.clone(),
                port: opts.broker_port,
                client_id: client_id("bambu-sim"),
                subscribe: vec![request_topic(&opts.serial)],
                will: None,
                keep_alive: Duration::from_secs(2),
                backoff: opts.backoff,
                credentials: Some((USER.into(), opts.access_code.clone())),
                tls: Some(opts.tls.clone()),
            },
            &stop,
        );
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(SimBambu::default());
        tokio::spawn(run(opts, link, ctl_rx, state_tx, stop.clone()));
        BambuSimHandle {
            ctl,
            state,
            _stop: stop.drop_guard(),
        }
    }

    /// Fail the running print with `print_error` = `code` and one HMS entry.
    pub fn fail(&self, code: u64, hms: (u32, u32)) {
        let _ = self.ctl.send(Ctl::Fail { code, hms });
    }

    /// The simulator's own state (what it would report).
    pub fn state(&self) -> watch::Receiver<SimBambu> {
        self.state.clone()
    }
}

struct Publisher {
    topic: String,
    last: Map<String, Value>,
}

impl Publisher {
    /// Publish the full report (`full`) or only what changed since the last one.
    fn publish(&mut self, link: &Link, printer: &SimBambu, full: bool) {
        let now = printer.report();
        let mut body = if full {
            now.clone()
        } else {
            delta(&self.last, &now)
        };
        if body.is_empty() {
            return;
        }
        body.insert("command".into(), json!("push_status"));
        body.insert("msg".into(), json!(if full { 0 } else { 1 }));
        let payload = serde_json::to_vec(&json!({ "print": body })).unwrap_or_default();
        // try_: while the broker is away the queue may fill; a later report catches up.
        if link
            .client
            .try_publish(self.topic.clone(), QoS::AtMostOnce, false, payload)
            .is_ok()
        {
            self.last = now;
        }
    }

    fn refuse(&self, link: &Link, command: &str, reason: &str, seq: &str) {
        let payload = json!({"print": {"command": command, "result": "fail", "reason": reason, "sequence_id": seq}});
        let _ = link.client.try_publish(
            self.topic.clone(),
            QoS::AtMostOnce,
            false,
            serde_json::to_vec(&payload).unwrap_or_default(),
        );
    }
}

async fn run(
    opts: BambuSimOptions,
    mut link: Link,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    state: watch::Sender<SimBambu>,
    stop: CancellationToken,
) {
    let mut printer = SimBambu::default();
    let mut out = Publisher {
        topic: report_topic(&opts.serial),
        last: Map::new(),
    };
    let mut tick = tokio::time::interval(opts.report_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(Ctl::Fail { code, hms }) = ctl.recv() => printer.fail(code, hms),
            ev = link.events.recv() => match ev {
                Some(LinkEvent::Up) => out.publish(&link, &printer, true),
                Some(LinkEvent::Message { payload, .. }) => {
                    let Some((req, seq)) = Request::parse(&payload) else {
                        tracing::warn!(serial = %opts.serial, "simulator ignored a request");
                        continue;
                    };
                    let file = match &req {
                        Request::ProjectFile { name } => Some(load(&opts.sdcard, name).await),
                        _ => None,
                    };
                    match printer.request(req, file) {
                        Effect::FullReport => out.publish(&link, &printer, true),
                        Effect::Refuse { command, reason } => out.refuse(&link, command, &reason, &seq),
                        Effect::None => {}
                    }
                }
                Some(LinkEvent::Down(_)) => {}
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let real = now.duration_since(last).as_secs_f64();
                last = now;
                let sim_s = if opts.time_scale > 0.0 { real / opts.time_scale } else { f64::INFINITY };
                printer.advance(sim_s);
            }
        }
        out.publish(&link, &printer, false);
        state.send_replace(printer.clone());
    }
}

/// The file as the printer would read it from its SD card.
async fn load(sdcard: &std::path::Path, name: &str) -> Result<Plan, String> {
    if name.contains('/') || name.starts_with('.') {
        return Err(format!("{name}: not a file on the SD card"));
    }
    let bytes = tokio::fs::read(sdcard.join(name))
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    if name.to_ascii_lowercase().ends_with(".3mf") {
        // A project: the simulator does not unzip it; a minute per plate is close enough.
        return Ok(Plan {
            total_s: 60.0,
            layers: None,
        });
    }
    Ok(plan_for(&String::from_utf8_lossy(&bytes)))
}
