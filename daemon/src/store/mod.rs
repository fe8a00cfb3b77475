//! The store: one redb file plus a content-addressed blob folder under the data dir.
//!
//! Reads go through [`Store`] methods; every change goes through [`Store::write`], which
//! hands a [`WriteCtx`] to a closure and commits once at the end. That is how "a state
//! change and its audit event commit in one transaction" is kept: the workflow code
//! does both through the same `WriteCtx`, and nothing is visible until `commit`.
//!
//! redb's default durability fsyncs on every commit, so an acknowledged change
//! survives `kill -9`. The schema version lives in the `meta` table; see
//! [`schema`] for how a store written by an older Farmhand is brought up to date.

pub mod blobs;
mod mail;
mod probe;
pub mod schema;
pub mod snapshot;
pub mod stats;
pub mod sync_outbox;
pub mod tables;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use blobs::BlobStore;
pub use mail::{MailQuery, MailState, PickupReminder};
pub use write::WriteCtx;

use crate::config::Role;
use crate::model::{Event, FileVersion, Job, JobId, PrinterRecord, StaffMember, Status, Task};
use tables::*;

/// Errors from the store. Each says what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the job database failed: {0}")]
    Db(#[from] redb::Error),
    #[error("stored {what} could not be read back ({source}); the store may be damaged")]
    Corrupt {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("file storage failed: {0} (is the disk full or read-only?)")]
    Io(#[from] std::io::Error),
    #[error(
        "the store was written by a newer Farmhand (schema {found}); this binary knows up to schema {known}: upgrade Farmhand"
    )]
    SchemaTooNew { found: u64, known: u64 },
    #[error("the database file {path} is in use by another Farmhand process")]
    Locked { path: PathBuf },
}

macro_rules! redb_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A workstation as the store keeps it: the token only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationRecord {
    pub id: String,
    pub role: Role,
    pub token_sha256: String,
}

/// A live confirmation link, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationToken {
    pub job_id: JobId,
    pub expires_at: DateTime<Utc>,
}

/// A mail waiting in (or delivered from) the durable outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: u64,
    pub job_id: Option<JobId>,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The complete RFC 5322 message.
    pub eml: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Set when delivery was given up (the server refused it for good).
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
    /// Set while an attempt is under way; still set after a crash mid-send.
    #[serde(default)]
    pub in_flight_since: Option<DateTime<Utc>>,
    /// Refusals (5xx) in a row.
    #[serde(default)]
    pub permanent_failures: u32,
}

/// Filters for listing jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub status: Option<Status>,
    pub text: Option<String>,
    pub limit: usize,
    /// Only jobs with a smaller id (the `next_cursor` of the previous page).
    pub before: Option<u64>,
}

/// Filters for the audit log, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub job: Option<JobId>,
    pub staff: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Only events with a larger id (the `next_cursor` of the previous page).
    pub after: Option<u64>,
    pub limit: usize,
}

/// The job store. Cheap to clone; every clone shares one database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    blobs: BlobStore,
    data_dir: PathBuf,
    /// Every write feeds the cloud-sync outbox (set by [`Store::with_sync_outbox`]).
    sync: bool,
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain data types cannot fail (no maps with non-string keys).
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

/// Microseconds since the epoch, for time-ordered index keys.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl Store {
    /// Opens (creating) the store in `data_dir`, migrating an older schema.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("farmhand.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            other => other.into(),
        })?;
        schema::prepare(&db)?;
        Ok(Store {
            db: Arc::new(db),
            blobs: BlobStore::open(data_dir)?,
            data_dir: data_dir.to_path_buf(),
            sync: false,
        })
    }

    /// This store with every job change also queued for cloud sync (in the same
    /// transaction as the change). Set once, right after [`Store::open`].
    pub fn with_sync_outbox(mut self) -> Store {
        self.sync = true;
        self
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The blob folder.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Runs `f` in one write transaction and commits it if `f` returns `Ok`.
    /// Nothing `f` wrote is visible to anyone unless the commit succeeds.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut WriteCtx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let mut ctx = WriteCtx::new(txn, self.sync);
        let value = f(&mut ctx)?;
        ctx.commit().map_err(E::from)?;
        Ok(value)
    }

    /// A cheap write that proves the store is writable (for `/healthz`).
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut meta = txn.open_table(META)?;
            let beats = meta.get("health_checks")?.map_or(0, |v| v.value());
            meta.insert("health_checks", beats.wrapping_add(1))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// One job.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let value = jobs.get(id.0)?;
        value.map(|v| from_json("job", v.value())).transpose()
    }

    /// Jobs newest first, and the cursor for the next page when there is one.
    pub fn list_jobs(&self, query: &JobQuery) -> Result<(Vec<Job>, Option<u64>), StoreError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let before = query.before.unwrap_or(u64::MAX);
        let ids: Box<dyn Iterator<Item = Result<u64, StoreError>>> = match query.status {
            Some(status) => {
                let index = txn.open_table(JOBS_BY_STATUS)?;
                let key = status.index_key();
                let range = index.range((key, 0)..(key, before))?.rev();
                Box::new(
                    range
                        .map(|r| r.map(|(k, _)| k.value().1).map_err(StoreError::from))
                        .collect::<Vec<_>>()
                        .into_iter(),
                )
            }
            None => Box::new(
                jobs.range(..before)?
                    .rev()
                    .map(|r| r.map(|(k, _)| k.value()).map_err(StoreError::from))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
        };
        let needle = query.text.as_deref().map(str::to_lowercase);
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            let Some(raw) = jobs.get(id)? else { continue };
            let job: Job = from_json("job", raw.value())?;
            if needle.as_deref().is_some_and(|n| !job_matches(&job, n)) {
                continue;
            }
            if out.len() == query.limit {
                let cursor = out.last().map(|j: &Job| j.id.0);
                return Ok((out, cursor));
            }
            out.push(job);
        }
        Ok((out, None))
    }

    /// The jobs in `status`, newest first, read as `T`: a caller that needs a few
    /// fields (the dashboard, every two seconds) skips building whole jobs.
    pub fn jobs_in_status_as<T: DeserializeOwned>(
        &self,
        status: Status,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let index = txn.open_table(JOBS_BY_STATUS)?;
        let key = status.index_key();
        let mut out = Vec::new();
        for row in index.range((key, 0)..=(key, u64::MAX))?.rev() {
            let id = row?.0.value().1;
            if let Some(raw) = jobs.get(id)? {
                out.push(from_json("job", raw.value())?);
            }
        }
        Ok(out)
    }

    /// How many jobs are in each status.
    pub fn count_by_status(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(JOBS_BY_STATUS)?;
        Status::ALL
            .into_iter()
            .map(|s| {
                let key = s.index_key();
                let count = index.range((key, 0)..=(key, u64::MAX))?.count() as u64;
                Ok((s, count))
            })
            .collect()
    }

    /// The audit log, oldest first, and the cursor for the next page.
    pub fn events(&self, query: &EventQuery) -> Result<(Vec<Event>, Option<u64>), StoreError> {
        let txn = self.db.begin_read()?;
        let ids = self.candidate_event_ids(&txn, query)?;
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for id in ids {
            if query.after.is_some_and(|after| id <= after) {
                continue;
            }
            let Some(raw) = events.get(id)? else { continue };
            let event: Event = from_json("event", raw.value())?;
            if !event_matches(&event, query) {
                continue;
            }
            if out.len() == query.limit {
                let cursor = out.last().map(|e: &Event| e.id);
                return Ok((out, cursor));
            }
            out.push(event);
        }
        Ok((out, None))
    }

    /// Event ids from the most selective index the query allows, ascending.
    fn candidate_event_ids(
        &self,
        txn: &redb::ReadTransaction,
        query: &EventQuery,
    ) -> Result<Vec<u64>, StoreError> {
        fn collect(values: redb::MultimapValue<'_, u64>) -> Result<Vec<u64>, StoreError> {
            values.map(|v| Ok(v?.value())).collect()
        }
        if let Some(job) = query.job {
            return collect(txn.open_multimap_table(EVENTS_BY_JOB)?.get(job.0)?);
        }
        if let Some(staff) = &query.staff {
            return collect(
                txn.open_multimap_table(EVENTS_BY_STAFF)?
                    .get(staff.as_str())?,
            );
        }
        if let Some(kind) = &query.event_type {
            return collect(
                txn.open_multimap_table(EVENTS_BY_TYPE)?
                    .get(kind.as_str())?,
            );
        }
        let since = query.since.map_or(i64::MIN, micros);
        let index = txn.open_table(EVENTS_BY_TIME)?;
        let mut ids: Vec<u64> = index
            .range((since, 0)..)?
            .map(|r| r.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The versions of a job's file, oldest first.
    pub fn file_versions(&self, job: JobId) -> Result<Vec<FileVersion>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FILE_VERSIONS)?;
        table
            .range((job.0, 0)..=(job.0, u32::MAX))?
            .map(|r| from_json("file version", r?.1.value()))
            .collect()
    }

    /// The attribution list, active and inactive, by name.
    pub fn staff(&self) -> Result<Vec<StaffMember>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STAFF)?;
        table
            .iter()?
            .map(|r| from_json("staff member", r?.1.value()))
            .collect()
    }

    /// All workstation records.
    pub fn workstations(&self) -> Result<Vec<WorkstationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(WORKSTATIONS)?;
        table
            .iter()?
            .map(|r| from_json("workstation", r?.1.value()))
            .collect()
    }

    /// The stored state of a printer (idle when never seen).
    pub fn printer(&self, id: &str) -> Result<PrinterRecord, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PRINTERS)?;
        let value = table.get(id)?;
        Ok(value
            .map(|v| from_json("printer", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Mails not yet delivered (nor given up), oldest first.
    pub fn pending_mail(&self) -> Result<Vec<OutboxMail>, StoreError> {
        let txn = self.db.begin_read()?;
        let pending = txn.open_table(MAIL_PENDING)?;
        let table = txn.open_table(MAIL_OUTBOX)?;
        let mut out = Vec::new();
        for row in pending.iter()? {
            let Some(raw) = table.get(row?.0.value())? else {
                continue;
            };
            let mail: OutboxMail = from_json("mail", raw.value())?;
            if mail.sent_at.is_none() && mail.failed_at.is_none() {
                out.push(mail);
            }
        }
        Ok(out)
    }

    /// The processing tasks of a job that are queued, running or failed.
    pub fn tasks_of(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TASKS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let task: Task = from_json("task", row?.1.value())?;
            if task.job_id == job {
                out.push(task);
            }
        }
        Ok(out)
    }

    /// The hashes of every blob the store refers to, with their sizes.
    pub fn known_blobs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        table
            .iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((k.value().to_string(), v.value()))
            })
            .collect()
    }
}

fn job_matches(job: &Job, needle: &str) -> bool {
    [
        job.display_name.as_str(),
        &job.student_name,
        &job.student_email,
        &job.original_filename,
        &job.notes,
        job.class_number.as_deref().unwrap_or(""),
        job.discipline.as_deref().unwrap_or(""),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(needle))
        || job.id.to_string() == needle
}

fn event_matches(event: &Event, query: &EventQuery) -> bool {
    query.job.is_none_or(|j| event.job_id == Some(j))
        && query
            .staff
            .as_ref()
            .is_none_or(|s| &event.triggered_by == s)
        && query
            .event_type
            .as_ref()
            .is_none_or(|t| event.event_type.as_str() == t)
        && query.since.is_none_or(|since| event.timestamp >= since)
}

#[cfg(test)]
mod tests;
