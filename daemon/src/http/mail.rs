//! Staff endpoints on the mail outbox, for the kiosk: what was sent, what waits and why.
//!
//! - `GET /api/v1/mail?state=queued|sent|failed&job=ID&limit=N&cursor=C`: newest first.
//! - `GET /api/v1/mail/{id}`: one mail, with its whole message as `eml`.
//! - `GET /api/v1/mail/{id}/eml`: the message as `message/rfc822` (opens in a mail client).
//! - `POST /api/v1/mail/{id}/retry`: queue a failed mail again.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Workstation;
use super::error::ApiError;
use super::jobs::{page, parse_job_id};
use crate::store::{MailQuery, MailState, OutboxMail};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/mail", get(list))
        .route("/api/v1/mail/{id}", get(show))
        .route("/api/v1/mail/{id}/eml", get(eml))
        .route("/api/v1/mail/{id}/retry", post(retry))
}

/// The API form of an outbox mail (without the message text).
fn mail_json(mail: &OutboxMail) -> Value {
    json!({
        "id": mail.id.to_string(), "job_id": mail.job_id, "kind": mail.kind, "to": mail.to,
        "subject": mail.subject, "message_id": mail.message_id, "state": MailState::of(mail),
        "attempts": mail.attempts, "last_error": mail.last_error,
        "created_at": mail.created_at, "next_attempt_at": mail.next_attempt_at,
        "sent_at": mail.sent_at, "failed_at": mail.failed_at,
    })
}

#[derive(Deserialize)]
struct ListParams {
    state: Option<String>,
    job: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_state(raw: &str) -> Result<MailState, ApiError> {
    serde_json::from_value(json!(raw.trim().to_ascii_lowercase())).map_err(|_| {
        ApiError::bad_request(
            "invalid_state",
            format!("state {raw:?} is not one of queued, sent, failed"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/mail", tag = "mail", params(("state" = Option<String>, Query, description = "queued, sent or failed"), ("job" = Option<String>, Query, description = "Only this job's mails"), ("limit" = Option<String>, Query, description = "Page size (default 50, at most 500)"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, description = "{\"mails\": [...], \"next_cursor\"}: the outbox, newest first, without message text"), (status = 400, description = "A bad state, job, limit or cursor"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn list(
    State(app): State<AppState>,
    _ws: Workstation,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_state)
        .transpose()?;
    let job = params
        .job
        .as_deref()
        .filter(|j| !j.is_empty())
        .map(parse_job_id)
        .transpose()?;
    let (limit, before) = page(params.limit.as_deref(), params.cursor.as_deref())?;
    let query = MailQuery {
        state,
        job,
        limit,
        before,
    };
    let store = app.store.clone();
    let (mails, next) = tokio::task::spawn_blocking(move || store.list_mail(&query))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    let delivery = match app.mail_transport.as_ref() {
        crate::mail::Transport::Folder(dir) => json!({ "kind": "folder", "path": dir }),
        crate::mail::Transport::Smtp { describe, .. } => json!({ "kind": "smtp", "url": describe }),
    };
    Ok(Json(json!({
        "mail": mails.iter().map(mail_json).collect::<Vec<_>>(),
        "next_cursor": next.map(|c| c.to_string()),
        "delivery": delivery,
    })))
}

fn load(app: &AppState, raw: &str) -> Result<OutboxMail, ApiError> {
    let missing = || ApiError::not_found(format!("there is no mail {raw:?}"));
    let id: u64 = raw.trim().parse().map_err(|_| missing())?;
    app.store.mail(id)?.ok_or_else(missing)
}

#[utoipa::path(get, path = "/api/v1/mail/{id}", tag = "mail", params(("id" = String, Path, description = "The mail id")), responses((status = 200, description = "One mail with its delivery state and the whole message as `eml`"), (status = 404, description = "No such mail"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn show(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mail = load(&app, &id)?;
    let mut value = mail_json(&mail);
    value["eml"] = json!(mail.eml);
    Ok(Json(value))
}

#[utoipa::path(get, path = "/api/v1/mail/{id}/eml", tag = "mail", params(("id" = String, Path, description = "The mail id")), responses((status = 200, description = "The message as sent (message/rfc822)", content_type = "message/rfc822"), (status = 404, description = "No such mail"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn eml(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mail = load(&app, &id)?;
    let disposition = format!("inline; filename=\"mail-{}.eml\"", mail.id);
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        mail.eml,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/mail/{id}/retry", tag = "mail", params(("id" = String, Path, description = "The mail id")), responses((status = 200, description = "The mail, queued to be sent again now"), (status = 404, description = "No such mail"), (status = 409, description = "Already sent"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn retry(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mail = load(&app, &id)?;
    let workflow = app.workflow.clone();
    tokio::task::spawn_blocking(move || workflow.retry_mail(mail.id, Utc::now()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    Ok(Json(mail_json(&load(&app, &id)?)))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, eml, retry))]
pub(crate) struct MailApi;
