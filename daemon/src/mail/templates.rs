//! The mail templates: the built-in ones from the `web` crate, each replaceable by a
//! file of the same name in `[email] templates_dir`.
//!
//! Every mail kind has `mail/{kind}.txt` (the plain part) and `mail/{kind}.html` (the
//! HTML part, auto-escaped because of its extension); the HTML ones extend
//! `mail/layout.html`, which can be replaced too. A replacement that does not parse
//! stops start-up with the file's name, so a lab finds its typo before a student does.

use std::path::Path;

use minijinja::Environment;

use super::{MailError, MailKind};

/// The template environment mails are rendered with.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, with the files in `overrides` taking their place.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, MailError> {
        let mut env = crate::pages::environment();
        if let Some(dir) = overrides {
            for (name, _) in farmhand_web::TEMPLATES {
                let Some(file) = name.strip_prefix("mail/") else {
                    continue;
                };
                let path = dir.join(file);
                if !path.is_file() {
                    continue;
                }
                let source =
                    std::fs::read_to_string(&path).map_err(|e| MailError::TemplateFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                env.add_template_owned(name.to_string(), source)
                    .map_err(|e| MailError::TemplateFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                tracing::info!("mail template {name} replaced by {}", path.display());
            }
        }
        Ok(Templates { env })
    }

    /// Renders the `ext` (`txt` or `html`) template of a mail kind.
    pub fn render(
        &self,
        kind: MailKind,
        ext: &str,
        context: &serde_json::Value,
    ) -> Result<String, MailError> {
        let name = format!("mail/{}.{ext}", kind.name());
        self.env
            .get_template(&name)
            .and_then(|t| t.render(context))
            .map_err(|source| MailError::Template {
                template: name,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lab_template_replaces_ours_and_a_broken_one_names_its_file() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("rejection.txt"),
            "Sorry {{ job.student_name }}.",
        )
        .expect("write");
        let templates = Templates::load(Some(dir.path())).expect("load");
        let context = json!({ "job": { "student_name": "Ada" } });
        let text = templates
            .render(MailKind::Rejection, "txt", &context)
            .expect("render");
        assert_eq!(text, "Sorry Ada.");
        std::fs::write(dir.path().join("pickup.html"), "{% if %}").expect("write");
        let error = Templates::load(Some(dir.path()))
            .err()
            .expect("a syntax error");
        assert!(error.to_string().contains("pickup.html"), "{error}");
    }
}
