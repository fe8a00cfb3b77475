//! Handing a dispatched job to its printer's driver. The dispatch itself (READYTOPRINT →
//! PRINTING, printer busy) is one workflow transaction; this is the step after the commit,
//! shared by the HTTP endpoint and the scheduler. A printer that refuses the job means the
//! print failed before it began: the job goes back to READYTOPRINT with the reason.

use chrono::Utc;

use crate::app::App;
use crate::lifecycle::{Action, FailureCause};
use crate::model::{Actor, Job};
use crate::workflow::{JobRequest, WorkflowError};

/// Why a dispatched job did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The printer refused; the job is back in READYTOPRINT.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("the store is busy: {0}")]
    Busy(String),
}

/// Tells the job's printer to start, if it is a connected one (manual printers are
/// started by hand). SD-card printers get the file on their card.
pub async fn start_on_printer(app: &App, job: Job) -> Result<Job, StartError> {
    let Some(printer_id) = job.printer.clone() else {
        return Ok(job);
    };
    let Some(printer) = app.fleet.get(&printer_id).cloned() else {
        return Ok(job);
    };
    let Some(gcode) = app.workflow.gcode_path(&job) else {
        return Ok(job);
    };
    let sd = app.config.printer(&printer_id).is_some_and(|p| p.sd_card);
    let started = if sd {
        match printer.sd_card() {
            Ok(card) => card.start_sd_job(gcode).await,
            Err(e) => Err(e),
        }
    } else {
        printer.start_job(gcode).await
    };
    let Err(error) = started else {
        return Ok(job);
    };
    let reason = format!("printer {printer_id} could not start the print: {error}");
    let fail = JobRequest::Other(Action::Fail {
        reason: reason.clone(),
        cause: FailureCause::Printer,
    });
    let workflow = app.workflow.clone();
    let actor = Actor::System {
        component: "dispatch",
    };
    tokio::task::spawn_blocking(move || workflow.act(job.id, fail, &actor, Utc::now()))
        .await
        .map_err(|e| StartError::Busy(e.to_string()))??;
    Err(StartError::Refused(reason))
}
