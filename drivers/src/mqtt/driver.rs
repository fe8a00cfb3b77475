//! The generic MQTT driver: a cloneable [`MqttHandle`] for the daemon and one [`MqttRunner`]
//! whose `run()` owns the broker connection (via [`super::conn::Link`]) and the only
//! [`Track`] of the printer. Everything it decides is in `track.rs`; this file moves messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::conn::{Backoff, Link, LinkEvent, LinkOptions, client_id, next_event};
use super::files::{FileUrls, url_safe_name};
use super::schema::{self, Command as Wire, CommandMsg, SCHEMA_VERSION};
use super::track::Track;
use crate::sleep_until;
use crate::{BoxFuture, DriverError, Printer, PrinterState, PrinterStatus};

/// Everything the driver needs to know about one generic MQTT printer (config keys `broker`
/// and `topic`; the rest has working defaults).
#[derive(Clone)]
pub struct MqttConfig {
    /// `mqtt://host:port`.
    pub broker: String,
    /// The printer's base topic, e.g. `farmhand/printers/lab-mqtt-1`.
    pub topic: String,
    /// Where the printer downloads job files from.
    pub files: Arc<dyn FileUrls>,
    pub client_id: String,
    pub keep_alive: Duration,
    pub backoff: Backoff,
    /// How long `connect()` waits for the printer's first status.
    pub connect_timeout: Duration,
    /// How long a started job may go unreported before it counts as not picked up.
    pub start_timeout: Duration,
    /// Connect as soon as `run()` starts.
    pub auto_connect: bool,
}

impl MqttConfig {
    pub fn new(
        broker: impl Into<String>,
        topic: impl Into<String>,
        files: Arc<dyn FileUrls>,
    ) -> Self {
        Self {
            broker: broker.into(),
            topic: topic.into(),
            files,
            client_id: client_id("farmhand"),
            keep_alive: Duration::from_secs(5),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
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
pub struct MqttHandle {
    cmd_tx: mpsc::Sender<Command>,
    status_rx: watch::Receiver<PrinterStatus>,
}

/// Owns the broker connection; see the module documentation.
pub struct MqttRunner {
    cfg: MqttConfig,
    host: String,
    port: u16,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    status_tx: watch::Sender<PrinterStatus>,
    track: Track,
    want_connected: bool,
    /// `connect()` calls waiting for the printer's first report, and until when.
    connect_waiters: Vec<(Reply, Instant)>,
    /// The printer has reported itself online since we connected.
    printer_heard: bool,
}

impl MqttHandle {
    /// The handle/runner pair for one printer; `runner.run(token)` must be spawned. Fails on a
    /// broker URL or topic that cannot work.
    pub fn new(cfg: MqttConfig) -> Result<(MqttHandle, MqttRunner), DriverError> {
        let (host, port) =
            schema::parse_broker(&cfg.broker).map_err(|hint| DriverError::InvalidSetting {
                key: "broker",
                value: cfg.broker.clone(),
                hint,
            })?;
        if cfg.topic.is_empty() || cfg.topic.contains(['+', '#']) {
            return Err(DriverError::InvalidSetting {
                key: "topic",
                value: cfg.topic.clone(),
                hint: "give the printer's own base topic, without + or # wildcards".into(),
            });
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status_tx, status_rx) = watch::channel(PrinterStatus::default());
        let runner = MqttRunner {
            track: Track::new(&cfg.topic, cfg.start_timeout),
            want_connected: cfg.auto_connect,
            cfg,
            host,
            port,
            cmd_rx,
            cmds_open: true,
            status_tx,
            connect_waiters: Vec::new(),
            printer_heard: false,
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

impl Printer for MqttHandle {
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

impl MqttRunner {
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
                    Some(ev) => self.link_event(ev),
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
            host: self.host.clone(),
            port: self.port,
            client_id: self.cfg.client_id.clone(),
            subscribe: vec![schema::status_topic(&self.cfg.topic)],
            will: None,
            keep_alive: self.cfg.keep_alive,
            backoff: self.cfg.backoff,
            credentials: None,
            tls: None,
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
        format!("MQTT printer {} on {}", self.cfg.topic, self.cfg.broker)
    }

    fn link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up => {}
            LinkEvent::Down(reason) => {
                self.printer_heard = false;
                self.track.link_down(reason);
            }
            LinkEvent::Message { topic, payload } => {
                if topic != schema::status_topic(&self.cfg.topic) {
                    return;
                }
                match schema::parse_status(&payload) {
                    Ok(msg) => {
                        let online = msg.state != PrinterState::Offline;
                        self.track.report(msg);
                        if online {
                            self.printer_heard = true;
                            // Publish first: a caller woken by connect() must see it online.
                            self.publish();
                            for (w, _) in self.connect_waiters.drain(..) {
                                let _ = w.send(Ok(()));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(topic = %self.cfg.topic, "{e}");
                        self.track.set_error(e.to_string());
                    }
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
            let hint = match &self.track.status().error {
                Some(e) => e.clone(),
                None => format!(
                    "check that the printer is on and publishes {}",
                    schema::status_topic(&self.cfg.topic)
                ),
            };
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
                if self.printer_heard {
                    let _ = reply.send(Ok(()));
                } else {
                    let at = Instant::now() + self.cfg.connect_timeout;
                    self.connect_waiters.push((reply, at));
                }
            }
            Command::Disconnect(reply) => {
                self.want_connected = false;
                self.printer_heard = false;
                *link = None;
                self.track.link_down("disconnected on request".into());
                let _ = reply.send(Ok(()));
            }
            Command::StartJob(file, reply) => {
                let r = self.start(&file, link.as_ref()).await;
                // Publish first, so a caller never sees the previous job's outcome after Ok.
                self.publish();
                let _ = reply.send(r);
            }
            Command::Pause(reply) => {
                let r = self
                    .job_command(link.as_ref(), |job_id| Wire::Pause { job_id })
                    .await;
                let _ = reply.send(r);
            }
            Command::Resume(reply) => {
                let r = self
                    .job_command(link.as_ref(), |job_id| Wire::Resume { job_id })
                    .await;
                let _ = reply.send(r);
            }
            Command::Cancel(reply) => {
                let r = self
                    .job_command(link.as_ref(), |job_id| Wire::Cancel { job_id })
                    .await;
                let _ = reply.send(r);
            }
        }
    }

    async fn start(&mut self, file: &Path, link: Option<&Link>) -> Result<(), DriverError> {
        let Some(link) = link else {
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
                    hint: "clear the printer and let it report idle first",
                });
            }
        }
        let bytes = tokio::fs::read(file).await.map_err(|e| DriverError::File {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let sha256: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let job_id = new_job_id();
        let url = self.cfg.files.url_for(file, &job_id).await?;
        let size = bytes.len() as u64;
        self.send(
            link,
            Wire::Start {
                job_id: job_id.clone(),
                url,
                name: url_safe_name(file),
                size,
                sha256,
            },
        )
        .await?;
        self.track.job_sent(job_id, size, Instant::now());
        Ok(())
    }

    async fn job_command(
        &mut self,
        link: Option<&Link>,
        make: impl FnOnce(String) -> Wire,
    ) -> Result<(), DriverError> {
        let Some(link) = link else {
            return Err(offline());
        };
        let Some(job) = self.track.job() else {
            return Err(DriverError::WrongState {
                state: "idle",
                wanted: "printing",
                hint: "there is no job of Farmhand's on this printer",
            });
        };
        self.send(link, make(job.id.clone())).await
    }

    async fn send(&self, link: &Link, cmd: Wire) -> Result<(), DriverError> {
        let payload = serde_json::to_vec(&CommandMsg {
            v: SCHEMA_VERSION,
            cmd,
        })
        .unwrap_or_default(); // plain structs of strings and numbers always serialize
        link.client
            .publish(
                schema::command_topic(&self.cfg.topic),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .map_err(|_| DriverError::DriverStopped)
    }
}

fn offline() -> DriverError {
    DriverError::WrongState {
        state: "offline",
        wanted: "idle",
        hint: "connect the printer first and check that it reports on its status topic",
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

/// `fh-<unix ms hex>-<n>`: unique per process run, readable in a printer's log.
fn new_job_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("fh-{ms:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
