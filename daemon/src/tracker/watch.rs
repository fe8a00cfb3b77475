//! What the tracker decides about one printer, as a pure state machine: feed it the
//! driver's status, the job the store says is printing there and the time; it says when
//! to record progress and when (and how) the print ended. No I/O, so every rule is a
//! table test.
//!
//! Rules:
//! - an outcome counts only after the printer was seen printing this job (the previous
//!   print's outcome lingers in the status);
//! - offline for the grace period while a job prints → the print failed (link lost);
//! - seen printing, then idle/error with no outcome for `settle` → failed (it stopped
//!   without saying how);
//! - a job re-attached after a restart that the printer does not show: ended as the printer
//!   says when it reports the outcome of that very job (by the printer's own job id), else
//!   idle/error for `settle`, or not shown within the grace period → failed.

use std::time::{Duration, Instant};

use drivers::{PrintOutcome, PrinterState, PrinterStatus};

use crate::lifecycle::{Action, FailureCause};
use crate::model::{JobId, Progress};

/// Progress is written to the store at most this often per printer.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What to do after a status change or a deadline.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Progress(JobId, Progress),
    End(JobId, Action),
}

#[derive(Debug)]
pub struct Watch {
    printer: String,
    grace: Duration,
    settle: Duration,
    seen_printing: Option<JobId>,
    offline_since: Option<Instant>,
    stopped_since: Option<Instant>,
    /// A job left PRINTING by the previous process, and when this one started.
    reattach: Option<(JobId, Instant)>,
    /// The printer's own id for the re-attached job, when it has ids.
    expected_ref: Option<String>,
    last_progress: Option<Instant>,
}

impl Watch {
    pub fn new(printer: &str, grace: Duration, reattach: Option<(JobId, Instant)>) -> Watch {
        Watch {
            printer: printer.to_string(),
            grace,
            settle: grace.min(Duration::from_secs(5)),
            seen_printing: None,
            offline_since: None,
            stopped_since: None,
            reattach,
            expected_ref: None,
            last_progress: None,
        }
    }

    /// The printer's own id for the re-attached job: an outcome the printer reports for it
    /// (it finished while Farmhand was down) ends the job as the printer says.
    pub fn expecting(mut self, job_ref: Option<String>) -> Watch {
        self.expected_ref = job_ref;
        self
    }

    /// The job the store says prints here (`job`), the driver's `status`, the time.
    pub fn step(
        &mut self,
        now: Instant,
        status: &PrinterStatus,
        job: Option<JobId>,
    ) -> Option<Decision> {
        let Some(job) = job else {
            self.seen_printing = None;
            self.offline_since = None;
            self.stopped_since = None;
            return None;
        };
        if status.state == PrinterState::Offline {
            self.stopped_since = None;
            let since = *self.offline_since.get_or_insert(now);
            if now.duration_since(since) >= self.grace {
                let reason = format!(
                    "lost the link to printer {} for {} s: check its power, cable or network",
                    self.printer,
                    self.grace.as_secs()
                );
                return Some(self.end(job, fail(reason)));
            }
            return None;
        }
        self.offline_since = None;
        if matches!(status.state, PrinterState::Printing | PrinterState::Paused) {
            self.seen_printing = Some(job);
            self.reattach = None;
            self.stopped_since = None;
            return self.progress(now, job, status);
        }
        if self.seen_printing == Some(job) {
            if let Some(outcome) = &status.last_outcome {
                return Some(self.end(job, outcome_action(outcome)));
            }
            let since = *self.stopped_since.get_or_insert(now);
            if now.duration_since(since) >= self.settle {
                let reason = format!(
                    "printer {} stopped printing without saying how the print ended",
                    self.printer
                );
                return Some(self.end(job, fail(reason)));
            }
            return None;
        }
        let (reattached, started) = self.reattach.filter(|(j, _)| *j == job)?;
        if let (Some(outcome), Some(expected)) = (&status.last_outcome, &self.expected_ref)
            && status.job_ref.as_ref() == Some(expected)
        {
            return Some(self.end(reattached, outcome_action(outcome)));
        }
        let since = *self.stopped_since.get_or_insert(now);
        if now.duration_since(since) >= self.settle {
            let reason = format!(
                "after Farmhand restarted, printer {} was {} and not printing this job: the print did not survive",
                self.printer,
                format!("{:?}", status.state).to_lowercase()
            );
            return Some(self.end(reattached, fail(reason)));
        }
        if now.duration_since(started) >= self.grace {
            let reason = format!(
                "printer {} did not show this print within {} s of Farmhand restarting",
                self.printer,
                self.grace.as_secs()
            );
            return Some(self.end(reattached, fail(reason)));
        }
        None
    }

    /// When `step` next has something to decide without a status change.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.offline_since.map(|t| t + self.grace),
            self.stopped_since.map(|t| t + self.settle),
            self.reattach.map(|(_, t)| t + self.grace),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn progress(&mut self, now: Instant, job: JobId, status: &PrinterStatus) -> Option<Decision> {
        let p = status.job.as_ref()?;
        if self
            .last_progress
            .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last_progress = Some(now);
        Some(Decision::Progress(
            job,
            Progress {
                percent: (p.percent * 10.0).round() / 10.0,
                layer: p.layer.map(u64::from),
                total_layers: p.total_layers.map(u64::from),
                eta_s: p.eta_s,
            },
        ))
    }

    fn end(&mut self, job: JobId, action: Action) -> Decision {
        self.seen_printing = None;
        self.offline_since = None;
        self.stopped_since = None;
        self.reattach = None;
        Decision::End(job, action)
    }
}

fn fail(reason: String) -> Action {
    Action::Fail {
        reason,
        cause: FailureCause::Printer,
    }
}

fn outcome_action(outcome: &PrintOutcome) -> Action {
    match outcome {
        PrintOutcome::Completed => Action::Complete,
        PrintOutcome::Failed { reason } => fail(reason.clone()),
        PrintOutcome::Cancelled => fail("the print was cancelled".into()),
    }
}

#[cfg(test)]
mod tests;
