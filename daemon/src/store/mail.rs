//! Store operations for student mail and its timers: listing the outbox, confirmation
//! tokens by expiry, pickup reminders, the status-link secret and queue positions.

use chrono::{DateTime, Utc};
use rand::RngCore;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{ConfirmationToken, OutboxMail, Store, StoreError, WriteCtx, from_json, to_json};
use crate::model::{JobId, Status};

/// Where a mail is, as the kiosk shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailState {
    Queued,
    Sent,
    Failed,
}

impl MailState {
    pub fn of(mail: &OutboxMail) -> MailState {
        match (mail.sent_at, mail.failed_at) {
            (Some(_), _) => MailState::Sent,
            (None, Some(_)) => MailState::Failed,
            (None, None) => MailState::Queued,
        }
    }
}

/// Filters for listing the outbox, newest first.
#[derive(Debug, Clone, Default)]
pub struct MailQuery {
    pub state: Option<MailState>,
    pub job: Option<JobId>,
    pub limit: usize,
    /// Only mails with a smaller id (the `next_cursor` of the previous page).
    pub before: Option<u64>,
}

/// The next "your print is still waiting" mail of a completed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickupReminder {
    pub due_at: DateTime<Utc>,
    /// Reminders sent so far.
    pub sent: u32,
}

/// Fills the pending-mail index once for a store written before it existed.
pub(super) fn index_pending_mail(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    if meta.get("mail_pending_indexed")?.is_some() {
        return Ok(());
    }
    let outbox = txn.open_table(MAIL_OUTBOX)?;
    let mut pending = txn.open_table(MAIL_PENDING)?;
    for row in outbox.iter()? {
        let (id, value) = row?;
        let mail: OutboxMail = from_json("mail", value.value())?;
        if mail.sent_at.is_none() && mail.failed_at.is_none() {
            pending.insert(id.value(), ())?;
        }
    }
    meta.insert("mail_pending_indexed", 1)?;
    Ok(())
}

impl Store {
    /// The outbox, newest first, and the cursor of the next page.
    pub fn list_mail(
        &self,
        query: &MailQuery,
    ) -> Result<(Vec<OutboxMail>, Option<u64>), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MAIL_OUTBOX)?;
        let mut out: Vec<OutboxMail> = Vec::new();
        for row in table.range(..query.before.unwrap_or(u64::MAX))?.rev() {
            let mail: OutboxMail = from_json("mail", row?.1.value())?;
            if query.state.is_some_and(|s| s != MailState::of(&mail))
                || query.job.is_some_and(|j| mail.job_id != Some(j))
            {
                continue;
            }
            if out.len() == query.limit {
                let cursor = out.last().map(|m| m.id);
                return Ok((out, cursor));
            }
            out.push(mail);
        }
        Ok((out, None))
    }

    /// One outbox mail.
    pub fn mail(&self, id: u64) -> Result<Option<OutboxMail>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MAIL_OUTBOX)?;
        let value = table.get(id)?;
        value.map(|v| from_json("mail", v.value())).transpose()
    }

    /// A 256-bit secret made once for this store under `name` (and kept in it, so links
    /// made with it keep working across restarts and restores).
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(SECRETS)?;
            if let Some(value) = table.get(name)?
                && let Ok(secret) = <[u8; 32]>::try_from(value.value())
            {
                return Ok(secret);
            }
        }
        self.write(|ctx| {
            let mut table = ctx.txn.open_table(SECRETS)?;
            if let Some(value) = table.get(name)?
                && let Ok(secret) = <[u8; 32]>::try_from(value.value())
            {
                return Ok(secret);
            }
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            table.insert(name, secret.as_slice())?;
            Ok(secret)
        })
    }

    /// A confirmation token by the hash of its text (read-only).
    pub fn confirmation(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ConfirmationToken>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONFIRM_TOKENS)?;
        let value = table.get(token_sha256)?;
        value.map(|v| from_json("token", v.value())).transpose()
    }

    /// Every live confirmation token (read-only, for the expiry timer).
    pub fn confirmation_tokens(&self) -> Result<Vec<(String, ConfirmationToken)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONFIRM_TOKENS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (hash, value) = row?;
            out.push((hash.value().to_string(), from_json("token", value.value())?));
        }
        Ok(out)
    }

    /// Every scheduled pickup reminder (read-only, for the reminder timer).
    pub fn pickup_reminders(&self) -> Result<Vec<(JobId, PickupReminder)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PICKUP_REMINDERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (job, value) = row?;
            out.push((JobId(job.value()), from_json("reminder", value.value())?));
        }
        Ok(out)
    }

    /// The 1-based place of a READYTOPRINT job in the queue (oldest job first).
    pub fn queue_position(&self, job: JobId) -> Result<Option<usize>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(JOBS_BY_STATUS)?;
        let key = Status::ReadyToPrint.index_key();
        if index.get((key, job.0))?.is_none() {
            return Ok(None);
        }
        let ahead = index.range((key, 0)..(key, job.0))?.count();
        Ok(Some(ahead + 1))
    }
}

impl WriteCtx {
    /// Removes one confirmation token.
    pub fn remove_confirmation(&mut self, token_sha256: &str) -> Result<(), StoreError> {
        self.txn.open_table(CONFIRM_TOKENS)?.remove(token_sha256)?;
        Ok(())
    }

    /// A job's scheduled pickup reminder.
    pub fn pickup_reminder(&mut self, job: JobId) -> Result<Option<PickupReminder>, StoreError> {
        let table = self.txn.open_table(PICKUP_REMINDERS)?;
        let value = table.get(job.0)?;
        value.map(|v| from_json("reminder", v.value())).transpose()
    }

    /// Schedules (or reschedules) a job's next pickup reminder.
    pub fn put_pickup_reminder(
        &mut self,
        job: JobId,
        reminder: &PickupReminder,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(PICKUP_REMINDERS)?
            .insert(job.0, to_json(reminder).as_slice())?;
        Ok(())
    }

    /// Forgets a job's pickup reminder.
    pub fn remove_pickup_reminder(&mut self, job: JobId) -> Result<(), StoreError> {
        self.txn.open_table(PICKUP_REMINDERS)?.remove(job.0)?;
        Ok(())
    }
}
