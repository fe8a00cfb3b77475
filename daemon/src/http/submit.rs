//! `POST /api/v1/jobs`: the public submission endpoint.
//!
//! The file part is streamed to a temp file while it is hashed ([`crate::intake`]), so
//! a 200 MB model never sits in memory. Then, in order: the form fields are validated,
//! the bytes are sniffed (a renamed `.exe` is refused with what it really is), the blob
//! is committed (fsync + rename) and only then the job row, so an acknowledged upload
//! always has its bytes on disk.

use std::collections::HashMap;

use axum::Json;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::jobs::job_json;
use crate::intake::{self, StageError, Staged};
use crate::workflow::{Created, NewJob};

/// Room for the text fields beside the file.
const FORM_SLACK: u64 = 1 << 20;
const MAX_FIELDS: usize = 40;
/// How far past the limit a refused upload is still read (and thrown away) so that the
/// client gets a clean 413.
const DRAIN_SLACK: u64 = 64 << 20;
const MAX_FIELD_BYTES: usize = 4096;

fn too_large(limit_mb: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("the file is larger than the {limit_mb} MB upload limit"),
    )
}

/// What the multipart form held.
#[derive(Default)]
pub(super) struct Form {
    pub(super) fields: HashMap<String, String>,
    /// The staged file and its sanitized name.
    pub(super) file: Option<(Staged, String)>,
}

impl Form {
    /// Removes the staged file, unless it has been committed (taken) already.
    pub(super) fn discard(&mut self) {
        if let Some((staged, _)) = self.file.take() {
            std::fs::remove_file(&staged.temp_path).ok();
        }
    }
}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body(content_type = "multipart/form-data", description = "file, student_name, student_email, discipline, class_number, material, color, printer, acknowledged_minimum_charge=true"), responses((status = 201, description = "The new job"), (status = 200, description = "The same file from the same student: the existing job, duplicate: true"), (status = 400, description = "A bad form"), (status = 413, description = "Over storage.max_upload_mb"), (status = 415, description = "Not a model file"), (status = 422, description = "A field or the model fails validation")))]
pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut form = receive(&app, &headers, multipart).await?;
    let result = accept(&app, &mut form).await;
    form.discard();
    result
}

/// Reads an upload form: the file streamed to a staged temp file (hashed, within
/// `max_upload_mb`), the text fields into memory (bounded in count and size). A refused
/// upload is drained so the client reads the error. Shared by every endpoint that takes
/// a file; the caller owns the staged file and must [`Form::discard`] it when done.
pub(super) async fn receive(
    app: &AppState,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Form, ApiError> {
    let limit_mb = app.config.storage.max_upload_mb;
    let max_bytes = limit_mb << 20;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes + FORM_SLACK) {
        if let Ok(mut multipart) = multipart {
            drain(&mut multipart, max_bytes + DRAIN_SLACK).await;
        }
        return Err(too_large(limit_mb));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(
            "expected_multipart",
            format!("send the file as multipart/form-data: {e}"),
        )
    })?;
    let mut form = Form::default();
    if let Err(e) = read_form(app, &mut multipart, max_bytes, &mut form).await {
        form.discard();
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            drain(&mut multipart, max_bytes + DRAIN_SLACK).await;
        }
        return Err(e);
    }
    Ok(form)
}

async fn read_form(
    app: &AppState,
    multipart: &mut Multipart,
    max_bytes: u64,
    form: &mut Form,
) -> Result<(), ApiError> {
    let mut count = 0;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::bad_request("bad_form", format!("the form could not be read: {e}"))
        })?;
        let Some(field) = field else { return Ok(()) };
        count += 1;
        if count > MAX_FIELDS {
            return Err(ApiError::bad_request(
                "bad_form",
                "the form has too many fields",
            ));
        }
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if form.file.is_some() {
                return Err(ApiError::bad_request(
                    "bad_form",
                    "send one file per submission",
                ));
            }
            let filename = intake::sanitize_filename(field.file_name().unwrap_or("model"));
            let staged = intake::stage(field, app.store.blobs().tmp_dir(), max_bytes)
                .await
                .map_err(|e| match e {
                    StageError::TooLarge { limit_mb } => too_large(limit_mb),
                    StageError::Interrupted(m) => ApiError::bad_request("upload_interrupted", m),
                    StageError::Io(io) => ApiError::from(crate::store::StoreError::Io(io)),
                })?;
            form.file = Some((staged, filename));
        } else {
            let value = read_text(field).await?;
            form.fields.insert(name, value);
        }
    }
}

/// Reads and discards the rest of a refused upload (at most `cap` bytes, 30 s), so the
/// client, still sending, reads our 413 instead of a reset connection. Past the cap the
/// connection is simply closed.
async fn drain(multipart: &mut Multipart, cap: u64) {
    let discard = async {
        let mut seen = 0u64;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                seen += chunk.len() as u64;
                if seen > cap {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), discard)
        .await
        .ok();
}

async fn read_text(mut field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| {
        ApiError::bad_request("bad_form", format!("the form could not be read: {e}"))
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_FIELD_BYTES {
            return Err(ApiError::unprocessable(
                "field_too_long",
                format!("the field {name} is too long"),
            ));
        }
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            ApiError::bad_request("bad_form", format!("the field {name} is not UTF-8 text"))
        })
}

/// Validates the form and the file, then records the job.
async fn accept(app: &AppState, form: &mut Form) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some((staged, filename)) = form.file.as_ref() else {
        return Err(ApiError::bad_request(
            "missing_file",
            "attach the model as the form field \"file\"",
        ));
    };
    let created = ingest(app, &form.fields, staged, filename).await?;
    form.file = None;
    Ok(match created {
        Created::New(job) => {
            tracing::info!(job = %job.id, file = %job.original_filename, "job submitted");
            let mut body = job_json(&job);
            body["duplicate"] = json!(false);
            (StatusCode::CREATED, Json(body))
        }
        Created::Duplicate(job) => {
            let mut body = job_json(&job);
            body["duplicate"] = json!(true);
            (StatusCode::OK, Json(body))
        }
    })
}

/// The one intake path, shared by `POST /api/v1/jobs` and the bucket inbox
/// (`sync::inbox`): validates the form fields, sniffs the staged file (a renamed `.exe`
/// is refused with what it really is), commits its blob and records the job. On success
/// the temp file has become the blob; on error it is still the caller's to remove.
pub async fn ingest(
    app: &AppState,
    fields: &HashMap<String, String>,
    staged: &Staged,
    filename: &str,
) -> Result<Created, ApiError> {
    let mut new = validate_fields(app, fields)?;
    let format = sniff_staged(staged, filename).await?;
    new.original_filename = filename.to_string();
    new.file_hash = staged.sha256.clone();
    new.size_bytes = staged.size_bytes;
    new.format = format.api_name().to_string();
    let (store, temp, hash) = (
        app.store.clone(),
        staged.temp_path.clone(),
        staged.sha256.clone(),
    );
    let workflow = app.workflow.clone();
    let created = tokio::task::spawn_blocking(move || {
        store
            .blobs()
            .commit_temp(&temp, &hash)
            .map_err(crate::store::StoreError::Io)?;
        workflow.create_job(new, Utc::now())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))??;
    Ok(created)
}

/// What a staged upload really is, by its content: a renamed `.exe` is refused (415)
/// with what it is.
pub(super) async fn sniff_staged(
    staged: &Staged,
    filename: &str,
) -> Result<slicer_bridge::FileFormat, ApiError> {
    let temp = staged.temp_path.clone();
    tokio::task::spawn_blocking(move || slicer_bridge::sniff_file(&temp))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))?
        .map_err(|e| match e {
            slicer_bridge::SniffError::NotAModel(not) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_a_model",
                format!("{filename} is {not}: upload an STL, OBJ, 3MF or G-code file"),
            ),
            slicer_bridge::SniffError::Io(io) => crate::store::StoreError::Io(io).into(),
        })
}

fn validate_fields(app: &AppState, fields: &HashMap<String, String>) -> Result<NewJob, ApiError> {
    let get = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let required = |name: &str| {
        get(name).ok_or_else(|| {
            ApiError::bad_request("missing_field", format!("the field {name} is required"))
        })
    };
    let student_name = required("student_name")?;
    let student_email = required("student_email")?;
    let acknowledged = required("acknowledged_minimum_charge")?;
    for (name, value) in fields {
        if value.chars().count() > 200 || value.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("the field {name} is too long or holds control characters"),
            ));
        }
    }
    if !matches!(
        acknowledged.to_ascii_lowercase().as_str(),
        "true" | "on" | "yes" | "1"
    ) {
        let minimum = app.config.pricing.minimum_charge_usd;
        return Err(ApiError::unprocessable(
            "minimum_charge_not_acknowledged",
            format!(
                "acknowledge the ${minimum:.2} minimum charge (acknowledged_minimum_charge=true) to submit"
            ),
        ));
    }
    validate_email(&student_email)?;
    let material = match get("material") {
        Some(m) if !app.config.pricing.materials.is_empty() => Some(
            app.config
                .pricing
                .material(&m)
                .map(|(known, _)| known.to_string())
                .ok_or_else(|| {
                    let known: Vec<&str> = app
                        .config
                        .pricing
                        .materials
                        .keys()
                        .map(String::as_str)
                        .collect();
                    ApiError::unprocessable(
                        "unknown_material",
                        format!(
                            "material {m:?} is not offered; choose one of {}",
                            known.join(", ")
                        ),
                    )
                })?,
        ),
        other => other,
    };
    let printer = get("printer");
    if let Some(p) = &printer
        && app.config.printer(p).is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_printer",
            format!("there is no printer {p:?}"),
        ));
    }
    Ok(NewJob {
        student_name,
        student_email: student_email.to_lowercase(),
        discipline: get("discipline"),
        class_number: get("class_number"),
        material,
        color: get("color"),
        printer,
        original_filename: String::new(),
        file_hash: String::new(),
        size_bytes: 0,
        format: String::new(),
    })
}

fn validate_email(email: &str) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::unprocessable(
            "invalid_email",
            format!("{email:?} is not an e-mail address"),
        )
    };
    let address: lettre::Address = email.parse().map_err(|_| invalid())?;
    if email.len() > 254 || !address.domain().contains('.') {
        return Err(invalid());
    }
    Ok(())
}
