//! Printers, staff, the audit log and health.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Workstation;
use super::error::{ApiError, ApiJson};
use super::jobs::parse_job_id;
use crate::model::PrinterState;
use crate::store::EventQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/api/v1/printers", get(printers))
        .route("/api/v1/printers/{id}/{action}", post(printer_action))
        .route("/api/v1/staff", get(staff).post(add_staff))
        .route("/api/v1/staff/{name}/deactivate", post(deactivate_staff))
        .route("/api/v1/events", get(events))
}

#[utoipa::path(get, path = "/healthz", tag = "farm", responses((status = 200, description = "{\"status\": \"ok\"}: the store is writable"), (status = 503, description = "The store is not writable")))]
async fn health(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unavailable", "error": { "code": "store_unavailable", "message": e.to_string() } }),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unavailable", "error": { "code": "busy", "message": e.to_string() } }),
            ),
        ),
    }
}

#[utoipa::path(get, path = "/api/v1/printers", tag = "farm", responses((status = 200, description = "Every printer with its state, job, progress and temperatures"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn printers(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    printer_views(&app).map(|list| Json(Value::Array(list)))
}

/// Every configured printer as the API shows it (the kiosk's tiles use the same view).
pub(crate) fn printer_views(app: &AppState) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for printer in &app.config.printers {
        out.push(app.workflow.printer_json(printer)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct StaffBody {
    staff: Option<String>,
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/printers/{id}/{action}", tag = "farm", params(("id" = String, Path, description = "The printer id"), ("action" = String, Path, description = "clear, pause, resume or cancel")), request_body(content = Object, description = "{\"staff\": name}"), responses((status = 200, description = "Done"), (status = 404, description = "No such printer or action"), (status = 409, description = "Not possible in the printer's state"), (status = 422, description = "An unknown staff name"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn printer_action(
    State(app): State<AppState>,
    ws: Workstation,
    Path((id, action)): Path<(String, String)>,
    ApiJson(body): ApiJson<StaffBody>,
) -> Result<Json<Value>, ApiError> {
    let printer = app
        .config
        .printer(&id)
        .ok_or_else(|| ApiError::not_found(format!("there is no printer {id:?}")))?;
    let actor = ws.actor(&app, body.staff.as_deref())?;
    printer_act(&app, printer, &action, actor).await.map(Json)
}

/// Carries out one printer action: the one path for the JSON API and the kiosk.
pub(crate) async fn printer_act(
    app: &AppState,
    printer: &crate::config::PrinterConfig,
    action: &str,
    actor: crate::model::Actor,
) -> Result<Value, ApiError> {
    let id = printer.id.clone();
    match action {
        "clear" => {
            let workflow = app.workflow.clone();
            let printer_id = id.clone();
            tokio::task::spawn_blocking(move || workflow.clear_bed(&printer_id, &actor, Utc::now()))
                .await
                .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
            Ok(json!({ "id": id, "state": PrinterState::Idle }))
        }
        "pause" | "resume" | "cancel" if app.fleet.get(&id).is_some() => {
            let handle = app.fleet.get(&id).cloned();
            let result = match (handle, action) {
                (Some(h), "pause") => h.pause().await,
                (Some(h), "resume") => h.resume().await,
                (Some(h), _) => h.cancel().await,
                (None, _) => return Err(ApiError::not_found(format!("there is no printer {id:?}"))),
            };
            result.map_err(|e| {
                ApiError::new(StatusCode::CONFLICT, "printer_refused", e.to_string())
            })?;
            tracing::info!(printer = %id, by = %actor.triggered_by(), "printer {action}");
            Ok(json!({ "id": id, "action": action }))
        }
        "pause" | "resume" | "cancel" => Err(ApiError::new(
            StatusCode::CONFLICT,
            "unsupported",
            format!(
                "printer {id} ({:?}) cannot {action} from Farmhand: do it at the printer, then mark the job complete or failed",
                printer.driver
            )
            .replace("Manual", "manual"),
        )),
        other => Err(ApiError::not_found(format!("printers have no action {other:?}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/staff", tag = "farm", responses((status = 200, description = "The attribution list"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn staff(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "staff": app.store.staff()? })))
}

#[utoipa::path(post, path = "/api/v1/staff", tag = "farm", request_body(content = Object, description = "{\"name\": name} (admin workstations)"), responses((status = 201, description = "The new staff member"), (status = 403, description = "Not an admin workstation"), (status = 422, description = "A bad name"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn add_staff(
    State(app): State<AppState>,
    ws: Workstation,
    ApiJson(body): ApiJson<StaffBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ws.require_admin()?;
    let name = body.name.ok_or_else(|| {
        ApiError::bad_request("missing_field", "give the new staff member's \"name\"")
    })?;
    let actor = admin_actor(&app, &ws, body.staff.as_deref())?;
    let member = app.workflow.add_staff(&name, &actor, Utc::now())?;
    Ok((StatusCode::CREATED, Json(json!(member))))
}

#[utoipa::path(post, path = "/api/v1/staff/{name}/deactivate", tag = "farm", params(("name" = String, Path, description = "The staff member")), responses((status = 200, description = "Deactivated"), (status = 403, description = "Not an admin workstation"), (status = 404, description = "No such staff member"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn deactivate_staff(
    State(app): State<AppState>,
    ws: Workstation,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<StaffBody>,
) -> Result<Json<Value>, ApiError> {
    ws.require_admin()?;
    let actor = admin_actor(&app, &ws, body.staff.as_deref())?;
    let member = app.workflow.deactivate_staff(&name, &actor, Utc::now())?;
    Ok(Json(json!(member)))
}

/// Admin actions name a staff member when given; otherwise the workstation acts.
fn admin_actor(
    app: &AppState,
    ws: &Workstation,
    staff: Option<&str>,
) -> Result<crate::model::Actor, ApiError> {
    match staff {
        Some(_) => ws.actor(app, staff),
        None => Ok(crate::model::Actor::Staff {
            name: format!("workstation:{}", ws.id),
            workstation: ws.id.clone(),
        }),
    }
}

#[derive(Deserialize)]
struct EventParams {
    job: Option<String>,
    staff: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "farm", params(("job" = Option<String>, Query, description = "Only this job"), ("staff" = Option<String>, Query, description = "Only events by this person"), ("type" = Option<String>, Query, description = "Only this event type, e.g. PrintFailed"), ("since" = Option<String>, Query, description = "RFC 3339 time"), ("limit" = Option<u32>, Query, description = "Page size"), ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page")), responses((status = 200, description = "The audit log, oldest first"), (status = 400, description = "A bad filter"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn events(
    State(app): State<AppState>,
    _ws: Workstation,
    Query(params): Query<EventParams>,
) -> Result<Json<Value>, ApiError> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let since = nonempty(params.since)
        .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_since",
                "since must be an RFC 3339 time, e.g. 2026-11-23T09:00:00Z",
            )
        })?;
    let query = EventQuery {
        job: nonempty(params.job).map(|j| parse_job_id(&j)).transpose()?,
        staff: nonempty(params.staff),
        event_type: nonempty(params.event_type),
        since,
        after: nonempty(params.cursor)
            .map(|c| c.parse::<u64>())
            .transpose()
            .map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor must be a next_cursor value")
            })?,
        limit: nonempty(params.limit)
            .map(|l| l.parse::<usize>().ok().filter(|n| (1..=5000).contains(n)))
            .map(|l| {
                l.ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1 to 5000"))
            })
            .transpose()?
            .unwrap_or(500),
    };
    let store = app.store.clone();
    let (events, next) = tokio::task::spawn_blocking(move || store.events(&query))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    Ok(Json(
        json!({ "events": events, "next_cursor": next.map(|n| n.to_string()) }),
    ))
}

/// This file's endpoints for the OpenAPI document (`super::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    health,
    printers,
    printer_action,
    staff,
    add_staff,
    deactivate_staff,
    events
))]
pub(crate) struct FarmApi;
