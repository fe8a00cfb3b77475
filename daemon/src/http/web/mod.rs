//! The kiosk's pages and the student's submission form, rendered on the server.
//!
//! - [`session`]: in-memory sessions with CSRF tokens; [`guard`]: the extractors that
//!   redirect to `/login` and check a form's CSRF token.
//! - [`views`]: the staff pages (dashboard, queues, job, printers), `/ui/live` and `/ui/stream`.
//! - [`actions`]: every form post; each ends in the same `http::jobs::perform` /
//!   `http::farm::printer_act` the JSON API calls, so there is one path per action.
//! - [`admin`]: staff list, printers' config, mail outbox, audit log with CSV.
//! - [`student`]: the submission form at `/submit`.
//! - [`tiles`]: the pure formatting of printer tiles; [`security`]: response headers.
//!
//! Pages carry no inline script or style: behaviour is in `web/static/*.js`, loaded
//! as files, so the CSP can forbid everything inline.

pub mod actions;
pub mod admin;
pub mod guard;
pub mod security;
pub mod session;
pub mod student;
pub mod tiles;
pub mod views;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::AppState;
use guard::Kiosk;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(actions::login_page).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/session/staff", post(actions::pick_staff))
        .route("/", get(views::dashboard))
        .route("/ui/live", get(views::live))
        .route("/ui/stream", get(views::stream))
        .route("/jobs", get(views::queues))
        .route("/jobs/bulk", post(actions::bulk))
        .route("/jobs/{id}", get(views::job))
        .route("/jobs/{id}/files", post(actions::upload))
        .route("/jobs/{id}/{action}", post(actions::job_action))
        .route("/printers", get(views::printers))
        .route("/printers/{id}/{action}", post(actions::printer_action))
        .route("/admin", get(admin::staff))
        .route("/admin/staff", post(admin::add_staff))
        .route("/admin/staff/deactivate", post(admin::deactivate_staff))
        .route("/admin/printers", get(admin::printers))
        .route("/admin/outbox", get(admin::outbox))
        .route("/admin/sync", get(admin::sync))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit.csv", get(admin::audit_csv))
        .route("/submit", get(student::submit_page))
}

/// Renders a template; a template that fails is a defect, logged and shown plainly.
pub fn render(app: &AppState, name: &str, context: Value) -> Response {
    match app.pages.get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("page {name} failed to render: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<h1>This page failed to render</h1><p>The error is in the log.</p>"),
            )
                .into_response()
        }
    }
}

/// Renders a staff page: `context` plus what the header needs (the staff dropdown,
/// the CSRF token, the workstation, a one-shot message).
pub fn staff_page(app: &AppState, kiosk: &Kiosk, name: &str, mut context: Value) -> Response {
    let staff: Vec<String> = app
        .store
        .staff()
        .map(|list| {
            list.into_iter()
                .filter(|m| m.active)
                .map(|m| m.name)
                .collect()
        })
        .unwrap_or_default();
    let flash = app.sessions.take_flash(&kiosk.cookie);
    context["chrome"] = json!({
        "csrf": kiosk.session.csrf,
        "staff": kiosk.session.staff,
        "staff_names": staff,
        "workstation": kiosk.session.workstation,
        "admin": kiosk.session.role == crate::config::Role::Admin,
        "flash": flash,
    });
    render(app, name, context)
}
