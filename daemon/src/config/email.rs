//! The `[email]` section: how student mail is delivered and what it says about the lab.
//!
//! Delivery is SMTP when `smtp_url` is given (`smtp://` plain or with `?tls=required`
//! for STARTTLS, `smtps://` for implicit TLS; credentials in the URL or as `username`
//! and `password`/`password_file`), else `.eml` files in `data_dir/outbox/`. Durations
//! are in days as decimals (`0.5` is twelve hours) so a test can use seconds.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Absent: mail is kept as `.eml` files in `data_dir/outbox/`.
    pub smtp_url: Option<String>,
    /// SMTP user name, when it is not in the URL.
    pub username: Option<String>,
    /// SMTP password, when it is not in the URL (or use `password_file`).
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A PEM file of extra CAs to trust for the SMTP server's TLS certificate
    /// (a campus CA); the public web roots are always trusted.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_from")]
    pub from: String,
    /// How long a confirmation link works, in days.
    #[serde(default = "default_confirmation_days")]
    pub confirmation_ttl_days: f64,
    /// The lab's name in mails; default: the display name of `from`.
    pub lab_name: Option<String>,
    /// Opening hours, shown in pickup mails (free text, e.g. "Mon–Fri 9:00–17:00, room B12").
    pub opening_hours: Option<String>,
    /// A folder of templates that replace the built-in ones by name
    /// (`confirmation.txt`, `confirmation.html`, `rejection.txt`, …).
    pub templates_dir: Option<PathBuf>,
    /// Days after "ready for pickup" until a reminder; 0 turns reminders off.
    #[serde(default = "default_reminder_days")]
    pub pickup_reminder_days: f64,
    /// How many reminders at most, each `pickup_reminder_days` apart.
    #[serde(default = "default_reminders_max")]
    pub pickup_reminders_max: u32,
    /// Requests per minute one client address may make to the confirmation endpoints.
    #[serde(default = "default_confirm_rate")]
    pub confirm_requests_per_minute: u32,
}

fn default_from() -> String {
    "Fab Lab <fablab@localhost>".into()
}

fn default_confirmation_days() -> f64 {
    7.0
}

fn default_reminder_days() -> f64 {
    7.0
}

fn default_reminders_max() -> u32 {
    2
}

fn default_confirm_rate() -> u32 {
    30
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_url: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            from: default_from(),
            confirmation_ttl_days: default_confirmation_days(),
            lab_name: None,
            opening_hours: None,
            templates_dir: None,
            pickup_reminder_days: default_reminder_days(),
            pickup_reminders_max: default_reminders_max(),
            confirm_requests_per_minute: default_confirm_rate(),
        }
    }
}

/// Days as a [`chrono::Duration`] (rounded to milliseconds).
pub fn days(days: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((days * 86_400_000.0).round() as i64)
}

impl EmailConfig {
    /// How long a confirmation link works.
    pub fn confirmation_ttl(&self) -> chrono::Duration {
        days(self.confirmation_ttl_days)
    }

    /// The delay before each pickup reminder, `None` when reminders are off.
    pub fn reminder_interval(&self) -> Option<chrono::Duration> {
        (self.pickup_reminder_days > 0.0 && self.pickup_reminders_max > 0)
            .then(|| days(self.pickup_reminder_days))
    }

    /// The SMTP URL with any password replaced by `***` (for logs and `check-config`).
    pub fn smtp_redacted(&self) -> String {
        let Some(raw) = &self.smtp_url else {
            return String::new();
        };
        match url::Url::parse(raw) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => raw.clone(),
        }
    }

    /// The SMTP password from `password` or `password_file`.
    pub fn resolve_password(&self) -> Result<Option<String>, String> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err("give either password or password_file, not both".into()),
            (Some(p), None) => Ok(Some(p.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|p| Some(p.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| format!("cannot read password_file {}: {e}", path.display())),
            (None, None) => Ok(None),
        }
    }

    /// Every problem in this section, each prefixed with `email.`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(raw) = &self.smtp_url {
            problems.extend(smtp_url_problem(raw).map(|p| format!("email.smtp_url: {p}")));
        }
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            problems.push(format!(
                "email.from: {:?} is not an address like \"Fab Lab <fablab@example.edu>\": {e}",
                self.from
            ));
        }
        if let Err(problem) = self.resolve_password() {
            problems.push(format!("email: {problem}"));
        }
        if self.username.is_some() != (self.password.is_some() || self.password_file.is_some()) {
            problems.push("email: username and password (or password_file) go together".into());
        }
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            problems.push(format!(
                "email.ca_file: {} is not a readable file",
                path.display()
            ));
        }
        if let Some(dir) = &self.templates_dir
            && !dir.is_dir()
        {
            problems.push(format!(
                "email.templates_dir: {} is not a folder",
                dir.display()
            ));
        }
        let ttl = self.confirmation_ttl_days;
        if !ttl.is_finite() || ttl <= 0.0 || ttl > 365.0 {
            problems.push("email.confirmation_ttl_days must be more than 0 and at most 365".into());
        }
        let reminder = self.pickup_reminder_days;
        if !reminder.is_finite() || !(0.0..=365.0).contains(&reminder) {
            problems.push("email.pickup_reminder_days must be from 0 (off) to 365".into());
        }
        if self.pickup_reminders_max > 20 {
            problems.push("email.pickup_reminders_max must be at most 20".into());
        }
        if !(1..=10_000).contains(&self.confirm_requests_per_minute) {
            problems.push("email.confirm_requests_per_minute must be from 1 to 10000".into());
        }
        problems
    }
}

/// What is wrong with an SMTP URL, if anything.
fn smtp_url_problem(raw: &str) -> Option<String> {
    let url = match url::Url::parse(raw) {
        Ok(url) => url,
        Err(e) => return Some(format!("{raw:?} is not a URL ({e})")),
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Some("needs a host, e.g. smtp://mail.example.edu:587?tls=required".into());
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => None,
        ("smtp", Some(other)) => Some(format!(
            "tls={other:?}: use tls=required (STARTTLS) or tls=opportunistic"
        )),
        (scheme, _) => Some(format!(
            "scheme {scheme:?}: use smtp:// (add ?tls=required for STARTTLS) or smtps://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_checked() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://user:pw@mail.example.edu:587?tls=required",
            "smtps://mail.example.edu",
        ] {
            assert_eq!(smtp_url_problem(good), None, "{good}");
        }
        for bad in [
            "http://x",
            "smtp://x?tls=maybe",
            "smtps://x?tls=required",
            "nonsense",
        ] {
            assert!(smtp_url_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        let config = EmailConfig {
            smtp_url: Some("smtps://lab:s3cret@mail.example.edu:465".into()),
            ..Default::default()
        };
        let shown = config.smtp_redacted();
        assert!(
            !shown.contains("s3cret") && shown.contains("lab:***@"),
            "{shown}"
        );
    }

    #[test]
    fn days_are_decimal() {
        assert_eq!(days(0.5), chrono::Duration::hours(12));
        assert_eq!(days(7.0), chrono::Duration::days(7));
    }
}
