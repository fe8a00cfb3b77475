//! The student's confirmation link: a page that shows the cost, and the confirm action
//! (as an HTML form post and as JSON). Unknown, used and expired tokens all get the
//! same friendly 404, so a guesser learns nothing. Every endpoint here takes a token
//! from the caller's [`LinkQuota`] bucket (429 past the limit).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::ratelimit::LinkQuota;
use crate::model::Job;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/confirm/{token}", get(page).post(confirm_form))
        .route("/api/v1/confirm/{token}", post(confirm_api))
        .route("/static/{*path}", get(super::static_file))
}

/// A simple titled message page.
pub fn message_page(title: &str, message: &str) -> Html<String> {
    let env = crate::pages::environment();
    let html = env
        .get_template("message.html")
        .and_then(|t| t.render(json!({ "title": title, "message": message })))
        .unwrap_or_else(|_| format!("<h1>{title}</h1><p>{message}</p>"));
    Html(html)
}

fn invalid_link() -> Response {
    (
        StatusCode::NOT_FOUND,
        message_page(
            "This link is not valid",
            "The confirmation link has been used already, has expired, or is mistyped. \
             If your print still needs confirming, ask the Fab Lab to send you a new link.",
        ),
    )
        .into_response()
}

fn hours(job: &Job) -> String {
    job.time_hours.map_or("to be estimated".into(), |h| {
        let minutes = (h * 60.0).round() as u64;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    })
}

#[utoipa::path(get, path = "/confirm/{token}", tag = "student", params(("token" = String, Path, description = "From the confirmation e-mail")), responses((status = 200, description = "HTML: the cost and time to confirm"), (status = 404, description = "HTML: unknown, used or expired link")))]
async fn page(
    _quota: LinkQuota,
    State(app): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let Ok(job) = app.workflow.job_for_token(&token, Utc::now()) else {
        return invalid_link();
    };
    let context = json!({
        "job": job, "token": token, "time": hours(&job),
        "cost": format!("{:.2}", job.cost_usd.unwrap_or_default()),
    });
    match app
        .pages
        .get_template("confirm.html")
        .and_then(|t| t.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("confirm page failed to render: {e}");
            invalid_link()
        }
    }
}

async fn confirm(app: &AppState, token: String) -> Result<Job, ApiError> {
    let workflow = app.workflow.clone();
    tokio::task::spawn_blocking(move || workflow.confirm(&token, Utc::now()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))?
        .map_err(ApiError::from)
}

#[utoipa::path(post, path = "/confirm/{token}", tag = "student", params(("token" = String, Path, description = "From the confirmation e-mail")), responses((status = 200, description = "HTML: confirmed"), (status = 404, description = "HTML: unknown, used or expired link")))]
async fn confirm_form(
    _quota: LinkQuota,
    State(app): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    match confirm(&app, token).await {
        Ok(job) => message_page(
            "Thank you: your print is queued",
            &format!(
                "Job {} ({}) is confirmed and waits for a free printer. We will e-mail you when it is ready for pickup.",
                job.id, job.display_name
            ),
        )
        .into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => invalid_link(),
        Err(e) => (e.status, message_page("This print cannot be confirmed now", &e.message)).into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/confirm/{token}", tag = "student", params(("token" = String, Path, description = "From the confirmation e-mail")), responses((status = 200, description = "The job, now READYTOPRINT"), (status = 404, description = "Unknown, used or expired link")))]
async fn confirm_api(
    _quota: LinkQuota,
    State(app): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = confirm(&app, token).await?;
    Ok(Json(json!({
        "id": job.id, "display_name": job.display_name, "status": job.status,
        "student_confirmed": job.student_confirmed, "cost_usd": job.cost_usd,
        "time_hours": job.time_hours, "material": job.material, "color": job.color,
    })))
}

/// This file's endpoints for the OpenAPI document (`super::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(page, confirm_form, confirm_api))]
pub(crate) struct ConfirmApi;
