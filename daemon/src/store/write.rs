//! [`WriteCtx`]: the typed operations available inside one write transaction.
//!
//! Each method opens the tables it needs and closes them before returning (redb allows
//! one open handle per table per transaction), keeps secondary indexes in step with
//! their rows, and never commits: [`super::Store::write`] commits once at the end.

use chrono::{DateTime, Utc};
use redb::{ReadableMultimapTable, ReadableTable, WriteTransaction};

use super::tables::*;
use super::{
    ConfirmationToken, OutboxMail, StoreError, WorkstationRecord, from_json, micros, to_json,
};
use crate::model::{
    Actor, Event, EventDraft, FileVersion, Job, JobId, PrinterRecord, StaffMember, Task,
};

/// An open write transaction with Farmhand's operations on it.
pub struct WriteCtx {
    pub(super) txn: WriteTransaction,
    /// Feed the cloud-sync outbox (`[sync]` is configured): see `super::sync_outbox`.
    pub(super) sync: bool,
}

impl WriteCtx {
    pub(super) fn new(txn: WriteTransaction, sync: bool) -> Self {
        WriteCtx { txn, sync }
    }

    pub(super) fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }

    /// Takes the next number of a counter (`next_job_id`, `next_event_id`, …), from 1.
    pub fn next_id(&mut self, counter: &str) -> Result<u64, StoreError> {
        let mut meta = self.txn.open_table(META)?;
        let next = meta.get(counter)?.map_or(1, |v| v.value());
        meta.insert(counter, next + 1)?;
        Ok(next)
    }

    /// Reads a flag or number from `meta`.
    pub fn meta(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        let meta = self.txn.open_table(META)?;
        let value = meta.get(key)?.map(|v| v.value());
        Ok(value)
    }

    /// Writes a flag or number to `meta`.
    pub fn set_meta(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// One job.
    pub fn job(&mut self, id: JobId) -> Result<Option<Job>, StoreError> {
        let jobs = self.txn.open_table(JOBS)?;
        let value = jobs.get(id.0)?;
        value.map(|v| from_json("job", v.value())).transpose()
    }

    /// Inserts or replaces a job and keeps the status, hash and creation indexes right.
    pub fn put_job(&mut self, job: &Job) -> Result<(), StoreError> {
        let previous = self.job(job.id)?;
        {
            let mut by_status = self.txn.open_table(JOBS_BY_STATUS)?;
            if let Some(old) = &previous {
                by_status.remove((old.status.index_key(), old.id.0))?;
            }
            by_status.insert((job.status.index_key(), job.id.0), ())?;
        }
        {
            let mut by_hash = self.txn.open_multimap_table(JOBS_BY_HASH)?;
            by_hash.insert(job.file_hash.as_str(), job.id.0)?;
        }
        if previous.is_none() {
            let mut by_created = self.txn.open_table(JOBS_BY_CREATED)?;
            by_created.insert((micros(job.created_at), job.id.0), ())?;
        }
        self.txn
            .open_table(JOBS)?
            .insert(job.id.0, to_json(job).as_slice())?;
        self.queue_sync(job.id)
    }

    /// Jobs that have ever used this file hash.
    pub fn jobs_with_hash(&mut self, hash: &str) -> Result<Vec<Job>, StoreError> {
        let ids: Vec<u64> = {
            let by_hash = self.txn.open_multimap_table(JOBS_BY_HASH)?;
            let values = by_hash.get(hash)?;
            values
                .map(|v| Ok::<_, StoreError>(v?.value()))
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(job) = self.job(JobId(id))? {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Appends an audit event; returns it with its id. Events are never changed later.
    pub fn append_event(
        &mut self,
        job_id: Option<JobId>,
        actor: &Actor,
        draft: EventDraft,
        now: DateTime<Utc>,
    ) -> Result<Event, StoreError> {
        let event = Event {
            id: self.next_id("next_event_id")?,
            job_id,
            timestamp: now,
            event_type: draft.event_type,
            details: draft.details,
            triggered_by: actor.triggered_by(),
            workstation_id: actor.workstation(),
        };
        self.insert_event(&event)?;
        if let Some(job) = job_id {
            self.queue_sync(job)?;
        }
        Ok(event)
    }

    /// Writes an event row with its id and every index of it (new or restored events).
    pub(super) fn insert_event(&mut self, event: &Event) -> Result<(), StoreError> {
        let (job_id, now) = (event.job_id, event.timestamp);
        self.txn
            .open_table(EVENTS)?
            .insert(event.id, to_json(event).as_slice())?;
        if let Some(job) = job_id {
            self.txn
                .open_multimap_table(EVENTS_BY_JOB)?
                .insert(job.0, event.id)?;
        }
        self.txn
            .open_multimap_table(EVENTS_BY_STAFF)?
            .insert(event.triggered_by.as_str(), event.id)?;
        self.txn
            .open_multimap_table(EVENTS_BY_TYPE)?
            .insert(event.event_type.as_str(), event.id)?;
        self.txn
            .open_table(EVENTS_BY_TIME)?
            .insert((micros(now), event.id), ())?;
        Ok(())
    }

    /// Records a file version of a job and the blob it points at.
    pub fn add_file_version(
        &mut self,
        job: JobId,
        version: &FileVersion,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(FILE_VERSIONS)?
            .insert((job.0, version.version), to_json(version).as_slice())?;
        self.txn
            .open_table(BLOBS)?
            .insert(version.hash.as_str(), version.size_bytes)?;
        self.queue_sync(job)
    }

    /// Registers a blob the store now refers to (an artifact made from a file).
    pub fn register_blob(&mut self, hash: &str, size: u64) -> Result<(), StoreError> {
        self.txn.open_table(BLOBS)?.insert(hash, size)?;
        Ok(())
    }

    /// The highest file version number of a job (0 when it has none).
    pub fn last_file_version(&mut self, job: JobId) -> Result<u32, StoreError> {
        let table = self.txn.open_table(FILE_VERSIONS)?;
        let last = table.range((job.0, 0)..=(job.0, u32::MAX))?.next_back();
        Ok(match last {
            Some(row) => row?.0.value().1,
            None => 0,
        })
    }

    /// One staff member.
    pub fn staff_member(&mut self, name: &str) -> Result<Option<StaffMember>, StoreError> {
        let table = self.txn.open_table(STAFF)?;
        let value = table.get(name)?;
        value
            .map(|v| from_json("staff member", v.value()))
            .transpose()
    }

    /// Inserts or replaces a staff member.
    pub fn put_staff(&mut self, member: &StaffMember) -> Result<(), StoreError> {
        self.txn
            .open_table(STAFF)?
            .insert(member.name.as_str(), to_json(member).as_slice())?;
        Ok(())
    }

    /// Replaces the workstation records with `records` (the config is their source).
    pub fn replace_workstations(
        &mut self,
        records: &[WorkstationRecord],
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(WORKSTATIONS)?;
        table.retain(|_, _| false)?;
        for record in records {
            table.insert(record.id.as_str(), to_json(record).as_slice())?;
        }
        Ok(())
    }

    /// Stores a confirmation token under its hash, removing the job's older tokens.
    pub fn replace_confirmation(
        &mut self,
        token_sha256: &str,
        token: &ConfirmationToken,
    ) -> Result<(), StoreError> {
        self.revoke_confirmations(token.job_id)?;
        self.txn
            .open_table(CONFIRM_TOKENS)?
            .insert(token_sha256, to_json(token).as_slice())?;
        Ok(())
    }

    /// Removes every confirmation token of a job.
    pub fn revoke_confirmations(&mut self, job: JobId) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(CONFIRM_TOKENS)?;
        table.retain(|_, value| {
            from_json::<ConfirmationToken>("token", value).map_or(true, |t| t.job_id != job)
        })?;
        Ok(())
    }

    /// A confirmation token by the hash of its text.
    pub fn confirmation(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<ConfirmationToken>, StoreError> {
        let table = self.txn.open_table(CONFIRM_TOKENS)?;
        let value = table.get(token_sha256)?;
        value.map(|v| from_json("token", v.value())).transpose()
    }

    /// Inserts or replaces an outbox mail, keeping the pending index right.
    pub fn put_mail(&mut self, mail: &OutboxMail) -> Result<(), StoreError> {
        self.txn
            .open_table(MAIL_OUTBOX)?
            .insert(mail.id, to_json(mail).as_slice())?;
        let mut pending = self.txn.open_table(MAIL_PENDING)?;
        if mail.sent_at.is_none() && mail.failed_at.is_none() {
            pending.insert(mail.id, ())?;
        } else {
            pending.remove(mail.id)?;
        }
        Ok(())
    }

    /// One outbox mail.
    pub fn mail(&mut self, id: u64) -> Result<Option<OutboxMail>, StoreError> {
        let table = self.txn.open_table(MAIL_OUTBOX)?;
        let value = table.get(id)?;
        value.map(|v| from_json("mail", v.value())).transpose()
    }

    /// The stored state of a printer (idle when never seen).
    pub fn printer(&mut self, id: &str) -> Result<PrinterRecord, StoreError> {
        let table = self.txn.open_table(PRINTERS)?;
        let value = table.get(id)?;
        Ok(value
            .map(|v| from_json("printer", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Stores a printer's state.
    pub fn put_printer(&mut self, id: &str, record: &PrinterRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(PRINTERS)?
            .insert(id, to_json(record).as_slice())?;
        Ok(())
    }

    /// Inserts or replaces a processing task.
    pub fn put_task(&mut self, task: &Task) -> Result<(), StoreError> {
        self.txn
            .open_table(TASKS)?
            .insert(task.id, to_json(task).as_slice())?;
        Ok(())
    }

    /// Removes a finished task (finished tasks are not kept; failed ones are).
    pub fn remove_task(&mut self, id: u64) -> Result<(), StoreError> {
        self.txn.open_table(TASKS)?.remove(id)?;
        Ok(())
    }

    /// One task.
    pub fn task(&mut self, id: u64) -> Result<Option<Task>, StoreError> {
        let table = self.txn.open_table(TASKS)?;
        let value = table.get(id)?;
        value.map(|v| from_json("task", v.value())).transpose()
    }

    /// Every task still in the table (queued, running or failed), by id.
    pub fn tasks(&mut self) -> Result<Vec<Task>, StoreError> {
        let table = self.txn.open_table(TASKS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json("task", row?.1.value())?);
        }
        Ok(out)
    }
}
