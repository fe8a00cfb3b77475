//! Classifying one line received from the firmware. Pure functions, no state: the link state
//! machine ([`super::protocol`]) decides what a classified line means right now.
//!
//! Every firmware dialect we know of is a row in the table tests at the bottom, quoting the
//! real line and naming the firmware that prints it.

use crate::{Temp, Temperatures};

/// One received line, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `ok`, possibly with ADVANCED_OK fields (`ok N12 P15 B3`) or a temperature report.
    Ok {
        line: Option<u32>,
        planner_free: Option<u32>,
        buffer_free: Option<u32>,
        temps: Option<Temperatures>,
    },
    /// `Resend: n`, `Resend:n`, `rs n`, `rs N:n`: send again from line `n`.
    Resend(u32),
    /// The firmware rejected a line (checksum / numbering). `last_line` is the last one it took.
    LineError { last_line: Option<u32> },
    /// `echo:busy: processing`, `busy:`, `wait`: still alive, not an acknowledgement.
    Busy,
    /// `start`: the board (re)booted; everything sent before is gone.
    Start,
    /// An error that stops the firmware (`Error:Printer halted. kill() called!`, Klipper shutdown).
    Halt(String),
    /// Any other error (`Error:…`, Klipper `!! …`), text without the prefix.
    Error(String),
    /// An unsolicited temperature report (autoreport or during `M109`).
    Temps(Temperatures),
    /// An `M115` line (`FIRMWARE_NAME:…`).
    FirmwareInfo(String),
    /// `Cap:NAME:0|1` from `M115`.
    Capability { name: String, enabled: bool },
    /// `SD printing byte X/Y`.
    SdProgress { done: u64, total: u64 },
    /// `Not SD printing`.
    SdIdle,
    /// `Done printing file`.
    SdDone,
    /// `Writing to file: NAME` (M28 accepted).
    SdWriting,
    /// `File opened: NAME Size: N`.
    SdOpened { size: u64 },
    /// Anything else (`echo:…`, Klipper `// …`, banners, garbage).
    Info(String),
}

/// Classify a line with the line ending already removed.
pub fn parse_line(raw: &str) -> Response {
    // Bootloaders and resets leave NULs and invalid bytes (decoded as U+FFFD) in front of a
    // line; no firmware line starts with anything but printable ASCII.
    let line = raw
        .trim_start_matches(|c: char| !c.is_ascii_graphic())
        .trim_end();
    if let Some(rest) = strip_ok(line) {
        return parse_ok(rest);
    }
    if let Some(n) = parse_resend(line) {
        return Response::Resend(n);
    }
    if let Some(msg) = line.strip_prefix("!!") {
        return klipper_error(msg.trim());
    }
    if let Some(msg) = strip_error(line) {
        return classify_error(msg);
    }
    if is_busy(line) {
        return Response::Busy;
    }
    if line == "start" {
        return Response::Start;
    }
    if let Some(r) = parse_sd(line) {
        return r;
    }
    if line.starts_with("FIRMWARE_NAME:") || line.contains(" FIRMWARE_NAME:") {
        return Response::FirmwareInfo(line.to_string());
    }
    if let Some(cap) = line.strip_prefix("Cap:") {
        let (name, value) = cap.rsplit_once(':').unwrap_or((cap, "0"));
        return Response::Capability {
            name: name.to_string(),
            enabled: value.trim() == "1",
        };
    }
    if let Some(t) = parse_temps(line) {
        return Response::Temps(t);
    }
    Response::Info(line.trim_start_matches("//").trim().to_string())
}

fn strip_ok(line: &str) -> Option<&str> {
    if line == "ok" {
        return Some("");
    }
    line.strip_prefix("ok ")
        .or_else(|| line.strip_prefix("ok:"))
}

fn parse_ok(rest: &str) -> Response {
    let mut out = Response::Ok {
        line: None,
        planner_free: None,
        buffer_free: None,
        temps: parse_temps(rest),
    };
    if let Response::Ok {
        line,
        planner_free,
        buffer_free,
        ..
    } = &mut out
    {
        for word in rest.split_whitespace() {
            let (key, value) = word.split_at(word.len().min(1));
            let value = value.parse().ok();
            match key {
                "N" => *line = value,
                "P" => *planner_free = value,
                "B" => *buffer_free = value,
                _ => {}
            }
        }
    }
    out
}

fn parse_resend(line: &str) -> Option<u32> {
    let rest = line
        .strip_prefix("Resend:")
        .or_else(|| line.strip_prefix("rs "))?
        .trim();
    let rest = rest.strip_prefix("N:").unwrap_or(rest);
    let rest = rest.strip_prefix('N').unwrap_or(rest);
    leading_number(rest.trim())
}

fn leading_number(s: &str) -> Option<u32> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn strip_error(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("Error:")
        .or_else(|| line.strip_prefix("error:"))
        .or_else(|| line.strip_prefix("echo:Error:"))?;
    Some(rest.trim())
}

fn classify_error(msg: &str) -> Response {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("checksum") || lower.contains("line number") {
        let last_line = lower
            .find("last line:")
            .and_then(|i| leading_number(msg[i + "last line:".len()..].trim()));
        return Response::LineError { last_line };
    }
    if lower.contains("halted")
        || lower.contains("kill()")
        || lower.contains("stopped due to errors")
        || lower.contains("m999")
    {
        return Response::Halt(msg.to_string());
    }
    Response::Error(msg.to_string())
}

fn klipper_error(msg: &str) -> Response {
    if msg.to_ascii_lowercase().contains("shutdown") {
        Response::Halt(msg.to_string())
    } else {
        Response::Error(msg.to_string())
    }
}

fn is_busy(line: &str) -> bool {
    line == "wait" || line.starts_with("echo:busy:") || line.starts_with("busy:")
}

fn parse_sd(line: &str) -> Option<Response> {
    if let Some(rest) = line.strip_prefix("SD printing byte ") {
        let (done, total) = rest.split_once('/')?;
        return Some(Response::SdProgress {
            done: done.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
        });
    }
    if line.starts_with("Not SD printing") {
        return Some(Response::SdIdle);
    }
    if line.starts_with("Done printing file") {
        return Some(Response::SdDone);
    }
    if line.starts_with("Writing to file") {
        return Some(Response::SdWriting);
    }
    if line.starts_with("File opened:") {
        let size = line.rsplit_once("Size:")?.1.trim().parse().ok()?;
        return Some(Response::SdOpened { size });
    }
    None
}

/// Parse a temperature report in any of the dialects we know:
/// Marlin `T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0`, multi-tool `T0:… T1:…`, Klipper `B:… T0:…`,
/// Repetier `T:24.17/0`, Smoothie `T:21.8 /0.0 @0`, and Marlin's `M109` wait lines
/// `T:190.11 E:0 W:?` (no target). Returns `None` when the line holds no tool or bed reading.
pub fn parse_temps(text: &str) -> Option<Temperatures> {
    let mut plain_t = None;
    let mut numbered: Vec<(usize, Temp)> = Vec::new();
    let mut out = Temperatures::default();
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let Some((key, value)) = word.split_once(':') else {
            continue;
        };
        // Either `T:21.8 /0.0`, `T:21.8/0.0` or `T:21.8 / 0.0`.
        let (actual, mut target) = match value.split_once('/') {
            Some((a, t)) => (a, (!t.is_empty()).then_some(t)),
            None => (value, None),
        };
        let Ok(actual) = actual.parse::<f64>() else {
            continue;
        };
        if target.is_none()
            && let Some(t) = words.peek().copied().and_then(|n| n.strip_prefix('/'))
        {
            target = if t.is_empty() { None } else { Some(t) };
            words.next();
            if target.is_none() {
                target = words.next();
            }
        }
        let temp = Temp {
            actual,
            // NaN marks "no target in this report" (M109 wait lines); the status tracker keeps
            // the previous target then instead of showing the heater as off.
            target: target.and_then(|t| t.parse().ok()).unwrap_or(f64::NAN),
        };
        match key {
            "T" => plain_t = Some(temp),
            "B" => out.bed = Some(temp),
            "C" => out.chamber = Some(temp),
            _ => {
                if let Some(i) = key.strip_prefix('T').and_then(|n| n.parse::<usize>().ok()) {
                    numbered.push((i, temp));
                }
            }
        }
    }
    numbered.sort_by_key(|(i, _)| *i);
    out.tools = if numbered.is_empty() {
        plain_t.into_iter().collect()
    } else {
        numbered.into_iter().map(|(_, t)| t).collect()
    };
    (!out.tools.is_empty() || out.bed.is_some()).then_some(out)
}

#[cfg(test)]
mod tests;
