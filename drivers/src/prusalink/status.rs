//! PrusaLink's `GET /api/v1/status` and `GET /api/v1/job` answers turned into a
//! [`PrinterStatus`], and the decision when Farmhand's job ended. No I/O.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{JobProgress, PrintOutcome, PrinterState, PrinterStatus, Temp, Temperatures};

/// `GET /api/v1/status` (the fields Farmhand reads; the rest is ignored).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StatusDoc {
    #[serde(default)]
    pub job: Option<JobStatus>,
    pub printer: PrinterDoc,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct JobStatus {
    pub id: u64,
    #[serde(default)]
    pub progress: f64,
    #[serde(default)]
    pub time_remaining: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PrinterDoc {
    /// IDLE, BUSY, PRINTING, PAUSED, FINISHED, STOPPED, ERROR, ATTENTION, READY
    pub state: String,
    #[serde(default)]
    pub temp_nozzle: Option<f64>,
    #[serde(default)]
    pub target_nozzle: Option<f64>,
    #[serde(default)]
    pub temp_bed: Option<f64>,
    #[serde(default)]
    pub target_bed: Option<f64>,
    #[serde(default)]
    pub status_printer: Option<StatusPrinter>,
}

/// The printer's own message (e.g. on ERROR/ATTENTION).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StatusPrinter {
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /api/v1/job`: which file the current (or last) job prints.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct JobDoc {
    pub id: u64,
    pub state: String,
    pub file: JobFile,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct JobFile {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl StatusDoc {
    pub fn message(&self) -> Option<String> {
        self.printer
            .status_printer
            .as_ref()
            .and_then(|s| s.message.clone())
            .filter(|m| !m.is_empty())
    }

    /// The contract's view (job outcome is [`JobWatch`]'s business).
    pub fn to_status(&self) -> PrinterStatus {
        let state = match self.printer.state.as_str() {
            "PRINTING" | "BUSY" if self.job.is_some() => PrinterState::Printing,
            "PAUSED" => PrinterState::Paused,
            "ERROR" | "ATTENTION" => PrinterState::Error,
            _ => PrinterState::Idle,
        };
        let heater = |actual: Option<f64>, target: Option<f64>| {
            actual.map(|actual| Temp {
                actual,
                target: target.unwrap_or(0.0),
            })
        };
        PrinterStatus {
            state,
            job: match (&self.job, state) {
                (Some(j), PrinterState::Printing | PrinterState::Paused) => Some(JobProgress {
                    percent: j.progress.clamp(0.0, 100.0),
                    eta_s: j.time_remaining,
                    ..JobProgress::default()
                }),
                _ => None,
            },
            temps: Temperatures {
                tools: heater(self.printer.temp_nozzle, self.printer.target_nozzle)
                    .into_iter()
                    .collect(),
                bed: heater(self.printer.temp_bed, self.printer.target_bed),
                chamber: None,
            },
            error: (state == PrinterState::Error)
                .then(|| self.message())
                .flatten(),
            last_outcome: None,
            job_ref: None,
        }
    }
}

/// Farmhand's job: the file it uploaded, and the printer's job id once it shows up.
#[derive(Debug, Clone, PartialEq)]
pub struct JobWatch {
    pub filename: String,
    pub id: Option<u64>,
    pub started_at: Instant,
    /// The printer's job id before the upload (a finished earlier job of the same file name).
    pub previous: Option<u64>,
}

impl JobWatch {
    pub fn new(filename: String, previous: Option<u64>, now: Instant) -> Self {
        Self {
            filename,
            id: None,
            started_at: now,
            previous,
        }
    }

    /// Look at one poll: `Some(outcome)` once our job ended.
    pub fn observe(&mut self, status: &StatusDoc, job: Option<&JobDoc>) -> Option<PrintOutcome> {
        if self.id.is_none()
            && let Some(j) = job.filter(|j| {
                Some(j.id) != self.previous && j.file.name == self.filename
                    || j.file.display_name.as_deref() == Some(self.filename.as_str())
            })
        {
            self.id = Some(j.id);
        }
        let id = self.id?;
        let ours = job.filter(|j| j.id == id);
        let state = ours.map_or(status.printer.state.as_str(), |j| j.state.as_str());
        match state {
            "FINISHED" => Some(PrintOutcome::Completed),
            "STOPPED" => Some(PrintOutcome::Cancelled),
            "ERROR" => Some(PrintOutcome::Failed {
                reason: status
                    .message()
                    .unwrap_or_else(|| "the printer reported an error".into()),
            }),
            _ if ours.is_none() && status.job.as_ref().is_none_or(|j| j.id != id) => {
                Some(PrintOutcome::Failed {
                    reason: format!(
                        "the printer dropped job {id} ({}) without finishing it (it may have restarted)",
                        self.filename
                    ),
                })
            }
            _ => None,
        }
    }

    /// `Some(failure)` when the printer never showed the job within `limit`.
    pub fn expired(&self, now: Instant, limit: Duration) -> Option<PrintOutcome> {
        (self.id.is_none() && now.duration_since(self.started_at) >= limit).then(|| {
            PrintOutcome::Failed {
                reason: format!(
                    "the printer did not start {} within {limit:?}: check its screen",
                    self.filename
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> StatusDoc {
        serde_json::from_str(json).expect(json)
    }

    fn job(json: &str) -> JobDoc {
        serde_json::from_str(json).expect(json)
    }

    #[test]
    fn status_documents() {
        // PrusaLink 2.1 on an MK4, trimmed.
        let s = status(
            r#"{"job":{"id":297,"progress":42.0,"time_remaining":600,"time_printing":420},
                "storage":{"path":"/usb/","name":"usb","read_only":false},
                "printer":{"state":"PRINTING","temp_bed":60.1,"target_bed":60.0,"temp_nozzle":214.9,
                           "target_nozzle":215.0,"axis_z":2.4,"flow":100,"speed":100,"fan_hotend":3000}}"#,
        )
        .to_status();
        assert_eq!(s.state, PrinterState::Printing);
        assert_eq!(s.job.map(|j| (j.percent, j.eta_s)), Some((42.0, Some(600))));
        assert_eq!(
            s.temps.tools,
            vec![Temp {
                actual: 214.9,
                target: 215.0
            }]
        );
        let s = status(r#"{"printer":{"state":"IDLE","temp_nozzle":24.0}}"#).to_status();
        assert_eq!((s.state, s.job), (PrinterState::Idle, None));
        let s = status(
            r#"{"printer":{"state":"ERROR","status_printer":{"ok":false,"message":"MINTEMP error"}}}"#,
        )
        .to_status();
        assert_eq!(s.state, PrinterState::Error);
        assert_eq!(s.error.as_deref(), Some("MINTEMP error"));
    }

    /// (polls of (status, job) in order, expected outcome)
    #[test]
    fn job_outcomes_table() {
        let printing = r#"{"job":{"id":7,"progress":10},"printer":{"state":"PRINTING"}}"#;
        let ours = |state: &str| {
            format!(
                r#"{{"id":7,"state":"{state}","file":{{"name":"CUBE~1.GCO","display_name":"cube.gcode"}}}}"#
            )
        };
        type Polls = Vec<(String, Option<String>)>;
        let cases: Vec<(Polls, Option<PrintOutcome>)> = vec![
            // Another file's job is not ours, nor the same file's earlier job (id 5).
            (
                vec![(
                    printing.into(),
                    Some(r#"{"id":5,"state":"FINISHED","file":{"name":"cube.gcode"}}"#.into()),
                )],
                None,
            ),
            (
                vec![(
                    printing.into(),
                    Some(r#"{"id":6,"state":"FINISHED","file":{"name":"old.gcode"}}"#.into()),
                )],
                None,
            ),
            (vec![(printing.into(), Some(ours("PRINTING")))], None),
            (
                vec![
                    (printing.into(), Some(ours("PRINTING"))),
                    (r#"{"printer":{"state":"FINISHED"}}"#.into(), Some(ours("FINISHED"))),
                ],
                Some(PrintOutcome::Completed),
            ),
            (
                vec![
                    (printing.into(), Some(ours("PRINTING"))),
                    (r#"{"printer":{"state":"STOPPED"}}"#.into(), Some(ours("STOPPED"))),
                ],
                Some(PrintOutcome::Cancelled),
            ),
            (
                vec![
                    (printing.into(), Some(ours("PRINTING"))),
                    (
                        r#"{"printer":{"state":"ERROR","status_printer":{"message":"Thermal runaway"}}}"#.into(),
                        Some(ours("ERROR")),
                    ),
                ],
                Some(PrintOutcome::Failed { reason: "Thermal runaway".into() }),
            ),
            (
                vec![
                    (printing.into(), Some(ours("PRINTING"))),
                    (r#"{"printer":{"state":"IDLE"}}"#.into(), None),
                ],
                Some(PrintOutcome::Failed {
                    reason: "the printer dropped job 7 (cube.gcode) without finishing it (it may have restarted)".into(),
                }),
            ),
        ];
        for (polls, want) in cases {
            let mut w = JobWatch::new("cube.gcode".into(), Some(5), Instant::now());
            let mut got = None;
            for (s, j) in &polls {
                let j = j.as_deref().map(job);
                got = got.or(w.observe(&status(s), j.as_ref()));
            }
            assert_eq!(got, want, "{polls:?}");
        }
    }
}
