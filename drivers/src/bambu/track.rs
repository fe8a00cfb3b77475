//! What the driver believes about one Bambu printer, as a pure state machine: feed it the
//! merged [`Report`] after every message, link changes and the clock; read [`Track::status`].
//!
//! A Bambu printer has no job ids: `gcode_state` says FINISH or FAILED about *the last job*
//! until the next one starts. So a job Farmhand sent counts as picked up only once the printer
//! reports it active (PREPARE/RUNNING/PAUSE); only after that does FINISH or FAILED end it.
//! Losing the broker keeps the job: the printer prints on, and the `pushall` after the
//! reconnect says where it got to or how it ended.

use std::time::{Duration, Instant};

use super::protocol::{GcodeState, PRINT_ERROR_CANCELLED, Report, subtask_name};
use crate::{JobProgress, PrintOutcome, PrinterState, PrinterStatus, Temp, Temperatures};

/// The job Farmhand started (or found running) and is waiting to hear the end of.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    /// The file name on the printer.
    pub name: String,
    pub sent_at: Instant,
    /// The printer has reported it active at least once.
    pub seen: bool,
    /// Farmhand asked for a stop: a FAILED/IDLE after this is a cancel, not a failure.
    pub stop_requested: bool,
}

#[derive(Debug)]
pub struct Track {
    report: Report,
    job: Option<ActiveJob>,
    status: PrinterStatus,
    link_up: bool,
    start_timeout: Duration,
    serial: String,
}

impl Track {
    pub fn new(serial: &str, start_timeout: Duration) -> Track {
        Track {
            report: Report::default(),
            job: None,
            status: PrinterStatus::default(),
            link_up: false,
            start_timeout,
            serial: serial.to_string(),
        }
    }

    pub fn status(&self) -> &PrinterStatus {
        &self.status
    }

    pub fn job(&self) -> Option<&ActiveJob> {
        self.job.as_ref()
    }

    /// The printer has told us its state since the link came up.
    pub fn heard(&self) -> bool {
        self.link_up && self.report.gcode_state.is_some()
    }

    /// The merged report, for the runner to merge new messages into.
    pub fn report_mut(&mut self) -> &mut Report {
        &mut self.report
    }

    /// The broker link is up again; the state stays unknown until the next full report.
    pub fn link_up(&mut self) {
        self.link_up = true;
        // Forget the merged state: the pushall we send now rebuilds it, and a stale
        // `gcode_state` from before the outage must not end or start anything.
        self.report = Report::default();
    }

    /// The link is gone: the printer is unreachable, its job is not lost.
    pub fn link_down(&mut self, reason: String) {
        self.link_up = false;
        self.status.state = PrinterState::Offline;
        self.status.error = Some(reason);
    }

    /// A `project_file` request for `name` has been published.
    pub fn job_sent(&mut self, name: String, now: Instant) {
        self.job = Some(ActiveJob {
            name: name.clone(),
            sent_at: now,
            seen: false,
            stop_requested: false,
        });
        self.status.last_outcome = None;
        self.status.job_ref = Some(subtask_name(&name));
        self.status.error = None;
        self.status.state = PrinterState::Printing;
        self.status.job = Some(JobProgress::default());
    }

    /// A `stop` request has been published.
    pub fn stop_sent(&mut self) {
        if let Some(j) = self.job.as_mut() {
            j.stop_requested = true;
        }
    }

    /// The printer refused a request (`"result": "fail"`).
    pub fn rejected(&mut self, command: &str, reason: &str) {
        let text = format!("the printer refused {command}: {reason}");
        if command == "project_file" && self.job.as_ref().is_some_and(|j| !j.seen) {
            self.status.state = PrinterState::Idle;
            self.finish(PrintOutcome::Failed { reason: text });
        } else {
            self.status.error = Some(text);
        }
    }

    /// A report was merged into [`Track::report_mut`]: recompute everything from it.
    pub fn reported(&mut self) {
        let r = &self.report;
        let Some(state) = r.gcode_state else {
            // Partial reports before the full one: temperatures only.
            self.status.temps = temps(r);
            return;
        };
        self.status.temps = temps(r);
        let problem = r.problem();
        let error_code = r.print_error.unwrap_or(0);
        let cancelled_code = error_code == PRINT_ERROR_CANCELLED;
        self.status.state = match state {
            GcodeState::Idle | GcodeState::Finish => PrinterState::Idle,
            GcodeState::Prepare | GcodeState::Running => PrinterState::Printing,
            GcodeState::Pause => PrinterState::Paused,
            GcodeState::Failed if error_code != 0 && !cancelled_code => PrinterState::Error,
            GcodeState::Failed => PrinterState::Idle,
        };
        self.status.error = problem.clone().filter(|_| !cancelled_code);
        let progress = progress(r);
        let name = r.subtask_name.clone().or_else(|| r.gcode_file.clone());

        let Some(job) = self.job.clone() else {
            self.status.job = None;
            if self.status.last_outcome.is_none()
                && let Some(outcome) = ended(state, error_code, problem.as_deref())
            {
                // How the printer's last job ended, as it still says after Farmhand (re)starts:
                // a daemon that started that job matches it by `job_ref`.
                self.status.last_outcome = Some(outcome);
                self.status.job_ref = name.clone();
            }
            if state.is_active() {
                // Running when we connected (Farmhand restarted mid-print): follow it.
                let name = name.unwrap_or_else(|| "unknown job".into());
                self.job = Some(ActiveJob {
                    name: name.clone(),
                    sent_at: Instant::now(),
                    seen: true,
                    stop_requested: false,
                });
                self.status.last_outcome = None;
                self.status.job_ref = Some(name);
                self.status.job = Some(progress);
            }
            return;
        };
        if !job.seen {
            if state.is_active() {
                if let Some(j) = self.job.as_mut() {
                    j.seen = true;
                }
                self.status.job = Some(progress);
            } else {
                // The last job's FINISH/FAILED, or the request still on its way: keep
                // showing the job as starting until `tick` gives up on it.
                self.status.state = PrinterState::Printing;
                self.status.error = None;
            }
            return;
        }
        match state {
            GcodeState::Prepare | GcodeState::Running | GcodeState::Pause => {
                self.status.job = Some(progress);
            }
            GcodeState::Finish => self.finish(PrintOutcome::Completed),
            GcodeState::Failed if job.stop_requested || cancelled_code || error_code == 0 => {
                if job.stop_requested || cancelled_code {
                    self.finish(PrintOutcome::Cancelled);
                } else {
                    let reason = format!(
                        "printer {} reports the print FAILED without an error code: check its screen",
                        self.serial
                    );
                    self.finish(PrintOutcome::Failed { reason });
                }
            }
            GcodeState::Failed => {
                let reason = problem.unwrap_or_else(|| "the printer reports FAILED".into());
                self.finish(PrintOutcome::Failed { reason });
            }
            GcodeState::Idle if job.stop_requested => self.finish(PrintOutcome::Cancelled),
            GcodeState::Idle => {
                let reason = format!(
                    "printer {} went idle without finishing {} (it may have restarted)",
                    self.serial, job.name
                );
                self.finish(PrintOutcome::Failed { reason });
            }
        }
    }

    /// Time passes: a job the printer never picked up fails after `start_timeout`.
    pub fn tick(&mut self, now: Instant) {
        if let Some(job) = &self.job
            && !job.seen
            && now.duration_since(job.sent_at) >= self.start_timeout
        {
            let reason = format!(
                "printer {} did not start {} within {:?}: check the printer's screen and that it is in LAN mode",
                self.serial, job.name, self.start_timeout
            );
            if self.status.state == PrinterState::Printing {
                self.status.state = PrinterState::Idle;
            }
            self.finish(PrintOutcome::Failed { reason });
        }
    }

    /// When [`Track::tick`] next has something to decide.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.job
            .as_ref()
            .filter(|j| !j.seen)
            .map(|j| j.sent_at + self.start_timeout)
    }

    fn finish(&mut self, outcome: PrintOutcome) {
        if let PrintOutcome::Failed { reason } = &outcome {
            self.status.error = Some(reason.clone());
        }
        self.job = None;
        self.status.job = None;
        self.status.last_outcome = Some(outcome);
    }
}

/// The outcome a FINISH or FAILED state stands for, on its own.
fn ended(state: GcodeState, code: u64, problem: Option<&str>) -> Option<PrintOutcome> {
    match state {
        GcodeState::Finish => Some(PrintOutcome::Completed),
        GcodeState::Failed if code == PRINT_ERROR_CANCELLED => Some(PrintOutcome::Cancelled),
        GcodeState::Failed => Some(PrintOutcome::Failed {
            reason: problem
                .unwrap_or("the printer reports the print FAILED without an error code")
                .to_string(),
        }),
        _ => None,
    }
}

fn temps(r: &Report) -> Temperatures {
    let temp = |actual: Option<f64>, target: Option<f64>| {
        actual.map(|actual| Temp {
            actual,
            target: target.unwrap_or(0.0),
        })
    };
    Temperatures {
        tools: temp(r.nozzle_temper, r.nozzle_target_temper)
            .into_iter()
            .collect(),
        bed: temp(r.bed_temper, r.bed_target_temper),
        chamber: temp(r.chamber_temper, None),
    }
}

fn progress(r: &Report) -> JobProgress {
    JobProgress {
        percent: f64::from(r.mc_percent.unwrap_or(0).min(100)),
        layer: r
            .layer_num
            .filter(|_| r.total_layer_num.is_some_and(|t| t > 0)),
        total_layers: r.total_layer_num.filter(|t| *t > 0),
        eta_s: r.mc_remaining_time.map(|m| u64::from(m) * 60),
        bytes_sent: 0,
        bytes_total: 0,
    }
}

#[cfg(test)]
mod tests;
