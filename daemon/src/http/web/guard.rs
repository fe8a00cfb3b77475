//! The gate in front of every staff page and form.
//!
//! [`Kiosk`] is the extractor of staff pages: without a live session the answer is a
//! redirect to `/login`. [`KioskForm`] adds the form body and checks its CSRF token:
//! a post without the session's token is refused with 403 in the API's error shape,
//! whatever else it carries.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::session::{self, Flash, Session};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::model::Actor;

/// The largest form body a kiosk page sends (notes are at most 20,000 characters).
pub const MAX_FORM: usize = 64 * 1024;

/// A request from a signed-in kiosk.
#[derive(Debug, Clone)]
pub struct Kiosk {
    pub cookie: String,
    pub session: Session,
}

impl FromRequestParts<AppState> for Kiosk {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let found = session::cookie_of(parts)
            .and_then(|cookie| Some((app.sessions.get(&cookie, Utc::now())?, cookie)));
        match found {
            Some((session, cookie)) => Ok(Kiosk { cookie, session }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

impl Kiosk {
    /// The staff member picked in the header, acting at this workstation; the name
    /// is checked against the active staff list exactly as the API checks it.
    pub fn actor(&self, app: &AppState) -> Result<Actor, ApiError> {
        let Some(name) = self.session.staff.as_deref() else {
            return Err(ApiError::unprocessable(
                "missing_staff",
                "pick your name in the staff list at the top of the page first",
            ));
        };
        self.session.workstation().actor(app, Some(name))
    }

    /// Refuses unless the session's workstation is an admin workstation.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.session.workstation().require_admin()
    }

    /// Leaves a message for the next page.
    pub fn flash(&self, app: &AppState, flash: Flash) {
        app.sessions.update(&self.cookie, |s| s.flash = Some(flash));
    }
}

/// A kiosk form post whose CSRF token matched: the session and the form's fields,
/// in order (repeated names such as `reasons` or `ids` stay repeated).
#[derive(Debug)]
pub struct KioskForm {
    pub kiosk: Kiosk,
    pub fields: Vec<(String, String)>,
    /// Whether the client asked for JSON (scripts) rather than a page (forms).
    pub wants_json: bool,
}

impl FromRequest<AppState> for KioskForm {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let kiosk = Kiosk::from_request_parts(&mut parts, app).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the form is larger than 64 KB",
            )
            .into_response()
        })?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let presented = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .or_else(|| {
                parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or("");
        if !kiosk.session.csrf_matches(presented) {
            return Err(csrf_refused().into_response());
        }
        Ok(KioskForm {
            kiosk,
            fields,
            wants_json: wants_json(&parts.headers),
        })
    }
}

/// The 403 of a post without this session's CSRF token.
pub fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "this form is missing its security token or it is stale: reload the page and try again",
    )
}

/// True when the client prefers JSON to HTML.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

impl KioskForm {
    /// The first value of a field, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// Where to go after the form: its `next` field when it is a path on this site.
    pub fn next(&self, default: &str) -> String {
        match self.get("next") {
            Some(next) if is_local_path(next) => next.to_string(),
            _ => default.to_string(),
        }
    }

    /// The answer to a form: JSON for scripts; for pages a flash message and a
    /// redirect, so reloading the next page never re-posts the form.
    pub fn finish(&self, app: &AppState, next: &str, result: Result<String, ApiError>) -> Response {
        match (result, self.wants_json) {
            (Ok(message), true) => axum::Json(serde_json::json!({ "ok": message })).into_response(),
            (Err(e), true) => e.into_response(),
            (Ok(message), false) => {
                self.kiosk.flash(app, Flash::ok(message));
                Redirect::to(next).into_response()
            }
            (Err(e), false) => {
                self.kiosk.flash(app, Flash::error(e.message));
                Redirect::to(next).into_response()
            }
        }
    }
}

/// A path on this site (`/jobs/3`), not another site (`//evil`, `https://…`).
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control())
        && path.len() <= 512
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed_after_a_form() {
        assert!(super::is_local_path("/jobs/3?x=1"));
        assert!(!super::is_local_path("//evil.example"));
        assert!(!super::is_local_path("/\\evil.example"));
        assert!(!super::is_local_path("https://evil.example"));
        assert!(!super::is_local_path("/a\r\nSet-Cookie: x"));
    }
}
