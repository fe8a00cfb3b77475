//! The Marlin serial link as a pure state machine: no I/O, no clock of its own.
//!
//! Feed it received lines ([`Link::on_line`]), commands to send ([`Link::send`]) and the time
//! ([`Link::on_tick`]); it leaves bytes to write in [`Link::tx`] and [`LinkEvent`]s to drain.
//! The task that owns the serial port (`super::driver`) only moves bytes, so every firmware
//! quirk below is tested without a port (STYLE.md item 3).
//!
//! On the wire every line is `N<n> <command>*<xor>`: the firmware checks the number follows the
//! last one and the checksum matches, and asks for a resend (`Resend: n`) when either fails.
//! Lines stay in a history ring until acknowledged by `ok`, so any of them can be sent again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::parse::{Response, parse_line};

/// Tunables of the link. The defaults suit a real printer at 115200–250000 baud.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Lines in flight without an `ok` (Marlin's safe default is 1).
    pub window: usize,
    /// Upper bound for the window when `ADVANCED_OK` reports free buffer slots (`ok … B3`).
    pub max_window: usize,
    /// Sent lines kept for resends.
    pub history: usize,
    /// How long to wait for the `ok` after a `Resend` (or for a `Resend` after a line error)
    /// before assuming this firmware sends none.
    pub resend_grace: Duration,
    /// Silence, while waiting for an answer, before poking the printer with `M105`.
    pub poke_after: Duration,
    /// Further silence after the poke before the link is declared dead.
    pub dead_after: Duration,
    /// Time between `M110` attempts while handshaking.
    pub handshake_retry: Duration,
    /// Give up the handshake after this long.
    pub handshake_timeout: Duration,
    /// Whether the firmware follows `Resend:` with an `ok`: `None` learns it from the first one.
    pub resend_sends_ok: Option<bool>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            window: 1,
            max_window: 8,
            history: 256,
            resend_grace: Duration::from_millis(500),
            poke_after: Duration::from_secs(10),
            dead_after: Duration::from_secs(20),
            handshake_retry: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(20),
            resend_sends_ok: None,
        }
    }
}

/// Where the link is. Exactly one at a time; transitions happen only in this module.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// `M110 N0` sent, waiting for its `ok`.
    Handshaking { started: Instant, last_try: Instant },
    /// Normal flow: new lines may go out while the window has room.
    Streaming,
    /// The firmware asked for line `from` again; waiting for the `ok` some firmware sends after
    /// `Resend:` before sending again, so that `ok` is not mistaken for an acknowledgement.
    AwaitingResend { from: u32, since: Instant },
    /// Nothing more will be sent: the firmware halted, or the link is dead.
    Halted { reason: String },
}

/// What happened, for the task that owns the port.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The handshake was answered; commands may be sent.
    Ready,
    /// Line `n` was acknowledged.
    Acked(u32),
    /// A line that is not about flow control: temperatures, capabilities, SD status, info.
    Response(Response),
    /// The firmware reported a problem but keeps running.
    FirmwareError(String),
    /// The firmware stopped itself; the message joins the errors that led up to it.
    Halted(String),
    /// The firmware restarted (`start`) while connected; everything in flight is lost.
    Reset,
    /// Nothing was heard for a while; an `M105` was sent to provoke an answer.
    Poked,
    /// Nothing was heard even after the poke.
    Dead { silent: Duration },
    /// The firmware never answered `M110`.
    HandshakeFailed { waited: Duration },
    /// The firmware asked for a line older than the history ring; delivery cannot be exact.
    Desync { line: u32 },
}

/// The link state machine. See the module documentation.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    phase: Phase,
    /// Number the next new line gets.
    top: u32,
    /// Next line to put on the wire; below `top` while sending again after a `Resend`.
    next_tx: u32,
    /// Encoded lines `top - history.len() .. top`, ready to write again.
    history: VecDeque<Vec<u8>>,
    /// Lines written and not yet acknowledged, oldest first.
    inflight: VecDeque<u32>,
    window: usize,
    resend_ok: Option<bool>,
    /// Repeats of the same `Resend` caused by lines that were already in flight behind the bad
    /// one: they are expected, and acting on each would send the same lines again and again.
    dup_from: u32,
    dup_budget: usize,
    swallow_oks: usize,
    /// A line error without (yet) a `Resend`: the last good line, and when it was reported.
    pending_line_error: Option<(Option<u32>, Instant)>,
    recent_errors: Vec<String>,
    last_rx: Instant,
    poked_at: Option<Instant>,
    tx: Vec<u8>,
    events: Vec<LinkEvent>,
}

impl Link {
    /// A link that starts handshaking at `now` (the `M110` is already in [`Link::tx`]).
    pub fn new(cfg: LinkConfig, now: Instant) -> Self {
        let mut link = Self {
            window: cfg.window.max(1),
            resend_ok: cfg.resend_sends_ok,
            cfg,
            phase: Phase::Streaming,
            top: 1,
            next_tx: 1,
            history: VecDeque::new(),
            inflight: VecDeque::new(),
            dup_from: 0,
            dup_budget: 0,
            swallow_oks: 0,
            pending_line_error: None,
            recent_errors: Vec::new(),
            last_rx: now,
            poked_at: None,
            tx: Vec::with_capacity(4096),
            events: Vec::new(),
        };
        link.restart_handshake(now);
        link
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Current in-flight window (grows when `ADVANCED_OK` reports free slots).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Bytes to write to the port. Call [`Link::clear_tx`] once written.
    pub fn tx(&self) -> &[u8] {
        &self.tx
    }

    pub fn clear_tx(&mut self) {
        self.tx.clear();
    }

    /// Events since the last drain, in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, LinkEvent> {
        self.events.drain(..)
    }

    /// True when a new command may be sent now.
    pub fn can_send(&self) -> bool {
        matches!(self.phase, Phase::Streaming)
            && self.next_tx == self.top
            && self.inflight.len() < self.window
            && self.pending_line_error.is_none()
    }

    /// True when every line sent has been acknowledged.
    pub fn is_drained(&self) -> bool {
        matches!(self.phase, Phase::Streaming)
            && self.inflight.is_empty()
            && self.next_tx == self.top
            && self.pending_line_error.is_none()
    }

    /// Number, checksum and send `command` (no comment, no newline). Returns its line number.
    /// Callers check [`Link::can_send`] first; sending past the window is allowed (the poke
    /// does it) but risks overrunning the firmware's buffer.
    pub fn send(&mut self, command: &str) -> u32 {
        let n = self.top;
        let mut buf = if self.history.len() >= self.cfg.history.max(1) {
            self.history.pop_front().unwrap_or_default()
        } else {
            Vec::new()
        };
        encode_into(&mut buf, n, command);
        self.history.push_back(buf);
        self.top += 1;
        // While lines are being sent again, this one waits its turn in the history.
        if self.next_tx == n && matches!(self.phase, Phase::Streaming) {
            self.transmit(n);
        }
        n
    }

    /// Start over with `M110 N0` (after connecting, or after the board reset).
    pub fn restart_handshake(&mut self, now: Instant) {
        self.history.clear();
        self.inflight.clear();
        self.top = 1;
        self.next_tx = 1;
        self.dup_budget = 0;
        self.swallow_oks = 0;
        self.pending_line_error = None;
        self.poked_at = None;
        self.last_rx = now;
        self.phase = Phase::Handshaking {
            started: now,
            last_try: now,
        };
        self.write_handshake();
    }

    fn write_handshake(&mut self) {
        // A leading newline flushes whatever half line the firmware may hold from before.
        self.tx.push(b'\n');
        let mut buf = Vec::new();
        encode_into(&mut buf, 0, "M110 N0");
        self.tx.extend_from_slice(&buf);
    }

    /// Put line `n` (from the history) on the wire.
    fn transmit(&mut self, n: u32) {
        let oldest = self.top - self.history.len() as u32;
        if let Some(bytes) = self.history.get((n - oldest) as usize) {
            self.tx.extend_from_slice(bytes);
            self.inflight.push_back(n);
            self.next_tx = n + 1;
        }
    }

    /// Send lines again after a resend, as far as the window allows.
    fn pump(&mut self) {
        while matches!(self.phase, Phase::Streaming)
            && self.next_tx < self.top
            && self.inflight.len() < self.window
        {
            self.transmit(self.next_tx);
        }
    }

    /// Handle one received line (without its line ending).
    pub fn on_line(&mut self, line: &str, now: Instant) {
        self.last_rx = now;
        self.poked_at = None;
        if let Phase::Halted { .. } = self.phase {
            // A halted firmware may still print; report it but never send again.
            self.events.push(LinkEvent::Response(parse_line(line)));
            return;
        }
        match parse_line(line) {
            Response::Ok {
                line,
                buffer_free,
                temps,
                ..
            } => {
                if let Some(t) = temps {
                    self.events.push(LinkEvent::Response(Response::Temps(t)));
                }
                self.on_ok(line.is_some(), buffer_free);
            }
            Response::Resend(n) => {
                self.pending_line_error = None;
                self.on_resend(n, now);
            }
            Response::LineError { last_line } => {
                if !matches!(self.phase, Phase::Handshaking { .. }) {
                    self.pending_line_error = Some((last_line, now));
                }
            }
            Response::Start => self.on_start(now),
            Response::Halt(msg) => self.halt(msg),
            Response::Error(msg) => {
                if self.recent_errors.len() >= 4 {
                    self.recent_errors.remove(0);
                }
                self.recent_errors.push(msg.clone());
                self.events.push(LinkEvent::FirmwareError(msg));
            }
            Response::Busy => {}
            other => self.events.push(LinkEvent::Response(other)),
        }
    }

    fn on_ok(&mut self, advanced: bool, buffer_free: Option<u32>) {
        self.recent_errors.clear();
        if advanced {
            // ADVANCED_OK is Marlin 2, whose resend path always sends an ok.
            self.resend_ok.get_or_insert(true);
            if let Some(b) = buffer_free {
                self.window =
                    (b as usize).clamp(self.cfg.window.max(1), self.cfg.max_window.max(1));
            }
        }
        match self.phase {
            Phase::Handshaking { .. } => {
                self.phase = Phase::Streaming;
                self.events.push(LinkEvent::Ready);
                return;
            }
            Phase::AwaitingResend { from, .. } => {
                // This ok belongs to the Resend (Marlin 1.1/2.1): it acknowledges nothing.
                self.resend_ok = Some(true);
                self.resend_from(from);
                return;
            }
            Phase::Streaming | Phase::Halted { .. } => {}
        }
        if let Some((last, _)) = self.pending_line_error.take() {
            // An ok right after a line error, with no Resend: the line was not taken.
            let from = self.resend_target(last);
            self.resend_from(from);
            return;
        }
        if self.swallow_oks > 0 {
            self.swallow_oks -= 1;
            return;
        }
        if let Some(n) = self.inflight.pop_front() {
            self.events.push(LinkEvent::Acked(n));
        }
        self.pump();
    }

    fn on_resend(&mut self, n: u32, now: Instant) {
        if matches!(self.phase, Phase::Handshaking { .. }) {
            return;
        }
        if n == self.dup_from && self.dup_budget > 0 {
            self.dup_budget -= 1;
            if self.resend_ok != Some(false) {
                self.swallow_oks += 1;
            }
            return;
        }
        let oldest = self.top - self.history.len() as u32;
        if n < oldest {
            self.phase = Phase::Halted {
                reason: format!("firmware asked for line {n}, older than the history kept"),
            };
            self.events.push(LinkEvent::Desync { line: n });
            return;
        }
        let n = n.min(self.top);
        self.dup_from = n;
        self.dup_budget = self.inflight.iter().filter(|&&l| l > n).count();
        self.inflight.retain(|&l| l < n);
        match self.resend_ok {
            Some(false) => self.resend_from(n),
            _ => {
                self.phase = Phase::AwaitingResend {
                    from: n,
                    since: now,
                }
            }
        }
    }

    /// The line to send again after a line error that named `last` as the last good one.
    fn resend_target(&self, last: Option<u32>) -> u32 {
        match last {
            Some(l) => (l + 1).min(self.top),
            None => self.inflight.front().copied().unwrap_or(self.next_tx),
        }
    }

    fn resend_from(&mut self, from: u32) {
        self.inflight.retain(|&l| l < from);
        self.next_tx = from.max(self.top - self.history.len() as u32);
        self.phase = Phase::Streaming;
        self.pump();
    }

    fn on_start(&mut self, now: Instant) {
        match self.phase {
            // The board booted while we were knocking (it resets when the port opens): knock again.
            Phase::Handshaking { started, .. } => {
                self.phase = Phase::Handshaking {
                    started,
                    last_try: now,
                };
                self.write_handshake();
            }
            _ => {
                self.events.push(LinkEvent::Reset);
                self.restart_handshake(now);
            }
        }
    }

    fn halt(&mut self, msg: String) {
        let mut parts = std::mem::take(&mut self.recent_errors);
        parts.push(msg);
        let reason = parts.join(" ");
        self.phase = Phase::Halted {
            reason: reason.clone(),
        };
        self.events.push(LinkEvent::Halted(reason));
    }

    /// Advance timers to `now`: handshake retries, resend grace, poke and dead-link detection.
    pub fn on_tick(&mut self, now: Instant) {
        match self.phase {
            Phase::Handshaking { started, last_try } => {
                if now.duration_since(started) >= self.cfg.handshake_timeout {
                    self.phase = Phase::Halted {
                        reason: "no answer to M110".into(),
                    };
                    self.events.push(LinkEvent::HandshakeFailed {
                        waited: now.duration_since(started),
                    });
                } else if now.duration_since(last_try) >= self.cfg.handshake_retry {
                    self.phase = Phase::Handshaking {
                        started,
                        last_try: now,
                    };
                    self.write_handshake();
                }
                return;
            }
            Phase::AwaitingResend { from, since } => {
                if now.duration_since(since) >= self.cfg.resend_grace {
                    // No ok after the Resend (some Marlin 2.0 builds): remember, send again.
                    self.resend_ok = Some(false);
                    self.resend_from(from);
                }
            }
            Phase::Streaming | Phase::Halted { .. } => {}
        }
        if let Some((last, at)) = self.pending_line_error
            && now.duration_since(at) >= self.cfg.resend_grace
        {
            // A line error with neither ok nor Resend: send again from the line after `last`.
            self.pending_line_error = None;
            let from = self.resend_target(last);
            self.resend_from(from);
        }
        self.check_silence(now);
    }

    fn check_silence(&mut self, now: Instant) {
        if !self.waiting_for_answer() {
            return;
        }
        match self.poked_at {
            None if now.duration_since(self.last_rx) >= self.cfg.poke_after => {
                self.poked_at = Some(now);
                // Numbered, so a line the firmware never got is noticed as a numbering error.
                self.send("M105");
                self.events.push(LinkEvent::Poked);
            }
            Some(at) if now.duration_since(at) >= self.cfg.dead_after => {
                let silent = now.duration_since(self.last_rx);
                self.phase = Phase::Halted {
                    reason: "no answer".into(),
                };
                self.events.push(LinkEvent::Dead { silent });
            }
            _ => {}
        }
    }

    fn waiting_for_answer(&self) -> bool {
        match self.phase {
            Phase::Streaming => !self.inflight.is_empty() || self.pending_line_error.is_some(),
            Phase::AwaitingResend { .. } => true,
            Phase::Handshaking { .. } | Phase::Halted { .. } => false,
        }
    }

    /// The next instant [`Link::on_tick`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut out: Option<Instant> = None;
        let mut consider = |t: Instant| out = Some(out.map_or(t, |o| o.min(t)));
        match self.phase {
            Phase::Handshaking { started, last_try } => {
                consider(started + self.cfg.handshake_timeout);
                consider(last_try + self.cfg.handshake_retry);
            }
            Phase::AwaitingResend { since, .. } => consider(since + self.cfg.resend_grace),
            Phase::Streaming | Phase::Halted { .. } => {}
        }
        if let Some((_, at)) = self.pending_line_error {
            consider(at + self.cfg.resend_grace);
        }
        if self.waiting_for_answer() {
            match self.poked_at {
                None => consider(self.last_rx + self.cfg.poke_after),
                Some(at) => consider(at + self.cfg.dead_after),
            }
        }
        out
    }
}

/// `N<n> <command>*<checksum>\n`, the checksum being the XOR of every byte before `*`.
pub fn encode_into(buf: &mut Vec<u8>, n: u32, command: &str) {
    use std::io::Write;
    buf.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(buf, "N{n} {command}");
    let sum = checksum(buf);
    let _ = writeln!(buf, "*{sum}");
}

/// XOR of all bytes: Marlin's line checksum.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

#[cfg(test)]
mod tests;
