//! The Moonraker driver: [`MoonrakerHandle`] makes the HTTP calls itself (an upload must not
//! hold up status tracking); [`MoonrakerRunner`] owns the websocket subscription and is the
//! only writer of the printer's status.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::sleep_until;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::api::Api;
use super::status::{JobWatch, OBJECTS, Objects};
use crate::mqtt::Backoff;
use crate::{BoxFuture, DriverError, PrintOutcome, Printer, PrinterState, PrinterStatus};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = oneshot::Sender<Result<(), DriverError>>;

/// One Moonraker printer (config keys `url` and optional `api_key`).
#[derive(Debug, Clone)]
pub struct MoonrakerConfig {
    /// e.g. `http://voron.local:7125`
    pub url: String,
    pub api_key: Option<String>,
    pub backoff: Backoff,
    /// How long `connect()` (and one websocket attempt) may take.
    pub connect_timeout: Duration,
    /// How long Klipper may take to show a started file as printing.
    pub start_timeout: Duration,
    pub auto_connect: bool,
}

impl MoonrakerConfig {
    pub fn new(url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            url: url.into(),
            api_key,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(60),
            auto_connect: true,
        }
    }
}

#[derive(Debug)]
enum Command {
    Connect(Reply),
    Disconnect(Reply),
    /// Track `filename` as Farmhand's job (sent before the start request).
    Watch(String, Reply),
    /// The start request failed: forget `filename`.
    Unwatch(String),
}

/// Cheap to clone; every clone talks to the same runner.
#[derive(Clone, Debug)]
pub struct MoonrakerHandle {
    api: Api,
    cmd_tx: mpsc::Sender<Command>,
    status_rx: watch::Receiver<PrinterStatus>,
}

/// Owns the websocket; see the module documentation.
pub struct MoonrakerRunner {
    cfg: MoonrakerConfig,
    api: Api,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    status_tx: watch::Sender<PrinterStatus>,
    objects: Objects,
    subscribed: bool,
    job: Option<JobWatch>,
    outcome: Option<PrintOutcome>,
    link_error: Option<String>,
    want_connected: bool,
    connect_waiters: Vec<(Reply, Instant)>,
    failures: u32,
    next_try: Instant,
}

impl MoonrakerHandle {
    pub fn new(cfg: MoonrakerConfig) -> Result<(MoonrakerHandle, MoonrakerRunner), DriverError> {
        let api = Api::new(&cfg.url, cfg.api_key.as_deref())?;
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status_tx, status_rx) = watch::channel(PrinterStatus::default());
        let runner = MoonrakerRunner {
            want_connected: cfg.auto_connect,
            cfg,
            api: api.clone(),
            cmd_rx,
            cmds_open: true,
            status_tx,
            objects: Objects::default(),
            subscribed: false,
            job: None,
            outcome: None,
            link_error: None,
            connect_waiters: Vec::new(),
            failures: 0,
            next_try: Instant::now(),
        };
        Ok((
            Self {
                api,
                cmd_tx,
                status_rx,
            },
            runner,
        ))
    }

    async fn request(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .await
            .map_err(|_| DriverError::DriverStopped)?;
        rx.await.map_err(|_| DriverError::DriverStopped)?
    }

    async fn start(&self, file: PathBuf) -> Result<(), DriverError> {
        let state = self.status_rx.borrow().state;
        match state {
            PrinterState::Idle => {}
            PrinterState::Offline => {
                return Err(DriverError::WrongState {
                    state: "offline",
                    wanted: "idle",
                    hint: "connect the printer first and check that Moonraker runs",
                });
            }
            _ => {
                return Err(DriverError::WrongState {
                    state: "busy",
                    wanted: "idle",
                    hint: "wait for the current print to end or cancel it",
                });
            }
        }
        let name = self.api.upload(&file).await?;
        self.request(|r| Command::Watch(name.clone(), r)).await?;
        if let Err(e) = self.api.start(&name).await {
            let _ = self.cmd_tx.send(Command::Unwatch(name)).await;
            return Err(e);
        }
        Ok(())
    }
}

impl Printer for MoonrakerHandle {
    fn connect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Connect))
    }
    fn status(&self) -> watch::Receiver<PrinterStatus> {
        self.status_rx.clone()
    }
    fn start_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.start(file))
    }
    fn pause(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.api.job("pause"))
    }
    fn resume(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.api.job("resume"))
    }
    fn cancel(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.api.job("cancel"))
    }
    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Disconnect))
    }
}

async fn next_msg(ws: &mut Option<Ws>) -> Option<Result<Message, String>> {
    match ws {
        Some(s) => s.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

impl MoonrakerRunner {
    /// Run until `shutdown` is cancelled. Reconnects by itself; never returns early on errors.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ws: Option<Ws> = None;
        loop {
            if self.want_connected && ws.is_none() && Instant::now() >= self.next_try {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = self.open() => match r {
                        Ok(s) => ws = Some(s),
                        Err(e) => self.lost(e),
                    },
                }
                self.publish();
            }
            let retry = (self.want_connected && ws.is_none()).then_some(self.next_try);
            let deadline = [
                retry,
                self.job
                    .as_ref()
                    .filter(|j| !j.seen)
                    .map(|j| j.started_at + self.cfg.start_timeout),
                self.connect_waiters.iter().map(|(_, at)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                cmd = self.cmd_rx.recv(), if self.cmds_open => match cmd {
                    None => self.cmds_open = false,
                    Some(cmd) => self.command(cmd, &mut ws),
                },
                msg = next_msg(&mut ws) => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                    Some(Ok(Message::Close(_))) | None => {
                        ws = None;
                        self.lost("Moonraker closed the websocket".into());
                    }
                    Some(Err(e)) => {
                        ws = None;
                        self.lost(e);
                    }
                    Some(Ok(_)) => {}
                },
                _ = sleep_until(deadline) => self.tick(Instant::now()),
            }
            self.publish();
        }
        self.subscribed = false;
        self.link_error = Some("farmhand stopped".into());
        self.publish();
    }

    async fn open(&mut self) -> Result<Ws, String> {
        let url = self.api.websocket_url();
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad websocket url {url}: {e}"))?;
        if let Some(key) = &self.cfg.api_key
            && let Ok(v) = key.parse()
        {
            req.headers_mut().insert("X-Api-Key", v);
        }
        let (mut ws, _) = tokio::time::timeout(
            self.cfg.connect_timeout,
            tokio_tungstenite::connect_async(req),
        )
        .await
        .map_err(|_| format!("no websocket answer from {url}"))?
        .map_err(|e| {
            if let tokio_tungstenite::tungstenite::Error::Http(resp) = &e
                && matches!(resp.status().as_u16(), 401 | 403)
            {
                self.refused(resp.status().to_string());
            }
            format!("cannot open {url}: {e}")
        })?;
        let objects: serde_json::Map<String, serde_json::Value> = OBJECTS
            .iter()
            .map(|o| (o.to_string(), serde_json::Value::Null))
            .collect();
        let subscribe = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "printer.objects.subscribe",
            "params": {"objects": objects},
            "id": 1,
        });
        ws.send(Message::Text(subscribe.to_string().into()))
            .await
            .map_err(|e| format!("cannot subscribe on {url}: {e}"))?;
        Ok(ws)
    }

    /// Moonraker refused our credentials: waiting will not help, so `connect()` fails now.
    fn refused(&mut self, status: String) {
        for (w, _) in self.connect_waiters.drain(..) {
            let _ = w.send(Err(DriverError::Http {
                printer: format!("Moonraker at {}", self.api.base()),
                what: "the websocket".into(),
                reason: status.clone(),
                hint: "set api_key to a key from Moonraker's [authorization] section".into(),
            }));
        }
    }

    fn lost(&mut self, reason: String) {
        self.subscribed = false;
        self.failures += 1;
        self.next_try = Instant::now() + self.cfg.backoff.delay(self.failures);
        let text = format!(
            "lost Moonraker at {}: {reason}: check that Moonraker runs and the url is right (retrying)",
            self.api.base()
        );
        if self.failures == 1 {
            tracing::warn!("{text}");
        }
        self.link_error = Some(text);
    }

    fn on_text(&mut self, text: &str) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        if msg["id"] == 1 {
            if let Some(status) = msg["result"].get("status") {
                self.objects = Objects::default();
                self.objects.merge(status);
                self.subscribed = true;
                self.failures = 0;
                self.link_error = None;
                self.observe();
                // Publish first: a caller woken by connect() must see the printer online.
                self.publish();
                for (w, _) in self.connect_waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            } else if let Some(err) = msg["error"]["message"].as_str() {
                self.link_error = Some(format!("Moonraker refused the subscription: {err}"));
            }
        } else if msg["method"] == "notify_status_update" {
            self.objects.merge(&msg["params"][0]);
        } else if msg["method"] == "notify_klippy_disconnected" {
            self.link_error = Some("Klipper disconnected from Moonraker: check klippy.log".into());
        }
        self.observe();
    }

    fn observe(&mut self) {
        if let Some(out) = self.job.as_mut().and_then(|j| j.observe(&self.objects)) {
            self.outcome = Some(out);
            self.job = None;
        }
    }

    fn tick(&mut self, now: Instant) {
        if let Some(out) = self
            .job
            .as_ref()
            .and_then(|j| j.expired(now, self.cfg.start_timeout))
        {
            self.outcome = Some(out);
            self.job = None;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = self
            .connect_waiters
            .drain(..)
            .partition(|(_, at)| *at <= now);
        self.connect_waiters = waiting;
        for (w, _) in due {
            let _ = w.send(Err(DriverError::NotAnswering {
                printer: format!("Moonraker at {}", self.api.base()),
                waited: self.cfg.connect_timeout,
                hint: self
                    .link_error
                    .clone()
                    .unwrap_or_else(|| "check the url and that Moonraker runs".into()),
            }));
        }
    }

    fn command(&mut self, cmd: Command, ws: &mut Option<Ws>) {
        match cmd {
            Command::Connect(reply) => {
                self.want_connected = true;
                if self.subscribed {
                    let _ = reply.send(Ok(()));
                } else {
                    self.connect_waiters
                        .push((reply, Instant::now() + self.cfg.connect_timeout));
                }
            }
            Command::Disconnect(reply) => {
                self.want_connected = false;
                *ws = None;
                self.subscribed = false;
                self.link_error = Some("disconnected on request".into());
                let _ = reply.send(Ok(()));
            }
            Command::Watch(name, reply) => {
                self.job = Some(JobWatch::new(name, Instant::now()));
                self.outcome = None;
                self.observe();
                self.publish();
                let _ = reply.send(Ok(()));
            }
            Command::Unwatch(name) => {
                if self.job.as_ref().is_some_and(|j| j.filename == name) {
                    self.job = None;
                }
            }
        }
    }

    fn status(&self) -> PrinterStatus {
        let mut s = if self.subscribed {
            self.objects.to_status()
        } else {
            PrinterStatus {
                state: PrinterState::Offline,
                error: self.link_error.clone(),
                ..PrinterStatus::default()
            }
        };
        if let Some(job) = &self.job
            && !job.seen
            && s.state == PrinterState::Idle
        {
            // Started, Klipper not printing it yet.
            s.state = PrinterState::Printing;
            s.job = Some(crate::JobProgress::default());
        }
        if let Some(PrintOutcome::Failed { reason }) = &self.outcome
            && s.error.is_none()
        {
            s.error = Some(reason.clone());
        }
        s.last_outcome = self.outcome.clone();
        s
    }

    fn publish(&self) {
        let now = self.status();
        self.status_tx.send_if_modified(|s| {
            let changed = *s != now;
            if changed {
                *s = now;
            }
            changed
        });
    }
}
