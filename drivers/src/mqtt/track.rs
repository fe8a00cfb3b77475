//! What the driver believes about one MQTT printer, as a pure state machine: feed it broker
//! link changes, printer reports and the clock; read [`Track::status`]. No I/O, so every rule
//! below is a table test.
//!
//! Rules that keep a print's tracking alive across outages:
//! - Losing the broker makes the printer `offline` but **keeps the job**: the printer prints on
//!   without us and its next report (after we reconnect) says where it got to or how it ended.
//! - A job ends only when the printer says so (`last_job.id` = our id), or when a printer that
//!   had shown our job reports itself idle/error without it (it restarted and forgot it), or
//!   when it never picks the job up within `start_timeout`.

use std::time::{Duration, Instant};

use super::schema::{JobReport, StatusMsg};
use crate::{JobProgress, PrintOutcome, PrinterState, PrinterStatus};

/// The job Farmhand started and is waiting to hear the end of.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveJob {
    pub id: String,
    pub size: u64,
    pub sent_at: Instant,
    /// The printer has reported this job at least once.
    pub seen: bool,
}

#[derive(Debug)]
pub struct Track {
    status: PrinterStatus,
    job: Option<ActiveJob>,
    start_timeout: Duration,
    topic: String,
}

impl Track {
    pub fn new(topic: &str, start_timeout: Duration) -> Self {
        Self {
            status: PrinterStatus::default(),
            job: None,
            start_timeout,
            topic: topic.to_string(),
        }
    }

    pub fn status(&self) -> &PrinterStatus {
        &self.status
    }

    pub fn job(&self) -> Option<&ActiveJob> {
        self.job.as_ref()
    }

    /// The broker connection is gone: the printer is unreachable, its job is not lost.
    pub fn link_down(&mut self, reason: String) {
        self.status.state = PrinterState::Offline;
        self.status.error = Some(reason);
    }

    /// Something the printer sent could not be understood.
    pub fn set_error(&mut self, error: String) {
        self.status.error = Some(error);
    }

    /// A start command has been handed to the broker.
    pub fn job_sent(&mut self, id: String, size: u64, now: Instant) {
        self.job = Some(ActiveJob {
            id,
            size,
            sent_at: now,
            seen: false,
        });
        self.status.last_outcome = None;
        self.status.job_ref = self.job.as_ref().map(|j| j.id.clone());
        self.status.error = None;
        self.status.state = PrinterState::Printing;
        self.status.job = Some(JobProgress {
            bytes_total: size,
            ..JobProgress::default()
        });
    }

    /// The printer published a status.
    pub fn report(&mut self, msg: StatusMsg) {
        let printer_state = msg.state;
        self.status.temps = msg.temps;
        self.status.error = msg.error.clone();
        let Some(job) = self.job.clone() else {
            self.status.state = printer_state;
            self.status.job = None;
            // How the printer's last job ended, as it says (a host that restarted learns the
            // end of a job it started before).
            if let Some(last) = &msg.last_job
                && self.status.job_ref.as_deref() != Some(last.id.as_str())
            {
                self.status.last_outcome = Some(last.outcome.clone());
                self.status.job_ref = Some(last.id.clone());
            }
            if let Some(report) = msg
                .job
                .filter(|_| matches!(printer_state, PrinterState::Printing | PrinterState::Paused))
            {
                self.adopt(&report);
            }
            return;
        };
        if let Some(last) = msg.last_job.filter(|l| l.id == job.id) {
            self.finish(last.outcome);
            self.status.state = printer_state;
            return;
        }
        match msg.job {
            Some(report) if report.id == job.id => {
                if let Some(j) = self.job.as_mut() {
                    j.seen = true;
                }
                self.status.state = printer_state;
                self.status.job = Some(progress(&report, job.size));
            }
            // The last will, or a printer that lost its network: it may still be printing.
            _ if printer_state == PrinterState::Offline => {
                self.status.state = PrinterState::Offline;
            }
            _ if job.seen => {
                self.status.state = printer_state;
                let said = msg.error.map(|e| format!(": {e}")).unwrap_or_default();
                self.finish(PrintOutcome::Failed {
                    reason: format!(
                        "the printer on {} stopped reporting job {} without saying how it ended (it may have restarted){said}",
                        self.topic, job.id
                    ),
                });
            }
            // Not picked up yet (the command may still be on its way): wait for `tick`.
            _ => {}
        }
    }

    /// The printer is already printing a job we did not start in this process (the host
    /// restarted mid-print): follow it, so its end is reported like any other.
    fn adopt(&mut self, report: &JobReport) {
        self.job = Some(ActiveJob {
            id: report.id.clone(),
            size: 0,
            sent_at: Instant::now(),
            seen: true,
        });
        self.status.last_outcome = None;
        self.status.job_ref = Some(report.id.clone());
        self.status.job = Some(progress(report, 0));
    }

    /// Time passes: a job the printer never picked up fails after `start_timeout`.
    pub fn tick(&mut self, now: Instant) {
        if let Some(job) = &self.job
            && !job.seen
            && now.duration_since(job.sent_at) >= self.start_timeout
        {
            let reason = format!(
                "the printer on {} did not start job {} within {:?}: check that it is online and subscribed to {}/command",
                self.topic, job.id, self.start_timeout, self.topic
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

fn progress(r: &JobReport, size: u64) -> JobProgress {
    let percent = r.percent.clamp(0.0, 100.0);
    JobProgress {
        percent,
        layer: r.layer,
        total_layers: r.total_layers,
        eta_s: r.eta_s,
        // The printer reports a percentage; bytes are derived so byte-based views still move.
        bytes_sent: (size as f64 * percent / 100.0) as u64,
        bytes_total: size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::schema::parse_status;

    fn t(now: Instant) -> Track {
        let mut t = Track::new("lab/p1", Duration::from_secs(30));
        t.job_sent("j1".into(), 1000, now);
        t
    }

    fn feed(t: &mut Track, json: &str) {
        t.report(parse_status(json.as_bytes()).expect(json));
    }

    /// (reports in order, expected state, expected outcome, job still tracked)
    #[test]
    fn reports_table() {
        use PrinterState::*;
        let failed = |r: &str| Some(PrintOutcome::Failed { reason: r.into() });
        let cases: Vec<(&[&str], PrinterState, Option<PrintOutcome>, bool)> = vec![
            // An old retained idle status before the printer picked the job up: keep waiting
            // (and keep showing the job as starting).
            (&[r#"{"v":1,"state":"idle"}"#], Printing, None, true),
            // Old job's outcome in the retained message is not ours.
            (
                &[r#"{"v":1,"state":"idle","last_job":{"id":"j0","outcome":"completed"}}"#],
                Printing,
                None,
                true,
            ),
            (
                &[r#"{"v":1,"state":"printing","job":{"id":"j1","percent":50}}"#],
                Printing,
                None,
                true,
            ),
            (
                &[
                    r#"{"v":1,"state":"printing","job":{"id":"j1","percent":50}}"#,
                    r#"{"v":1,"state":"idle","last_job":{"id":"j1","outcome":"completed"}}"#,
                ],
                Idle,
                Some(PrintOutcome::Completed),
                false,
            ),
            (
                &[
                    r#"{"v":1,"state":"error","error":"heater","last_job":{"id":"j1","outcome":"failed","reason":"thermal runaway"}}"#,
                ],
                Error,
                failed("thermal runaway"),
                false,
            ),
            // Last will mid-print: offline, the job is kept.
            (
                &[
                    r#"{"v":1,"state":"printing","job":{"id":"j1","percent":50}}"#,
                    r#"{"v":1,"state":"offline"}"#,
                ],
                Offline,
                None,
                true,
            ),
            // Back from offline still printing it.
            (
                &[
                    r#"{"v":1,"state":"printing","job":{"id":"j1","percent":50}}"#,
                    r#"{"v":1,"state":"offline"}"#,
                    r#"{"v":1,"state":"printing","job":{"id":"j1","percent":60}}"#,
                ],
                Printing,
                None,
                true,
            ),
            (
                &[
                    r#"{"v":1,"state":"printing","job":{"id":"j1","percent":50}}"#,
                    r#"{"v":1,"state":"paused","job":{"id":"j1","percent":50}}"#,
                ],
                Paused,
                None,
                true,
            ),
            (
                &[
                    r#"{"v":1,"state":"paused","job":{"id":"j1","percent":50}}"#,
                    r#"{"v":1,"state":"idle","last_job":{"id":"j1","outcome":"cancelled"}}"#,
                ],
                Idle,
                Some(PrintOutcome::Cancelled),
                false,
            ),
        ];
        let now = Instant::now();
        for (reports, state, outcome, tracked) in cases {
            let mut tr = t(now);
            for r in reports {
                feed(&mut tr, r);
            }
            let s = tr.status();
            assert_eq!(s.state, state, "{reports:?}");
            assert_eq!(s.last_outcome, outcome, "{reports:?}");
            assert_eq!(tr.job().is_some(), tracked, "{reports:?}");
        }
    }

    #[test]
    fn a_printer_that_forgets_a_seen_job_fails_it() {
        let mut tr = t(Instant::now());
        feed(
            &mut tr,
            r#"{"v":1,"state":"printing","job":{"id":"j1","percent":5}}"#,
        );
        feed(&mut tr, r#"{"v":1,"state":"idle","error":"power loss"}"#);
        let Some(PrintOutcome::Failed { reason }) = &tr.status().last_outcome else {
            panic!("expected a failure, got {:?}", tr.status());
        };
        assert!(reason.contains("stopped reporting job j1"), "{reason}");
        assert!(reason.ends_with(": power loss"), "{reason}");
    }

    #[test]
    fn a_job_running_when_we_connect_is_adopted_and_its_end_reported() {
        let mut tr = Track::new("lab/p1", Duration::from_secs(30));
        feed(
            &mut tr,
            r#"{"v":1,"state":"idle","last_job":{"id":"j0","outcome":"completed"}}"#,
        );
        assert!(tr.job().is_none(), "an old outcome is not adopted");
        // …but reported as the printer's last outcome, with its id.
        assert_eq!(tr.status().last_outcome, Some(PrintOutcome::Completed));
        assert_eq!(tr.status().job_ref.as_deref(), Some("j0"));
        feed(
            &mut tr,
            r#"{"v":1,"state":"printing","job":{"id":"j9","percent":40}}"#,
        );
        assert_eq!(tr.job().map(|j| j.id.as_str()), Some("j9"));
        assert_eq!(tr.status().state, PrinterState::Printing);
        assert_eq!(tr.status().job.as_ref().map(|j| j.percent), Some(40.0));
        feed(
            &mut tr,
            r#"{"v":1,"state":"idle","last_job":{"id":"j9","outcome":"completed"}}"#,
        );
        assert_eq!(tr.status().last_outcome, Some(PrintOutcome::Completed));
        assert_eq!(tr.status().job_ref.as_deref(), Some("j9"));
        assert!(tr.job().is_none());
    }

    #[test]
    fn progress_is_clamped_and_sized() {
        let mut tr = t(Instant::now());
        feed(
            &mut tr,
            r#"{"v":1,"state":"printing","job":{"id":"j1","percent":150,"layer":3,"total_layers":10,"eta_s":7}}"#,
        );
        let job = tr.status().job.clone().expect("progress");
        assert_eq!(job.percent, 100.0);
        assert_eq!((job.bytes_sent, job.bytes_total), (1000, 1000));
        assert_eq!(
            (job.layer, job.total_layers, job.eta_s),
            (Some(3), Some(10), Some(7))
        );
    }

    #[test]
    fn broker_loss_keeps_the_job_and_start_timeout_only_before_pickup() {
        let now = Instant::now();
        let mut tr = t(now);
        tr.link_down("broker gone".into());
        assert_eq!(tr.status().state, PrinterState::Offline);
        assert!(tr.job().is_some());
        assert_eq!(tr.next_deadline(), Some(now + Duration::from_secs(30)));
        tr.tick(now + Duration::from_secs(29));
        assert!(tr.job().is_some());
        tr.tick(now + Duration::from_secs(30));
        assert!(matches!(
            tr.status().last_outcome,
            Some(PrintOutcome::Failed { .. })
        ));

        let mut tr = t(now);
        feed(
            &mut tr,
            r#"{"v":1,"state":"printing","job":{"id":"j1","percent":1}}"#,
        );
        assert_eq!(tr.next_deadline(), None);
        tr.tick(now + Duration::from_secs(3600));
        assert!(tr.job().is_some(), "a seen job never times out");
    }
}
