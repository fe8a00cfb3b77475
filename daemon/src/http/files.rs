//! `POST /api/v1/jobs/{id}/files`: staff add a new authoritative file version (the
//! G-code they sliced, a `.gcode.3mf`, a repaired model). Earlier versions are kept.
//!
//! The upload takes the same path as a submission (streamed and hashed into a temp
//! file within `max_upload_mb`, sniffed by content, committed fsync + rename) before
//! [`Workflow::add_file`](crate::workflow::Workflow::add_file) records it in one
//! transaction with its `FileAdded` event.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::Value;

use super::AppState;
use super::auth::Workstation;
use super::error::ApiError;
use super::jobs::{job_json, parse_job_id};
use super::submit::{Form, receive, sniff_staged};
use crate::model::{Actor, Job, JobId};
use crate::workflow::files::AddedFile;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/jobs/{id}/files", post(add))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/files", tag = "jobs", params(("id" = String, Path, description = "The job id")), request_body(content_type = "multipart/form-data", description = "file (required), staff (required): the new version"), responses((status = 201, description = "The job with its new file version"), (status = 400, description = "A bad form or no staff name"), (status = 409, description = "The job is past READYTOPRINT, or locked by someone else"), (status = 413, description = "Over storage.max_upload_mb"), (status = 415, description = "Not a model or G-code file"), (status = 422, description = "An unknown or inactive staff name")), security(("workstation_token" = [])))]
async fn add(
    State(app): State<AppState>,
    ws: Workstation,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_job_id(&id)?;
    let mut form = receive(&app, &headers, multipart).await?;
    let result = match ws.actor(&app, form.fields.get("staff").map(String::as_str)) {
        Ok(actor) => record(&app, actor, id, &mut form).await,
        Err(e) => Err(e),
    };
    form.discard();
    let job = result?;
    Ok((StatusCode::CREATED, Json(job_json(&job))))
}

/// Records the staged file of `form` as the next version of job `id`, by `actor`. The
/// kiosk's upload form (`http::web::actions::upload`) comes here too.
pub(super) async fn record(
    app: &AppState,
    actor: Actor,
    id: JobId,
    form: &mut Form,
) -> Result<Job, ApiError> {
    let Some((staged, filename)) = form.file.as_ref() else {
        return Err(ApiError::bad_request(
            "missing_file",
            "attach the new version as the form field \"file\"",
        ));
    };
    // Refuse before the work of analysing a large file the job cannot take.
    let job = app.workflow.check_file_change(id, &actor, Utc::now())?;
    let format = sniff_staged(staged, filename).await?;
    let (store, config) = (app.store.clone(), app.config.clone());
    let (temp, hash) = (staged.temp_path.clone(), staged.sha256.clone());
    let gcode = format.api_name() == "gcode";
    let material = job.material.clone();
    let gcode_analysis = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let analysis = if gcode {
            let opts = crate::tools::analyze_options(Some(&config), material.as_deref());
            let report = slicer_bridge::analyze_file(&temp, &opts).map_err(|e| {
                ApiError::unprocessable(
                    "invalid_gcode",
                    format!("the G-code could not be analysed: {e}"),
                )
            })?;
            Some(serde_json::to_value(report).unwrap_or_default())
        } else {
            None
        };
        store
            .blobs()
            .commit_temp(&temp, &hash)
            .map_err(crate::store::StoreError::Io)?;
        Ok(analysis)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    let file = AddedFile {
        hash: staged.sha256.clone(),
        size_bytes: staged.size_bytes,
        filename: filename.clone(),
        format: format.api_name().to_string(),
        gcode_analysis,
    };
    // The temp file is the blob now: nothing left to discard.
    form.file = None;
    let workflow = app.workflow.clone();
    let job = tokio::task::spawn_blocking(move || workflow.add_file(id, file, &actor, Utc::now()))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    tracing::info!(job = %job.id, "file version added");
    Ok(job)
}

/// This file's endpoints for the OpenAPI document (`super::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(add))]
pub(crate) struct FilesApi;
