//! The simulated firmware as a pure state machine, like the driver's link: the runtime
//! (`super::runtime`) feeds it received lines and the time, and writes out what it prints.
//!
//! It follows Marlin 2's serial code closely where the driver depends on it: line numbers are
//! checked before checksums, every rejected line gets `Error:…, Last Line: n`, `Resend: n+1`
//! and `ok` (each part switchable by [`Quirks`]), `ok` is sent only once a command is done
//! (a move is done when it is in the planner), and blocking commands print
//! `echo:busy: processing` while they wait.

mod machine;
mod sd;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use self::machine::{Machine, words};
use self::sd::SdCard;
use crate::marlin::protocol::checksum;

/// How the firmware spells a resend request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendFormat {
    /// `Resend: 12` (Marlin 1.1 / 2.x)
    Marlin,
    /// `Resend:12` (Marlin 1.0, Prusa firmware)
    NoSpace,
    /// `rs 12` (Teacup, Sprinter)
    Rs,
    /// `rs N:12` (Repetier)
    RsN,
}

/// Firmware flavour differences, as knobs rather than forked code (STYLE.md).
#[derive(Debug, Clone)]
pub struct Quirks {
    pub firmware_name: String,
    pub resend_format: ResendFormat,
    /// Marlin 1.1/2.1 follow `Resend:` with an `ok`; some 2.0 builds do not.
    pub ok_after_resend: bool,
    /// false: a bad line gets only the `Error:` line, neither `Resend` nor `ok`.
    pub resend_after_error: bool,
    /// `ok N<line> P<planner free> B<buffer free>`.
    pub advanced_ok: bool,
    /// Reports `Cap:AUTOREPORT_TEMP:1` and honours `M155`.
    pub autoreport_temp: bool,
    pub sd_card: bool,
    /// An AVR board whose DTR line resets it whenever the port is opened.
    pub reset_on_open: bool,
    /// Simulated seconds between `echo:busy: processing` while blocked; 0 = never.
    pub busy_interval_s: f64,
    /// Serial command buffer (Marlin's BUFSIZE), reported in `ok … B`.
    pub bufsize: usize,
    pub planner_size: usize,
}

impl Default for Quirks {
    /// Marlin 2.1 as on a Creality board.
    fn default() -> Self {
        Self {
            firmware_name: "Marlin 2.1.2.1 (farmhand sim)".into(),
            resend_format: ResendFormat::Marlin,
            ok_after_resend: true,
            resend_after_error: true,
            advanced_ok: false,
            autoreport_temp: true,
            sd_card: true,
            reset_on_open: false,
            busy_interval_s: 2.0,
            bufsize: 4,
            planner_size: 16,
        }
    }
}

/// What the firmware accepted, for tests that prove exact delivery.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// SHA-256 over every accepted command plus `\n`, host queries excluded
    /// (see [`is_housekeeping`]).
    pub hasher: Sha256,
    /// Commands hashed.
    pub accepted: u64,
    /// Lines rejected (bad checksum or number).
    pub line_errors: u64,
    /// Numbered lines accepted; each got exactly one `ok`.
    pub numbered: u64,
    /// Every hashed command, in order, when [`super::SimOptions::keep_log`] is set.
    pub log: Option<Vec<String>>,
}

/// Commands the driver sends on its own (queries, handshake): left out of the hash so tests
/// can compare it with the hash of the file's commands alone.
pub fn is_housekeeping(command: &str) -> bool {
    let code = command.split_whitespace().next().unwrap_or("");
    matches!(code, "M105" | "M110" | "M115" | "M155" | "M27")
}

/// A command that holds the firmware until done; its `ok` waits too.
#[derive(Debug)]
enum Block {
    Move(Vec<(char, f64)>),
    Until(Instant),
    Heat { bed: bool },
    Drain,
}

/// The simulated firmware. See the module documentation.
pub struct Firmware {
    q: Quirks,
    m: Machine,
    stats: Arc<Mutex<Stats>>,
    last_n: u32,
    rx: VecDeque<String>,
    block: Option<(Block, bool)>,
    halted: bool,
    sd: SdCard,
    autoreport: Option<Duration>,
    next_report: Instant,
    next_busy: Instant,
    boot_until: Option<Instant>,
    out: Vec<String>,
}

impl Firmware {
    pub fn new(q: Quirks, time_scale: f64, stats: Arc<Mutex<Stats>>, now: Instant) -> Self {
        Self {
            m: Machine::new(time_scale, q.planner_size, now),
            q,
            stats,
            last_n: 0,
            rx: VecDeque::new(),
            block: None,
            halted: false,
            sd: SdCard::default(),
            autoreport: None,
            next_report: now,
            next_busy: now,
            boot_until: None,
            out: Vec::new(),
        }
    }

    pub fn quirks(&self) -> &Quirks {
        &self.q
    }

    /// Lines printed since the last call.
    pub fn take_output(&mut self) -> std::vec::Drain<'_, String> {
        self.out.drain(..)
    }

    /// A line arrived on the serial port (it is processed by [`Firmware::tick`]).
    pub fn receive(&mut self, line: String) {
        if !self.halted && self.boot_until.is_none() {
            self.rx.push_back(line);
        }
    }

    /// Power-cycle: everything volatile is lost; the banner follows after `delay`.
    pub fn reset(&mut self, now: Instant, delay: Duration) {
        self.rx.clear();
        self.block = None;
        self.halted = false;
        self.last_n = 0;
        self.autoreport = None;
        self.m.clear();
        self.sd.abort();
        self.boot_until = Some(now + delay);
    }

    /// Stop like Marlin's `kill()`: print the reason and never answer again.
    pub fn halt(&mut self, reason: &str) {
        self.out.push(format!("Error:{reason}"));
        self.out.push("Error:Printer halted. kill() called!".into());
        self.halted = true;
        self.rx.clear();
        self.block = None;
        self.sd.abort();
        self.m.clear();
    }

    /// Hang without a word: everything received is ignored until a reset.
    pub fn freeze(&mut self) {
        self.halted = true;
        self.rx.clear();
        self.block = None;
        self.autoreport = None;
    }

    /// The earliest time [`Firmware::tick`] has something to do.
    pub fn next_wake(&self, now: Instant) -> Instant {
        let mut at = now + Duration::from_secs(1);
        let mut consider = |t: Instant| at = at.min(t);
        if let Some(t) = self.boot_until {
            consider(t);
        }
        if let Some(t) = self.m.next_event() {
            consider(t);
        }
        if let Some(d) = self.autoreport {
            consider(self.next_report.max(now + d.min(Duration::from_millis(10))));
        }
        match &self.block {
            Some((Block::Until(t), _)) => consider(*t),
            Some((Block::Heat { .. }, _)) => consider(now + Duration::from_millis(20)),
            _ => {}
        }
        if self.block.is_some() && self.q.busy_interval_s > 0.0 {
            consider(self.next_busy);
        }
        at
    }

    /// Advance to `now`: finish moves and waits, process received lines, run the SD print.
    pub fn tick(&mut self, now: Instant) {
        self.m.step(now);
        if self.halted {
            return;
        }
        if let Some(t) = self.boot_until {
            if now < t {
                return;
            }
            self.boot_until = None;
            self.out.push("start".into());
            self.out.push(format!("echo:{}", self.q.firmware_name));
        }
        self.autoreport_temps(now);
        loop {
            if self.block.is_some() && !self.try_unblock(now) {
                self.keepalive(now);
                break;
            }
            if let Some(line) = self.rx.pop_front() {
                self.on_serial_line(&line, now);
                continue;
            }
            let mut out = std::mem::take(&mut self.out);
            let sd_cmd = self.sd.next_command(&mut out);
            self.out = out;
            match sd_cmd {
                Some(cmd) => self.exec(&cmd, false, now),
                None => break,
            }
        }
    }

    fn autoreport_temps(&mut self, now: Instant) {
        if let Some(every) = self.autoreport
            && now >= self.next_report
        {
            self.out.push(format!(" {}", self.m.temp_report()));
            self.next_report = now + every;
        }
    }

    fn keepalive(&mut self, now: Instant) {
        if self.q.busy_interval_s > 0.0 && now >= self.next_busy {
            if matches!(self.block, Some((Block::Heat { .. }, _))) {
                self.out.push(format!("{} W:?", self.m.temp_report()));
            } else {
                self.out.push("echo:busy: processing".into());
            }
            self.next_busy = now
                + self
                    .m
                    .scaled(self.q.busy_interval_s)
                    .max(Duration::from_millis(100));
        }
    }

    fn try_unblock(&mut self, now: Instant) -> bool {
        let Some((block, serial)) = &self.block else {
            return true;
        };
        let done = match block {
            Block::Move(w) => {
                let w = w.clone();
                self.m.queue_move(&w, now)
            }
            Block::Until(t) => now >= *t,
            Block::Heat { bed: true } => self.m.bed.reached(),
            Block::Heat { bed: false } => self.m.hotend.reached(),
            Block::Drain => self.m.planner_empty(),
        };
        if done {
            let serial = *serial;
            self.block = None;
            if serial {
                self.ok();
            }
        }
        done
    }

    fn ok(&mut self) {
        if self.q.advanced_ok {
            let b = self.q.bufsize.saturating_sub(self.rx.len() + 1);
            self.out
                .push(format!("ok N{} P{} B{b}", self.last_n, self.m.free_slots()));
        } else {
            self.out.push("ok".into());
        }
    }

    fn on_serial_line(&mut self, line: &str, now: Instant) {
        if line.trim().is_empty() {
            // Marlin skips empty lines without an answer.
            return;
        }
        let Some(command) = self.check_line(line) else {
            return;
        };
        if self.sd.is_writing() {
            let mut out = std::mem::take(&mut self.out);
            self.sd.write_line(&command, &mut out);
            self.out = out;
            self.record(&command);
            self.ok();
            return;
        }
        self.record(&command);
        if command.starts_with("M105") {
            self.out.push(format!("ok {}", self.m.temp_report()));
            return;
        }
        self.exec(&command, true, now);
    }

    fn record(&mut self, command: &str) {
        if is_housekeeping(command) {
            return;
        }
        if let Ok(mut s) = self.stats.lock() {
            s.hasher.update(command.as_bytes());
            s.hasher.update(b"\n");
            s.accepted += 1;
            if let Some(log) = s.log.as_mut() {
                log.push(command.to_string());
            }
        }
    }

    /// Marlin's line checks. Returns the command, or `None` after reporting the error.
    fn check_line(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        let Some(rest) = line.strip_prefix('N') else {
            if line.contains('*') {
                self.line_error("No Line Number with checksum");
                return None;
            }
            return Some(line.to_string());
        };
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u32 = rest[..digits].parse().unwrap_or(0);
        let star = line.rfind('*');
        let body = &rest[digits..star.map_or(rest.len(), |s| s - 1)];
        let command = body.trim().to_string();
        let is_m110 = command.starts_with("M110");
        if n != self.last_n + 1 && !is_m110 {
            self.line_error("Line Number is not Last Line Number+1");
            return None;
        }
        match star {
            Some(i) => {
                let sum: Option<u8> = line[i + 1..].trim().parse().ok();
                if sum != Some(checksum(&line.as_bytes()[..i])) {
                    self.line_error("checksum mismatch");
                    return None;
                }
            }
            None => {
                self.line_error("No Checksum with line number");
                return None;
            }
        }
        self.last_n = if is_m110 {
            words(&command)
                .iter()
                .find(|(k, _)| *k == 'N')
                .map_or(n, |(_, v)| *v as u32)
        } else {
            n
        };
        if let Ok(mut s) = self.stats.lock() {
            s.numbered += 1;
        }
        Some(command)
    }

    fn line_error(&mut self, what: &str) {
        if let Ok(mut s) = self.stats.lock() {
            s.line_errors += 1;
        }
        self.out
            .push(format!("Error:{what}, Last Line: {}", self.last_n));
        if !self.q.resend_after_error {
            return;
        }
        let n = self.last_n + 1;
        self.out.push(match self.q.resend_format {
            ResendFormat::Marlin => format!("Resend: {n}"),
            ResendFormat::NoSpace => format!("Resend:{n}"),
            ResendFormat::Rs => format!("rs {n}"),
            ResendFormat::RsN => format!("rs N:{n}"),
        });
        if self.q.ok_after_resend {
            self.ok();
        }
    }
}

mod exec;

#[cfg(test)]
mod tests;
