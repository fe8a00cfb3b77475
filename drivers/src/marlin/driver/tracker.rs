//! The only writer of a Marlin printer's [`PrinterStatus`]: every change goes through here,
//! and publishing on the `watch` channel is throttled so a 20,000 lines/s stream does not wake
//! every watcher 20,000 times a second.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::job::Job;
use crate::{PrintOutcome, PrinterState, PrinterStatus, Temperatures};

pub(crate) struct Tracker {
    tx: watch::Sender<PrinterStatus>,
    status: PrinterStatus,
    dirty: bool,
    last_publish: Instant,
    every: Duration,
}

impl Tracker {
    pub fn new(tx: watch::Sender<PrinterStatus>, every: Duration) -> Self {
        Self {
            tx,
            status: PrinterStatus::default(),
            dirty: false,
            last_publish: Instant::now(),
            every,
        }
    }

    pub fn state(&self) -> PrinterState {
        self.status.state
    }

    /// Move to `state` and publish at once (state changes are never throttled).
    pub fn set_state(&mut self, state: PrinterState, job: Option<&Job>) {
        if self.status.state != state {
            self.status.state = state;
            if state != PrinterState::Error && state != PrinterState::Offline {
                // A fresh state clears a stale problem; Offline/Error keep theirs.
                self.status.error = None;
            }
            self.publish_now(job);
        }
    }

    pub fn set_error(&mut self, error: Option<String>, job: Option<&Job>) {
        self.status.error = error;
        self.publish_now(job);
    }

    /// Merge a temperature report. Reports without a target (Marlin's `M109` wait lines)
    /// keep the target already known.
    pub fn temps(&mut self, mut t: Temperatures) {
        let old = &self.status.temps;
        for (i, tool) in t.tools.iter_mut().enumerate() {
            if tool.target.is_nan() {
                tool.target = old.tools.get(i).map_or(0.0, |o| o.target);
            }
        }
        for (new, old) in [(&mut t.bed, old.bed), (&mut t.chamber, old.chamber)] {
            if let Some(n) = new
                && n.target.is_nan()
            {
                n.target = old.map_or(0.0, |o| o.target);
            }
        }
        if t.chamber.is_none() {
            t.chamber = self.status.temps.chamber;
        }
        self.status.temps = t;
        self.dirty = true;
    }

    /// A job ended: record the outcome and go idle (unless the printer is in error/offline).
    pub fn finish(&mut self, outcome: PrintOutcome) {
        if let PrintOutcome::Failed { reason } = &outcome {
            self.status.error = Some(reason.clone());
        }
        self.status.last_outcome = Some(outcome);
        if matches!(
            self.status.state,
            PrinterState::Printing | PrinterState::Paused
        ) {
            self.status.state = PrinterState::Idle;
        }
        self.publish_now(None);
    }

    pub fn job_started(&mut self, job: &Job) {
        self.status.last_outcome = None;
        self.status.error = None;
        self.status.state = if job.paused {
            PrinterState::Paused
        } else {
            PrinterState::Printing
        };
        self.publish_now(Some(job));
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// When a throttled publish is due, if one is pending.
    pub fn due(&self) -> Option<Instant> {
        self.dirty.then_some(self.last_publish + self.every)
    }

    pub fn publish_if_due(&mut self, now: Instant, job: Option<&Job>) {
        if self.dirty && now >= self.last_publish + self.every {
            self.publish_now(job);
        }
    }

    pub fn publish_now(&mut self, job: Option<&Job>) {
        self.status.job = job.map(|j| j.progress(Instant::now()));
        self.last_publish = Instant::now();
        self.dirty = false;
        let status = self.status.clone();
        self.tx.send_replace(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Temp;

    #[test]
    fn reports_without_a_target_keep_the_known_target() {
        let (tx, rx) = watch::channel(PrinterStatus::default());
        let mut t = Tracker::new(tx, Duration::ZERO);
        let temp = |actual, target| Temp { actual, target };
        t.temps(Temperatures {
            tools: vec![temp(25.0, 210.0)],
            bed: Some(temp(25.0, 60.0)),
            chamber: None,
        });
        // Marlin while M109 waits: `T:190.11 E:0 W:?`.
        t.temps(Temperatures {
            tools: vec![temp(190.11, f64::NAN)],
            bed: None,
            chamber: None,
        });
        t.publish_now(None);
        let s = rx.borrow();
        assert_eq!(s.temps.tools, vec![temp(190.11, 210.0)]);
    }

    #[test]
    fn a_finished_job_leaves_its_outcome_and_goes_idle() {
        let (tx, rx) = watch::channel(PrinterStatus::default());
        let mut t = Tracker::new(tx, Duration::from_secs(1));
        let job = Job::tracking(super::super::job::JobKind::Host, 10);
        t.job_started(&job);
        assert_eq!(rx.borrow().state, PrinterState::Printing);
        t.finish(PrintOutcome::Failed {
            reason: "Printer halted. kill() called!".into(),
        });
        let s = rx.borrow();
        assert_eq!(s.state, PrinterState::Idle);
        assert_eq!(s.error.as_deref(), Some("Printer halted. kill() called!"));
        assert!(s.job.is_none());
    }
}
