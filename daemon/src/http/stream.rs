//! `GET /api/v1/stream` (Server-Sent Events: `event: job` / `event: printer`, each with the
//! same JSON as the REST API) and `GET /api/v1/queue` (the READYTOPRINT jobs in the
//! scheduler's order, each with why it waits).
//!
//! A new client first gets every printer's current state, then each change as it is
//! committed. Clients read from one broadcast channel; one that falls behind skips what it
//! missed (told in a comment) rather than slowing the writers. Comments keep idle
//! connections open through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::auth::Workstation;
use super::error::ApiError;
use crate::model::Status;
use crate::store::JobQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/queue", get(queue))
}

/// Someone allowed to watch the farm live.
pub struct Viewer;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        authorize(parts, app).await
    }
}

/// The one check for the stream: a workstation's bearer token. (A kiosk session cookie,
/// once the web pages have sessions, is one more arm here.)
async fn authorize(parts: &mut Parts, app: &AppState) -> Result<Viewer, ApiError> {
    Workstation::from_request_parts(parts, app).await?;
    Ok(Viewer)
}

#[utoipa::path(get, path = "/api/v1/stream", tag = "farm", responses((status = 200, description = "Server-Sent Events: every printer's state at once, then `event: job` / `event: printer` with the REST JSON after each change", content_type = "text/event-stream"), (status = 429, description = "Too many live streams open"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn stream(
    State(app): State<AppState>,
    _viewer: Viewer,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let live = app.workflow.live();
    let permit = live.client_permit().ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            "too many live streams are open: close one (or reuse it) and try again",
        )
    })?;
    // Subscribe before the snapshot so no change falls between the two.
    let rx = live.subscribe();
    let mut snapshot = Vec::new();
    for printer in &app.config.printers {
        let value = app.workflow.printer_json(printer)?;
        snapshot.push(Event::default().event("printer").data(value.to_string()));
    }
    let changes = stream::unfold((rx, permit), |(mut rx, permit)| async move {
        let event = match rx.recv().await {
            Ok(change) => Event::default()
                .event(change.kind.as_str())
                .data(&*change.data),
            Err(RecvError::Lagged(n)) => {
                Event::default().comment(format!("skipped {n} changes: this client fell behind"))
            }
            Err(RecvError::Closed) => return None,
        };
        Some((event, (rx, permit)))
    });
    let every = Duration::from_secs(app.config.dispatch.stream_keepalive_s);
    let events = stream::iter(snapshot).chain(changes).map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(every).text("keep-alive")))
}

#[utoipa::path(get, path = "/api/v1/queue", tag = "farm", responses((status = 200, description = "The READYTOPRINT jobs in the scheduler's order, each with the printer it would go to or why it waits"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn queue(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    let query = JobQuery {
        status: Some(Status::ReadyToPrint),
        text: None,
        limit: 1000,
        before: None,
    };
    let store = app.store.clone();
    let (mut jobs, more) = tokio::task::spawn_blocking(move || store.list_jobs(&query))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    let entries: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            json!({
                "position": i + 1, "id": job.id, "display_name": job.display_name,
                "material": job.material, "color": job.color, "priority": job.priority,
                "printer": job.staff_printer, "attempts": job.attempts,
                "waits": job.waits, "needs_staff": job.needs_staff,
                "created_at": job.created_at,
            })
        })
        .collect();
    Ok(Json(
        json!({ "queue": entries, "truncated": more.is_some() }),
    ))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stream, queue))]
pub(crate) struct StreamApi;
