//! Student e-mail: composing messages into the durable outbox, and the worker that
//! delivers them.
//!
//! - [`compose`]: templates → a complete multipart message, rendered when the mail is
//!   caused (it says what was true then).
//! - [`templates`]: the built-in templates and the lab's replacements.
//! - [`transport`]: where mail goes: an SMTP server (lettre, rustls) or `.eml` files.
//! - [`outbox`]: the worker that delivers queued mail with exponential back-off.
//!
//! A mail is queued in the *same* store transaction as the change that causes it (see
//! [`crate::workflow`]), so a committed approval always has its confirmation mail
//! waiting. The worker marks it sent together with an `EmailSent` event. The
//! `Message-ID` (and the `.eml` file name) come from the outbox id and are fixed when
//! the mail is composed, so a retry after a crash between "delivered" and "marked" is
//! the very same message: a folder delivery rewrites the same file, and an SMTP
//! receiver sees the same `Message-ID` (the worker also notes such a redelivery on
//! its `EmailSent` event).

pub mod compose;
pub mod outbox;
pub mod templates;
pub mod transport;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use compose::{Composer, ConfirmationLink, Extras};
pub use outbox::run_outbox;
pub use transport::Transport;

use crate::model::Job;

/// Why a mail could not be composed, or the mail settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the {template} mail template failed: {source}")]
    Template {
        template: String,
        source: minijinja::Error,
    },
    #[error("the mail template {path} cannot be used: {reason}")]
    TemplateFile { path: String, reason: String },
    #[error("bad e-mail address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("the mail could not be built: {0}")]
    Build(String),
    #[error("the SMTP settings cannot be used: {0}")]
    Smtp(String),
}

/// The kinds of mail students receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Confirmation,
    Rejection,
    Pickup,
    ConfirmationExpired,
    PickupReminder,
}

impl MailKind {
    /// The name in the outbox, in `.eml` file names and of the templates.
    pub fn name(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Rejection => "rejection",
            MailKind::Pickup => "pickup",
            MailKind::ConfirmationExpired => "expired",
            MailKind::PickupReminder => "reminder",
        }
    }

    fn subject(self, job: &Job) -> String {
        match self {
            MailKind::Confirmation => format!("Please confirm your 3D print (job {})", job.id),
            MailKind::Rejection => format!("Your 3D print cannot be printed (job {})", job.id),
            MailKind::Pickup => format!("Your 3D print is ready for pickup (job {})", job.id),
            MailKind::ConfirmationExpired => {
                format!("Your confirmation link has expired (job {})", job.id)
            }
            MailKind::PickupReminder => {
                format!(
                    "Reminder: your 3D print is waiting for you (job {})",
                    job.id
                )
            }
        }
    }
}

/// Where delivered mail goes while no SMTP server is configured.
pub fn outbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox")
}

/// Back-off after `attempts` failures: 1 s, 2 s, 4 s … capped at one hour.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(12)).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let delays: Vec<u64> = (0..14).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(&delays[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(delays[13], 3600);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }
}
