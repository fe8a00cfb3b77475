//! One connected session: the loop that moves bytes between the port and the link state
//! machine, feeds it job lines, and turns link events into status.
//!
//! Writes happen outside `select!` (a half-written line must never be abandoned), reads inside
//! it (`read` is cancel-safe). Each wake-up is one of [`Wake`], handled after the select so
//! the handlers may borrow everything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;

use super::job::{Job, JobKind};
use super::{Command, MarlinRunner, SessionEnd};
use crate::marlin::gcode::ReaderMsg;
use crate::marlin::parse::Response;
use crate::marlin::protocol::{Link, LinkEvent, Phase};
use crate::{DriverError, PrintOutcome, PrinterState};

/// A write that does not finish in this time means the port is wedged.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// On shutdown, how long to wait for the lines in flight to be acknowledged.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(2);
/// A received line longer than this is noise, not a reply.
const MAX_LINE: usize = 4096;

/// Capabilities from `M115`.
#[derive(Debug, Default)]
struct Caps {
    firmware: Option<String>,
    autoreport_temp: bool,
    /// `None` when the firmware did not say (Klipper, old Marlin): try it.
    sd_card: Option<bool>,
}

/// State that lives as long as the port is open.
struct Conn {
    link: Link,
    port: SerialStream,
    partial: Vec<u8>,
    /// Driver commands (queries, pause/cancel G-code) that go before job lines.
    control: VecDeque<String>,
    caps: Caps,
    m115_line: Option<u32>,
    /// Handshake and `M115` done: job lines may flow.
    ready: bool,
    next_temp_poll: Instant,
    next_sd_poll: Instant,
    stopping_since: Option<Instant>,
    events: Vec<LinkEvent>,
}

enum Wake {
    Shutdown,
    Read(std::io::Result<usize>),
    Cmd(Option<Command>),
    Reader(Option<ReaderMsg>),
    Tick,
}

impl MarlinRunner {
    pub(super) async fn run_session(
        &mut self,
        port: SerialStream,
        shutdown: &CancellationToken,
    ) -> SessionEnd {
        let now = Instant::now();
        let mut conn = Conn {
            link: Link::new(self.cfg.link.clone(), now),
            port,
            partial: Vec::with_capacity(MAX_LINE),
            control: VecDeque::new(),
            caps: Caps::default(),
            m115_line: None,
            ready: false,
            next_temp_poll: now,
            next_sd_poll: now,
            stopping_since: None,
            events: Vec::new(),
        };
        let mut buf = vec![0u8; 8192];
        loop {
            if let Some(end) = self.step(&mut conn) {
                return end;
            }
            if !conn.link.tx().is_empty() {
                let written =
                    tokio::time::timeout(WRITE_TIMEOUT, conn.port.write_all(conn.link.tx())).await;
                if let Err(e) = flatten(written) {
                    return self.lost(e);
                }
                conn.link.clear_tx();
            }
            let wake = self.wait(&mut conn, &mut buf, shutdown).await;
            if let Some(end) = self.on_wake(wake, &mut conn, &buf) {
                return end;
            }
            if let Some(end) = self.drain_events(&mut conn) {
                return end;
            }
        }
    }

    /// Feed the link, run timers, finish jobs and publish. Runs before every wait.
    fn step(&mut self, conn: &mut Conn) -> Option<SessionEnd> {
        let now = Instant::now();
        if let Some(since) = conn.stopping_since
            && (conn.link.is_drained() || now.duration_since(since) >= DRAIN_ON_SHUTDOWN)
        {
            return Some(SessionEnd::Cancelled);
        }
        self.timers(conn, now);
        self.feed(conn);
        self.check_job_done(conn);
        self.tracker.publish_if_due(now, self.job.as_ref());
        None
    }

    async fn wait(
        &mut self,
        conn: &mut Conn,
        buf: &mut [u8],
        shutdown: &CancellationToken,
    ) -> Wake {
        let deadline = self.next_deadline(conn);
        let want_lines = conn.stopping_since.is_none()
            && self
                .job
                .as_ref()
                .and_then(|j| j.source.as_ref())
                .is_some_and(|s| s.wants_more());
        let source = self.job.as_mut().and_then(|j| j.source.as_mut());
        let cmds_open = self.cmds_open && conn.stopping_since.is_none();
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if conn.stopping_since.is_none() => Wake::Shutdown,
            r = conn.port.read(buf) => Wake::Read(r),
            m = async { match source { Some(s) => s.rx().recv().await, None => None } }, if want_lines => Wake::Reader(m),
            c = self.cmd_rx.recv(), if cmds_open => Wake::Cmd(c),
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Tick,
        }
    }

    fn next_deadline(&self, conn: &Conn) -> Instant {
        let mut at = Instant::now() + Duration::from_secs(1);
        for t in [conn.link.next_deadline(), self.tracker.due()]
            .into_iter()
            .flatten()
        {
            at = at.min(t);
        }
        if conn.ready {
            at = at.min(conn.next_temp_poll).min(conn.next_sd_poll);
        }
        if let Some(since) = conn.stopping_since {
            at = at.min(since + DRAIN_ON_SHUTDOWN);
        }
        at
    }

    fn on_wake(&mut self, wake: Wake, conn: &mut Conn, buf: &[u8]) -> Option<SessionEnd> {
        match wake {
            Wake::Shutdown => {
                // Stop at a safe point: no new lines, wait for those in flight to be acknowledged.
                conn.stopping_since = Some(Instant::now());
            }
            Wake::Read(Ok(0)) => {
                return Some(self.lost(std::io::Error::other("end of file on the port")));
            }
            Wake::Read(Ok(n)) => receive(conn, &buf[..n]),
            Wake::Read(Err(e)) => return Some(self.lost(e)),
            Wake::Cmd(None) => self.cmds_open = false,
            Wake::Cmd(Some(cmd)) => return self.on_command(cmd, conn),
            Wake::Reader(msg) => {
                if let Some(text) = self.job.as_mut().and_then(|j| j.on_reader(msg)) {
                    self.finish(PrintOutcome::Failed { reason: text });
                }
            }
            Wake::Tick => conn.link.on_tick(Instant::now()),
        }
        None
    }

    fn lost(&self, e: std::io::Error) -> SessionEnd {
        SessionEnd::Lost(DriverError::PortLost {
            port: self.cfg.port.clone(),
            reason: e.to_string(),
        })
    }

    /// Move as many commands into the link as its window allows: driver commands first.
    fn feed(&mut self, conn: &mut Conn) {
        while conn.link.can_send() {
            if let Some(cmd) = conn.control.pop_front() {
                conn.link.send(&cmd);
                continue;
            }
            if !conn.ready || conn.stopping_since.is_some() {
                break;
            }
            let Some(job) = self.job.as_mut().filter(|j| !j.paused) else {
                break;
            };
            let Some(line) = job.next_line() else { break };
            conn.link.send(&line);
            self.tracker.mark_dirty();
        }
    }

    fn timers(&mut self, conn: &mut Conn, now: Instant) {
        if !conn.ready {
            return;
        }
        let uploading = matches!(
            self.job.as_ref().map(|j| &j.kind),
            Some(JobKind::SdUpload { .. })
        );
        if now >= conn.next_temp_poll {
            conn.next_temp_poll = now + self.cfg.temp_interval;
            // During an SD upload every line would be written into the file, queries included.
            if !conn.caps.autoreport_temp && !uploading && !conn.control.iter().any(|c| c == "M105")
            {
                conn.control.push_back("M105".into());
            }
        }
        if now >= conn.next_sd_poll {
            conn.next_sd_poll = now + self.cfg.sd_poll;
            if matches!(self.job.as_ref().map(|j| &j.kind), Some(JobKind::Sd { .. })) {
                conn.control.push_back("M27".into());
            }
        }
    }

    /// A host job is done when the file is exhausted and every line acknowledged; an upload
    /// then turns into an SD print.
    fn check_job_done(&mut self, conn: &mut Conn) {
        let Some(job) = self.job.as_mut() else { return };
        let exhausted = job.source.as_ref().is_some_and(|s| s.is_exhausted());
        if !exhausted || !conn.link.is_drained() || !conn.control.is_empty() {
            return;
        }
        match job.kind.clone() {
            JobKind::Host => self.finish(PrintOutcome::Completed),
            JobKind::SdUpload { name } => {
                conn.control
                    .extend(["M29".to_string(), format!("M23 {name}"), "M24".to_string()]);
                job.source = None;
                job.sd_progress(0, 0);
                job.kind = JobKind::Sd { name };
                conn.next_sd_poll = Instant::now() + self.cfg.sd_poll;
            }
            JobKind::Sd { .. } => {}
        }
    }

    pub(super) fn finish(&mut self, outcome: PrintOutcome) {
        if self.job.take().is_some() {
            if let PrintOutcome::Failed { reason } = &outcome {
                tracing::warn!(port = %self.cfg.port.display(), "print failed: {reason}");
            }
            self.tracker.finish(outcome);
        }
    }
}

fn flatten(r: Result<std::io::Result<()>, tokio::time::error::Elapsed>) -> std::io::Result<()> {
    r.map_err(|_| std::io::Error::other("write timed out: the port is not draining"))?
}

/// Split received bytes into lines and hand each to the link.
fn receive(conn: &mut Conn, data: &[u8]) {
    let now = Instant::now();
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        conn.partial.extend_from_slice(&rest[..pos]);
        rest = &rest[pos + 1..];
        deliver(conn, now);
    }
    conn.partial.extend_from_slice(rest);
    if conn.partial.len() > MAX_LINE {
        deliver(conn, now);
    }
}

fn deliver(conn: &mut Conn, now: Instant) {
    let text = String::from_utf8_lossy(&conn.partial);
    // Bootloaders emit NULs; Smoothie ends lines with CR.
    let line = text.trim_matches(|c: char| c == '\0' || c == '\r');
    if !line.is_empty() {
        conn.link.on_line(line, now);
    }
    conn.partial.clear();
}

impl MarlinRunner {
    fn drain_events(&mut self, conn: &mut Conn) -> Option<SessionEnd> {
        conn.events.extend(conn.link.drain_events());
        let events = std::mem::take(&mut conn.events);
        let mut end = None;
        for ev in events {
            if end.is_none() {
                end = self.on_event(ev, conn);
            }
        }
        end
    }

    fn on_event(&mut self, ev: LinkEvent, conn: &mut Conn) -> Option<SessionEnd> {
        match ev {
            LinkEvent::Ready => conn.m115_line = Some(conn.link.send("M115")),
            LinkEvent::Acked(n) if Some(n) == conn.m115_line => self.on_caps(conn),
            LinkEvent::Acked(_) => {}
            LinkEvent::Response(r) => self.on_response(r, conn),
            LinkEvent::FirmwareError(msg) => {
                tracing::warn!(port = %self.cfg.port.display(), "firmware error: {msg}");
                self.tracker.set_error(Some(msg), self.job.as_ref());
            }
            LinkEvent::Halted(msg) => {
                self.finish(PrintOutcome::Failed {
                    reason: msg.clone(),
                });
                self.tracker.set_error(Some(msg), None);
                self.tracker.set_state(PrinterState::Error, None);
            }
            LinkEvent::Reset => self.on_reset(conn),
            LinkEvent::Poked => {
                tracing::warn!(port = %self.cfg.port.display(), "printer silent; sent M105")
            }
            LinkEvent::Dead { silent } => {
                return Some(SessionEnd::Lost(DriverError::LinkDead { silent }));
            }
            LinkEvent::HandshakeFailed { waited } => {
                return Some(SessionEnd::Lost(DriverError::HandshakeTimeout {
                    port: self.cfg.port.clone(),
                    waited,
                }));
            }
            LinkEvent::Desync { line } => {
                let reason = format!(
                    "the printer asked for line {line} again, which is no longer kept: the print cannot continue exactly"
                );
                self.finish(PrintOutcome::Failed { reason });
                self.on_reset(conn);
                conn.link.restart_handshake(Instant::now());
            }
        }
        None
    }

    fn on_reset(&mut self, conn: &mut Conn) {
        conn.ready = false;
        conn.m115_line = None;
        conn.control.clear();
        let reason = "the printer restarted itself mid-print (it printed `start`): check its power supply and USB cable";
        if self.job.is_some() {
            self.finish(PrintOutcome::Failed {
                reason: reason.into(),
            });
        }
        self.tracker.set_state(PrinterState::Offline, None);
    }

    /// `M115` answered: the link is usable.
    fn on_caps(&mut self, conn: &mut Conn) {
        conn.ready = true;
        if conn.caps.autoreport_temp {
            let secs = self.cfg.temp_interval.as_secs().max(1);
            conn.control.push_back(format!("M155 S{secs}"));
        }
        if conn.caps.sd_card != Some(false) {
            // An SD print may be running from before we (re)connected.
            conn.control.push_back("M27".into());
        }
        tracing::info!(port = %self.cfg.port.display(), firmware = ?conn.caps.firmware, "printer ready");
        let state = match &self.job {
            Some(j) if j.paused => PrinterState::Paused,
            Some(_) => PrinterState::Printing,
            None => PrinterState::Idle,
        };
        self.tracker.set_state(state, self.job.as_ref());
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    fn on_response(&mut self, r: Response, conn: &mut Conn) {
        match r {
            Response::Temps(t) => self.tracker.temps(t),
            Response::FirmwareInfo(text) => conn.caps.firmware = Some(text),
            Response::Capability { name, enabled } => match name.as_str() {
                "AUTOREPORT_TEMP" => conn.caps.autoreport_temp = enabled,
                "SDCARD" => conn.caps.sd_card = Some(enabled),
                _ => {}
            },
            Response::SdProgress { done, total } => self.on_sd_progress(done, total),
            Response::SdDone => {
                if matches!(self.job.as_ref().map(|j| &j.kind), Some(JobKind::Sd { .. })) {
                    self.finish(PrintOutcome::Completed);
                }
            }
            Response::SdIdle => self.on_sd_idle(conn),
            Response::Start if matches!(conn.link.phase(), Phase::Halted { .. }) => {
                // The halted board was reset by hand: start over.
                conn.link.restart_handshake(Instant::now());
                self.on_reset(conn);
            }
            other => tracing::debug!(port = %self.cfg.port.display(), "printer: {other:?}"),
        }
    }

    fn on_sd_progress(&mut self, done: u64, total: u64) {
        match self.job.as_mut() {
            Some(job) if matches!(job.kind, JobKind::Sd { .. }) => job.sd_progress(done, total),
            Some(_) => {}
            None => {
                // Found a print running from the card (after a restart or a replug): track it.
                let mut job = Job::tracking(
                    JobKind::Sd {
                        name: "(already on the printer)".into(),
                    },
                    total,
                );
                job.sd_progress(done, total);
                tracing::info!(port = %self.cfg.port.display(), done, total, "tracking an SD print found on the printer");
                self.tracker.job_started(&job);
                self.job = Some(job);
            }
        }
        self.tracker.mark_dirty();
    }

    fn on_sd_idle(&mut self, conn: &mut Conn) {
        let Some(job) = self.job.as_ref() else { return };
        if !matches!(job.kind, JobKind::Sd { .. }) || job.paused || !conn.control.is_empty() {
            return;
        }
        // Waiting for M24's effect: the first M27 may race the start.
        if job.progress(Instant::now()).bytes_total == 0 {
            return;
        }
        let outcome = if job.sd_finished() {
            PrintOutcome::Completed
        } else {
            PrintOutcome::Failed {
                reason: "the printer stopped printing from its SD card before the end".into(),
            }
        };
        self.finish(outcome);
    }
}

mod commands;
