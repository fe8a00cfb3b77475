//! The delivery worker: takes due mail from the outbox, hands it to the [`Transport`],
//! and records the outcome in one transaction each.
//!
//! Before an attempt the mail is marked `in_flight_since`; the outcome clears it. A
//! mail found still in flight was being sent when the process died, so the receiver
//! may already have it: it is sent again (nothing is lost) with the same `Message-ID`,
//! and its `EmailSent` event says `"redelivery": true`.
//!
//! A failed attempt is retried after 2 s, 4 s, 8 s … (at most an hour between tries),
//! for as long as it takes. A mail the server refuses outright (5xx) three times in a
//! row is marked failed and shown as such in `GET /api/v1/mail`, where staff can
//! queue it again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::transport::{DeliveryError, Transport};
use crate::model::{Actor, EventDraft, EventType};
use crate::store::{OutboxMail, Store, StoreError};

/// A mail refused for good this many times in a row is marked failed.
const PERMANENT_FAILURES_TO_GIVE_UP: u32 = 3;

/// The longest the worker sleeps without looking at the outbox.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Delivers queued mail until `shutdown`, woken by `wakeup` after each commit that
/// queues mail and at least every few seconds for retries.
pub async fn run_outbox(
    store: Store,
    transport: Arc<Transport>,
    wakeup: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let next_due = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = deliver_due(&store, &transport, Utc::now()) => next,
        };
        let wait = next_due.map_or(IDLE_POLL, |due| {
            (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(IDLE_POLL)
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Delivers every mail that is due; returns when the next retry is due.
async fn deliver_due(
    store: &Store,
    transport: &Transport,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let pending = {
        let store = store.clone();
        blocking(move || store.pending_mail()).await
    };
    let pending = match pending {
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
        let redelivery = mail.in_flight_since.is_some();
        if redelivery {
            tracing::warn!(
                mail = mail.id,
                message_id = mail.message_id,
                "mail was being sent when Farmhand stopped; sending it again with the same Message-ID"
            );
        }
        let id = mail.id;
        let started = {
            let store = store.clone();
            blocking(move || mark_in_flight(&store, id, Utc::now())).await
        };
        if let Err(e) = started {
            tracing::error!(mail = id, "cannot mark mail as being sent: {e}");
            continue;
        }
        let outcome = transport.deliver(&mail).await;
        let store = store.clone();
        let recorded =
            blocking(move || record_delivery(&store, id, outcome, redelivery, Utc::now())).await;
        if let Err(e) = recorded {
            tracing::error!(mail = id, "cannot record mail delivery: {e}");
        }
    }
    next_due
}

fn mark_in_flight(store: &Store, id: u64, now: DateTime<Utc>) -> Result<(), StoreError> {
    store.write(|ctx| {
        let Some(mut mail) = ctx.mail(id)? else {
            return Ok(());
        };
        mail.in_flight_since.get_or_insert(now);
        ctx.put_mail(&mail)
    })
}

/// Marks a mail sent (with its `EmailSent` event) or schedules its retry.
fn record_delivery(
    store: &Store,
    id: u64,
    outcome: Result<String, DeliveryError>,
    redelivery: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.write(|ctx| {
        let Some(mut mail) = ctx.mail(id)? else {
            return Ok(());
        };
        if mail.sent_at.is_some() {
            return Ok(());
        }
        mail.in_flight_since = None;
        match outcome {
            Ok(delivered_to) => {
                mail.sent_at = Some(now);
                mail.last_error = None;
                let details = json!({
                    "mail_id": mail.id, "kind": mail.kind, "to": mail.to, "subject": mail.subject,
                    "message_id": mail.message_id, "delivered_to": delivered_to,
                    "attempts": mail.attempts + 1, "redelivery": redelivery,
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
            Err(error) => schedule_retry(&mut mail, error, now),
        }
        ctx.put_mail(&mail)
    })
}

fn schedule_retry(mail: &mut OutboxMail, error: DeliveryError, now: DateTime<Utc>) {
    mail.attempts += 1;
    if let DeliveryError::Permanent(_) = error {
        mail.permanent_failures += 1;
    } else {
        mail.permanent_failures = 0;
    }
    if mail.permanent_failures >= PERMANENT_FAILURES_TO_GIVE_UP {
        mail.failed_at = Some(now);
        tracing::error!(
            mail = mail.id,
            to = mail.to,
            "mail refused for good: {error}"
        );
    } else {
        let delay = chrono::Duration::from_std(backoff(mail.attempts)).unwrap_or_default();
        mail.next_attempt_at = now + delay;
        tracing::warn!(
            mail = mail.id,
            attempts = mail.attempts,
            "mail delivery failed, retrying in {}s: {error}",
            delay.num_seconds()
        );
    }
    mail.last_error = Some(error.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutboxMail {
        let now = Utc::now();
        OutboxMail {
            id: 1,
            job_id: None,
            kind: "confirmation".into(),
            to: "a@example.edu".into(),
            subject: "s".into(),
            message_id: "<m@x>".into(),
            eml: String::new(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            failed_at: None,
            in_flight_since: None,
            permanent_failures: 0,
        }
    }

    /// A crash between "sent" and "marked" leaves the mail in flight: the next worker
    /// pass sends the same message again and says so on its `EmailSent` event.
    #[tokio::test]
    async fn a_mail_left_in_flight_by_a_crash_is_redelivered_and_flagged() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let mut queued = mail();
        queued.eml = "Message-ID: <m@x>\r\n\r\nhello\r\n".into();
        store.write(|ctx| ctx.put_mail(&queued)).expect("queue");
        mark_in_flight(&store, 1, Utc::now()).expect("in flight");
        // (the process dies here, before any outcome is recorded)
        let outbox = dir.path().join("outbox");
        let transport = Transport::Folder(outbox.clone());
        assert_eq!(deliver_due(&store, &transport, Utc::now()).await, None);
        let sent = store.mail(1).expect("read").expect("mail");
        assert!(
            sent.sent_at.is_some() && sent.in_flight_since.is_none(),
            "{sent:?}"
        );
        let query = crate::store::EventQuery {
            event_type: Some("EmailSent".into()),
            limit: 10,
            ..Default::default()
        };
        let (events, _) = store.events(&query).expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].details["redelivery"], true);
        assert_eq!(events[0].details["message_id"], "<m@x>");
        let files: Vec<_> = std::fs::read_dir(&outbox).expect("outbox").collect();
        assert_eq!(files.len(), 1, "one file, whatever the attempts");
        // A second pass finds nothing to do.
        assert_eq!(deliver_due(&store, &transport, Utc::now()).await, None);
        assert_eq!(store.events(&query).expect("events").0.len(), 1);
    }

    #[test]
    fn transient_failures_back_off_and_never_give_up() {
        let mut m = mail();
        let now = Utc::now();
        for attempt in 1..=20 {
            schedule_retry(&mut m, DeliveryError::Transient("down".into()), now);
            assert_eq!(m.attempts, attempt);
            assert!(m.failed_at.is_none());
        }
        assert_eq!(m.next_attempt_at - now, chrono::Duration::hours(1));
        assert_eq!(m.last_error.as_deref(), Some("down"));
    }

    #[test]
    fn three_refusals_in_a_row_mark_the_mail_failed() {
        let mut m = mail();
        let now = Utc::now();
        schedule_retry(&mut m, DeliveryError::Permanent("550".into()), now);
        schedule_retry(&mut m, DeliveryError::Transient("down".into()), now);
        schedule_retry(&mut m, DeliveryError::Permanent("550".into()), now);
        schedule_retry(&mut m, DeliveryError::Permanent("550".into()), now);
        assert!(m.failed_at.is_none(), "the refusals were not in a row");
        schedule_retry(&mut m, DeliveryError::Permanent("550".into()), now);
        assert_eq!(m.failed_at, Some(now));
    }
}
