//! Student e-mail: composing messages into the durable outbox, and the worker that
//! delivers them.
//!
//! A mail is rendered and queued in the *same* store transaction as the change that
//! causes it (see [`crate::workflow`]), so a committed approval always has its
//! confirmation mail waiting. The [`run_outbox`] worker delivers queued mail and marks it
//! sent together with an `EmailSent` event. Delivery is idempotent: the file name and the
//! `Message-ID` come from the outbox id, so a retry after a crash between "delivered" and
//! "marked" rewrites the same file instead of making a second one.
//!
//! With no SMTP server configured, "delivery" writes an RFC 5322 `.eml` file into
//! `data_dir/outbox/` (temp file, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::{Actor, EventDraft, EventType, Job};
use crate::store::{OutboxMail, Store, StoreError};

/// Why a mail could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the {template} mail template failed: {source}")]
    Template {
        template: &'static str,
        source: minijinja::Error,
    },
    #[error("bad e-mail address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("the mail could not be built: {0}")]
    Build(String),
}

/// The kinds of mail students receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Confirmation,
    Rejection,
    Pickup,
}

impl MailKind {
    fn name(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Rejection => "rejection",
            MailKind::Pickup => "pickup",
        }
    }

    fn template(self) -> &'static str {
        match self {
            MailKind::Confirmation => "mail/confirmation.txt",
            MailKind::Rejection => "mail/rejection.txt",
            MailKind::Pickup => "mail/pickup.txt",
        }
    }

    fn subject(self, job: &Job) -> String {
        match self {
            MailKind::Confirmation => format!("Please confirm your 3D print (job {})", job.id),
            MailKind::Rejection => format!("Your 3D print cannot be printed (job {})", job.id),
            MailKind::Pickup => format!("Your 3D print is ready for pickup (job {})", job.id),
        }
    }
}

/// Renders mails from the embedded templates.
pub struct Composer {
    templates: minijinja::Environment<'static>,
    from: String,
    public_url: String,
    lab: String,
    host: String,
}

/// Extra values a confirmation mail needs.
pub struct ConfirmationLink<'a> {
    pub token: &'a str,
    pub expires: DateTime<Utc>,
}

impl Composer {
    /// A composer sending as `from`, with links under `public_url`.
    pub fn new(from: &str, public_url: &str) -> Result<Composer, MailError> {
        let mailbox: Mailbox = from.parse().map_err(|e| MailError::Address {
            address: from.into(),
            reason: format!("{e}"),
        })?;
        let lab = mailbox.name.clone().unwrap_or_else(|| "The Fab Lab".into());
        let host = mailbox.email.domain().to_string();
        Ok(Composer {
            templates: crate::pages::environment(),
            from: from.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            lab,
            host,
        })
    }

    /// The link a student follows to confirm.
    pub fn confirm_url(&self, token: &str) -> String {
        format!("{}/confirm/{token}", self.public_url)
    }

    /// Renders a mail about `job` into an outbox row with id `id`.
    pub fn compose(
        &self,
        id: u64,
        kind: MailKind,
        job: &Job,
        link: Option<ConfirmationLink<'_>>,
        now: DateTime<Utc>,
    ) -> Result<OutboxMail, MailError> {
        let context = json!({
            "job": job,
            "lab": self.lab,
            "cost": format!("{:.2}", job.cost_usd.unwrap_or_default()),
            "time": describe_hours(job.time_hours),
            "link": link.as_ref().map(|l| self.confirm_url(l.token)),
            "expires": link.as_ref().map(|l| l.expires.format("%A %e %B %Y, %H:%M UTC").to_string()),
        });
        let template = kind.template();
        let text = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(&context))
            .map_err(|source| MailError::Template { template, source })?;
        let subject = kind.subject(job);
        let message_id = format!("<farmhand-mail-{id}-job-{}@{}>", job.id, self.host);
        let eml = self.build(&job.student_email, &subject, &message_id, text, now)?;
        Ok(OutboxMail {
            id,
            job_id: Some(job.id),
            kind: kind.name().into(),
            to: job.student_email.clone(),
            subject,
            message_id,
            eml,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
        })
    }

    fn build(
        &self,
        to: &str,
        subject: &str,
        message_id: &str,
        text: String,
        now: DateTime<Utc>,
    ) -> Result<String, MailError> {
        let address = |a: &str| -> Result<Mailbox, MailError> {
            a.parse().map_err(|e| MailError::Address {
                address: a.into(),
                reason: format!("{e}"),
            })
        };
        // 8bit keeps every line, links included, exactly as written: lettre's own
        // chooser would switch to quoted-printable past 76 characters and put soft
        // breaks inside the confirmation URL. RFC 5322 allows 998 octets a line.
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        if crlf.split("\r\n").any(|line| line.len() > 998) {
            return Err(MailError::Build(
                "a line of the mail is longer than 998 bytes".into(),
            ));
        }
        let body =
            Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit);
        let message = lettre::Message::builder()
            .from(address(&self.from)?)
            .to(address(to)?)
            .subject(subject)
            .message_id(Some(message_id.to_string()))
            .date(now.into())
            .header(lettre::message::header::MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        Ok(String::from_utf8_lossy(&message.formatted()).into_owned())
    }
}

fn describe_hours(hours: Option<f64>) -> String {
    match hours {
        Some(h) if h.is_finite() && h >= 0.0 => {
            let minutes = (h * 60.0).round() as u64;
            format!("{} h {:02} min", minutes / 60, minutes % 60)
        }
        _ => "to be estimated".into(),
    }
}

/// Where delivered mail goes while no SMTP server is configured.
pub fn outbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox")
}

/// Writes the mail as `outbox/{id}-{kind}.eml`: temp file, fsync, rename.
fn deliver_to_folder(dir: &Path, mail: &OutboxMail) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{:06}-{}-job{}.eml", mail.id, mail.kind, job_label(mail));
    let dest = dir.join(&name);
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(mail.eml.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &dest)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(dest)
}

fn job_label(mail: &OutboxMail) -> String {
    mail.job_id.map(|j| j.to_string()).unwrap_or_default()
}

/// Back-off after `attempts` failures: 1 s, 2 s, 4 s … capped at one hour.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(12)).min(Duration::from_secs(3600))
}

/// Delivers queued mail until `shutdown`, woken by `wakeup` after each commit that
/// queues mail and at least every few seconds for retries.
pub async fn run_outbox(store: Store, wakeup: Arc<Notify>, shutdown: CancellationToken) {
    let dir = outbox_dir(store.data_dir());
    loop {
        let next_due = {
            let store = store.clone();
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || deliver_due(&store, &dir, Utc::now()))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!("mail worker task failed: {e}");
                    None
                })
        };
        let wait = next_due.map_or(Duration::from_secs(5), |due| {
            (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_secs(5))
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivers every mail that is due; returns when the next retry is due.
fn deliver_due(store: &Store, dir: &Path, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let pending = match store.pending_mail() {
        Ok(pending) => pending,
        Err(e) => {
            tracing::error!("cannot read the mail outbox: {e}");
            return None;
        }
    };
    let mut next_due: Option<DateTime<Utc>> = None;
    for mail in pending {
        if mail.next_attempt_at > now {
            next_due = Some(next_due.map_or(mail.next_attempt_at, |d| d.min(mail.next_attempt_at)));
            continue;
        }
        let outcome = deliver_to_folder(dir, &mail).map_err(|e| e.to_string());
        if let Err(e) = record_delivery(store, mail.id, outcome, Utc::now()) {
            tracing::error!(mail = mail.id, "cannot record mail delivery: {e}");
        }
    }
    next_due
}

/// Marks a mail sent (with its `EmailSent` event) or schedules its retry.
fn record_delivery(
    store: &Store,
    id: u64,
    outcome: Result<PathBuf, String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.write(|ctx| {
        let Some(mut mail) = ctx.mail(id)? else {
            return Ok(());
        };
        if mail.sent_at.is_some() {
            return Ok(());
        }
        match outcome {
            Ok(path) => {
                mail.sent_at = Some(now);
                mail.last_error = None;
                let details = json!({
                    "kind": mail.kind, "to": mail.to, "subject": mail.subject,
                    "message_id": mail.message_id, "delivered_to": path.display().to_string(),
                });
                let draft = EventDraft {
                    event_type: EventType::EmailSent,
                    details,
                };
                ctx.append_event(
                    mail.job_id,
                    &Actor::System { component: "mail" },
                    draft,
                    now,
                )?;
            }
            Err(error) => {
                mail.attempts += 1;
                let delay = chrono::Duration::from_std(backoff(mail.attempts)).unwrap_or_default();
                mail.next_attempt_at = now + delay;
                tracing::warn!(
                    mail = id,
                    attempts = mail.attempts,
                    "mail delivery failed: {error}"
                );
                mail.last_error = Some(error);
            }
        }
        ctx.put_mail(&mail)
    })
}
