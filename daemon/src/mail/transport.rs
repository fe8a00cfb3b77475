//! Where mail goes: an SMTP server, or `.eml` files in `data_dir/outbox/`.
//!
//! SMTP is lettre's async transport over rustls (no OpenSSL). The URL decides the
//! security: `smtp://host:port` plain (for a relay on localhost), `smtp://…?tls=required`
//! STARTTLS that must succeed, `?tls=opportunistic` STARTTLS when offered, and
//! `smtps://` implicit TLS. `ca_file` adds a campus CA to the public web roots.
//! The message sent is the outbox row's pre-built text, byte for byte, so the
//! `Message-ID` is the same on every attempt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::MailError;
use crate::config::EmailConfig;
use crate::store::OutboxMail;

/// One SMTP conversation may take this long before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: the server is down, busy or answered 4xx.
    #[error("{0}")]
    Transient(String),
    /// The server refused this mail for good (5xx, e.g. no such mailbox).
    #[error("{0}")]
    Permanent(String),
}

/// A configured way of delivering mail.
pub enum Transport {
    Folder(PathBuf),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        sender: Address,
        /// The URL without its password, for logs and events.
        describe: String,
    },
}

impl Transport {
    /// The transport the `[email]` settings ask for.
    pub fn from_config(email: &EmailConfig, data_dir: &Path) -> Result<Transport, MailError> {
        let Some(url) = &email.smtp_url else {
            return Ok(Transport::Folder(super::outbox_dir(data_dir)));
        };
        let smtp = |e: lettre::transport::smtp::Error| MailError::Smtp(e.to_string());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(smtp)?;
        if let Some(ca_file) = &email.ca_file {
            let parsed = url::Url::parse(url).map_err(|e| MailError::Smtp(e.to_string()))?;
            let host = parsed.host_str().unwrap_or_default().to_string();
            let pem = std::fs::read(ca_file).map_err(|e| {
                MailError::Smtp(format!("cannot read ca_file {}: {e}", ca_file.display()))
            })?;
            let params = TlsParameters::builder(host)
                .add_root_certificate(Certificate::from_pem(&pem).map_err(smtp)?)
                .build_rustls()
                .map_err(smtp)?;
            let tls_mode = parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            builder = match (parsed.scheme(), tls_mode.as_deref()) {
                ("smtps", _) => builder.tls(Tls::Wrapper(params)),
                (_, Some("required")) => builder.tls(Tls::Required(params)),
                (_, Some("opportunistic")) => builder.tls(Tls::Opportunistic(params)),
                _ => builder,
            };
        }
        let password = email.resolve_password().map_err(MailError::Smtp)?;
        if let (Some(user), Some(password)) = (&email.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: lettre::message::Mailbox =
            email.from.parse().map_err(|e| MailError::Address {
                address: email.from.clone(),
                reason: format!("{e}"),
            })?;
        Ok(Transport::Smtp {
            transport: builder.timeout(Some(SMTP_TIMEOUT)).build(),
            sender: from.email,
            describe: email.smtp_redacted(),
        })
    }

    /// Delivers one mail; says where it went.
    pub async fn deliver(&self, mail: &OutboxMail) -> Result<String, DeliveryError> {
        match self {
            Transport::Folder(dir) => {
                let dir = dir.clone();
                let mail = mail.clone();
                tokio::task::spawn_blocking(move || deliver_to_folder(&dir, &mail))
                    .await
                    .map_err(|e| DeliveryError::Transient(e.to_string()))?
                    .map(|path| path.display().to_string())
                    .map_err(|e| DeliveryError::Transient(e.to_string()))
            }
            Transport::Smtp {
                transport,
                sender,
                describe,
            } => {
                let to: Address = mail.to.parse().map_err(|e| {
                    DeliveryError::Permanent(format!("bad recipient {:?}: {e}", mail.to))
                })?;
                let envelope = Envelope::new(Some(sender.clone()), vec![to])
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                match transport.send_raw(&envelope, mail.eml.as_bytes()).await {
                    Ok(_) => Ok(describe.clone()),
                    Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!(
                        "{describe} refused the mail: {e}"
                    ))),
                    Err(e) => Err(DeliveryError::Transient(format!("{describe}: {e}"))),
                }
            }
        }
    }
}

/// Writes the mail as `outbox/{id}-{kind}-job{job}.eml`: temp file, fsync, rename.
fn deliver_to_folder(dir: &Path, mail: &OutboxMail) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let job = mail.job_id.map(|j| j.to_string()).unwrap_or_default();
    let name = format!("{:06}-{}-job{job}.eml", mail.id, mail.kind);
    let dest = dir.join(&name);
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(mail.eml.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &dest)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(dest)
}
