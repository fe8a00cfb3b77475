//! A snapshot of counts for monitoring (`GET /metrics`), read in one transaction so
//! the numbers agree with each other.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::tables::*;
use super::{Store, StoreError, from_json};
use crate::model::{EventType, Job, Status, Task, TaskState};

/// The statuses in which a job waits for someone: staff approval, the student's
/// confirmation, a free printer.
pub const WAITING: [Status; 3] = [Status::Uploaded, Status::Pending, Status::ReadyToPrint];

/// Counts the store can vouch for, at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FarmStats {
    /// Jobs in each status (every status present, zero included).
    pub jobs: BTreeMap<Status, u64>,
    /// For each waiting status, when its longest-waiting job last changed (`None`:
    /// nobody waits).
    pub oldest_waiting: BTreeMap<Status, Option<DateTime<Utc>>>,
    /// Prints that ended, by outcome, since the store was made.
    pub prints_completed: u64,
    pub prints_failed: u64,
    /// Mails queued and not yet delivered.
    pub mail_backlog: u64,
    /// Processing tasks queued or running.
    pub processing_backlog: u64,
    /// Jobs whose changes wait to be mirrored to the bucket (one outbox row per job).
    pub sync_backlog: u64,
}

impl Store {
    /// Reads a [`FarmStats`] in one read transaction.
    pub fn stats(&self) -> Result<FarmStats, StoreError> {
        let txn = self.db.begin_read()?;
        let by_status = txn.open_table(JOBS_BY_STATUS)?;
        let jobs_table = txn.open_table(JOBS)?;
        let mut stats = FarmStats::default();
        for status in Status::ALL {
            let key = status.index_key();
            let ids = by_status.range((key, 0)..=(key, u64::MAX))?;
            let mut count = 0;
            let mut oldest: Option<DateTime<Utc>> = None;
            for entry in ids {
                count += 1;
                if !WAITING.contains(&status) {
                    continue;
                }
                let id = entry?.0.value().1;
                if let Some(raw) = jobs_table.get(id)? {
                    let job: Job = from_json("job", raw.value())?;
                    oldest = Some(oldest.map_or(job.updated_at, |o| o.min(job.updated_at)));
                }
            }
            stats.jobs.insert(status, count);
            if WAITING.contains(&status) {
                stats.oldest_waiting.insert(status, oldest);
            }
        }
        let by_type = txn.open_multimap_table(EVENTS_BY_TYPE)?;
        stats.prints_completed = by_type.get(EventType::PrintCompleted.as_str())?.len();
        stats.prints_failed = by_type.get(EventType::PrintFailed.as_str())?.len();
        // Delivered mail stays in the outbox for years: read only `sent_at` of each,
        // not the whole message.
        for row in txn.open_table(MAIL_OUTBOX)?.iter()? {
            let mail: Delivery = from_json("mail", row?.1.value())?;
            stats.mail_backlog += u64::from(mail.sent_at.is_none());
        }
        for row in txn.open_table(TASKS)?.iter()? {
            let task: Task = from_json("task", row?.1.value())?;
            stats.processing_backlog +=
                u64::from(matches!(task.state, TaskState::Queued | TaskState::Running));
        }
        stats.sync_backlog = txn.open_table(SYNC_OUTBOX)?.len()?;
        Ok(stats)
    }
}

/// The one field of an [`super::OutboxMail`] the backlog needs.
#[derive(serde::Deserialize)]
struct Delivery {
    sent_at: Option<DateTime<Utc>>,
}
