//! Staff endpoints on jobs: listing, reading, their events and files, and every action.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Workstation;
use super::error::{ApiError, ApiJson};
use crate::lifecycle::{Action, FailureCause, Pickup};
use crate::model::{Job, JobId, Status};
use crate::store::{EventQuery, JobQuery};
use crate::workflow::{ApproveRequest, JobRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/jobs",
            // Uploads enforce their own limits while streaming (see `submit`).
            get(list)
                .post(super::submit::submit)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/jobs/{id}", get(show))
        .route("/api/v1/jobs/{id}/events", get(events))
        .route("/api/v1/jobs/{id}/tasks", get(tasks))
        .route("/api/v1/jobs/{id}/files/versions", get(versions))
        .route("/api/v1/jobs/{id}/files/{name}", get(file))
        .route("/api/v1/jobs/{id}/{action}", post(act))
}

/// The API form of a job: the stored job plus derived fields.
pub fn job_json(job: &Job) -> Value {
    let mut value = serde_json::to_value(job).unwrap_or_default();
    value["is_new"] = json!(job.staff_viewed_at.is_none());
    value
}

/// A list page's `limit` (1 to 500, default 50) and `cursor` (an id from an earlier
/// answer's `next_cursor`), shared by the job and mail lists.
pub(crate) fn page(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(usize, Option<u64>), ApiError> {
    let limit = match limit {
        None | Some("") => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", "limit must be a number from 1 to 500")
            })?,
    };
    let before = match cursor {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "cursor must be a next_cursor value")
        })?),
    };
    Ok((limit, before))
}

pub fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("there is no job {raw:?}")))
}

fn load(app: &AppState, raw: &str) -> Result<Job, ApiError> {
    let id = parse_job_id(raw)?;
    app.store
        .job(id)?
        .ok_or_else(|| ApiError::not_found(format!("there is no job {id}")))
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(("status" = Option<String>, Query, description = "Only jobs in this status, e.g. READYTOPRINT"), ("q" = Option<String>, Query, description = "Text to find in names, e-mail, file name, notes"), ("limit" = Option<u32>, Query, description = "Page size"), ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page")), responses((status = 200, description = "{\"jobs\": [...], \"next_cursor\": ...}, newest first"), (status = 400, description = "A bad status, limit or cursor"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn list(
    State(app): State<AppState>,
    _ws: Workstation,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let status = params
        .status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_status", e.to_string()))?;
    let (limit, before) = page(params.limit.as_deref(), params.cursor.as_deref())?;
    let query = JobQuery {
        status,
        text: params.q.filter(|q| !q.trim().is_empty()),
        limit,
        before,
    };
    let store = app.store.clone();
    let (jobs, next) = tokio::task::spawn_blocking(move || store.list_jobs(&query))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                e.to_string(),
            )
        })??;
    let jobs: Vec<Value> = jobs.iter().map(job_json).collect();
    Ok(Json(
        json!({ "jobs": jobs, "next_cursor": next.map(|c| c.to_string()) }),
    ))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "The job id")), responses((status = 200, description = "The job"), (status = 404, description = "No such job"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn show(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_json(&load(&app, &id)?)))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, description = "The job id")), responses((status = 200, description = "The job's audit events, oldest first"), (status = 404, description = "No such job"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn events(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = load(&app, &id)?;
    let query = EventQuery {
        job: Some(job.id),
        limit: usize::MAX,
        ..Default::default()
    };
    let (events, _) = app.store.events(&query)?;
    Ok(Json(json!({ "events": events })))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/files/versions", tag = "jobs", params(("id" = String, Path, description = "The job id")), responses((status = 200, description = "Every file version of the job"), (status = 404, description = "No such job"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn versions(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = load(&app, &id)?;
    Ok(Json(
        json!({ "current": job.file_version, "versions": app.store.file_versions(job.id)? }),
    ))
}

/// Artifacts: `original` is the current file version; the others come with the
/// processing queue and are 404 until made.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/files/{name}", tag = "jobs", params(("id" = String, Path, description = "The job id"), ("name" = String, Path, description = "original, preview.glb, thumbnail.png or gcode")), responses((status = 200, description = "The artifact's bytes"), (status = 404, description = "No such job, or not made yet"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn file(
    State(app): State<AppState>,
    _ws: Workstation,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = load(&app, &id)?;
    match name.as_str() {
        "original" => {
            let path = app.store.blobs().path(&job.file_hash);
            let file = tokio::fs::File::open(&path).await.map_err(|_| {
                ApiError::not_found(format!(
                    "the file of job {} is missing from storage",
                    job.id
                ))
            })?;
            let disposition = format!(
                "attachment; filename=\"{}\"",
                job.original_filename.replace('"', "")
            );
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CONTENT_LENGTH, job.size_bytes.to_string()),
                ],
                body,
            )
                .into_response())
        }
        "preview.glb" | "thumbnail.png" | "gcode" => {
            let hash = match name.as_str() {
                "gcode" if job.format == "gcode" => Some(job.file_hash.clone()),
                other => job.artifacts.get(other).cloned(),
            };
            let hash = hash.ok_or_else(|| {
                ApiError::not_found(format!("{name} of job {} has not been made (yet)", job.id))
            })?;
            let content_type = match name.as_str() {
                "preview.glb" => "model/gltf-binary",
                "thumbnail.png" => "image/png",
                _ => "text/x.gcode",
            };
            serve_blob(&app, &hash, content_type, None).await
        }
        other => Err(ApiError::not_found(format!("jobs have no file {other:?}"))),
    }
}

/// Streams a blob from disk.
async fn serve_blob(
    app: &AppState,
    hash: &str,
    content_type: &'static str,
    disposition: Option<String>,
) -> Result<Response, ApiError> {
    let path = app.store.blobs().path(hash);
    let missing = |_| ApiError::not_found("the file is missing from storage");
    let file = tokio::fs::File::open(&path).await.map_err(missing)?;
    let size = file.metadata().await.map_err(missing)?.len();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    if let Some(value) = disposition.and_then(|d| header::HeaderValue::from_str(&d).ok()) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/tasks", tag = "jobs", params(("id" = String, Path, description = "The job id")), responses((status = 200, description = "The job's processing tasks"), (status = 404, description = "No such job"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn tasks(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = load(&app, &id)?;
    Ok(Json(json!({ "tasks": app.store.tasks_of(job.id)? })))
}

/// Every action body names the staff member; the rest depends on the action.
#[derive(Deserialize)]
struct ActionBody {
    staff: Option<String>,
    #[serde(flatten)]
    rest: Value,
}

#[derive(Deserialize)]
struct RejectBody {
    #[serde(default)]
    reasons: Vec<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct DispatchBody {
    printer: Option<String>,
}

#[derive(Deserialize)]
struct FailBody {
    reason: Option<String>,
    cause: Option<FailureCause>,
}

#[derive(Deserialize, Default)]
struct PickupBody {
    paid_usd: Option<f64>,
    payment_ref: Option<String>,
    weight_g: Option<f64>,
    picked_up_by: Option<String>,
}

#[derive(Deserialize)]
struct NotesBody {
    notes: String,
}

#[derive(Deserialize)]
struct PriorityBody {
    priority: i32,
}

#[derive(Deserialize)]
struct LockBody {
    minutes: Option<u32>,
}

fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid: {e}"),
        )
    })
}

/// Turns `POST /api/v1/jobs/{id}/{action}` into a workflow request. The kiosk's
/// forms use it too (as JSON built from the form), so both read a body the same way.
pub(crate) fn request(action: &str, rest: Value) -> Result<JobRequest, ApiError> {
    Ok(match action {
        "approve" => JobRequest::Approve(body::<ApproveRequest>(rest)?),
        "reject" => {
            let b: RejectBody = body(rest)?;
            let reasons = b.reasons.into_iter().chain(b.reason).collect();
            JobRequest::Other(Action::Reject { reasons })
        }
        "resend-confirmation" => JobRequest::Other(Action::ResendConfirmation),
        "dispatch" => JobRequest::Dispatch {
            printer: body::<DispatchBody>(rest)?
                .printer
                .filter(|p| !p.is_empty()),
        },
        "fail" => {
            let b: FailBody = body(rest)?;
            let reason = b.reason.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                ApiError::bad_request("missing_reason", "say why the print failed in \"reason\"")
            })?;
            JobRequest::Other(Action::Fail {
                reason,
                cause: b.cause.unwrap_or(FailureCause::Printer),
            })
        }
        "complete" => JobRequest::Other(Action::Complete),
        "pickup" => {
            let b: PickupBody = body(rest)?;
            JobRequest::Other(Action::Pickup(Pickup {
                paid_usd: b.paid_usd,
                payment_ref: b.payment_ref,
                weight_g: b.weight_g,
                picked_up_by: b.picked_up_by,
            }))
        }
        "archive" => JobRequest::Other(Action::Archive),
        "notes" => {
            let b: NotesBody = body(rest)?;
            if b.notes.len() > 20_000 {
                return Err(ApiError::unprocessable(
                    "notes_too_long",
                    "notes are limited to 20,000 characters",
                ));
            }
            JobRequest::Other(Action::UpdateNotes { notes: b.notes })
        }
        "lock" => JobRequest::Lock {
            minutes: body::<LockBody>(rest)?.minutes,
        },
        "unlock" => JobRequest::Other(Action::Unlock),
        "viewed" => JobRequest::Other(Action::MarkViewed),
        "priority" => JobRequest::Other(Action::SetPriority {
            priority: body::<PriorityBody>(rest)?.priority,
        }),
        other => {
            return Err(ApiError::not_found(format!(
                "jobs have no action {other:?}"
            )));
        }
    })
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/{action}", tag = "jobs", params(("id" = String, Path, description = "The job id"), ("action" = String, Path, description = "approve, reject, resend-confirmation, dispatch, fail, complete, pickup, archive, notes, lock, unlock, viewed")), request_body(content = Object, description = "{\"staff\": name, ...} as the action needs (docs/api.md)"), responses((status = 200, description = "The job after the action"), (status = 404, description = "No such job or action"), (status = 409, description = "Not allowed in the job's status, or locked by someone else"), (status = 422, description = "A field fails validation, or an unknown staff name"), (status = 401, description = "No or an unknown workstation token")), security(("workstation_token" = [])))]
async fn act(
    State(app): State<AppState>,
    ws: Workstation,
    Path((id, action)): Path<(String, String)>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_job_id(&id)?;
    let request = request(&action, body.rest)?;
    let actor = ws.actor(&app, body.staff.as_deref())?;
    perform(&app, id, request, actor).await.map(Json)
}

/// Carries out one request on a job: the one path of every staff action, whether it
/// came from the JSON API or a kiosk form. A dispatch also starts the printer.
pub(crate) async fn perform(
    app: &AppState,
    id: JobId,
    request: JobRequest,
    actor: crate::model::Actor,
) -> Result<Value, ApiError> {
    let dispatch = matches!(request, JobRequest::Dispatch { .. });
    let fail = matches!(request, JobRequest::Other(Action::Fail { .. }));
    let workflow = app.workflow.clone();
    let job = tokio::task::spawn_blocking(move || workflow.act(id, request, &actor, Utc::now()))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                e.to_string(),
            )
        })??;
    if dispatch {
        return start_on_printer(app, job).await;
    }
    if fail {
        stop_on_printer(app, job.printer.as_deref()).await;
    }
    Ok(job_json(&job))
}

/// After a dispatch commits, a connected printer is told to start; if it refuses, the
/// job is already back in READYTOPRINT and the client gets a 409 with the reason.
async fn start_on_printer(app: &AppState, job: Job) -> Result<Value, ApiError> {
    match crate::dispatch::start_on_printer(app, job).await {
        Ok(job) => Ok(job_json(&job)),
        Err(crate::dispatch::StartError::Refused(reason)) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "printer_start_failed",
            reason,
        )),
        Err(crate::dispatch::StartError::Workflow(e)) => Err(e.into()),
        Err(crate::dispatch::StartError::Busy(e)) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            e,
        )),
    }
}

/// Staff failed a print that a connected printer is still running: stop it there too,
/// so the printer does not go on with a job Farmhand no longer tracks.
async fn stop_on_printer(app: &AppState, printer: Option<&str>) {
    let Some(id) = printer else { return };
    let Some(handle) = app.fleet.get(id).cloned() else {
        return;
    };
    let running = matches!(
        handle.status().borrow().state,
        drivers::PrinterState::Printing | drivers::PrinterState::Paused
    );
    if running && let Err(e) = handle.cancel().await {
        tracing::warn!(printer = %id, "cannot stop the failed print on the printer: {e}");
    }
}

/// This file's endpoints for the OpenAPI document (`super::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, events, versions, file, tasks, act, super::submit::submit))]
pub(crate) struct JobsApi;
