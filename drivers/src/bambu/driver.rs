//! The Bambu Lab LAN driver: a cloneable [`BambuHandle`] for the daemon and one [`BambuRunner`]
//! whose `run()` owns the printer's only MQTT connection (Bambu printers accept just a few
//! clients; every handle shares this one through a `watch` of the status). What it decides is
//! in `track.rs`; this file moves messages and runs the FTPS uploads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::ftps::{self, FtpsTarget};
use super::protocol::{Message, Request};
use super::track::Track;
use super::{report_topic, request_topic, tls};
use crate::mqtt::conn::{Backoff, Link, LinkEvent, LinkOptions, client_id, next_event};
use crate::mqtt::files::url_safe_name;
use crate::sleep_until;
use crate::{BoxFuture, DriverError, Printer, PrinterState, PrinterStatus};

/// The MQTT user every Bambu printer expects.
pub const USER: &str = "bblp";

/// One printer, by the contract's config keys (`host`, `serial`, `access_code`, `mqtt_port`,
/// `ftps_port`, `ca_file`); the rest has working defaults.
#[derive(Debug, Clone)]
pub struct BambuConfig {
    pub host: String,
    pub serial: String,
    pub access_code: String,
    pub mqtt_port: u16,
    pub ftps_port: u16,
    /// Trust this CA instead of pinning by serial alone (the CN must still be the serial).
    pub ca_file: Option<PathBuf>,
    pub client_id: String,
    pub keep_alive: Duration,
    pub backoff: Backoff,
    /// How long `connect()` waits for the printer's first full report.
    pub connect_timeout: Duration,
    /// How long a sent job may take to show up as PREPARE/RUNNING.
    pub start_timeout: Duration,
    /// Socket timeout of the FTPS upload.
    pub upload_timeout: Duration,
    pub auto_connect: bool,
}

impl BambuConfig {
    pub fn new(
        host: impl Into<String>,
        serial: impl Into<String>,
        access_code: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            serial: serial.into(),
            access_code: access_code.into(),
            mqtt_port: 8883,
            ftps_port: 990,
            ca_file: None,
            client_id: client_id("farmhand"),
            keep_alive: Duration::from_secs(10),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(15),
            // Bed levelling and heating come before PREPARE on some firmware.
            start_timeout: Duration::from_secs(120),
            upload_timeout: Duration::from_secs(30),
            auto_connect: true,
        }
    }
}

type Reply = oneshot::Sender<Result<(), DriverError>>;

#[derive(Debug)]
enum Command {
    Connect(Reply),
    Disconnect(Reply),
    StartJob(PathBuf, Reply),
    Pause(Reply),
    Resume(Reply),
    Cancel(Reply),
}

/// Cheap to clone; every clone talks to the same runner.
#[derive(Clone, Debug)]
pub struct BambuHandle {
    cmd_tx: mpsc::Sender<Command>,
    status_rx: watch::Receiver<PrinterStatus>,
}

/// Owns the printer's MQTT connection; see the module documentation.
pub struct BambuRunner {
    cfg: BambuConfig,
    tls: Arc<rustls::ClientConfig>,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    status_tx: watch::Sender<PrinterStatus>,
    track: Track,
    want_connected: bool,
    connect_waiters: Vec<(Reply, Instant)>,
    seq: u64,
}

impl BambuHandle {
    /// The handle/runner pair; `runner.run(token)` must be spawned. Fails on settings that
    /// cannot work (an empty serial, an unreadable `ca_file`).
    pub fn new(cfg: BambuConfig) -> Result<(BambuHandle, BambuRunner), DriverError> {
        for (key, value) in [("host", &cfg.host), ("serial", &cfg.serial)] {
            if value.is_empty() || value.contains(['/', '+', '#', ' ']) {
                return Err(DriverError::InvalidSetting {
                    key,
                    value: value.clone(),
                    hint: "give the printer's IP address and its serial as shown on its screen"
                        .into(),
                });
            }
        }
        if cfg.access_code.is_empty() {
            return Err(DriverError::InvalidSetting {
                key: "access_code",
                value: String::new(),
                hint: "the 8-character code on the printer's screen under LAN mode".into(),
            });
        }
        let tls = tls::client_config(&cfg.serial, cfg.ca_file.as_deref())?;
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status_tx, status_rx) = watch::channel(PrinterStatus::default());
        let runner = BambuRunner {
            track: Track::new(&cfg.serial, cfg.start_timeout),
            want_connected: cfg.auto_connect,
            tls,
            cfg,
            cmd_rx,
            cmds_open: true,
            status_tx,
            connect_waiters: Vec::new(),
            seq: 0,
        };
        Ok((Self { cmd_tx, status_rx }, runner))
    }

    async fn request(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .await
            .map_err(|_| DriverError::DriverStopped)?;
        rx.await.map_err(|_| DriverError::DriverStopped)?
    }
}

impl Printer for BambuHandle {
    fn connect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Connect))
    }
    fn status(&self) -> watch::Receiver<PrinterStatus> {
        self.status_rx.clone()
    }
    fn start_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(move |r| Command::StartJob(file, r)))
    }
    fn pause(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Pause))
    }
    fn resume(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Resume))
    }
    fn cancel(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Cancel))
    }
    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Disconnect))
    }
}

impl BambuRunner {
    /// Run until `shutdown` is cancelled. Reconnects by itself; never returns early on errors.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut link: Option<Link> = None;
        loop {
            if self.want_connected && link.is_none() {
                link = Some(Link::spawn(self.link_options(), &shutdown));
            }
            let deadline = [
                self.track.next_deadline(),
                self.connect_waiters.iter().map(|(_, at)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                cmd = self.cmd_rx.recv(), if self.cmds_open => match cmd {
                    None => self.cmds_open = false,
                    Some(cmd) => self.command(cmd, &mut link).await,
                },
                ev = next_event(&mut link) => match ev {
                    Some(ev) => self.link_event(ev, link.as_ref()),
                    None => link = None,
                },
                _ = sleep_until(deadline) => self.tick(Instant::now()),
            }
            self.publish();
        }
        drop(link);
        self.track.link_down("farmhand stopped".into());
        self.publish();
    }

    fn link_options(&self) -> LinkOptions {
        LinkOptions {
            host: self.cfg.host.clone(),
            port: self.cfg.mqtt_port,
            client_id: self.cfg.client_id.clone(),
            subscribe: vec![report_topic(&self.cfg.serial)],
            will: None,
            keep_alive: self.cfg.keep_alive,
            backoff: self.cfg.backoff,
            credentials: Some((USER.into(), self.cfg.access_code.clone())),
            tls: Some(self.tls.clone()),
        }
    }

    fn publish(&self) {
        let now = self.track.status();
        self.status_tx.send_if_modified(|s| {
            let changed = s != now;
            if changed {
                *s = now.clone();
            }
            changed
        });
    }

    fn name(&self) -> String {
        format!("Bambu printer {} at {}", self.cfg.serial, self.cfg.host)
    }

    fn link_event(&mut self, ev: LinkEvent, link: Option<&Link>) {
        match ev {
            LinkEvent::Up => {
                self.track.link_up();
                // Partial reports only make sense on top of a full one.
                if let Some(link) = link {
                    self.send_now(link, &Request::PushAll);
                }
            }
            LinkEvent::Down(reason) => {
                self.track.link_down(reason.clone());
                // Someone is waiting on `connect()` (`farmhand print`): say why at once.
                let printer = self.name();
                let why = reason.trim_end_matches(" (retrying)").to_string();
                for (w, _) in self.connect_waiters.drain(..) {
                    let _ = w.send(Err(DriverError::LinkFailed {
                        printer: printer.clone(),
                        reason: why.clone(),
                    }));
                }
            }
            LinkEvent::Message { topic, payload } => {
                if topic != report_topic(&self.cfg.serial) {
                    return;
                }
                match self.track.report_mut().apply(&payload) {
                    Ok(Message::Status) => {
                        self.track.reported();
                        if self.track.heard() {
                            self.publish();
                            for (w, _) in self.connect_waiters.drain(..) {
                                let _ = w.send(Ok(()));
                            }
                        }
                    }
                    Ok(Message::Rejected { command, reason }) => {
                        self.track.rejected(&command, &reason);
                    }
                    Ok(Message::Other) => {}
                    Err(e) => tracing::warn!(serial = %self.cfg.serial, "{e}"),
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.track.tick(now);
        let (due, waiting): (Vec<_>, Vec<_>) = self
            .connect_waiters
            .drain(..)
            .partition(|(_, at)| *at <= now);
        self.connect_waiters = waiting;
        for (w, _) in due {
            let hint = self.track.status().error.clone().unwrap_or_else(|| {
                format!(
                    "check that the printer is on, in LAN mode, and reports on {}",
                    report_topic(&self.cfg.serial)
                )
            });
            let _ = w.send(Err(DriverError::NotAnswering {
                printer: self.name(),
                waited: self.cfg.connect_timeout,
                hint,
            }));
        }
    }

    async fn command(&mut self, cmd: Command, link: &mut Option<Link>) {
        match cmd {
            Command::Connect(reply) => {
                self.want_connected = true;
                if self.track.heard() {
                    let _ = reply.send(Ok(()));
                } else {
                    let at = Instant::now() + self.cfg.connect_timeout;
                    self.connect_waiters.push((reply, at));
                }
            }
            Command::Disconnect(reply) => {
                self.want_connected = false;
                *link = None;
                self.track.link_down("disconnected on request".into());
                let _ = reply.send(Ok(()));
            }
            Command::StartJob(file, reply) => {
                let r = self.start(&file, link.as_ref()).await;
                self.publish();
                let _ = reply.send(r);
            }
            Command::Pause(reply) => {
                let _ = reply.send(self.job_request(link.as_ref(), Request::Pause).await);
            }
            Command::Resume(reply) => {
                let _ = reply.send(self.job_request(link.as_ref(), Request::Resume).await);
            }
            Command::Cancel(reply) => {
                let r = self.job_request(link.as_ref(), Request::Stop).await;
                if r.is_ok() {
                    self.track.stop_sent();
                }
                let _ = reply.send(r);
            }
        }
    }

    async fn start(&mut self, file: &Path, link: Option<&Link>) -> Result<(), DriverError> {
        let Some(link) = link.filter(|_| self.track.heard()) else {
            return Err(offline());
        };
        if self.track.job().is_some() {
            return Err(DriverError::WrongState {
                state: "printing",
                wanted: "idle",
                hint: "wait for the current job to end or cancel it",
            });
        }
        match self.track.status().state {
            PrinterState::Idle => {}
            PrinterState::Offline => return Err(offline()),
            other => {
                return Err(DriverError::WrongState {
                    state: state_name(other),
                    wanted: "idle",
                    hint: "clear the error on the printer's screen first",
                });
            }
        }
        let name = url_safe_name(file);
        let target = FtpsTarget {
            host: self.cfg.host.clone(),
            port: self.cfg.ftps_port,
            user: USER.into(),
            access_code: self.cfg.access_code.clone(),
            tls: self.tls.clone(),
            timeout: self.cfg.upload_timeout,
        };
        let bytes = ftps::upload(&target, file, &name).await?;
        tracing::info!(serial = %self.cfg.serial, %name, bytes, "uploaded over FTPS");
        self.send(link, &Request::ProjectFile { name: name.clone() })
            .await?;
        self.track.job_sent(name, Instant::now());
        Ok(())
    }

    async fn job_request(&mut self, link: Option<&Link>, req: Request) -> Result<(), DriverError> {
        let Some(link) = link else {
            return Err(offline());
        };
        if self.track.job().is_none() {
            return Err(DriverError::WrongState {
                state: "idle",
                wanted: "printing",
                hint: "there is no job on this printer",
            });
        }
        self.send(link, &req).await
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    async fn send(&mut self, link: &Link, req: &Request) -> Result<(), DriverError> {
        let payload = req.to_json(self.next_seq());
        link.client
            .publish(
                request_topic(&self.cfg.serial),
                QoS::AtMostOnce,
                false,
                payload,
            )
            .await
            .map_err(|_| DriverError::DriverStopped)
    }

    /// From a synchronous context (a link event): queue without waiting.
    fn send_now(&mut self, link: &Link, req: &Request) {
        let payload = req.to_json(self.next_seq());
        if let Err(e) = link.client.try_publish(
            request_topic(&self.cfg.serial),
            QoS::AtMostOnce,
            false,
            payload,
        ) {
            tracing::warn!(serial = %self.cfg.serial, "cannot queue {req:?}: {e}");
        }
    }
}

fn offline() -> DriverError {
    DriverError::WrongState {
        state: "offline",
        wanted: "idle",
        hint: "connect the printer first: check its IP address, serial, access code and that LAN mode is on",
    }
}

fn state_name(s: PrinterState) -> &'static str {
    match s {
        PrinterState::Offline => "offline",
        PrinterState::Idle => "idle",
        PrinterState::Printing => "printing",
        PrinterState::Paused => "paused",
        PrinterState::Error => "error",
    }
}
