//! Staff adding a file version to a job (`POST /api/v1/jobs/{id}/files`).
//!
//! Two cases, decided by what the file is rather than what it is called:
//! - **G-code for a model job** (staff sliced it themselves): the student's model stays
//!   the current file, as it does when Farmhand slices (it is what they sent and what
//!   the preview shows); the G-code becomes the next version, the `gcode` artifact that
//!   printers are sent, and `analysis.sliced`, which approval uses for its estimates.
//! - **Anything else** (a repaired model, or new G-code for a G-code job): the file
//!   becomes the job's current file. Its analysis starts again and the artifacts made
//!   from the old file are dropped, so nothing stale is previewed or printed.
//!
//! Earlier versions are always kept, and the change is one transaction with its
//! `FileAdded` event.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Workflow, WorkflowError};
use crate::lifecycle::TransitionError;
use crate::model::{Actor, EventDraft, EventType, FileVersion, Job, JobId, Status};

/// The statuses in which a job's file may still change: once it prints, the printed
/// file is what the job is.
const EDITABLE: [Status; 3] = [Status::Uploaded, Status::Pending, Status::ReadyToPrint];

/// A file staged, sniffed and committed to the blob store, to be added to a job.
#[derive(Debug, Clone)]
pub struct AddedFile {
    pub hash: String,
    pub size_bytes: u64,
    /// The sanitized name it was uploaded under.
    pub filename: String,
    /// The sniffed format's API name (`gcode`, `stl`, `3mf`, …).
    pub format: String,
    /// For G-code: its analysis, made before the transaction (it reads the whole file).
    pub gcode_analysis: Option<Value>,
}

impl Workflow {
    /// Checks that `id` may take a new file now (exists, editable status, not locked by
    /// someone else), so the caller can refuse before analysing a large upload.
    pub fn check_file_change(
        &self,
        id: JobId,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Job, WorkflowError> {
        let job = self
            .store
            .job(id)?
            .ok_or_else(|| WorkflowError::NotFound(format!("there is no job {id}")))?;
        editable(&job, actor, now)?;
        Ok(job)
    }

    /// Adds `file` as the job's next version (see the module docs for what it becomes).
    pub fn add_file(
        &self,
        id: JobId,
        file: AddedFile,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Job, WorkflowError> {
        let job = self.store.write(|ctx| -> Result<Job, WorkflowError> {
            let mut job = ctx
                .job(id)?
                .ok_or_else(|| WorkflowError::NotFound(format!("there is no job {id}")))?;
            editable(&job, actor, now)?;
            let version = ctx.last_file_version(id)? + 1;
            ctx.add_file_version(
                id,
                &FileVersion {
                    version,
                    hash: file.hash.clone(),
                    filename: file.filename.clone(),
                    size_bytes: file.size_bytes,
                    format: file.format.clone(),
                    added_at: now,
                    added_by: actor.triggered_by(),
                },
            )?;
            let becomes = match (&file.gcode_analysis, job.format.as_str()) {
                (Some(analysis), current) if current != "gcode" => {
                    job.artifacts.insert("gcode".into(), file.hash.clone());
                    job.analysis["sliced"] = analysis.clone();
                    "gcode"
                }
                _ => {
                    job.file_hash = file.hash.clone();
                    job.size_bytes = file.size_bytes;
                    job.format = file.format.clone();
                    job.original_filename = file.filename.clone();
                    job.analysis = json!({ "state": "pending", "format": file.format });
                    for made in ["preview.glb", "thumbnail.png", "gcode"] {
                        job.artifacts.remove(made);
                    }
                    crate::processing::enqueue(ctx, &job, &self.config, now)?;
                    "current"
                }
            };
            job.updated_at = now;
            ctx.put_job(&job)?;
            let draft = EventDraft {
                event_type: EventType::FileAdded,
                details: json!({
                    "version": version, "filename": file.filename, "size_bytes": file.size_bytes,
                    "sha256": file.hash, "format": file.format, "made_by": "staff",
                    "becomes": becomes,
                }),
            };
            ctx.append_event(Some(id), actor, draft, now)?;
            Ok(job)
        })?;
        self.processing_wakeup.notify_one();
        self.live.job(&job);
        Ok(job)
    }
}

fn editable(job: &Job, actor: &Actor, now: DateTime<Utc>) -> Result<(), WorkflowError> {
    if !EDITABLE.contains(&job.status) {
        return Err(TransitionError::IllegalTransition {
            verb: "add a file to",
            job: job.id.to_string(),
            status: job.status,
            allowed: "UPLOADED or PENDING or READYTOPRINT".into(),
        }
        .into());
    }
    if let Actor::Staff { name, .. } = actor
        && let Some((holder, until)) = job.locked_against(name, now)
    {
        return Err(TransitionError::Locked {
            job: job.id.to_string(),
            holder: holder.to_string(),
            until,
        }
        .into());
    }
    Ok(())
}
