//! The workflow: every change to jobs, staff and printers, each in one transaction.
//!
//! Handlers call these methods; each opens one [`Store::write`] transaction, reads what
//! it needs, asks the pure [`lifecycle::apply`] what happens, writes the job, appends
//! the events and carries out the effects (tokens, queued mail, printer state) before
//! the single commit. Nothing else writes a job's status.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::config::{Config, DriverKind};
use crate::fleet::Fleet;
use crate::lifecycle::{self, Action, Approval, Effect, TransitionError};
use crate::live::{Live, printer_json};
use crate::mail::{Composer, ConfirmationLink, Extras, MailError, MailKind};
use crate::model::{
    Actor, EventDraft, EventType, FileVersion, Job, JobId, PrinterRecord, PrinterState, Progress,
    StaffMember, Status,
};
use crate::scheduler;
use crate::store::{
    ConfirmationToken, PickupReminder, Store, StoreError, WorkstationRecord, WriteCtx,
};

pub mod files;
pub mod mail;

/// Why a workflow request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A request value that fails validation (422).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// A conflict with the state of something other than the job (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

fn invalid(code: &'static str, message: impl Into<String>) -> WorkflowError {
    WorkflowError::Invalid {
        code,
        message: message.into(),
    }
}

/// What staff send to approve a job; missing estimates come from the analysis.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ApproveRequest {
    pub printer: Option<String>,
    pub material: Option<String>,
    pub color: Option<String>,
    pub weight_g: Option<f64>,
    pub time_hours: Option<f64>,
    pub cost_usd: Option<f64>,
}

/// A request on a job, before the workflow resolves it into a lifecycle [`Action`].
#[derive(Debug, Clone)]
pub enum JobRequest {
    Approve(ApproveRequest),
    Dispatch { printer: Option<String> },
    Lock { minutes: Option<u32> },
    Other(Action),
}

/// A validated submission, ready to become a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub student_name: String,
    pub student_email: String,
    pub discipline: Option<String>,
    pub class_number: Option<String>,
    pub material: Option<String>,
    pub color: Option<String>,
    pub printer: Option<String>,
    pub original_filename: String,
    pub file_hash: String,
    pub size_bytes: u64,
    pub format: String,
}

/// The outcome of a submission.
#[derive(Debug, Clone)]
pub enum Created {
    New(Job),
    /// The same student already has an active job with this file.
    Duplicate(Job),
}

/// Orchestrates changes. Cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    store: Store,
    config: Arc<Config>,
    composer: Arc<Composer>,
    mail_wakeup: Arc<Notify>,
    processing_wakeup: Arc<Notify>,
    fleet: Arc<Fleet>,
    /// Where every commit is announced for `GET /api/v1/stream`.
    live: Live,
}

const LOCK_MINUTES_DEFAULT: u32 = 15;
const LOCK_MINUTES_MAX: u32 = 240;

impl Workflow {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        composer: Arc<Composer>,
        mail_wakeup: Arc<Notify>,
        processing_wakeup: Arc<Notify>,
        fleet: Arc<Fleet>,
    ) -> Self {
        Workflow {
            store,
            config,
            composer,
            mail_wakeup,
            processing_wakeup,
            fleet,
            live: Live::default(),
        }
    }

    /// The broadcast of job and printer changes.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// A printer as the API shows it: stored state, live driver status, its job's progress.
    pub fn printer_json(
        &self,
        printer: &crate::config::PrinterConfig,
    ) -> Result<serde_json::Value, StoreError> {
        let record = self.store.printer(&printer.id)?;
        let progress = match record.job_id {
            Some(job) => self.store.job(job)?.and_then(|j| j.progress),
            None => None,
        };
        let live = self.fleet.status(&printer.id);
        Ok(printer_json(
            printer,
            &record,
            live.as_ref(),
            progress.as_ref(),
        ))
    }

    /// Remembers the printer's own id for the job it prints (no event: bookkeeping).
    pub fn note_driver_job(
        &self,
        printer: &str,
        job: JobId,
        driver_job: &str,
    ) -> Result<(), WorkflowError> {
        self.store.write(|ctx| {
            let mut record = ctx.printer(printer)?;
            if record.job_id == Some(job) && record.driver_job.as_deref() != Some(driver_job) {
                record.driver_job = Some(driver_job.to_string());
                ctx.put_printer(printer, &record)?;
            }
            Ok(())
        })
    }

    /// Announces a printer's current state on the stream.
    pub fn publish_printer(&self, id: &str) {
        let Some(printer) = self.config.printer(id) else {
            return;
        };
        match self.printer_json(printer) {
            Ok(value) => self.live.printer(&value),
            Err(e) => tracing::warn!(printer = %id, "cannot read the printer to announce it: {e}"),
        }
    }

    /// Records why the scheduler holds a READYTOPRINT job (no event: a hold is not an
    /// action, and it changes as the farm does).
    pub fn set_waits(&self, id: JobId, waits: Option<String>) -> Result<(), WorkflowError> {
        let changed = self.store.write(|ctx| {
            let Some(mut job) = ctx.job(id)? else {
                return Ok::<_, WorkflowError>(None);
            };
            if job.status != Status::ReadyToPrint || job.waits == waits {
                return Ok(None);
            }
            job.waits = waits;
            ctx.put_job(&job)?;
            Ok(Some(job))
        })?;
        if let Some(job) = changed {
            self.live.job(&job);
        }
        Ok(())
    }

    /// Live progress of a printing job (no event: progress is not an action).
    pub fn record_progress(&self, id: JobId, progress: Progress) -> Result<(), WorkflowError> {
        let changed = self.store.write(|ctx| {
            let Some(mut job) = ctx.job(id)? else {
                return Ok::<_, WorkflowError>(None);
            };
            if job.status == Status::Printing && job.progress.as_ref() != Some(&progress) {
                job.progress = Some(progress);
                ctx.put_job(&job)?;
                return Ok(Some(job));
            }
            Ok(None)
        })?;
        if let Some(job) = changed {
            self.live.job(&job);
        }
        Ok(())
    }

    /// At start-up, every job left PRINTING is matched with its printer: on a manual
    /// printer it stays (staff finish it); a print streamed by the process that died is
    /// over, so it goes back to READYTOPRINT; on a printer that prints by itself (SD card,
    /// MQTT, Moonraker, PrusaLink) it stays PRINTING and is returned here, for the
    /// tracker to re-attach to (and fail after the grace period if the printer does not
    /// show it).
    pub fn reconcile_on_start(
        &self,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, (JobId, Option<String>)>, WorkflowError> {
        let actor = Actor::System {
            component: "startup",
        };
        let mut reattach = BTreeMap::new();
        for printer in &self.config.printers {
            let record = self.store.printer(&printer.id)?;
            let Some(job) = record
                .job_id
                .filter(|_| record.state == PrinterState::Printing)
            else {
                continue;
            };
            let reason = match printer.driver {
                DriverKind::Manual => continue,
                _ if self.fleet.get(&printer.id).is_none() => format!(
                    "after the restart printer {} has no driver running, so nobody can follow this print",
                    printer.id
                ),
                DriverKind::Marlin if !printer.sd_card => {
                    "Farmhand restarted while streaming this print, so the printer stopped".into()
                }
                _ => {
                    reattach.insert(printer.id.clone(), (job, record.driver_job.clone()));
                    continue;
                }
            };
            let fail = Action::Fail {
                reason,
                cause: lifecycle::FailureCause::Printer,
            };
            if let Err(e) = self.act(job, JobRequest::Other(fail), &actor, now) {
                tracing::error!(printer = %printer.id, job = %job, "cannot end the interrupted print: {e}");
            }
        }
        Ok(reattach)
    }

    /// The G-code file to send to a printer for this job, if it has one.
    pub fn gcode_path(&self, job: &Job) -> Option<std::path::PathBuf> {
        let hash = match job.format.as_str() {
            "gcode" => Some(&job.file_hash),
            _ => job.artifacts.get("gcode"),
        }?;
        Some(self.store.blobs().path(hash))
    }

    /// Seeds the staff list once and replaces the workstation records from the config.
    pub fn seed(&self, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        let records: Vec<WorkstationRecord> = self
            .config
            .workstations
            .iter()
            .filter_map(|ws| {
                let token = ws.resolve_token().ok()?;
                Some(WorkstationRecord {
                    id: ws.id.clone(),
                    role: ws.role,
                    token_sha256: sha256_hex(token.as_bytes()),
                })
            })
            .collect();
        self.store.write(|ctx| {
            ctx.replace_workstations(&records)?;
            if ctx.meta("staff_seeded")?.is_none() {
                for name in &self.config.staff.initial {
                    let member = StaffMember {
                        name: name.trim().to_string(),
                        active: true,
                        added_at: now,
                    };
                    ctx.put_staff(&member)?;
                }
                ctx.set_meta("staff_seeded", 1)?;
            }
            Ok::<_, WorkflowError>(())
        })
    }

    /// Records a new submission (its blob already committed), or finds the duplicate.
    pub fn create_job(&self, new: NewJob, now: DateTime<Utc>) -> Result<Created, WorkflowError> {
        let created = self.store.write(|ctx| -> Result<Created, WorkflowError> {
            let same_file = ctx.jobs_with_hash(&new.file_hash)?;
            let active = same_file
                .iter()
                .filter(|j| j.status.is_active() && j.file_hash == new.file_hash);
            let (mine, others): (Vec<&Job>, Vec<&Job>) =
                active.partition(|j| j.student_email.eq_ignore_ascii_case(&new.student_email));
            if let Some(existing) = mine.into_iter().min_by_key(|j| j.id) {
                return Ok(Created::Duplicate(existing.clone()));
            }
            let duplicate_of = others.into_iter().map(|j| j.id).min();
            let id = JobId(ctx.next_id("next_job_id")?);
            let job = new_job(id, &new, duplicate_of, now);
            ctx.put_job(&job)?;
            ctx.add_file_version(
                id,
                &FileVersion {
                    version: 1,
                    hash: new.file_hash.clone(),
                    filename: new.original_filename.clone(),
                    size_bytes: new.size_bytes,
                    format: new.format.clone(),
                    added_at: now,
                    added_by: "student".into(),
                },
            )?;
            let details = json!({
                "original_filename": job.original_filename, "file_hash": job.file_hash,
                "size_bytes": job.size_bytes, "format": job.format,
                "duplicate_of": job.duplicate_of,
            });
            let draft = EventDraft {
                event_type: EventType::JobCreated,
                details,
            };
            ctx.append_event(Some(id), &Actor::Student, draft, now)?;
            crate::processing::enqueue(ctx, &job, &self.config, now)?;
            Ok(Created::New(job))
        })?;
        self.processing_wakeup.notify_one();
        if let Created::New(job) = &created {
            self.live.job(job);
        }
        Ok(created)
    }

    /// Applies a staff or system request to a job.
    pub fn act(
        &self,
        id: JobId,
        request: JobRequest,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Job, WorkflowError> {
        let job = self.store.write(|ctx| {
            let job = ctx
                .job(id)?
                .ok_or_else(|| WorkflowError::NotFound(format!("no job {id}")))?;
            let action = self.resolve(ctx, &job, request, now)?;
            self.commit_action(ctx, &job, &action, actor, now)
        })?;
        self.mail_wakeup.notify_one();
        self.live.job(&job);
        if let Some(printer) = &job.printer {
            self.publish_printer(printer);
        }
        Ok(job)
    }

    /// Confirms a job through the student's link: PENDING → READYTOPRINT.
    pub fn confirm(&self, token: &str, now: DateTime<Utc>) -> Result<Job, WorkflowError> {
        let unknown = || {
            WorkflowError::NotFound(
                "this confirmation link is not valid: it may have been used already or expired"
                    .into(),
            )
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(unknown());
        }
        let hash = sha256_hex(token.trim().as_bytes());
        self.store
            .write(|ctx| {
                let stored = ctx.confirmation(&hash)?.ok_or_else(unknown)?;
                if stored.expires_at <= now {
                    return Err(unknown());
                }
                let job = ctx.job(stored.job_id)?.ok_or_else(unknown)?;
                self.commit_action(ctx, &job, &Action::Confirm, &Actor::Student, now)
            })
            .inspect(|job| self.live.job(job))
    }

    /// The job a live confirmation token belongs to (for the confirm page).
    pub fn job_for_token(&self, token: &str, now: DateTime<Utc>) -> Result<Job, WorkflowError> {
        let unknown = || WorkflowError::NotFound("unknown or expired confirmation link".into());
        if token.len() > MAX_TOKEN_LEN {
            return Err(unknown());
        }
        let hash = sha256_hex(token.trim().as_bytes());
        let stored = self.store.confirmation(&hash)?.ok_or_else(unknown)?;
        if stored.expires_at <= now {
            return Err(unknown());
        }
        self.store.job(stored.job_id)?.ok_or_else(unknown)
    }

    /// Bed cleared: needs_clearing → idle, with a `BedCleared` event.
    pub fn clear_bed(
        &self,
        printer: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        self.printer_config(printer)?;
        self.store.write(|ctx| {
            let mut record = ctx.printer(printer)?;
            if record.state != PrinterState::NeedsClearing {
                return Err(WorkflowError::Conflict {
                    code: "bed_not_waiting",
                    message: format!(
                        "printer {printer} is {:?}, not waiting for its bed to be cleared",
                        record.state
                    )
                    .to_lowercase(),
                });
            }
            record.state = PrinterState::Idle;
            let job = record.last_job_id.take();
            ctx.put_printer(printer, &record)?;
            let draft = EventDraft {
                event_type: EventType::BedCleared,
                details: json!({ "printer": printer }),
            };
            ctx.append_event(job, actor, draft, now)?;
            Ok::<_, WorkflowError>(())
        })?;
        self.publish_printer(printer);
        Ok(())
    }

    /// Adds a staff member to the attribution list (or reactivates one).
    pub fn add_staff(
        &self,
        name: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffMember, WorkflowError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(invalid(
                "invalid_name",
                "a staff name needs 1 to 100 printable characters",
            ));
        }
        self.store.write(|ctx| {
            let member = StaffMember {
                name: name.to_string(),
                active: true,
                added_at: ctx.staff_member(name)?.map_or(now, |m| m.added_at),
            };
            ctx.put_staff(&member)?;
            let draft = EventDraft {
                event_type: EventType::StaffAdded,
                details: json!({ "name": name }),
            };
            ctx.append_event(None, actor, draft, now)?;
            Ok(member)
        })
    }

    /// Deactivates a staff member: their name stays on old events but can't act.
    pub fn deactivate_staff(
        &self,
        name: &str,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<StaffMember, WorkflowError> {
        self.store.write(|ctx| {
            let mut member = ctx.staff_member(name)?.ok_or_else(|| {
                WorkflowError::NotFound(format!("no staff member named {name:?}"))
            })?;
            member.active = false;
            ctx.put_staff(&member)?;
            let draft = EventDraft {
                event_type: EventType::StaffDeactivated,
                details: json!({ "name": name }),
            };
            ctx.append_event(None, actor, draft, now)?;
            Ok(member)
        })
    }

    fn printer_config(&self, id: &str) -> Result<&crate::config::PrinterConfig, WorkflowError> {
        self.config
            .printer(id)
            .ok_or_else(|| invalid("unknown_printer", format!("there is no printer {id:?}")))
    }

    /// Turns a request into a lifecycle action, reading what it needs in the transaction.
    fn resolve(
        &self,
        ctx: &mut WriteCtx,
        job: &Job,
        request: JobRequest,
        now: DateTime<Utc>,
    ) -> Result<Action, WorkflowError> {
        Ok(match request {
            JobRequest::Other(action) => action,
            JobRequest::Lock { minutes } => {
                let minutes = minutes.unwrap_or(LOCK_MINUTES_DEFAULT);
                if minutes == 0 || minutes > LOCK_MINUTES_MAX {
                    return Err(invalid(
                        "invalid_lock",
                        format!("a lock lasts 1 to {LOCK_MINUTES_MAX} minutes"),
                    ));
                }
                Action::Lock {
                    until: now + Duration::minutes(i64::from(minutes)),
                }
            }
            JobRequest::Approve(request) => Action::Approve(self.price(job, request)?),
            JobRequest::Dispatch { printer } => {
                // The status check comes first so a job in the wrong state gets the 409
                // that names its status, not a complaint about printers.
                if job.status != Status::ReadyToPrint {
                    return Ok(Action::Dispatch {
                        printer: printer.unwrap_or_default(),
                    });
                }
                Action::Dispatch {
                    printer: self.choose_printer(ctx, job, printer)?,
                }
            }
        })
    }

    /// Resolves material, printer and estimates, and prices the job.
    fn price(&self, job: &Job, request: ApproveRequest) -> Result<Approval, WorkflowError> {
        let pricing = &self.config.pricing;
        let material = request
            .material
            .or_else(|| job.material.clone())
            .filter(|m| !m.trim().is_empty() && m != "Any")
            .ok_or_else(|| invalid("missing_material", "approval needs a material"))?;
        let material = match pricing.material(&material) {
            Some((known, _)) => known.to_string(),
            None if pricing.materials.is_empty() => material,
            None => {
                let known: Vec<&str> = pricing.materials.keys().map(String::as_str).collect();
                return Err(invalid(
                    "unknown_material",
                    format!(
                        "material {material:?} is not priced; choose one of {}",
                        known.join(", ")
                    ),
                ));
            }
        };
        let color = request
            .color
            .or_else(|| job.color.clone())
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "Any".into());
        if let Some(printer) = &request.printer {
            self.printer_config(printer)?;
        }
        let analysis = &job.analysis;
        // Estimates from the file itself (G-code), else from the G-code we sliced.
        let estimate = |key: &str| {
            analysis[key]
                .as_f64()
                .or_else(|| analysis["sliced"][key].as_f64())
        };
        let weight_g = request.weight_g.or_else(|| estimate("filament_g"));
        let time_hours = request
            .time_hours
            .or_else(|| estimate("estimated_time_s").map(|s| s / 3600.0));
        let cost_usd = match (request.cost_usd, weight_g) {
            (Some(cost), _) => cost,
            (None, Some(grams)) => pricing.cost_usd(&material, grams),
            (None, None) => {
                return Err(invalid(
                    "missing_estimate",
                    "give weight_g or cost_usd: the analysis has no weight estimate for this job yet",
                ));
            }
        };
        Ok(Approval {
            printer: request.printer,
            material,
            color: title_case(&color),
            weight_g,
            time_hours,
            cost_usd,
        })
    }

    /// The requested printer if it can take the job now, else the first idle one that can.
    fn choose_printer(
        &self,
        ctx: &mut WriteCtx,
        job: &Job,
        requested: Option<String>,
    ) -> Result<String, WorkflowError> {
        if let Some(id) = requested.or_else(|| job.staff_printer.clone()) {
            self.printer_config(&id)?;
            return match self.availability(ctx, job, &id)? {
                Ok(()) => Ok(id),
                Err((code, message)) => Err(WorkflowError::Conflict { code, message }),
            };
        }
        let mut slots = Vec::new();
        for printer in &self.config.printers {
            let record = ctx.printer(&printer.id)?;
            let live = self.fleet.status(&printer.id);
            slots.push(scheduler::slot(printer, &record, live.as_ref()));
        }
        let candidate = scheduler::candidate(job, self.gcode_path(job).is_some());
        scheduler::best_free(&candidate, &slots).map_err(|why| WorkflowError::Conflict {
            code: "no_idle_printer",
            message: format!(
                "no idle printer can take job {} ({}) right now: {}",
                job.id,
                job.material.as_deref().unwrap_or("any material"),
                why.trim_start_matches("waits: ")
            ),
        })
    }

    /// Whether `printer` can start `job` now, or why not.
    fn availability(
        &self,
        ctx: &mut WriteCtx,
        job: &Job,
        printer: &str,
    ) -> Result<Result<(), (&'static str, String)>, WorkflowError> {
        let state = ctx.printer(printer)?.state;
        if state != PrinterState::Idle {
            return Ok(Err((
                "printer_busy",
                format!(
                    "printer {printer} is {} and cannot start a job now",
                    state_name(state)
                ),
            )));
        }
        let Some(config) = self.config.printer(printer) else {
            return Ok(Err((
                "unknown_printer",
                format!("there is no printer {printer:?}"),
            )));
        };
        if config.driver == DriverKind::Manual {
            return Ok(Ok(()));
        }
        match self.fleet.status(printer).map(|s| s.state) {
            Some(drivers::PrinterState::Idle) => {}
            Some(other) => {
                return Ok(Err((
                    "printer_busy",
                    format!(
                        "printer {printer} is {} and cannot start a job now",
                        format!("{other:?}").to_lowercase()
                    ),
                )));
            }
            None => {
                return Ok(Err((
                    "printer_not_connected",
                    format!("printer {printer} has no driver running in this build"),
                )));
            }
        }
        if self.gcode_path(job).is_none() {
            return Ok(Err((
                "needs_gcode",
                format!(
                    "job {} has no G-code yet: upload the sliced file as a new version before sending it to {printer}",
                    job.id
                ),
            )));
        }
        Ok(Ok(()))
    }

    /// Applies an action and writes everything it implies.
    fn commit_action(
        &self,
        ctx: &mut WriteCtx,
        job: &Job,
        action: &Action,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Job, WorkflowError> {
        let mut transition = lifecycle::apply(job, action, actor, now)?;
        if let Action::Fail { reason, .. } = action {
            self.flag_if_failing(&mut transition, reason);
        }
        let job = transition.job;
        ctx.put_job(&job)?;
        for draft in transition.events {
            ctx.append_event(Some(job.id), actor, draft, now)?;
        }
        for effect in &transition.effects {
            self.carry_out(ctx, &job, effect, now)?;
        }
        Ok(job)
    }

    /// A job that failed `dispatch.max_failures` times is flagged for staff.
    fn flag_if_failing(&self, transition: &mut lifecycle::Transition, reason: &str) {
        let attempts = transition.job.attempts;
        if attempts < self.config.dispatch.max_failures {
            return;
        }
        transition.job.needs_staff = Some(format!(
            "failed {attempts} times (last: {reason}): check the model and the printer, then dispatch it by hand"
        ));
        for event in &mut transition.events {
            event.details["needs_staff"] = json!(true);
        }
    }

    fn carry_out(
        &self,
        ctx: &mut WriteCtx,
        job: &Job,
        effect: &Effect,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        match effect {
            Effect::SendConfirmation => {
                let token = new_token();
                let expires = now + self.config.email().confirmation_ttl();
                let record = ConfirmationToken {
                    job_id: job.id,
                    expires_at: expires,
                };
                ctx.replace_confirmation(&sha256_hex(token.as_bytes()), &record)?;
                let extras = Extras {
                    link: Some(ConfirmationLink {
                        token: &token,
                        expires,
                    }),
                    thumbnail: self.thumbnail(job),
                };
                self.queue_mail(ctx, MailKind::Confirmation, job, extras, now)?;
            }
            Effect::SendRejection => {
                self.queue_mail(ctx, MailKind::Rejection, job, Extras::default(), now)?
            }
            Effect::SendExpiryNotice => {
                let kind = MailKind::ConfirmationExpired;
                self.queue_mail(ctx, kind, job, Extras::default(), now)?
            }
            Effect::SendPickupNotice => {
                self.queue_mail(ctx, MailKind::Pickup, job, Extras::default(), now)?;
                if let Some(interval) = self.config.email().reminder_interval() {
                    let reminder = PickupReminder {
                        due_at: now + interval,
                        sent: 0,
                    };
                    ctx.put_pickup_reminder(job.id, &reminder)?;
                }
            }
            Effect::RevokeConfirmation => ctx.revoke_confirmations(job.id)?,
            Effect::PrinterStarted { printer } => {
                let record = PrinterRecord {
                    state: PrinterState::Printing,
                    job_id: Some(job.id),
                    last_job_id: None,
                    driver_job: None,
                };
                ctx.put_printer(printer, &record)?;
            }
            Effect::PrinterStopped { printer } => {
                let record = PrinterRecord {
                    state: PrinterState::NeedsClearing,
                    job_id: None,
                    last_job_id: Some(job.id),
                    driver_job: None,
                };
                ctx.put_printer(printer, &record)?;
            }
            // The caller wakes the processing queue once the transaction is committed.
            Effect::Reprocess => crate::processing::enqueue(ctx, job, &self.config, now)?,
        }
        Ok(())
    }

    fn queue_mail(
        &self,
        ctx: &mut WriteCtx,
        kind: MailKind,
        job: &Job,
        extras: Extras<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), WorkflowError> {
        let id = ctx.next_id("next_mail_id")?;
        let mail = self.composer.compose(id, kind, job, extras, now)?;
        ctx.put_mail(&mail)?;
        Ok(())
    }
}

/// Longer "tokens" are refused before hashing: ours are 43 characters.
const MAX_TOKEN_LEN: usize = 256;

fn state_name(state: PrinterState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn new_job(id: JobId, new: &NewJob, duplicate_of: Option<JobId>, now: DateTime<Utc>) -> Job {
    let material = new.material.clone();
    let color = new.color.clone();
    Job {
        id,
        display_name: display_name(&new.student_name, material.as_deref(), color.as_deref(), id),
        status: Status::Uploaded,
        student_name: new.student_name.clone(),
        student_email: new.student_email.clone(),
        discipline: new.discipline.clone(),
        class_number: new.class_number.clone(),
        original_filename: new.original_filename.clone(),
        file_hash: new.file_hash.clone(),
        size_bytes: new.size_bytes,
        format: new.format.clone(),
        file_version: 1,
        material,
        color,
        printer: new.printer.clone(),
        weight_g: None,
        time_hours: None,
        cost_usd: None,
        student_confirmed: false,
        reject_reasons: vec![],
        notes: String::new(),
        locked_by: None,
        locked_until: None,
        attempts: 0,
        duplicate_of,
        analysis: json!({ "state": "pending", "format": new.format }),
        artifacts: Default::default(),
        progress: None,
        staff_viewed_at: None,
        paid_usd: None,
        payment_ref: None,
        picked_up_by: None,
        created_at: now,
        updated_at: now,
        priority: 0,
        waits: None,
        needs_staff: None,
        staff_printer: None,
    }
}

/// `FirstAndLastName_Material_Color_SimpleJobID`, e.g. `AdaLovelace_PLA_Red_17`.
pub fn display_name(
    student: &str,
    material: Option<&str>,
    color: Option<&str>,
    id: JobId,
) -> String {
    let squash = |text: &str| -> String {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    };
    let part = |value: Option<&str>| {
        let squashed = squash(value.unwrap_or(""));
        if squashed.is_empty() {
            "Any".to_string()
        } else {
            squashed
        }
    };
    format!(
        "{}_{}_{}_{id}",
        part(Some(student)),
        part(material),
        part(color)
    )
}

fn title_case(text: &str) -> String {
    let mut chars = text.trim().chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A fresh secret token: 256 random bits, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_follow_the_lab_convention() {
        assert_eq!(
            display_name("Ada  Lovelace", Some("PLA"), Some("light blue"), JobId(17)),
            "AdaLovelace_PLA_LightBlue_17"
        );
        assert_eq!(
            display_name("josé o'neil", None, Some(""), JobId(3)),
            "JoséONeil_Any_Any_3"
        );
    }

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
    }
}
