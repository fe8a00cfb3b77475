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
//! `FileAdded` event. What the job becomes is the lifecycle's `Action::AddFile`; this
//! module adds the version row and the store around it.

use chrono::{DateTime, Utc};

use super::{Workflow, WorkflowError};
use crate::lifecycle::{self, Action};
use crate::model::{Actor, FileVersion, Job, JobId};

pub use crate::lifecycle::AddedFile;

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
        let probe = Action::AddFile {
            version: 0,
            file: Box::default(),
        };
        lifecycle::check(&job, &probe, actor, now)?;
        Ok(job)
    }

    /// Adds `file` as the job's next version (see the module docs for what it becomes):
    /// the version row, the job and its `FileAdded` event in one transaction.
    pub fn add_file(
        &self,
        id: JobId,
        file: AddedFile,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Job, WorkflowError> {
        let job = self.store.write(|ctx| -> Result<Job, WorkflowError> {
            let job = ctx
                .job(id)?
                .ok_or_else(|| WorkflowError::NotFound(format!("there is no job {id}")))?;
            let version = ctx.last_file_version(id)? + 1;
            let row = FileVersion {
                version,
                hash: file.hash.clone(),
                filename: file.filename.clone(),
                size_bytes: file.size_bytes,
                format: file.format.clone(),
                added_at: now,
                added_by: actor.triggered_by(),
            };
            let action = Action::AddFile {
                version,
                file: Box::new(file),
            };
            // The lifecycle refuses (status, lock, who) before anything is written.
            let job = self.commit_action(ctx, &job, &action, actor, now)?;
            ctx.add_file_version(id, &row)?;
            Ok(job)
        })?;
        self.processing_wakeup.notify_one();
        self.live.job(&job);
        Ok(job)
    }
}
