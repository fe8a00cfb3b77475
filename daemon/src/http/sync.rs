//! `GET /api/v1/sync`: how far behind the cloud copy is, for the kiosk.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Workstation;
use super::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sync", get(status))
}

/// The backlog (jobs waiting, age of the oldest change not yet uploaded) and the
/// worker's last success, error and snapshot. Answered from the store alone, so it
/// works (and shows the backlog growing) while the bucket is unreachable.
#[utoipa::path(get, path = "/api/v1/sync", tag = "sync", responses((status = 200, description = "{\"enabled\": false} without [sync]; else the backlog: pending, oldest_pending_at/age_s, last_success_at, last_error(_at), last_snapshot_at, snapshot_current"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn status(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    backlog(&app).map(Json)
}

/// The backlog as JSON: shared by the API and the kiosk's admin page.
pub(crate) fn backlog(app: &AppState) -> Result<Value, ApiError> {
    let Some(sync) = &app.config.sync else {
        return Ok(json!({ "enabled": false }));
    };
    let backlog = app.store.sync_backlog()?;
    let status = app.store.sync_status()?;
    let seq = app.store.sync_seq()?;
    let now = Utc::now();
    let age = backlog
        .oldest_queued_at
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    Ok(json!({
        "enabled": true,
        "url": sync.url,
        "pending": backlog.pending,
        "oldest_pending_at": backlog.oldest_queued_at,
        "oldest_pending_age_s": age,
        "last_success_at": status.last_success_at,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
        "last_snapshot_at": status.last_snapshot_at,
        "snapshot_current": status.last_snapshot_at.is_some() && status.last_snapshot_seq == seq,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(status))]
pub(crate) struct SyncApi;
