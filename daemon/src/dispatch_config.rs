//! The `[dispatch]` section and the per-printer dispatch keys: how the scheduler and the
//! tracker behave. Kept apart from `config.rs` so the farm policies read in one place.
//!
//! ```toml
//! [dispatch]
//! link_grace_s = 60              # a printer offline this long fails its print
//! max_failures = 3               # a job that failed this often waits for staff
//! stagger_s = 120                # at least this long between two automatic starts
//! max_printing_per_student = 2   # jobs of one student printing at once
//! open = "09:00"                 # staffed hours (both or neither), local time at utc_offset
//! close = "17:00"
//! utc_offset = "+01:00"
//! ```

use chrono::{FixedOffset, NaiveTime};
use serde::Deserialize;

use crate::config::{DriverKind, PrinterConfig};

/// How the scheduler and the tracker behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// Seconds a printer may be offline mid-print before the print counts as failed.
    #[serde(default = "default_grace")]
    pub link_grace_s: u64,
    /// After this many failed prints a job is flagged for staff and not auto-dispatched.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Minimum seconds between two automatic starts (preheating printers draw a lot).
    #[serde(default)]
    pub stagger_s: u64,
    /// Jobs of one student printing at once (absent: no cap).
    pub max_printing_per_student: Option<u32>,
    /// Staffed hours, `HH:MM` local time; a job that would end after `close` is held unless
    /// its printer is `unattended_ok`.
    pub open: Option<String>,
    pub close: Option<String>,
    /// The lab's offset from UTC for `open`/`close`, e.g. `"+01:00"` (default UTC).
    pub utc_offset: Option<String>,
    /// How often the scheduler looks at the queue, in milliseconds.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Keep-alive comment interval of `GET /api/v1/stream`, seconds.
    #[serde(default = "default_keepalive")]
    pub stream_keepalive_s: u64,
    /// Printer events per second per printer on the stream, at most.
    #[serde(default = "default_printer_rate")]
    pub printer_events_per_s: u32,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            link_grace_s: default_grace(),
            max_failures: default_max_failures(),
            stagger_s: 0,
            max_printing_per_student: None,
            open: None,
            close: None,
            utc_offset: None,
            tick_ms: default_tick_ms(),
            stream_keepalive_s: default_keepalive(),
            printer_events_per_s: default_printer_rate(),
        }
    }
}

fn default_grace() -> u64 {
    60
}
fn default_max_failures() -> u32 {
    3
}
fn default_tick_ms() -> u64 {
    2000
}
fn default_keepalive() -> u64 {
    15
}
fn default_printer_rate() -> u32 {
    2
}

/// Opening hours, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffedHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub offset: FixedOffset,
}

fn parse_time(key: &str, value: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").map_err(|_| {
        format!("dispatch.{key}: {value:?} is not a time like \"17:00\" (24-hour HH:MM)")
    })
}

impl DispatchConfig {
    /// The staffed hours, when configured.
    pub fn hours(&self) -> Result<Option<StaffedHours>, String> {
        let offset = match &self.utc_offset {
            Some(text) => text.trim().parse::<FixedOffset>().map_err(|_| {
                format!("dispatch.utc_offset: {text:?} is not an offset like \"+01:00\"")
            })?,
            None => FixedOffset::east_opt(0).ok_or("a zero offset")?,
        };
        match (&self.open, &self.close) {
            (None, None) => Ok(None),
            (Some(open), Some(close)) => {
                let (open, close) = (parse_time("open", open)?, parse_time("close", close)?);
                if open >= close {
                    return Err("dispatch.open must be earlier than dispatch.close".into());
                }
                Ok(Some(StaffedHours {
                    open,
                    close,
                    offset,
                }))
            }
            _ => Err("dispatch: give both `open` and `close`, or neither".into()),
        }
    }

    /// Every problem of the section.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = self.hours() {
            problems.push(problem);
        }
        if self.link_grace_s == 0 || self.link_grace_s > 86_400 {
            problems.push("dispatch.link_grace_s must be between 1 and 86400".into());
        }
        if self.max_failures == 0 {
            problems.push("dispatch.max_failures must be at least 1".into());
        }
        if self.max_printing_per_student == Some(0) {
            problems.push("dispatch.max_printing_per_student must be at least 1".into());
        }
        if self.tick_ms < 50 || self.tick_ms > 600_000 {
            problems.push("dispatch.tick_ms must be between 50 and 600000".into());
        }
        if self.stream_keepalive_s == 0 || self.stream_keepalive_s > 3600 {
            problems.push("dispatch.stream_keepalive_s must be between 1 and 3600".into());
        }
        if self.printer_events_per_s == 0 || self.printer_events_per_s > 50 {
            problems.push("dispatch.printer_events_per_s must be between 1 and 50".into());
        }
        problems
    }

    /// One line for `check-config`.
    pub fn summary(&self) -> String {
        let cap = self
            .max_printing_per_student
            .map_or("no cap".to_string(), |n| format!("{n} per student"));
        let hours = match (&self.open, &self.close) {
            (Some(open), Some(close)) => format!(
                "staffed {open}–{close} (UTC{})",
                self.utc_offset.as_deref().unwrap_or("+00:00")
            ),
            _ => "no staffed hours".into(),
        };
        format!(
            "link grace {} s; flagged after {} failures; starts {} s apart; {cap}; {hours}",
            self.link_grace_s, self.max_failures, self.stagger_s
        )
    }

    /// The grace period for a lost link.
    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.link_grace_s)
    }
}

impl PrinterConfig {
    /// Whether the scheduler may start jobs on this printer by itself.
    pub fn auto_dispatches(&self) -> bool {
        self.auto_dispatch.unwrap_or(self.auto_bed_clear)
    }
}

/// Problems with one printer's dispatch keys.
pub fn printer_problems(printer: &PrinterConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if printer.driver == DriverKind::Manual && printer.auto_dispatches() {
        problems.push(format!(
            "printers: {}: a manual printer cannot be auto-dispatched (staff start it by hand): remove auto_dispatch/auto_bed_clear",
            printer.id
        ));
    }
    if printer
        .nozzle_mm
        .is_some_and(|n| !n.is_finite() || n <= 0.0 || n > 5.0)
    {
        problems.push(format!(
            "printers: {}: nozzle_mm must be a diameter in mm, e.g. 0.4",
            printer.id
        ));
    }
    if let (Some(loaded), false) = (&printer.loaded_material, printer.materials.is_empty())
        && !printer.accepts_material(Some(loaded))
    {
        problems.push(format!(
            "printers: {}: loaded_material {loaded:?} is not in its materials list",
            printer.id
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staffed_hours_parse_and_are_checked() {
        let config = DispatchConfig {
            open: Some("09:00".into()),
            close: Some("17:30".into()),
            utc_offset: Some("+01:00".into()),
            ..DispatchConfig::default()
        };
        let hours = config.hours().expect("valid").expect("configured");
        assert_eq!(
            hours.close,
            NaiveTime::from_hms_opt(17, 30, 0).expect("time")
        );
        assert_eq!(hours.offset.local_minus_utc(), 3600);
        let bad = DispatchConfig {
            open: Some("18:00".into()),
            close: Some("5pm".into()),
            ..DispatchConfig::default()
        };
        assert!(bad.problems().iter().any(|p| p.contains("5pm")));
        let half = DispatchConfig {
            open: Some("09:00".into()),
            ..DispatchConfig::default()
        };
        assert!(half.problems().iter().any(|p| p.contains("both")));
    }
}
