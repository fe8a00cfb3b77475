//! The workflow's mail timers and helpers: expiring confirmation links, pickup
//! reminders, re-queueing a failed mail, and the thumbnail a confirmation mail shows.
//!
//! The timers live in the store (a token's `expires_at`, a reminder's `due_at`), not
//! in memory, so a restart neither loses nor repeats them: [`run_timers`] reads what is
//! due and handles each item in its own transaction, re-checking it there.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{Workflow, WorkflowError};
use crate::lifecycle::Action;
use crate::mail::{Extras, MailKind};
use crate::model::{Actor, Job, JobId, Status};
use crate::store::PickupReminder;

/// The timers look at the store at least this often (a read; writes only when due).
const TIMER_POLL: Duration = Duration::from_secs(1);

/// Thumbnails larger than this are left out of mails.
const MAX_THUMBNAIL_BYTES: u64 = 512 * 1024;

const TIMER: Actor = Actor::System { component: "timer" };

impl Workflow {
    /// The job's thumbnail PNG, when one was made and is small enough for a mail.
    pub(super) fn thumbnail(&self, job: &Job) -> Option<Vec<u8>> {
        let hash = job.artifacts.get("thumbnail.png")?;
        let path = self.store.blobs().path(hash);
        let size = std::fs::metadata(&path).ok()?.len();
        (size <= MAX_THUMBNAIL_BYTES)
            .then(|| std::fs::read(&path).ok())
            .flatten()
    }

    /// Expires lapsed confirmation links and sends due pickup reminders. Returns when
    /// the next timer is due.
    pub fn run_timers(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, WorkflowError> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut later =
            |at: DateTime<Utc>| next = Some(next.map_or(at, |n: DateTime<Utc>| n.min(at)));
        let mut queued = false;
        for (hash, token) in self.store.confirmation_tokens()? {
            if token.expires_at > now {
                later(token.expires_at);
                continue;
            }
            queued |= self.expire(&hash, now)?;
        }
        for (job, reminder) in self.store.pickup_reminders()? {
            if reminder.due_at > now {
                later(reminder.due_at);
                continue;
            }
            queued |= self.remind(job, now)?;
        }
        if queued {
            self.mail_wakeup.notify_one();
        }
        Ok(next)
    }

    /// One lapsed link: `ConfirmationExpired` and its mail; the job stays PENDING.
    fn expire(&self, hash: &str, now: DateTime<Utc>) -> Result<bool, WorkflowError> {
        self.store.write(|ctx| {
            let Some(token) = ctx.confirmation(hash)? else {
                return Ok(false); // confirmed or resent meanwhile
            };
            if token.expires_at > now {
                return Ok(false);
            }
            match ctx.job(token.job_id)? {
                Some(job) if job.status == Status::Pending => {
                    let action = Action::ExpireConfirmation;
                    self.commit_action(ctx, &job, &action, &TIMER, now)?;
                    Ok(true)
                }
                _ => {
                    ctx.remove_confirmation(hash)?;
                    Ok(false)
                }
            }
        })
    }

    /// One due reminder: the mail while the print is still uncollected, then the next
    /// one scheduled (or none after the last).
    fn remind(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, WorkflowError> {
        let email = self.config.email();
        self.store.write(|ctx| {
            let Some(reminder) = ctx.pickup_reminder(id)? else {
                return Ok(false);
            };
            if reminder.due_at > now {
                return Ok(false);
            }
            let job = ctx.job(id)?.filter(|j| j.status == Status::Completed);
            let Some(job) = job else {
                ctx.remove_pickup_reminder(id)?;
                return Ok(false);
            };
            self.queue_mail(ctx, MailKind::PickupReminder, &job, Extras::default(), now)?;
            let sent = reminder.sent + 1;
            match email.reminder_interval() {
                Some(interval) if sent < email.pickup_reminders_max => {
                    let next = PickupReminder {
                        due_at: now + interval,
                        sent,
                    };
                    ctx.put_pickup_reminder(id, &next)?;
                }
                _ => ctx.remove_pickup_reminder(id)?,
            }
            Ok(true)
        })
    }

    /// Queues a failed mail again (staff fixed the address or the server).
    pub fn retry_mail(&self, id: u64, now: DateTime<Utc>) -> Result<(), WorkflowError> {
        self.store.write(|ctx| {
            let mut mail = ctx
                .mail(id)?
                .ok_or_else(|| WorkflowError::NotFound(format!("there is no mail {id}")))?;
            if mail.sent_at.is_some() {
                return Err(WorkflowError::Conflict {
                    code: "already_sent",
                    message: format!("mail {id} was sent already"),
                });
            }
            mail.failed_at = None;
            mail.permanent_failures = 0;
            mail.next_attempt_at = now;
            ctx.put_mail(&mail)?;
            Ok(())
        })?;
        self.mail_wakeup.notify_one();
        Ok(())
    }
}

/// Runs [`Workflow::run_timers`] until `shutdown`.
pub async fn run(workflow: Workflow, shutdown: CancellationToken) {
    loop {
        let w = workflow.clone();
        let next = tokio::task::spawn_blocking(move || w.run_timers(Utc::now())).await;
        let next = match next {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                tracing::error!("mail timers failed: {e}");
                None
            }
            Err(e) => {
                tracing::error!("mail timers task failed: {e}");
                None
            }
        };
        let wait = next.map_or(TIMER_POLL, |due| {
            (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(TIMER_POLL)
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
