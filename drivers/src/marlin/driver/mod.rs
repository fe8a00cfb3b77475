//! The Marlin driver: a cloneable [`MarlinHandle`] for the daemon and one [`MarlinRunner`]
//! whose `run()` future owns the serial port (the rumqttc `AsyncClient`/`EventLoop` split).
//!
//! The runner keeps reopening the port while it is wanted: a USB unplug ends the session, the
//! status goes `offline`, and the next successful open handshakes again. A host-streamed job
//! cannot survive that (the firmware lost its place) and fails; an SD-card job keeps running
//! on the printer and is found again with `M27`.

mod job;
mod session;
mod tracker;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use self::job::Job;
use self::tracker::Tracker;
use super::protocol::LinkConfig;
use crate::{
    BoxFuture, Console, DriverError, PrintOutcome, Printer, PrinterState, PrinterStatus, SdCard,
};

/// Everything the Marlin driver needs to know about one printer.
#[derive(Debug, Clone)]
pub struct MarlinConfig {
    /// Serial device, e.g. `/dev/serial/by-id/usb-Prusa_…` (a stable name survives replugging).
    pub port: PathBuf,
    pub baud: u32,
    pub link: LinkConfig,
    /// Pause between attempts to reopen a missing port.
    pub reconnect_every: Duration,
    /// Temperature report interval (`M155 S…` when supported, else `M105` polling).
    pub temp_interval: Duration,
    /// `M27` polling interval while an SD print runs.
    pub sd_poll: Duration,
    /// Sent on cancel: heaters and fan off first, then lift and release the motors.
    pub cancel_gcode: Vec<String>,
    /// Most frequent status publication while printing.
    pub status_every: Duration,
    /// Open the port as soon as `run()` starts.
    pub auto_connect: bool,
}

impl MarlinConfig {
    pub fn new(port: impl Into<PathBuf>, baud: u32) -> Self {
        Self {
            port: port.into(),
            baud,
            link: LinkConfig::default(),
            reconnect_every: Duration::from_secs(1),
            temp_interval: Duration::from_secs(2),
            sd_poll: Duration::from_secs(2),
            cancel_gcode: [
                "M104 S0",
                "M140 S0",
                "M107",
                "G91",
                "G1 Z10 F600",
                "G90",
                "M84",
            ]
            .map(String::from)
            .to_vec(),
            status_every: Duration::from_millis(250),
            auto_connect: true,
        }
    }
}

type Reply = oneshot::Sender<Result<(), DriverError>>;

/// Requests from handles to the runner.
#[derive(Debug)]
pub(crate) enum Command {
    Connect(Reply),
    Disconnect(Reply),
    StartJob {
        file: PathBuf,
        sd: bool,
        reply: Reply,
    },
    Pause(Reply),
    Resume(Reply),
    Cancel(Reply),
    Gcode(String, Reply),
}

impl MarlinHandle {
    /// The handle/runner pair for one printer. The handle is what the daemon keeps;
    /// `runner.run(token)` must be spawned for anything to happen.
    pub fn new(cfg: MarlinConfig) -> (MarlinHandle, MarlinRunner) {
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (status_tx, status_rx) = watch::channel(PrinterStatus::default());
        let runner = MarlinRunner {
            want_connected: cfg.auto_connect,
            tracker: Tracker::new(status_tx, cfg.status_every),
            cfg,
            cmd_rx,
            cmds_open: true,
            job: None,
            connect_waiters: Vec::new(),
        };
        (Self { cmd_tx, status_rx }, runner)
    }
}

/// Cheap to clone; every clone talks to the same runner.
#[derive(Clone, Debug)]
pub struct MarlinHandle {
    cmd_tx: mpsc::Sender<Command>,
    status_rx: watch::Receiver<PrinterStatus>,
}

impl MarlinHandle {
    async fn request(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .await
            .map_err(|_| DriverError::DriverStopped)?;
        rx.await.map_err(|_| DriverError::DriverStopped)?
    }
}

impl Printer for MarlinHandle {
    fn connect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(Command::Connect))
    }
    fn status(&self) -> watch::Receiver<PrinterStatus> {
        self.status_rx.clone()
    }
    fn start_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(move |reply| Command::StartJob {
            file,
            sd: false,
            reply,
        }))
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
    fn sd_card(&self) -> Result<&dyn SdCard, DriverError> {
        Ok(self)
    }
    fn console(&self) -> Result<&dyn Console, DriverError> {
        Ok(self)
    }
}

impl SdCard for MarlinHandle {
    fn start_sd_job(&self, file: PathBuf) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(move |reply| Command::StartJob {
            file,
            sd: true,
            reply,
        }))
    }
}

impl Console for MarlinHandle {
    fn send_gcode(&self, line: String) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(self.request(move |reply| Command::Gcode(line, reply)))
    }
}

/// Owns the port; see the module documentation.
pub struct MarlinRunner {
    cfg: MarlinConfig,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    tracker: Tracker,
    job: Option<Job>,
    connect_waiters: Vec<Reply>,
    want_connected: bool,
}

/// Why a connected session ended.
pub(crate) enum SessionEnd {
    /// Shutdown requested; the session stopped at a safe point.
    Cancelled,
    /// Staff asked to disconnect.
    Disconnected,
    /// The port or the printer went away.
    Lost(DriverError),
}

impl MarlinRunner {
    /// Run until `shutdown` is cancelled. Reconnects by itself; never returns early on errors.
    pub async fn run(mut self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if self.want_connected {
                match self.open_port() {
                    Ok(port) => match self.run_session(port, &shutdown).await {
                        SessionEnd::Cancelled => break,
                        SessionEnd::Disconnected => {
                            self.want_connected = false;
                            self.went_offline(None);
                            continue;
                        }
                        SessionEnd::Lost(e) => self.went_offline(Some(e)),
                    },
                    Err(e) => self.went_offline(Some(e)),
                }
            }
            let wait = if self.want_connected {
                self.cfg.reconnect_every
            } else {
                Duration::from_secs(3600)
            };
            if !self.idle_wait(&shutdown, wait).await {
                break;
            }
        }
        if self
            .job
            .as_ref()
            .is_some_and(|j| !matches!(j.kind, job::JobKind::Sd { .. }))
        {
            self.fail_job("farmhand shut down during the print".into());
        }
        self.tracker.set_state(PrinterState::Offline, None);
    }

    fn open_port(&mut self) -> Result<tokio_serial::SerialStream, DriverError> {
        use tokio_serial::SerialPortBuilderExt;
        tokio_serial::new(self.cfg.port.to_string_lossy(), self.cfg.baud)
            .open_native_async()
            .map_err(|e| DriverError::PortOpen {
                port: self.cfg.port.clone(),
                reason: e.to_string(),
            })
    }

    /// The link is gone: a host-streamed job cannot continue, an SD job goes on without us.
    fn went_offline(&mut self, error: Option<DriverError>) {
        let text = error.as_ref().map(ToString::to_string);
        if let Some(job) = &self.job
            && !matches!(job.kind, job::JobKind::Sd { .. })
        {
            let reason = text.clone().unwrap_or_else(|| "disconnected".into());
            self.fail_job(reason);
        }
        if let Some(e) = &error {
            for w in self.connect_waiters.drain(..) {
                let _ = w.send(Err(e.clone()));
            }
        }
        self.tracker
            .set_state(PrinterState::Offline, self.job.as_ref());
        if let Some(t) = text {
            tracing::warn!(port = %self.cfg.port.display(), "{t}");
            self.tracker.set_error(Some(t), self.job.as_ref());
        }
    }

    fn fail_job(&mut self, reason: String) {
        if self.job.take().is_some() {
            tracing::warn!(port = %self.cfg.port.display(), "print failed: {reason}");
            self.tracker.finish(PrintOutcome::Failed { reason });
        }
    }

    /// Wait while not connected, answering commands. Returns false on shutdown.
    async fn idle_wait(&mut self, shutdown: &CancellationToken, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(deadline) => return true,
                cmd = self.cmd_rx.recv(), if self.cmds_open => match cmd {
                    None => self.cmds_open = false,
                    Some(cmd) => if self.offline_command(cmd) { return true },
                },
            }
        }
    }

    /// A command while no link is up. Returns true when it asks to connect now.
    fn offline_command(&mut self, cmd: Command) -> bool {
        let offline = DriverError::WrongState {
            state: "offline",
            wanted: "connected",
            hint: "connect the printer first",
        };
        match cmd {
            Command::Connect(reply) => {
                self.connect_waiters.push(reply);
                self.want_connected = true;
                return true;
            }
            Command::Disconnect(reply) => {
                self.want_connected = false;
                let _ = reply.send(Ok(()));
            }
            Command::StartJob { reply, .. }
            | Command::Pause(reply)
            | Command::Resume(reply)
            | Command::Gcode(_, reply) => {
                let _ = reply.send(Err(offline));
            }
            Command::Cancel(reply) => {
                // An SD job on a printer we cannot reach cannot be stopped from here.
                let _ = reply.send(Err(offline));
            }
        }
        false
    }
}
