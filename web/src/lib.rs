//! Farmhand's web assets: HTML and mail templates and static files, embedded in the
//! binary at compile time so the daemon is one file to install.
//!
//! Templates are minijinja/Jinja2 syntax. The daemon loads them by name from
//! [`TEMPLATES`]; static files are served from [`asset`].

/// Every template, by the name templates use to refer to each other.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("message.html", include_str!("../templates/message.html")),
    (
        "mail/confirmation.txt",
        include_str!("../templates/mail/confirmation.txt"),
    ),
    (
        "mail/rejection.txt",
        include_str!("../templates/mail/rejection.txt"),
    ),
    (
        "mail/pickup.txt",
        include_str!("../templates/mail/pickup.txt"),
    ),
    ("status.html", include_str!("../templates/status.html")),
    (
        "mail/layout.html",
        include_str!("../templates/mail/layout.html"),
    ),
    (
        "mail/confirmation.html",
        include_str!("../templates/mail/confirmation.html"),
    ),
    (
        "mail/rejection.html",
        include_str!("../templates/mail/rejection.html"),
    ),
    (
        "mail/pickup.html",
        include_str!("../templates/mail/pickup.html"),
    ),
    (
        "mail/expired.txt",
        include_str!("../templates/mail/expired.txt"),
    ),
    (
        "mail/expired.html",
        include_str!("../templates/mail/expired.html"),
    ),
    (
        "mail/reminder.txt",
        include_str!("../templates/mail/reminder.txt"),
    ),
    (
        "mail/reminder.html",
        include_str!("../templates/mail/reminder.html"),
    ),
];

/// A static file: its bytes and content type.
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

/// The static file served at `/static/{path}`.
pub fn asset(path: &str) -> Option<Asset> {
    let (bytes, content_type): (&'static [u8], &str) = match path {
        "farmhand.css" => (
            include_bytes!("../static/farmhand.css"),
            "text/css; charset=utf-8",
        ),
        "status.js" => (
            include_bytes!("../static/status.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return None,
    };
    Some(Asset {
        bytes,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_is_non_empty_and_names_are_unique() {
        let mut names: Vec<&str> = super::TEMPLATES.iter().map(|(n, _)| *n).collect();
        assert!(
            super::TEMPLATES
                .iter()
                .all(|(_, body)| !body.trim().is_empty())
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::TEMPLATES.len());
        assert!(super::asset("farmhand.css").is_some());
        assert!(super::asset("../Cargo.toml").is_none());
    }
}
