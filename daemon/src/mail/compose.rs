//! Composing a student mail: templates → a complete RFC 5322 message in an outbox row.
//!
//! Every mail is `multipart/alternative` with a plain-text part first and an HTML part
//! second (wrapped in `multipart/related` with the job's thumbnail when one was made).
//! The plain part is pre-encoded as 8bit so its lines, the confirmation link above all,
//! arrive exactly as written: lettre's own encoder would switch to quoted-printable past
//! 76 characters and put soft line breaks inside the URL. RFC 5322 allows 998 octets a
//! line; a plain text with a longer line (a very long rejection reason) falls back to
//! lettre's encoder rather than failing the staff action that caused the mail.

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use serde_json::json;

use super::templates::Templates;
use super::{MailError, MailKind};
use crate::config::EmailConfig;
use crate::model::Job;
use crate::status_link::StatusLinks;
use crate::store::OutboxMail;

/// The `Content-ID` of the inline thumbnail in HTML mails.
const THUMBNAIL_CID: &str = "thumbnail";

/// Renders mails from the (possibly overridden) templates.
pub struct Composer {
    templates: Templates,
    from: Mailbox,
    public_url: String,
    lab: String,
    opening_hours: Option<String>,
    host: String,
    status: StatusLinks,
}

/// Extra values a confirmation mail needs.
pub struct ConfirmationLink<'a> {
    pub token: &'a str,
    pub expires: DateTime<Utc>,
}

/// What a mail may carry beyond the job itself.
#[derive(Default)]
pub struct Extras<'a> {
    pub link: Option<ConfirmationLink<'a>>,
    /// The job's thumbnail PNG, shown inline in the HTML part.
    pub thumbnail: Option<Vec<u8>>,
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|e| MailError::Address {
        address: address.into(),
        reason: format!("{e}"),
    })
}

impl Composer {
    /// A composer for the `[email]` settings, with links under `public_url`.
    pub fn new(
        email: &EmailConfig,
        public_url: &str,
        status: StatusLinks,
    ) -> Result<Composer, MailError> {
        let from = mailbox(&email.from)?;
        let lab = email
            .lab_name
            .clone()
            .or_else(|| from.name.clone())
            .unwrap_or_else(|| "The Fab Lab".into());
        let host = from.email.domain().to_string();
        Ok(Composer {
            templates: Templates::load(email.templates_dir.as_deref())?,
            from,
            public_url: public_url.trim_end_matches('/').to_string(),
            lab,
            opening_hours: email.opening_hours.clone(),
            host,
            status,
        })
    }

    /// The link a student follows to confirm.
    pub fn confirm_url(&self, token: &str) -> String {
        format!("{}/confirm/{token}", self.public_url)
    }

    /// The student's own status page of a job.
    pub fn status_url(&self, job: &Job) -> String {
        format!(
            "{}/status/{}?t={}",
            self.public_url,
            job.id,
            self.status.token(job.id)
        )
    }

    /// Renders a mail about `job` into an outbox row with id `id`.
    pub fn compose(
        &self,
        id: u64,
        kind: MailKind,
        job: &Job,
        extras: Extras<'_>,
        now: DateTime<Utc>,
    ) -> Result<OutboxMail, MailError> {
        let link = extras.link.as_ref();
        let context = json!({
            "job": job,
            "lab": self.lab,
            "opening_hours": self.opening_hours,
            "cost": format!("{:.2}", job.cost_usd.unwrap_or_default()),
            "time": describe_hours(job.time_hours),
            "link": link.map(|l| self.confirm_url(l.token)),
            "expires": link.map(|l| l.expires.format("%A %e %B %Y, %H:%M UTC").to_string()),
            "status_link": self.status_url(job),
            "thumbnail_cid": extras.thumbnail.as_ref().map(|_| THUMBNAIL_CID),
        });
        let text = self.templates.render(kind, "txt", &context)?;
        let html = self.templates.render(kind, "html", &context)?;
        let subject = kind.subject(job);
        let message_id = format!("<farmhand-mail-{id}-job-{}@{}>", job.id, self.host);
        let body = alternative(text, html, extras.thumbnail);
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(mailbox(&job.student_email)?)
            .subject(&subject)
            .message_id(Some(message_id.clone()))
            .date(now.into())
            .multipart(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        Ok(OutboxMail {
            id,
            job_id: Some(job.id),
            kind: kind.name().into(),
            to: job.student_email.clone(),
            subject,
            message_id,
            eml: String::from_utf8_lossy(&message.formatted()).into_owned(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            failed_at: None,
            in_flight_since: None,
            permanent_failures: 0,
        })
    }

    /// The envelope sender: the bare address of `from`.
    pub fn from_address(&self) -> &lettre::Address {
        &self.from.email
    }
}

/// `multipart/alternative`: plain text first (clients show the last part they can),
/// then HTML, with the thumbnail inline when there is one.
fn alternative(text: String, html: String, thumbnail: Option<Vec<u8>>) -> MultiPart {
    let plain = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(plain_body(text));
    let html_part = SinglePart::builder()
        .header(ContentType::TEXT_HTML)
        .body(html);
    let alternative = MultiPart::alternative().singlepart(plain);
    match thumbnail {
        None => alternative.singlepart(html_part),
        Some(png) => {
            let image = Attachment::new_inline(THUMBNAIL_CID.into()).body(
                png,
                ContentType::parse("image/png").expect("a valid MIME type"),
            );
            alternative.multipart(MultiPart::related().singlepart(html_part).singlepart(image))
        }
    }
}

/// The plain part as 8bit with CRLF line ends, unless a line is too long for 8bit.
fn plain_body(text: String) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    if crlf.split("\r\n").any(|line| line.len() > 998) {
        return Body::new(text);
    }
    Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
}

/// Hours as "1 h 30 min".
pub fn describe_hours(hours: Option<f64>) -> String {
    match hours {
        Some(h) if h.is_finite() && h >= 0.0 => {
            let minutes = (h * 60.0).round() as u64;
            format!("{} h {:02} min", minutes / 60, minutes % 60)
        }
        _ => "to be estimated".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_links_stay_on_one_line_in_the_plain_part() {
        let link = format!("http://farm.example.edu:8080/confirm/{}", "x".repeat(200));
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(format!("Open:\n\n{link}\n")));
        let text = String::from_utf8_lossy(&part.formatted()).into_owned();
        assert!(text.contains(&format!("\r\n{link}\r\n")), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: 8bit"), "{text}");
    }

    #[test]
    fn an_overlong_line_falls_back_to_an_encoding_instead_of_failing() {
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body("y".repeat(2000)));
        let text = String::from_utf8_lossy(&part.formatted()).into_owned();
        assert!(!text.contains("8bit"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 998));
    }

    #[test]
    fn hours_read_naturally() {
        assert_eq!(describe_hours(Some(1.5)), "1 h 30 min");
        assert_eq!(describe_hours(None), "to be estimated");
        assert_eq!(describe_hours(Some(f64::NAN)), "to be estimated");
    }
}
