//! The bucket inbox: submissions dropped into `inbox/` (by a campus web form, say)
//! become jobs through the very same validation as `POST /api/v1/jobs`.
//!
//! A submission is `inbox/{name}.json`, the form fields as a JSON object of strings
//! (booleans and numbers are accepted too) plus `"file"`: the model's object name in
//! `inbox/` (e.g. `"{name}.stl"`). After ingesting, the worker writes
//! `inbox/done/{name}.json` (`{"job_id", "duplicate", "submission"}`) or
//! `inbox/rejected/{name}.json` (`{"error": {"code", "message"}, "submission"}`, the
//! API's error shape) and removes the submission. A crash between creating the job and
//! moving the submission is harmless: ingesting it again hits the duplicate rule (same
//! file, same e-mail, active job) and returns the job made the first time, so each
//! submission becomes one job. Bucket or store failures leave it for the next pass.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::SyncError;
use super::bucket::Bucket;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::workflow::Created;

/// The largest submission document read.
const MAX_JSON_BYTES: u64 = 64 << 10;
/// Submissions taken per pass.
const BATCH: usize = 20;

/// Polls the inbox every `every` until `shutdown`.
pub async fn run(app: AppState, bucket: Bucket, every: Duration, shutdown: CancellationToken) {
    loop {
        let pass = tokio::select! {
            _ = shutdown.cancelled() => return,
            pass = pass(&app, &bucket) => pass,
        };
        if let Err(e) = pass {
            tracing::warn!("inbox in {}: {e}", bucket.url);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Ingests what is waiting; returns how many submissions were settled.
pub async fn pass(app: &AppState, bucket: &Bucket) -> Result<usize, SyncError> {
    let root = ObjectPath::from("inbox");
    let listing = bucket
        .store
        .list_with_delimiter(Some(&root))
        .await
        .map_err(SyncError::bucket(&root))?;
    let mut submissions: Vec<_> = listing
        .objects
        .into_iter()
        .filter(|meta| meta.location.extension() == Some("json"))
        .collect();
    submissions.sort_by(|a, b| a.location.cmp(&b.location));
    let mut settled = 0;
    for meta in submissions.into_iter().take(BATCH) {
        let name = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .unwrap_or("submission")
            .to_string();
        let outcome = if meta.size > MAX_JSON_BYTES {
            Outcome::Rejected(
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "submission_too_large",
                    "the submission document is larger than 64 KiB",
                ),
                Value::Null,
            )
        } else {
            ingest_one(app, bucket, &meta.location).await?
        };
        settle(bucket, &name, &meta.location, outcome).await?;
        settled += 1;
    }
    Ok(settled)
}

enum Outcome {
    Accepted(Box<Created>, Value),
    Rejected(ApiError, Value),
}

/// Reads one submission and runs it through the shared intake. Bucket and store
/// failures are errors (retried later); anything wrong with the submission is an
/// [`Outcome::Rejected`].
async fn ingest_one(
    app: &AppState,
    bucket: &Bucket,
    doc_path: &ObjectPath,
) -> Result<Outcome, SyncError> {
    let raw = get_bytes(bucket, doc_path).await?;
    let document: Value = match serde_json::from_slice(&raw) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            let error = ApiError::bad_request("bad_form", "the submission is not a JSON object");
            return Ok(Outcome::Rejected(error, Value::Null));
        }
    };
    let fields = form_fields(&document);
    let Some(file) = fields.get("file").cloned() else {
        let error = ApiError::bad_request(
            "missing_file",
            "name the model file in \"file\" (an object beside the submission in inbox/)",
        );
        return Ok(Outcome::Rejected(error, document));
    };
    let filename = crate::intake::sanitize_filename(&file);
    let model = ObjectPath::from(format!("inbox/{filename}"));
    let stream = match bucket.store.get(&model).await {
        Ok(result) => result.into_stream(),
        Err(object_store::Error::NotFound { .. }) => {
            let error = ApiError::bad_request(
                "missing_file",
                format!("the model file inbox/{filename} is not in the bucket"),
            );
            return Ok(Outcome::Rejected(error, document));
        }
        Err(e) => return Err(SyncError::bucket(&model)(e)),
    };
    let max_bytes = app.config.storage.max_upload_mb << 20;
    let staged = match crate::intake::stage(stream, app.store.blobs().tmp_dir(), max_bytes).await {
        Ok(staged) => staged,
        Err(crate::intake::StageError::TooLarge { limit_mb }) => {
            let error = ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("the file is larger than the {limit_mb} MB upload limit"),
            );
            return Ok(Outcome::Rejected(error, document));
        }
        Err(e) => return Err(SyncError::Task(e.to_string())),
    };
    let result = crate::http::submit::ingest(app, &fields, &staged, &filename).await;
    std::fs::remove_file(&staged.temp_path).ok();
    match result {
        Ok(created) => Ok(Outcome::Accepted(Box::new(created), document)),
        // The store could not take it now: try again next pass.
        Err(e) if e.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            Err(SyncError::Task(e.message))
        }
        Err(e) => Ok(Outcome::Rejected(e, document)),
    }
}

/// The submission's fields as the HTTP form would carry them (all text).
fn form_fields(document: &Value) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    if let Value::Object(map) = document {
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s.trim().to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            fields.insert(key.clone(), text);
        }
    }
    fields
}

/// Writes the result beside the inbox and removes the submission (and, when it was
/// accepted, its model: the bytes are in the store and its blob now).
async fn settle(
    bucket: &Bucket,
    name: &str,
    doc_path: &ObjectPath,
    outcome: Outcome,
) -> Result<(), SyncError> {
    let (folder, report, model_kept) = match &outcome {
        Outcome::Accepted(created, submission) => {
            let (job, duplicate) = match created.as_ref() {
                Created::New(job) => (job, false),
                Created::Duplicate(job) => (job, true),
            };
            tracing::info!(job = %job.id, "inbox submission {name} ingested");
            let report =
                json!({ "job_id": job.id, "duplicate": duplicate, "submission": submission });
            ("done", report, false)
        }
        Outcome::Rejected(error, submission) => {
            tracing::info!("inbox submission {name} rejected: {}", error.message);
            let report = json!({
                "error": { "code": error.code, "message": error.message },
                "submission": submission,
            });
            ("rejected", report, true)
        }
    };
    let target = ObjectPath::from(format!("inbox/{folder}/{name}.json"));
    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
    bucket
        .store
        .put(&target, PutPayload::from(Bytes::from(body)))
        .await
        .map_err(SyncError::bucket(&target))?;
    let submission = match &outcome {
        Outcome::Accepted(_, s) | Outcome::Rejected(_, s) => s,
    };
    if let Some(file) = submission.get("file").and_then(Value::as_str) {
        let model = ObjectPath::from(format!("inbox/{}", crate::intake::sanitize_filename(file)));
        if model_kept {
            let kept = ObjectPath::from(format!(
                "inbox/rejected/{}",
                crate::intake::sanitize_filename(file)
            ));
            match bucket.store.rename(&model, &kept).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(SyncError::bucket(&model)(e)),
            }
        } else {
            delete_if_there(bucket, &model).await?;
        }
    }
    delete_if_there(bucket, doc_path).await
}

async fn delete_if_there(bucket: &Bucket, path: &ObjectPath) -> Result<(), SyncError> {
    match bucket.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(SyncError::bucket(path)(e)),
    }
}

async fn get_bytes(bucket: &Bucket, path: &ObjectPath) -> Result<Bytes, SyncError> {
    let chunks: Vec<Bytes> = bucket
        .store
        .get(path)
        .await
        .map_err(SyncError::bucket(path))?
        .into_stream()
        .try_collect()
        .await
        .map_err(SyncError::bucket(path))?;
    Ok(Bytes::from(chunks.concat()))
}
