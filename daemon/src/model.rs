//! The domain types every layer shares: jobs, statuses, events, staff, printers.
//!
//! These are plain data with serde derives; they are what the store persists (as JSON
//! values inside redb) and what the HTTP API returns. Behaviour lives elsewhere:
//! [`crate::lifecycle`] decides how a job may change, [`crate::store`] persists it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A job identifier: a sequence number, shown to people as a short decimal string.
///
/// Serialized as a string (`"17"`) so that the API can later change the scheme
/// without breaking clients that treat ids as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(JobId)
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The job statuses of the lab's workflow, exactly as the contract spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Uploaded,
    Pending,
    ReadyToPrint,
    Printing,
    Completed,
    PaidPickedUp,
    Rejected,
    Archived,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 8] = [
        Status::Uploaded,
        Status::Pending,
        Status::ReadyToPrint,
        Status::Printing,
        Status::Completed,
        Status::PaidPickedUp,
        Status::Rejected,
        Status::Archived,
    ];

    /// The contract's spelling, e.g. `READYTOPRINT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Uploaded => "UPLOADED",
            Status::Pending => "PENDING",
            Status::ReadyToPrint => "READYTOPRINT",
            Status::Printing => "PRINTING",
            Status::Completed => "COMPLETED",
            Status::PaidPickedUp => "PAIDPICKEDUP",
            Status::Rejected => "REJECTED",
            Status::Archived => "ARCHIVED",
        }
    }

    /// A stable small number for index keys (never reorder: it is on disk).
    pub fn index_key(self) -> u8 {
        match self {
            Status::Uploaded => 0,
            Status::Pending => 1,
            Status::ReadyToPrint => 2,
            Status::Printing => 3,
            Status::Completed => 4,
            Status::PaidPickedUp => 5,
            Status::Rejected => 6,
            Status::Archived => 7,
        }
    }

    /// Jobs in these statuses are "active": a second upload of the same file by the
    /// same student is a duplicate of them rather than a new job.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Uploaded
                | Status::Pending
                | Status::ReadyToPrint
                | Status::Printing
                | Status::Completed
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown status name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown status {0:?}: expected one of UPLOADED, PENDING, READYTOPRINT, PRINTING, COMPLETED, PAIDPICKEDUP, REJECTED, ARCHIVED"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_uppercase().replace(['_', '-', ' '], "");
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == wanted)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Live progress of a job that is printing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Progress {
    pub percent: f64,
    pub layer: Option<u64>,
    pub total_layers: Option<u64>,
    pub eta_s: Option<u64>,
}

/// One print job, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    /// `FirstAndLastName_Material_Color_SimpleJobID`, the name staff write on the part.
    pub display_name: String,
    pub status: Status,
    pub student_name: String,
    pub student_email: String,
    pub discipline: Option<String>,
    pub class_number: Option<String>,
    pub original_filename: String,
    /// SHA-256 of the current file version, lower-case hex.
    pub file_hash: String,
    pub size_bytes: u64,
    /// The sniffed format of the current file (`stl`, `obj`, `3mf`, `gcode`, …).
    pub format: String,
    pub file_version: u32,
    pub material: Option<String>,
    pub color: Option<String>,
    /// The preferred printer (student) or the assigned one (staff, dispatch).
    pub printer: Option<String>,
    pub weight_g: Option<f64>,
    pub time_hours: Option<f64>,
    pub cost_usd: Option<f64>,
    pub student_confirmed: bool,
    pub reject_reasons: Vec<String>,
    pub notes: String,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub duplicate_of: Option<JobId>,
    /// The contract's `analysis` object; `{"state": "pending"}` until it is made.
    pub analysis: serde_json::Value,
    /// Files made from the current version, by name (`preview.glb`, `thumbnail.png`,
    /// `gcode`) → blob SHA-256.
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, String>,
    pub progress: Option<Progress>,
    /// When a staff member first opened the job; `None` shows the NEW mark.
    pub staff_viewed_at: Option<DateTime<Utc>>,
    pub paid_usd: Option<f64>,
    pub payment_ref: Option<String>,
    pub picked_up_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Scheduler order among READYTOPRINT jobs: higher first, then oldest (staff's override).
    #[serde(default)]
    pub priority: i32,
    /// Why the scheduler holds this job, e.g. `waits: lab closes at 17:00`.
    #[serde(default)]
    pub waits: Option<String>,
    /// Set when the job has failed `dispatch.max_failures` times: it is not auto-dispatched
    /// until staff dispatch it by hand.
    #[serde(default)]
    pub needs_staff: Option<String>,
    /// The printer staff chose at approval: the job goes there and nowhere else. (`printer`
    /// is the student's wish or the printer of the latest attempt.)
    #[serde(default)]
    pub staff_printer: Option<String>,
}

impl Job {
    /// True while the edit lock is held by someone other than `staff` at `now`.
    pub fn locked_against(&self, staff: &str, now: DateTime<Utc>) -> Option<(&str, DateTime<Utc>)> {
        match (&self.locked_by, self.locked_until) {
            (Some(holder), Some(until)) if until > now && holder != staff => {
                Some((holder.as_str(), until))
            }
            _ => None,
        }
    }
}

/// The kinds of audit event. The first block is the contract's; the rest extend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    JobCreated,
    StaffApproved,
    StaffRejected,
    StatusChanged,
    StudentConfirmed,
    ConfirmationExpired,
    NotesUpdated,
    AdminOverride,
    PrintStarted,
    PrintFailed,
    PrintCompleted,
    EmailSent,
    FileAdded,
    FileDeleted,
    JobArchived,
    BedCleared,
    ConfirmationResent,
    JobLocked,
    JobUnlocked,
    StaffAdded,
    StaffDeactivated,
    PriorityChanged,
}

impl EventType {
    /// The name used in the API and in the by-type index.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobCreated => "JobCreated",
            EventType::StaffApproved => "StaffApproved",
            EventType::StaffRejected => "StaffRejected",
            EventType::StatusChanged => "StatusChanged",
            EventType::StudentConfirmed => "StudentConfirmed",
            EventType::ConfirmationExpired => "ConfirmationExpired",
            EventType::NotesUpdated => "NotesUpdated",
            EventType::AdminOverride => "AdminOverride",
            EventType::PrintStarted => "PrintStarted",
            EventType::PrintFailed => "PrintFailed",
            EventType::PrintCompleted => "PrintCompleted",
            EventType::EmailSent => "EmailSent",
            EventType::FileAdded => "FileAdded",
            EventType::FileDeleted => "FileDeleted",
            EventType::JobArchived => "JobArchived",
            EventType::BedCleared => "BedCleared",
            EventType::ConfirmationResent => "ConfirmationResent",
            EventType::JobLocked => "JobLocked",
            EventType::JobUnlocked => "JobUnlocked",
            EventType::StaffAdded => "StaffAdded",
            EventType::StaffDeactivated => "StaffDeactivated",
            EventType::PriorityChanged => "PriorityChanged",
        }
    }
}

/// Who caused something: a staff member at a workstation, the student, or Farmhand itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff { name: String, workstation: String },
    Student,
    System { component: &'static str },
}

impl Actor {
    /// The `triggered_by` of an event.
    pub fn triggered_by(&self) -> String {
        match self {
            Actor::Staff { name, .. } => name.clone(),
            Actor::Student => "student".into(),
            Actor::System { component } => format!("system:{component}"),
        }
    }

    /// The `workstation_id` of an event.
    pub fn workstation(&self) -> Option<String> {
        match self {
            Actor::Staff { workstation, .. } => Some(workstation.clone()),
            Actor::Student | Actor::System { .. } => None,
        }
    }
}

/// An immutable audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub job_id: Option<JobId>,
    pub timestamp: DateTime<Utc>,
    pub event_type: EventType,
    pub details: serde_json::Value,
    pub triggered_by: String,
    pub workstation_id: Option<String>,
}

/// An event before the store gives it an id: what [`crate::lifecycle::apply`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub event_type: EventType,
    pub details: serde_json::Value,
}

/// A member of the attribution list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    pub name: String,
    pub active: bool,
    pub added_at: DateTime<Utc>,
}

/// A stored version of a job's file. The current one is `Job::file_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileVersion {
    pub version: u32,
    pub hash: String,
    pub filename: String,
    pub size_bytes: u64,
    pub format: String,
    pub added_at: DateTime<Utc>,
    pub added_by: String,
}

/// Runtime state of a printer (what the store remembers across restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    Offline,
    #[default]
    Idle,
    Printing,
    Paused,
    Error,
    NeedsClearing,
}

/// What the store keeps per printer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PrinterRecord {
    pub state: PrinterState,
    pub job_id: Option<JobId>,
    /// The last job printed, kept while the bed needs clearing.
    pub last_job_id: Option<JobId>,
    /// The printer's own id of the job it prints for `job_id` (generic MQTT), so that after a
    /// restart the outcome the printer reports can be matched to the job.
    #[serde(default)]
    pub driver_job: Option<String>,
}

/// What a processing task makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The `analysis` object.
    Analyze,
    /// `preview.glb` for the 3D viewer.
    Preview,
    /// `thumbnail.png`.
    Thumbnail,
    /// G-code from a real slicer, when a printer has a `slicer_profile`.
    Slice,
}

impl TaskKind {
    /// Analysis first: staff need it to approve.
    pub fn priority(self) -> u8 {
        match self {
            TaskKind::Analyze => 0,
            TaskKind::Thumbnail => 1,
            TaskKind::Preview => 2,
            TaskKind::Slice => 3,
        }
    }
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Done,
    Failed,
}

/// One unit of work in the durable processing queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    pub job_id: JobId,
    pub kind: TaskKind,
    /// The blob (file version) the task works on; a newer version makes it moot.
    pub input_hash: String,
    pub state: TaskState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
