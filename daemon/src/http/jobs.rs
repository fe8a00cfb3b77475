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
    let limit = match params.limit.as_deref() {
        None | Some("") => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", "limit must be a number from 1 to 500")
            })?,
    };
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "cursor must be a next_cursor value")
        })?),
    };
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

async fn show(
    State(app): State<AppState>,
    _ws: Workstation,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_json(&load(&app, &id)?)))
}

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
        other => {
            return Err(ApiError::not_found(format!(
                "jobs have no action {other:?}"
            )));
        }
    })
}

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
    Ok(job_json(&job))
}

/// After a dispatch commits, a connected printer is told to start. If it refuses, the
/// print failed before it began: the job goes back to READYTOPRINT with the reason.
async fn start_on_printer(app: &AppState, job: Job) -> Result<Value, ApiError> {
    let Some(printer_id) = job.printer.clone() else {
        return Ok(job_json(&job));
    };
    let Some(printer) = app.fleet.get(&printer_id).cloned() else {
        return Ok(job_json(&job)); // a manual printer: staff start it by hand
    };
    let Some(gcode) = app.workflow.gcode_path(&job) else {
        return Ok(job_json(&job));
    };
    let Err(error) = printer.start_job(gcode).await else {
        return Ok(job_json(&job));
    };
    let reason = format!("printer {printer_id} could not start the print: {error}");
    let fail = JobRequest::Other(Action::Fail {
        reason: reason.clone(),
        cause: FailureCause::Printer,
    });
    let workflow = app.workflow.clone();
    let actor = crate::model::Actor::System {
        component: "dispatch",
    };
    tokio::task::spawn_blocking(move || workflow.act(job.id, fail, &actor, Utc::now()))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                e.to_string(),
            )
        })??;
    Err(ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "printer_start_failed",
        reason,
    ))
}
