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
use crate::config::DriverKind;
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

async fn printers(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    printer_views(&app).map(|list| Json(Value::Array(list)))
}

/// Every configured printer as the API shows it (the kiosk's tiles use the same view).
pub(crate) fn printer_views(app: &AppState) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for printer in &app.config.printers {
        let record = app.store.printer(&printer.id)?;
        let live = app.fleet.status(&printer.id);
        let state = printer_state(printer.driver, record.state, live.as_ref());
        let progress = match record.job_id {
            Some(job) => app.store.job(job)?.and_then(|j| j.progress),
            None => None,
        };
        out.push(json!({
            "id": printer.id, "name": printer.display_name(), "driver": printer.driver,
            "state": state, "job_id": record.job_id, "progress": progress,
            "temps": live.as_ref().map(|s| &s.temps), "error": live.as_ref().and_then(|s| s.error.clone()),
            "materials": printer.materials, "build_volume_mm": printer.build_volume_mm,
            "last_job_id": record.last_job_id,
        }));
    }
    Ok(out)
}

/// The contract's printer state: the store knows about beds to clear; a connected
/// printer's driver knows the rest.
fn printer_state(
    driver: DriverKind,
    stored: PrinterState,
    live: Option<&drivers::PrinterStatus>,
) -> PrinterState {
    if stored == PrinterState::NeedsClearing || driver == DriverKind::Manual {
        return stored;
    }
    match live.map(|s| s.state) {
        None | Some(drivers::PrinterState::Offline) => PrinterState::Offline,
        Some(drivers::PrinterState::Idle) => PrinterState::Idle,
        Some(drivers::PrinterState::Printing) => PrinterState::Printing,
        Some(drivers::PrinterState::Paused) => PrinterState::Paused,
        Some(drivers::PrinterState::Error) => PrinterState::Error,
    }
}

#[derive(Deserialize)]
struct StaffBody {
    staff: Option<String>,
    name: Option<String>,
}

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

async fn staff(State(app): State<AppState>, _ws: Workstation) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "staff": app.store.staff()? })))
}

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
