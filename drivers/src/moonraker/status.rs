//! Klipper's printer objects as Moonraker reports them, merged and turned into a
//! [`PrinterStatus`] without I/O.
//!
//! `printer.objects.subscribe` answers with every subscribed object in full; afterwards
//! `notify_status_update` sends only the fields that changed, so [`Objects::merge`] merges one
//! level deep (object → field). [`JobWatch`] decides when Farmhand's job has ended.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::{JobProgress, PrintOutcome, PrinterState, PrinterStatus, Temp, Temperatures};

/// The objects Farmhand subscribes to.
pub const OBJECTS: [&str; 5] = [
    "print_stats",
    "virtual_sdcard",
    "display_status",
    "heater_bed",
    "extruder",
];

/// The latest known value of every subscribed object's fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects(BTreeMap<String, Map<String, Value>>);

impl Objects {
    /// Merge a full status or a partial update (`{"print_stats": {"state": "printing"}}`).
    pub fn merge(&mut self, update: &Value) {
        let Some(objects) = update.as_object() else {
            return;
        };
        for (name, fields) in objects {
            let Some(fields) = fields.as_object() else {
                continue;
            };
            let known = self.0.entry(name.clone()).or_default();
            for (k, v) in fields {
                known.insert(k.clone(), v.clone());
            }
        }
    }

    fn get(&self, object: &str, field: &str) -> Option<&Value> {
        self.0.get(object).and_then(|o| o.get(field))
    }

    fn f64(&self, object: &str, field: &str) -> Option<f64> {
        self.get(object, field).and_then(Value::as_f64)
    }

    fn str(&self, object: &str, field: &str) -> Option<&str> {
        self.get(object, field).and_then(Value::as_str)
    }

    /// `print_stats.state`: standby, printing, paused, complete, cancelled, error.
    pub fn print_state(&self) -> Option<&str> {
        self.str("print_stats", "state")
    }

    pub fn filename(&self) -> Option<&str> {
        self.str("print_stats", "filename")
    }

    fn heater(&self, object: &str) -> Option<Temp> {
        Some(Temp {
            actual: self.f64(object, "temperature")?,
            target: self.f64(object, "target").unwrap_or(0.0),
        })
    }

    /// Progress: `display_status.progress` (M73 aware) else `virtual_sdcard.progress`.
    fn progress(&self) -> JobProgress {
        let frac = self
            .f64("display_status", "progress")
            .filter(|p| *p > 0.0)
            .or_else(|| self.f64("virtual_sdcard", "progress"))
            .unwrap_or(0.0);
        let info = |k| {
            self.get("print_stats", "info")
                .and_then(|i| i.get(k))
                .and_then(Value::as_u64)
                .map(|n| n as u32)
        };
        let printed = self.f64("print_stats", "print_duration").unwrap_or(0.0);
        let eta_s = (frac > 0.01).then(|| (printed / frac - printed).max(0.0).round() as u64);
        let total = self.f64("virtual_sdcard", "file_size").unwrap_or(0.0) as u64;
        let pos = self.f64("virtual_sdcard", "file_position").unwrap_or(0.0) as u64;
        JobProgress {
            percent: (frac * 100.0).clamp(0.0, 100.0),
            layer: info("current_layer"),
            total_layers: info("total_layer"),
            eta_s,
            bytes_sent: pos,
            bytes_total: total,
        }
    }

    /// The contract's view of the printer (job and outcome are [`JobWatch`]'s business).
    pub fn to_status(&self) -> PrinterStatus {
        let state = match self.print_state() {
            Some("printing") => PrinterState::Printing,
            Some("paused") => PrinterState::Paused,
            Some("error") => PrinterState::Error,
            _ => PrinterState::Idle,
        };
        let message = self
            .str("print_stats", "message")
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        PrinterStatus {
            state,
            job: matches!(state, PrinterState::Printing | PrinterState::Paused)
                .then(|| self.progress()),
            temps: Temperatures {
                tools: self.heater("extruder").into_iter().collect(),
                bed: self.heater("heater_bed"),
                chamber: None,
            },
            error: if state == PrinterState::Error {
                message
            } else {
                None
            },
            last_outcome: None,
            job_ref: None,
        }
    }
}

/// Farmhand's job on a Moonraker printer: the file it started and whether Klipper has shown it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobWatch {
    pub filename: String,
    pub started_at: Instant,
    pub seen: bool,
}

impl JobWatch {
    pub fn new(filename: String, now: Instant) -> Self {
        Self {
            filename,
            started_at: now,
            seen: false,
        }
    }

    /// Look at the merged objects: `Some(outcome)` once our job has ended.
    pub fn observe(&mut self, o: &Objects) -> Option<PrintOutcome> {
        let ours = o.filename() == Some(self.filename.as_str());
        match (o.print_state(), ours) {
            (Some("printing" | "paused"), true) => {
                self.seen = true;
                None
            }
            (Some("complete"), true) if self.seen => Some(PrintOutcome::Completed),
            (Some("cancelled"), true) if self.seen => Some(PrintOutcome::Cancelled),
            (Some("error"), true) if self.seen => Some(PrintOutcome::Failed {
                reason: o
                    .str("print_stats", "message")
                    .filter(|m| !m.is_empty())
                    .unwrap_or("Klipper reported an error without a message")
                    .to_string(),
            }),
            // Klipper moved on to another file or back to standby after showing ours.
            (Some(_), false) if self.seen => Some(PrintOutcome::Failed {
                reason: format!(
                    "Klipper stopped printing {} without finishing it (the printer may have restarted)",
                    self.filename
                ),
            }),
            _ => None,
        }
    }

    /// `Some(failure)` when Klipper never started the file within `limit`.
    pub fn expired(&self, now: Instant, limit: Duration) -> Option<PrintOutcome> {
        (!self.seen && now.duration_since(self.started_at) >= limit).then(|| PrintOutcome::Failed {
            reason: format!(
                "Klipper did not start {} within {limit:?}: check the Moonraker log",
                self.filename
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_updates_merge_field_by_field() {
        let mut o = Objects::default();
        o.merge(&json!({
            "print_stats": {"state": "printing", "filename": "cube.gcode", "print_duration": 50.0,
                            "info": {"current_layer": 3, "total_layer": 10}},
            "virtual_sdcard": {"progress": 0.25, "file_size": 1000, "file_position": 250},
            "display_status": {"progress": 0.0},
            "extruder": {"temperature": 209.5, "target": 210.0},
            "heater_bed": {"temperature": 59.9, "target": 60.0}
        }));
        // Moonraker's notify_status_update: only what changed.
        o.merge(&json!({"virtual_sdcard": {"progress": 0.5, "file_position": 500}}));
        let s = o.to_status();
        assert_eq!(s.state, PrinterState::Printing);
        let job = s.job.expect("job");
        assert_eq!(job.percent, 50.0);
        assert_eq!((job.layer, job.total_layers), (Some(3), Some(10)));
        assert_eq!((job.bytes_sent, job.bytes_total), (500, 1000));
        assert_eq!(job.eta_s, Some(50));
        assert_eq!(
            s.temps.tools,
            vec![Temp {
                actual: 209.5,
                target: 210.0
            }]
        );
        assert_eq!(o.filename(), Some("cube.gcode"));
    }

    #[test]
    fn display_status_wins_when_the_file_has_m73() {
        let mut o = Objects::default();
        o.merge(&json!({"print_stats": {"state": "printing"},
                        "virtual_sdcard": {"progress": 0.2}, "display_status": {"progress": 0.3}}));
        assert_eq!(o.to_status().job.map(|j| j.percent), Some(30.0));
    }

    /// (print_stats updates in order, expected outcome)
    #[test]
    fn job_outcomes_table() {
        let failed = |r: &str| Some(PrintOutcome::Failed { reason: r.into() });
        let cases: Vec<(Vec<Value>, Option<PrintOutcome>)> = vec![
            // A stale "complete" of the previous print is not ours.
            (
                vec![json!({"state": "complete", "filename": "old.gcode"})],
                None,
            ),
            // Nor is "complete" of our name before we saw it printing.
            (
                vec![json!({"state": "complete", "filename": "cube.gcode"})],
                None,
            ),
            (
                vec![
                    json!({"state": "printing", "filename": "cube.gcode"}),
                    json!({"state": "complete"}),
                ],
                Some(PrintOutcome::Completed),
            ),
            (
                vec![
                    json!({"state": "printing", "filename": "cube.gcode"}),
                    json!({"state": "paused"}),
                    json!({"state": "cancelled"}),
                ],
                Some(PrintOutcome::Cancelled),
            ),
            (
                vec![
                    json!({"state": "printing", "filename": "cube.gcode"}),
                    // Klipper's own text, e.g. a heater check.
                    json!({"state": "error", "message": "Heater extruder not heating at expected rate"}),
                ],
                failed("Heater extruder not heating at expected rate"),
            ),
            (
                vec![
                    json!({"state": "printing", "filename": "cube.gcode"}),
                    json!({"state": "standby", "filename": ""}),
                ],
                failed(
                    "Klipper stopped printing cube.gcode without finishing it (the printer may have restarted)",
                ),
            ),
        ];
        for (updates, want) in cases {
            let mut o = Objects::default();
            let mut w = JobWatch::new("cube.gcode".into(), Instant::now());
            let mut got = None;
            for u in &updates {
                o.merge(&json!({ "print_stats": u }));
                got = got.or(w.observe(&o));
            }
            assert_eq!(got, want, "{updates:?}");
        }
    }

    #[test]
    fn unseen_jobs_expire() {
        let now = Instant::now();
        let w = JobWatch::new("a.gcode".into(), now);
        assert_eq!(
            w.expired(now + Duration::from_secs(5), Duration::from_secs(10)),
            None
        );
        assert!(
            w.expired(now + Duration::from_secs(10), Duration::from_secs(10))
                .is_some()
        );
    }
}
