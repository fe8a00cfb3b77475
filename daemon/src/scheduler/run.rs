//! The scheduler task: every `dispatch.tick_ms` it reads the queue and the printers, asks
//! [`super::plan`] what to do, dispatches through the workflow (the same transaction as a
//! staff dispatch, by `system:scheduler`) and writes each hold onto its job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Candidate, Farm, Policy, Slot, candidate, plan, slot};
use crate::app::App;
use crate::model::{Actor, Job, Status};
use crate::store::{JobQuery, StoreError};
use crate::workflow::JobRequest;

/// Runs until `shutdown`.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let tick = Duration::from_millis(app.config.dispatch.tick_ms);
    let mut last_start: Option<DateTime<Utc>> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        match once(&app, last_start).await {
            Ok(Some(started)) => last_start = Some(started),
            Ok(None) => {}
            Err(e) => tracing::warn!("the scheduler could not read the queue: {e}"),
        }
    }
}

/// One look at the queue; the time of the last start made, if any.
async fn once(
    app: &Arc<App>,
    last_start: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let reader = app.clone();
    let Ok(read) = tokio::task::spawn_blocking(move || views(&reader)).await else {
        return Ok(None);
    };
    let (jobs, candidates, slots, printing) = read?;
    let policy = policy(app);
    let now = Utc::now();
    let farm = Farm {
        last_start,
        printing,
    };
    let decided = plan(&candidates, &slots, &policy, &farm, now);
    let mut started = None;
    for (id, printer) in decided.starts {
        let actor = Actor::System {
            component: "scheduler",
        };
        let workflow = app.workflow.clone();
        let request = JobRequest::Dispatch {
            printer: Some(printer.clone()),
        };
        let dispatched =
            tokio::task::spawn_blocking(move || workflow.act(id, request, &actor, now)).await;
        match dispatched {
            Ok(Ok(job)) => {
                tracing::info!(job = %id, %printer, "scheduler dispatched the job");
                started = Some(now);
                if let Err(e) = crate::dispatch::start_on_printer(app, job).await {
                    tracing::warn!(job = %id, %printer, "the printer did not start: {e}");
                }
            }
            Ok(Err(e)) => tracing::warn!(job = %id, %printer, "cannot dispatch: {e}"),
            Err(e) => tracing::warn!(job = %id, "cannot dispatch: {e}"),
        }
    }
    for job in jobs {
        let waits = decided.waits.get(&job.id).cloned();
        if waits != job.waits
            && let Err(e) = app.workflow.set_waits(job.id, waits)
        {
            tracing::warn!(job = %job.id, "cannot record why the job waits: {e}");
        }
    }
    Ok(started)
}

type Views = (Vec<Job>, Vec<Candidate>, Vec<Slot>, BTreeMap<String, u32>);

/// The queue (READYTOPRINT jobs), the printers, and who is printing.
fn views(app: &App) -> Result<Views, StoreError> {
    let ready = all_jobs(app, Status::ReadyToPrint)?;
    let mut printing: BTreeMap<String, u32> = BTreeMap::new();
    for job in all_jobs(app, Status::Printing)? {
        *printing
            .entry(job.student_email.trim().to_lowercase())
            .or_default() += 1;
    }
    let candidates = ready
        .iter()
        .map(|job| candidate(job, app.workflow.gcode_path(job).is_some()))
        .collect();
    let mut slots = Vec::new();
    for printer in &app.config.printers {
        let record = app.store.printer(&printer.id)?;
        slots.push(slot(
            printer,
            &record,
            app.fleet.status(&printer.id).as_ref(),
        ));
    }
    Ok((ready, candidates, slots, printing))
}

fn all_jobs(app: &App, status: Status) -> Result<Vec<Job>, StoreError> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let query = JobQuery {
            status: Some(status),
            text: None,
            limit: 500,
            before,
        };
        let (jobs, next) = app.store.list_jobs(&query)?;
        out.extend(jobs);
        match next {
            Some(cursor) => before = Some(cursor),
            None => return Ok(out),
        }
    }
}

fn policy(app: &App) -> Policy {
    let dispatch = &app.config.dispatch;
    Policy {
        stagger: chrono::Duration::seconds(i64::try_from(dispatch.stagger_s).unwrap_or(0)),
        max_per_student: dispatch.max_printing_per_student,
        // Validated at start-up; an unparsable value cannot get here.
        hours: dispatch.hours().ok().flatten(),
    }
}
