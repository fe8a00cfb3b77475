//! The connected printers: one driver per configured printer, owned here.
//!
//! [`Fleet::start`] creates each driver's handle and spawns its runner (the one future
//! that owns the port); everyone else holds handles. [`track`] is the one place that
//! turns a driver's status into job changes: progress onto the job, a completed print
//! into COMPLETED, a failed or cancelled one back into READYTOPRINT.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use drivers::marlin::{MarlinConfig, MarlinHandle};
use drivers::{PrintOutcome, Printer, PrinterState as DriverState, PrinterStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, DriverKind};
use crate::lifecycle::{Action, FailureCause};
use crate::model::{Actor, JobId, Progress};
use crate::store::Store;
use crate::workflow::{JobRequest, Workflow};

/// Progress is written to the store at most this often per printer.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The drivers of every connected printer, by printer id.
#[derive(Default)]
pub struct Fleet {
    printers: BTreeMap<String, Arc<dyn Printer>>,
}

impl Fleet {
    /// Starts a driver for every printer whose driver this build can run.
    pub fn start(config: &Config, tasks: &TaskTracker, shutdown: &CancellationToken) -> Fleet {
        let mut printers: BTreeMap<String, Arc<dyn Printer>> = BTreeMap::new();
        for printer in &config.printers {
            if let (DriverKind::Marlin, Some(port)) = (printer.driver, &printer.port) {
                let cfg = MarlinConfig {
                    auto_connect: true,
                    ..MarlinConfig::new(port, printer.baud.unwrap_or(115_200))
                };
                let (handle, runner) = MarlinHandle::new(cfg);
                tasks.spawn(runner.run(shutdown.clone()));
                printers.insert(printer.id.clone(), Arc::new(handle));
            }
        }
        Fleet { printers }
    }

    /// The driver of a connected printer.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Printer>> {
        self.printers.get(id)
    }

    /// The live status of a connected printer.
    pub fn status(&self, id: &str) -> Option<PrinterStatus> {
        self.printers.get(id).map(|p| p.status().borrow().clone())
    }

    /// Ids and status receivers of every connected printer.
    pub fn receivers(&self) -> Vec<(String, watch::Receiver<PrinterStatus>)> {
        self.printers
            .iter()
            .map(|(id, p)| (id.clone(), p.status()))
            .collect()
    }
}

/// Follows one printer's status until `shutdown`, turning it into job changes.
pub async fn track(
    printer: String,
    mut status: watch::Receiver<PrinterStatus>,
    store: Store,
    workflow: Workflow,
    shutdown: CancellationToken,
) {
    let actor = Actor::System {
        component: "tracker",
    };
    // The job this printer was seen printing: only an outcome reported after that
    // belongs to it (the previous print's outcome lingers in the status).
    let mut seen_printing: Option<JobId> = None;
    let mut last_progress = Instant::now() - PROGRESS_EVERY;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
        }
        let current = status.borrow_and_update().clone();
        let Ok(record) = store.printer(&printer) else {
            continue;
        };
        let Some(job) = record.job_id else {
            seen_printing = None;
            continue;
        };
        if matches!(current.state, DriverState::Printing | DriverState::Paused) {
            seen_printing = Some(job);
            if last_progress.elapsed() >= PROGRESS_EVERY
                && let Some(p) = &current.job
            {
                last_progress = Instant::now();
                let progress = Progress {
                    percent: (p.percent * 10.0).round() / 10.0,
                    layer: p.layer.map(u64::from),
                    total_layers: p.total_layers.map(u64::from),
                    eta_s: p.eta_s,
                };
                if let Err(e) = workflow.record_progress(job, progress) {
                    tracing::warn!(%printer, "cannot record progress: {e}");
                }
            }
            continue;
        }
        if seen_printing != Some(job) {
            continue;
        }
        let Some(outcome) = current.last_outcome.clone() else {
            continue;
        };
        seen_printing = None;
        let action = match outcome {
            PrintOutcome::Completed => Action::Complete,
            PrintOutcome::Failed { reason } => Action::Fail {
                reason,
                cause: FailureCause::Printer,
            },
            PrintOutcome::Cancelled => Action::Fail {
                reason: "the print was cancelled".into(),
                cause: FailureCause::Printer,
            },
        };
        tracing::info!(%printer, job = %job, "print ended: {action:?}");
        if let Err(e) = workflow.act(job, JobRequest::Other(action), &actor, Utc::now()) {
            tracing::error!(%printer, job = %job, "cannot record the end of a print: {e}");
        }
    }
}
