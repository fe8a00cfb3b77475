//! The tracker: one task per connected printer, the one place that turns driver status
//! into job progress and outcomes (and printer events on the stream).
//!
//! [`watch::Watch`] decides (pure); [`track`] feeds it every status change and every
//! deadline (grace period, settling), writes what it decides through the workflow, and
//! announces the printer on the stream at most `dispatch.printer_events_per_s` times a
//! second ([`throttle::Throttle`]).

mod throttle;
mod watch;

use std::time::{Duration, Instant};

use chrono::Utc;
use drivers::PrinterStatus;
use tokio::sync::watch as channel;
use tokio_util::sync::CancellationToken;

use crate::model::{Actor, JobId, PrinterRecord, PrinterState};
use crate::store::Store;
use crate::workflow::{JobRequest, Workflow};
use throttle::Throttle;
pub use watch::{Decision, Watch};

/// What one tracker needs besides the printer's status.
pub struct TrackOptions {
    pub store: Store,
    pub workflow: Workflow,
    /// How long the printer may be unreachable mid-print.
    pub grace: Duration,
    /// A job left PRINTING here by the previous process (restart reconciliation), with the
    /// printer's own id for it when known.
    pub reattach: Option<(JobId, Option<String>)>,
    pub printer_events_per_s: u32,
}

/// Follows one printer's status until `shutdown`, turning it into job changes.
pub async fn track(
    printer: String,
    mut status: channel::Receiver<PrinterStatus>,
    options: TrackOptions,
    shutdown: CancellationToken,
) {
    let actor = Actor::System {
        component: "tracker",
    };
    let started = Instant::now();
    let (reattach, expected_ref) = match options.reattach.clone() {
        Some((job, driver_job)) => (Some((job, started)), driver_job),
        None => (None, None),
    };
    let mut watch = Watch::new(&printer, options.grace, reattach).expecting(expected_ref);
    let mut throttle = Throttle::per_second(options.printer_events_per_s);
    let mut changed = true;
    loop {
        let now = Instant::now();
        let current = status.borrow_and_update().clone();
        let announce = if changed {
            throttle.offer(now, current.state)
        } else {
            throttle.due(now, current.state)
        };
        if announce {
            options.workflow.publish_printer(&printer);
        }
        let job = match options.store.printer(&printer) {
            Ok(record) if record.state == PrinterState::Printing => {
                note_driver_job(&options.workflow, &printer, &record, &current);
                record.job_id
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(%printer, "cannot read the printer's record: {e}");
                None
            }
        };
        match watch.step(now, &current, job) {
            Some(Decision::Progress(job, progress)) => {
                if let Err(e) = options.workflow.record_progress(job, progress) {
                    tracing::warn!(%printer, "cannot record progress: {e}");
                }
            }
            Some(Decision::End(job, action)) => {
                tracing::info!(%printer, job = %job, "print ended: {action:?}");
                let request = JobRequest::Other(action);
                if let Err(e) = options.workflow.act(job, request, &actor, Utc::now()) {
                    tracing::error!(%printer, job = %job, "cannot record the end of a print: {e}");
                }
            }
            None => {}
        }
        let deadline = [watch.next_deadline(), throttle.deadline()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = status.changed() => {
                if result.is_err() {
                    return;
                }
                changed = true;
            }
            _ = sleep => changed = false,
        }
    }
}

/// While the printer prints our job, remember its own id for it (once), so a restarted
/// daemon can match the outcome the printer reports.
fn note_driver_job(
    workflow: &Workflow,
    printer: &str,
    record: &PrinterRecord,
    status: &PrinterStatus,
) {
    let printing = matches!(
        status.state,
        drivers::PrinterState::Printing | drivers::PrinterState::Paused
    );
    let (Some(job), Some(driver_job), true) = (record.job_id, &status.job_ref, printing) else {
        return;
    };
    if record.driver_job.as_ref() != Some(driver_job)
        && let Err(e) = workflow.note_driver_job(printer, job, driver_job)
    {
        tracing::warn!(%printer, "cannot remember the printer's job id: {e}");
    }
}
