//! The job lifecycle: one enum of actions and one pure transition function.
//!
//! ```text
//! UPLOADED ─approve→ PENDING ─confirm→ READYTOPRINT ─dispatch→ PRINTING ─complete→ COMPLETED
//!    │                  │                   ▲                     │                   │
//!    └──reject──────────┴─reject→ REJECTED  └──────── fail ───────┘                pickup
//!                                    │                                                ▼
//!                                    └────────archive────────→ ARCHIVED ←─archive─ PAIDPICKEDUP
//! ```
//!
//! [`apply`] is the only code that changes a job's status. It does no I/O: it takes the
//! job, the action, who is acting and the time, and returns the new job, the audit events
//! to record and the side effects the caller must carry out in the same store
//! transaction (a mail to queue, a printer to mark busy). That keeps every rule here,
//! testable without a store, and makes "a state change and its event are one
//! transaction" the caller's single obligation.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::model::{Actor, EventDraft, EventType, Job, Status};

/// Why a print failed, for the lab's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The printer or the lab (jam, bed adhesion, power): not the student's fault.
    Printer,
    /// The model itself (unprintable overhangs, too thin walls).
    Model,
}

/// Staff approval with the values resolved (cost already priced by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub printer: Option<String>,
    pub material: String,
    pub color: String,
    pub weight_g: Option<f64>,
    pub time_hours: Option<f64>,
    pub cost_usd: f64,
}

/// Recording payment and pickup.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pickup {
    pub paid_usd: Option<f64>,
    pub payment_ref: Option<String>,
    pub weight_g: Option<f64>,
    pub picked_up_by: Option<String>,
}

/// Everything that can happen to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Approve(Approval),
    Reject {
        reasons: Vec<String>,
    },
    ResendConfirmation,
    /// The confirmation link lapsed (Farmhand's timer): the job stays PENDING with no
    /// live link until staff resend one.
    ExpireConfirmation,
    Confirm,
    Dispatch {
        printer: String,
    },
    Fail {
        reason: String,
        cause: FailureCause,
    },
    Complete,
    Pickup(Pickup),
    Archive,
    UpdateNotes {
        notes: String,
    },
    Lock {
        until: DateTime<Utc>,
    },
    Unlock,
    MarkViewed,
    /// Staff's queue override: a higher priority is dispatched first.
    SetPriority {
        priority: i32,
    },
    /// Staff add a file version (its blob already stored) as version `version`.
    AddFile {
        version: u32,
        file: Box<AddedFile>,
    },
}

/// A file staged, sniffed and committed to the blob store, to be added to a job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddedFile {
    pub hash: String,
    pub size_bytes: u64,
    /// The sanitized name it was uploaded under.
    pub filename: String,
    /// The sniffed format's API name (`gcode`, `stl`, `3mf`, …).
    pub format: String,
    /// For G-code: its analysis, made before the transaction (it reads the whole file).
    pub gcode_analysis: Option<serde_json::Value>,
}

impl Action {
    /// A short verb for messages ("cannot approve job 17: …").
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Approve(_) => "approve",
            Action::Reject { .. } => "reject",
            Action::ResendConfirmation => "resend the confirmation of",
            Action::ExpireConfirmation => "expire the confirmation of",
            Action::Confirm => "confirm",
            Action::Dispatch { .. } => "dispatch",
            Action::Fail { .. } => "mark as failed",
            Action::Complete => "complete",
            Action::Pickup(_) => "record the pickup of",
            Action::Archive => "archive",
            Action::UpdateNotes { .. } => "edit the notes of",
            Action::Lock { .. } => "lock",
            Action::Unlock => "unlock",
            Action::MarkViewed => "mark as viewed",
            Action::SetPriority { .. } => "change the priority of",
            Action::AddFile { .. } => "add a file to",
        }
    }

    /// The statuses this action may start from (`None`: any status).
    pub fn allowed_from(&self) -> Option<&'static [Status]> {
        use Status::*;
        match self {
            Action::Approve(_) => Some(&[Uploaded]),
            Action::Reject { .. } => Some(&[Uploaded, Pending, ReadyToPrint]),
            Action::ResendConfirmation | Action::Confirm => Some(&[Pending]),
            Action::ExpireConfirmation => Some(&[Pending]),
            Action::Dispatch { .. } => Some(&[ReadyToPrint]),
            Action::Fail { .. } | Action::Complete => Some(&[Printing]),
            Action::Pickup(_) => Some(&[Completed]),
            Action::Archive => Some(&[PaidPickedUp, Rejected]),
            Action::UpdateNotes { .. } | Action::Lock { .. } | Action::Unlock => None,
            Action::MarkViewed => None,
            Action::SetPriority { .. } => Some(&[Uploaded, Pending, ReadyToPrint]),
            // Once it prints, the printed file is what the job is.
            Action::AddFile { .. } => Some(&[Uploaded, Pending, ReadyToPrint]),
        }
    }

    /// Who may take this action.
    fn permitted(&self, actor: &Actor) -> bool {
        match (self, actor) {
            (Action::Confirm, Actor::Student) => true,
            (Action::Confirm, _) | (_, Actor::Student) => false,
            (Action::ExpireConfirmation, actor) => matches!(actor, Actor::System { .. }),
            (Action::Dispatch { .. } | Action::Fail { .. } | Action::Complete, _) => true,
            (_, Actor::Staff { .. }) => true,
            (_, Actor::System { .. }) => false,
        }
    }
}

/// A side effect the caller carries out inside the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Make a new confirmation token (killing older ones) and queue the confirmation mail.
    SendConfirmation,
    /// Queue the "your link has expired" mail.
    SendExpiryNotice,
    /// Queue the rejection mail.
    SendRejection,
    /// Queue the "ready for pickup" mail.
    SendPickupNotice,
    /// Forget the job's confirmation tokens.
    RevokeConfirmation,
    /// The printer now prints this job.
    PrinterStarted { printer: String },
    /// The printer stopped printing this job; its bed needs clearing.
    PrinterStopped { printer: String },
    /// The job's current file changed: queue its analysis, preview and thumbnail again.
    Reprocess,
}

/// The result of a legal action.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub job: Job,
    pub events: Vec<EventDraft>,
    pub effects: Vec<Effect>,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    /// The action does not apply to the job's current status.
    #[error("cannot {verb} job {job}: it is {status} (only possible from {allowed})")]
    IllegalTransition {
        verb: &'static str,
        job: String,
        status: Status,
        allowed: String,
    },
    /// Another staff member holds the edit lock.
    #[error("job {job} is locked by {holder} until {until}")]
    Locked {
        job: String,
        holder: String,
        until: DateTime<Utc>,
    },
    /// The actor may not take this action at all.
    #[error("{actor} may not {verb} a job")]
    NotPermitted { actor: String, verb: &'static str },
    /// A value in the request does not make sense.
    #[error("{0}")]
    Invalid(String),
}

/// Applies `action` by `actor` at `now` to `job`.
pub fn apply(
    job: &Job,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    check_permitted(job, action, actor, now)?;
    let mut next = job.clone();
    let from = job.status;
    let (event, effects) = change(&mut next, action, actor, now)?;
    if next != *job {
        next.updated_at = now;
    }
    let events = event
        .map(|(event_type, mut details)| {
            if next.status != from {
                details["from"] = json!(from);
                details["to"] = json!(next.status);
            }
            EventDraft {
                event_type,
                details,
            }
        })
        .into_iter()
        .collect();
    Ok(Transition {
        job: next,
        events,
        effects,
    })
}

/// Whether `actor` may take `action` on `job` now (who, from which status, the edit
/// lock), without applying it: lets a caller refuse before expensive work, such as
/// analysing a large upload. Looks only at the action's kind, not its values.
pub fn check(
    job: &Job,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), TransitionError> {
    check_permitted(job, action, actor, now)
}

fn check_permitted(
    job: &Job,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), TransitionError> {
    if !action.permitted(actor) {
        return Err(TransitionError::NotPermitted {
            actor: actor.triggered_by(),
            verb: action.verb(),
        });
    }
    if let Some(allowed) = action.allowed_from()
        && !allowed.contains(&job.status)
    {
        return Err(TransitionError::IllegalTransition {
            verb: action.verb(),
            job: job.id.to_string(),
            status: job.status,
            allowed: allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        });
    }
    if let Actor::Staff { name, .. } = actor
        && !matches!(action, Action::MarkViewed)
        && let Some((holder, until)) = job.locked_against(name, now)
    {
        return Err(TransitionError::Locked {
            job: job.id.to_string(),
            holder: holder.to_string(),
            until,
        });
    }
    Ok(())
}

type Change = (Option<(EventType, serde_json::Value)>, Vec<Effect>);

/// Mutates `job` for a permitted action and says what to record.
fn change(
    job: &mut Job,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Change, TransitionError> {
    let printer = job.printer.clone().unwrap_or_default();
    Ok(match action {
        Action::Approve(approval) => approve(job, approval)?,
        Action::Reject { reasons } => {
            let reasons: Vec<String> = reasons
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
            if reasons.is_empty() {
                return Err(TransitionError::Invalid(
                    "a rejection needs at least one reason for the student".into(),
                ));
            }
            job.status = Status::Rejected;
            job.reject_reasons = reasons.clone();
            let effects = vec![Effect::RevokeConfirmation, Effect::SendRejection];
            (
                Some((EventType::StaffRejected, json!({ "reasons": reasons }))),
                effects,
            )
        }
        Action::ResendConfirmation => (
            Some((EventType::ConfirmationResent, json!({}))),
            vec![Effect::SendConfirmation],
        ),
        Action::ExpireConfirmation => (
            Some((EventType::ConfirmationExpired, json!({}))),
            vec![Effect::RevokeConfirmation, Effect::SendExpiryNotice],
        ),
        Action::Confirm => {
            job.status = Status::ReadyToPrint;
            job.student_confirmed = true;
            (
                Some((EventType::StudentConfirmed, json!({}))),
                vec![Effect::RevokeConfirmation],
            )
        }
        Action::Dispatch { printer } => {
            job.status = Status::Printing;
            job.printer = Some(printer.clone());
            job.progress = Some(Default::default());
            job.waits = None;
            // Staff dispatching a flagged job by hand is them having looked at it.
            if matches!(actor, Actor::Staff { .. }) {
                job.needs_staff = None;
            }
            let details = json!({ "printer": printer, "attempt": job.attempts + 1 });
            let effects = vec![Effect::PrinterStarted {
                printer: printer.clone(),
            }];
            (Some((EventType::PrintStarted, details)), effects)
        }
        Action::Fail { reason, cause } => {
            job.status = Status::ReadyToPrint;
            job.attempts += 1;
            job.progress = None;
            let details = json!({
                "printer": printer, "reason": reason, "cause": cause, "attempts": job.attempts,
            });
            let effects = vec![Effect::PrinterStopped { printer }];
            (Some((EventType::PrintFailed, details)), effects)
        }
        Action::Complete => {
            job.status = Status::Completed;
            job.progress = None;
            let manual = matches!(actor, Actor::Staff { .. });
            let details = json!({ "printer": printer, "manual_override": manual });
            let effects = vec![Effect::PrinterStopped { printer }, Effect::SendPickupNotice];
            (Some((EventType::PrintCompleted, details)), effects)
        }
        Action::Pickup(pickup) => record_pickup(job, pickup)?,
        Action::AddFile { version, file } => add_file(job, *version, file),
        Action::Archive => {
            job.status = Status::Archived;
            (Some((EventType::JobArchived, json!({}))), vec![])
        }
        Action::UpdateNotes { notes } => {
            job.notes = notes.clone();
            (
                Some((EventType::NotesUpdated, json!({ "notes": notes }))),
                vec![],
            )
        }
        Action::Lock { until } => {
            if *until <= now {
                return Err(TransitionError::Invalid(
                    "a lock must end in the future".into(),
                ));
            }
            job.locked_by = Some(actor.triggered_by());
            job.locked_until = Some(*until);
            (
                Some((EventType::JobLocked, json!({ "until": until }))),
                vec![],
            )
        }
        Action::Unlock => {
            let held = job.locked_by.take().is_some();
            job.locked_until = None;
            let event = held.then(|| (EventType::JobUnlocked, json!({})));
            (event, vec![])
        }
        Action::MarkViewed => {
            job.staff_viewed_at.get_or_insert(now);
            (None, vec![])
        }
        Action::SetPriority { priority } => {
            if !(-100..=100).contains(priority) {
                return Err(TransitionError::Invalid(
                    "priority must be between -100 and 100".into(),
                ));
            }
            let from = job.priority;
            job.priority = *priority;
            let details = json!({ "priority": priority, "previous": from });
            (Some((EventType::PriorityChanged, details)), vec![])
        }
    })
}

fn approve(job: &mut Job, approval: &Approval) -> Result<Change, TransitionError> {
    for (field, value) in [
        ("weight_g", approval.weight_g),
        ("time_hours", approval.time_hours),
        ("cost_usd", Some(approval.cost_usd)),
    ] {
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(TransitionError::Invalid(format!(
                "{field} must be a number of zero or more"
            )));
        }
    }
    job.status = Status::Pending;
    job.material = Some(approval.material.clone());
    job.color = Some(approval.color.clone());
    if approval.printer.is_some() {
        job.printer = approval.printer.clone();
        job.staff_printer = approval.printer.clone();
    }
    job.weight_g = approval.weight_g;
    job.time_hours = approval.time_hours;
    job.cost_usd = Some(approval.cost_usd);
    let details = json!({
        "material": approval.material, "color": approval.color, "printer": job.printer,
        "weight_g": approval.weight_g, "time_hours": approval.time_hours,
        "cost_usd": approval.cost_usd,
    });
    Ok((
        Some((EventType::StaffApproved, details)),
        vec![Effect::SendConfirmation],
    ))
}

/// A new file version. G-code for a model job (staff sliced it) becomes the `gcode`
/// artifact and `analysis.sliced`, the student's model staying current; anything else
/// becomes the current file, its analysis starts again, and what was made from the old
/// file is dropped so nothing stale is previewed or printed.
fn add_file(job: &mut Job, version: u32, file: &AddedFile) -> Change {
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
            job.file_version = version;
            job.analysis = json!({ "state": "pending", "format": file.format });
            for made in ["preview.glb", "thumbnail.png", "gcode"] {
                job.artifacts.remove(made);
            }
            "current"
        }
    };
    let details = json!({
        "version": version, "filename": file.filename, "size_bytes": file.size_bytes,
        "sha256": file.hash, "format": file.format, "made_by": "staff", "becomes": becomes,
    });
    let effects = if becomes == "current" {
        vec![Effect::Reprocess]
    } else {
        vec![]
    };
    (Some((EventType::FileAdded, details)), effects)
}

fn record_pickup(job: &mut Job, pickup: &Pickup) -> Result<Change, TransitionError> {
    if pickup
        .paid_usd
        .is_some_and(|paid| !paid.is_finite() || paid < 0.0)
    {
        return Err(TransitionError::Invalid(
            "paid_usd must be zero or more".into(),
        ));
    }
    job.status = Status::PaidPickedUp;
    job.paid_usd = pickup.paid_usd.or(job.cost_usd);
    job.payment_ref = pickup.payment_ref.clone();
    job.picked_up_by = pickup.picked_up_by.clone();
    if pickup.weight_g.is_some() {
        job.weight_g = pickup.weight_g;
    }
    let details = json!({
        "paid_usd": job.paid_usd, "payment_ref": job.payment_ref,
        "picked_up_by": job.picked_up_by, "weight_g": job.weight_g,
    });
    Ok((Some((EventType::StatusChanged, details)), vec![]))
}

#[cfg(test)]
mod tests;
