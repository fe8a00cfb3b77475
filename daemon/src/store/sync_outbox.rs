//! The cloud-sync outbox: what the store owes the bucket.
//!
//! Every job change ([`WriteCtx::put_job`], [`WriteCtx::append_event`],
//! [`WriteCtx::add_file_version`]) queues its job in `sync_outbox` inside the very
//! transaction that makes the change, so a change that committed is a change that will
//! be uploaded, even across `kill -9`. Rows are per job, so a job changed fifty times
//! while the Wi-Fi was down is uploaded once: each change only raises the row's `seq`.
//! The worker ([`crate::sync::worker`]) uploads a job's state as it is *now*, then
//! removes the row only if its `seq` is still the one it uploaded; a change made
//! during the upload keeps the row for another pass, so nothing is skipped.
//!
//! `sync_objects` remembers which bucket objects this store already wrote (path →
//! SHA-256) so a blob is never sent twice; `sync_status` holds the worker's last
//! success, last error and last snapshot for `GET /api/v1/sync`.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{Store, StoreError, WriteCtx, from_json, to_json};
use crate::model::{Event, FileVersion, Job, JobId};

/// One job waiting to be uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEntry {
    /// Raised by every change; the worker compares it before removing the row.
    pub seq: u64,
    /// When the oldest change not yet uploaded was made (the backlog's age).
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Everything the bucket keeps about one job: `jobs/{id}/metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobExport {
    /// Layout version of this document.
    pub format: u32,
    pub job: Job,
    /// Its audit events, oldest first.
    pub events: Vec<Event>,
    /// Its file versions, oldest first (their bytes are under `blobs/`).
    pub file_versions: Vec<FileVersion>,
}

impl JobExport {
    /// The blobs the job refers to (file versions and artifacts), without repeats.
    pub fn blob_hashes(&self) -> Vec<(String, Option<u64>)> {
        let mut out: Vec<(String, Option<u64>)> = Vec::new();
        let versions = self
            .file_versions
            .iter()
            .map(|v| (v.hash.clone(), Some(v.size_bytes)));
        let artifacts = self.job.artifacts.values().map(|h| (h.clone(), None));
        for (hash, size) in versions.chain(artifacts) {
            if !out.iter().any(|(h, _)| *h == hash) {
                out.push((hash, size));
            }
        }
        out
    }
}

/// The sync worker's remembered state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The bucket URL the objects in `sync_objects` were written to.
    pub bucket: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_snapshot_at: Option<DateTime<Utc>>,
    /// The `next_sync_seq` at the last snapshot: no snapshot while nothing changed.
    pub last_snapshot_seq: u64,
}

/// How far behind the bucket is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub pending: u64,
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

const STATUS_KEY: &str = "status";

impl WriteCtx {
    /// Queues `job` for upload (a no-op when sync is off), coalescing with a pending row.
    pub fn queue_sync(&mut self, job: JobId) -> Result<(), StoreError> {
        if !self.sync {
            return Ok(());
        }
        let seq = self.next_id("next_sync_seq")?;
        let mut table = self.txn.open_table(SYNC_OUTBOX)?;
        let previous: Option<SyncEntry> = table
            .get(job.0)?
            .map(|v| from_json("sync entry", v.value()))
            .transpose()?;
        let now = Utc::now();
        let entry = match previous {
            Some(old) => SyncEntry { seq, ..old },
            None => SyncEntry {
                seq,
                queued_at: now,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
            },
        };
        table.insert(job.0, to_json(&entry).as_slice())?;
        Ok(())
    }

    /// Writes a job exactly as exported (id, events and file versions kept) during a
    /// restore; events already present (from a snapshot) are left as they are.
    pub fn restore_job(&mut self, export: &JobExport) -> Result<(), StoreError> {
        self.put_job(&export.job)?;
        for version in &export.file_versions {
            self.add_file_version(export.job.id, version)?;
        }
        for hash in export.job.artifacts.values() {
            let size = self
                .txn
                .open_table(BLOBS)?
                .get(hash.as_str())?
                .map(|v| v.value());
            if size.is_none() {
                // The real size is written once the blob is downloaded and verified.
                self.register_blob(hash, 0)?;
            }
        }
        let mut max_event = 0;
        for event in &export.events {
            max_event = max_event.max(event.id);
            let present = self.txn.open_table(EVENTS)?.get(event.id)?.is_some();
            if !present {
                self.insert_event(event)?;
            }
        }
        self.raise_counter("next_job_id", export.job.id.0 + 1)?;
        self.raise_counter("next_event_id", max_event + 1)
    }

    fn raise_counter(&mut self, counter: &str, at_least: u64) -> Result<(), StoreError> {
        if self.meta(counter)?.unwrap_or(1) < at_least {
            self.set_meta(counter, at_least)?;
        }
        Ok(())
    }

    /// Forgets all sync bookkeeping and records `bucket` as in step with this store
    /// (after a restore from it, or when the configured bucket changes).
    pub fn reset_sync(&mut self, bucket: Option<&str>) -> Result<(), StoreError> {
        self.txn.open_table(SYNC_OUTBOX)?.retain(|_, _| false)?;
        self.txn.open_table(SYNC_OBJECTS)?.retain(|_, _| false)?;
        let status = SyncStatus {
            bucket: bucket.map(str::to_string),
            ..SyncStatus::default()
        };
        self.put_sync_status(&status)
    }

    /// Queues every job (a bucket that has none of them yet).
    pub fn queue_all_jobs(&mut self) -> Result<u64, StoreError> {
        let ids: Vec<u64> = {
            let jobs = self.txn.open_table(JOBS)?;
            jobs.iter()?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?
        };
        for id in &ids {
            self.queue_sync(JobId(*id))?;
        }
        Ok(ids.len() as u64)
    }

    /// The worker's state.
    pub fn sync_status(&mut self) -> Result<SyncStatus, StoreError> {
        let table = self.txn.open_table(SYNC_STATUS)?;
        let value = table.get(STATUS_KEY)?;
        Ok(value
            .map(|v| from_json("sync status", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_sync_status(&mut self, status: &SyncStatus) -> Result<(), StoreError> {
        self.txn
            .open_table(SYNC_STATUS)?
            .insert(STATUS_KEY, to_json(status).as_slice())?;
        Ok(())
    }

    /// Records that the bucket now holds `hash` at `path`.
    pub fn record_synced_object(&mut self, path: &str, hash: &str) -> Result<(), StoreError> {
        self.txn.open_table(SYNC_OBJECTS)?.insert(path, hash)?;
        Ok(())
    }

    /// The row of `job`, if it is waiting.
    pub fn sync_entry(&mut self, job: JobId) -> Result<Option<SyncEntry>, StoreError> {
        let table = self.txn.open_table(SYNC_OUTBOX)?;
        let value = table.get(job.0)?;
        value
            .map(|v| from_json("sync entry", v.value()))
            .transpose()
    }

    /// Removes `job`'s row if no change came after `seq`; true when removed.
    pub fn finish_sync(&mut self, job: JobId, seq: u64) -> Result<bool, StoreError> {
        match self.sync_entry(job)? {
            Some(entry) if entry.seq == seq => {
                self.txn.open_table(SYNC_OUTBOX)?.remove(job.0)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Stores a retried row.
    pub fn put_sync_entry(&mut self, job: JobId, entry: &SyncEntry) -> Result<(), StoreError> {
        self.txn
            .open_table(SYNC_OUTBOX)?
            .insert(job.0, to_json(entry).as_slice())?;
        Ok(())
    }
}

impl Store {
    /// Up to `limit` rows due at `now`, in the order their latest change was made.
    pub fn sync_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(JobId, SyncEntry)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_OUTBOX)?;
        let mut due = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let entry: SyncEntry = from_json("sync entry", v.value())?;
            if entry.next_attempt_at <= now {
                due.push((JobId(k.value()), entry));
            }
        }
        due.sort_by_key(|(_, e)| e.seq);
        due.truncate(limit);
        Ok(due)
    }

    /// The earliest time a waiting row is due, if any row waits.
    pub fn sync_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_OUTBOX)?;
        let mut next: Option<DateTime<Utc>> = None;
        for row in table.iter()? {
            let entry: SyncEntry = from_json("sync entry", row?.1.value())?;
            next = Some(next.map_or(entry.next_attempt_at, |n| n.min(entry.next_attempt_at)));
        }
        Ok(next)
    }

    /// How many jobs wait and since when.
    pub fn sync_backlog(&self) -> Result<Backlog, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_OUTBOX)?;
        let mut backlog = Backlog::default();
        for row in table.iter()? {
            let entry: SyncEntry = from_json("sync entry", row?.1.value())?;
            backlog.pending += 1;
            backlog.oldest_queued_at = Some(
                backlog
                    .oldest_queued_at
                    .map_or(entry.queued_at, |t| t.min(entry.queued_at)),
            );
        }
        Ok(backlog)
    }

    /// The worker's state.
    pub fn sync_status(&self) -> Result<SyncStatus, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_STATUS)?;
        let value = table.get(STATUS_KEY)?;
        Ok(value
            .map(|v| from_json("sync status", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// The hash this store last wrote at `path` in the bucket.
    pub fn synced_object(&self, path: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNC_OBJECTS)?;
        let value = table.get(path)?;
        Ok(value.map(|v| v.value().to_string()))
    }

    /// The current counter of changes (to tell whether anything changed since).
    pub fn sync_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get("next_sync_seq")?;
        Ok(value.map_or(0, |v| v.value()))
    }

    /// A job with its events and file versions, all read in one transaction so the
    /// three agree with each other.
    pub fn export_job(&self, id: JobId) -> Result<Option<JobExport>, StoreError> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let Some(raw) = jobs.get(id.0)? else {
            return Ok(None);
        };
        let job: Job = from_json("job", raw.value())?;
        let mut event_ids: Vec<u64> = txn
            .open_multimap_table(EVENTS_BY_JOB)?
            .get(id.0)?
            .map(|v| v.map(|v| v.value()))
            .collect::<Result<_, _>>()?;
        event_ids.sort_unstable();
        let events_table = txn.open_table(EVENTS)?;
        let mut events = Vec::with_capacity(event_ids.len());
        for event_id in event_ids {
            if let Some(raw) = events_table.get(event_id)? {
                events.push(from_json("event", raw.value())?);
            }
        }
        let versions = txn.open_table(FILE_VERSIONS)?;
        let file_versions = versions
            .range((id.0, 0)..=(id.0, u32::MAX))?
            .map(|r| from_json("file version", r?.1.value()))
            .collect::<Result<_, _>>()?;
        Ok(Some(JobExport {
            format: 1,
            job,
            events,
            file_versions,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, EventDraft, EventType};

    fn job(id: u64) -> Job {
        let text = format!(
            r#"{{"id":"{id}","display_name":"A_PLA_Red_{id}","status":"UPLOADED","student_name":"A",
            "student_email":"a@example.edu","discipline":null,"class_number":null,
            "original_filename":"a.stl","file_hash":"ab12","size_bytes":3,"format":"stl",
            "file_version":1,"material":null,"color":null,"printer":null,"weight_g":null,
            "time_hours":null,"cost_usd":null,"student_confirmed":false,"reject_reasons":[],
            "notes":"","locked_by":null,"locked_until":null,"attempts":0,"duplicate_of":null,
            "analysis":{{"state":"pending"}},"progress":null,"staff_viewed_at":null,
            "paid_usd":null,"payment_ref":null,"picked_up_by":null,
            "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}}"#
        );
        serde_json::from_str(&text).expect("job json")
    }

    fn note(ctx: &mut WriteCtx, id: u64) -> Result<Event, StoreError> {
        let draft = EventDraft {
            event_type: EventType::NotesUpdated,
            details: serde_json::json!({}),
        };
        ctx.append_event(Some(JobId(id)), &Actor::Student, draft, Utc::now())
    }

    #[test]
    fn changes_coalesce_per_job_and_a_change_during_upload_keeps_the_row() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open").with_sync_outbox();
        for id in [1, 2] {
            store
                .write(|ctx| {
                    ctx.put_job(&job(id))?;
                    note(ctx, id).map(|_| ())
                })
                .expect("write");
        }
        store.write(|ctx| note(ctx, 1).map(|_| ())).expect("write");
        let due = store.sync_due(Utc::now(), 10).expect("due");
        assert_eq!(due.len(), 2, "one row per job, however many changes");
        // Job 2's latest change is older than job 1's third change.
        assert_eq!(due[0].0, JobId(2));
        let (id, entry) = due[1].clone();
        store.write(|ctx| note(ctx, 1).map(|_| ())).expect("write");
        let removed = store
            .write(|ctx| ctx.finish_sync(id, entry.seq))
            .expect("finish");
        assert!(!removed, "a change after the upload began keeps the row");
        assert_eq!(store.sync_backlog().expect("backlog").pending, 2);
        let export = store.export_job(JobId(1)).expect("export").expect("job");
        assert_eq!(export.events.len(), 3);
    }

    #[test]
    fn without_sync_nothing_is_queued() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        store.write(|ctx| ctx.put_job(&job(1))).expect("write");
        assert_eq!(store.sync_backlog().expect("backlog").pending, 0);
    }

    #[test]
    fn a_restored_job_keeps_its_ids_and_raises_the_counters() {
        let dir = tempfile::tempdir().expect("dir");
        let source = Store::open(&dir.path().join("a")).expect("open");
        source
            .write(|ctx| {
                ctx.put_job(&job(7))?;
                note(ctx, 7)?;
                note(ctx, 7).map(|_| ())
            })
            .expect("write");
        let export = source.export_job(JobId(7)).expect("export").expect("job");
        let target = Store::open(&dir.path().join("b")).expect("open");
        target
            .write(|ctx| ctx.restore_job(&export))
            .expect("restore");
        let again = target.export_job(JobId(7)).expect("export").expect("job");
        assert_eq!(again, export);
        let next = target.write(|ctx| ctx.next_id("next_job_id")).expect("id");
        assert_eq!(next, 8);
    }
}
