//! The student's own job page, linked from every mail: `GET /status/{id}?t={token}`,
//! and the JSON it polls for live progress: `GET /api/v1/status/{id}?t={token}`.
//!
//! The token is the job's [`crate::status_link`] HMAC. A wrong or missing token, an
//! unknown job and a malformed id all get the same 404, so the page reveals nothing
//! about jobs that are not the caller's. The page runs no inline script: its CSP allows
//! scripts from this origin only, and `/static/status.js` does the polling.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::model::{Job, JobId, Status};

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status/{id}", get(page))
        .route("/api/v1/status/{id}", get(api))
}

#[derive(Deserialize)]
struct TokenParam {
    t: Option<String>,
}

/// The job, when `token` is its status token.
fn authorised(app: &AppState, raw_id: &str, token: Option<&str>) -> Option<Job> {
    let id: JobId = raw_id.parse().ok()?;
    let token = token?;
    if token.len() > 128 || !app.status_links.verify(id, token) {
        return None;
    }
    app.store.job(id).ok().flatten()
}

/// What a status means for the student, in plain words.
pub fn explain(status: Status) -> &'static str {
    match status {
        Status::Uploaded => "Received: the lab has not reviewed it yet.",
        Status::Pending => {
            "Reviewed: waiting for you to confirm the cost with the link in your e-mail."
        }
        Status::ReadyToPrint => "Confirmed: waiting in the queue for a free printer.",
        Status::Printing => "Printing now.",
        Status::Completed => "Finished: ready for pickup at the lab.",
        Status::PaidPickedUp => "Collected. Thank you!",
        Status::Rejected => "Not printable as submitted: see the reasons below.",
        Status::Archived => "Closed.",
    }
}

fn status_json(app: &AppState, job: &Job) -> Value {
    let position = app.store.queue_position(job.id).ok().flatten();
    json!({
        "id": job.id, "display_name": job.display_name, "status": job.status,
        "status_text": explain(job.status), "queue_position": position,
        "progress": job.progress, "reject_reasons": job.reject_reasons,
        "material": job.material, "color": job.color, "cost_usd": job.cost_usd,
        "updated_at": job.updated_at,
    })
}

fn not_found_page() -> Response {
    let page = super::confirm::message_page(
        "Job not found",
        "This status link is not valid. Use the link from your most recent Fab Lab e-mail.",
    );
    with_csp((StatusCode::NOT_FOUND, page).into_response())
}

fn with_csp(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(get, path = "/status/{id}", tag = "student", params(("id" = String, Path, description = "The job id"), ("t" = String, Query, description = "The status token from the student's mail")), responses((status = 200, description = "The student's status page (HTML)", content_type = "text/html"), (status = 404, description = "Unknown job or wrong token (a friendly page)")))]
async fn page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<TokenParam>,
) -> Response {
    let Some(job) = authorised(&app, &id, params.t.as_deref()) else {
        return not_found_page();
    };
    let context = json!({
        "job": job, "status": status_json(&app, &job),
        "token": params.t, "live": matches!(job.status, Status::ReadyToPrint | Status::Printing),
    });
    match app
        .pages
        .get_template("status.html")
        .and_then(|t| t.render(context))
    {
        Ok(html) => with_csp(Html(html).into_response()),
        Err(e) => {
            tracing::error!("status page failed to render: {e}");
            not_found_page()
        }
    }
}

#[utoipa::path(get, path = "/api/v1/status/{id}", tag = "student", params(("id" = String, Path, description = "The job id"), ("t" = String, Query, description = "The status token from the student's mail")), responses((status = 200, description = "The job's state, queue position and live progress, as the status page shows them"), (status = 404, description = "Unknown job or wrong token")))]
async fn api(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<TokenParam>,
) -> Result<Response, ApiError> {
    let job = authorised(&app, &id, params.t.as_deref())
        .ok_or_else(|| ApiError::not_found("there is no job with this status link"))?;
    let mut response = Json(status_json(&app, &job)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(page, api))]
pub(crate) struct StatusApi;
