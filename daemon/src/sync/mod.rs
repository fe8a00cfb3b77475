//! Cloud sync: the bucket is the lab's backup and how other machines see its jobs.
//!
//! - [`bucket`]: `[sync] url` → an `object_store` client (S3 and S3-compatible servers,
//!   GCS, Azure, a local folder), with short request timeouts so an outage is noticed.
//! - [`layout`]: where things live in the bucket (pure; documented in `docs/sync.md`).
//! - [`throttle`]: the upload bandwidth cap (a pure token bucket).
//! - [`upload`]: content-addressed, idempotent uploads (HEAD first; multipart for big files).
//! - [`worker`]: drains the durable outbox (`store::sync_outbox`) with back-off, and
//!   uploads periodic snapshots of the store.
//! - [`restore`]: `farmhand restore`, rebuilding a store from the bucket alone.
//! - [`inbox`]: submissions dropped into `inbox/`, ingested through the HTTP intake.
//!
//! The farm never waits for the bucket: changes are queued in the same transaction
//! that makes them and the worker catches up whenever the bucket answers again.

pub mod bucket;
pub mod inbox;
pub mod layout;
pub mod restore;
pub mod throttle;
pub mod upload;
pub mod worker;

use std::path::PathBuf;

use crate::store::StoreError;

/// Why a sync step failed. Each says what went wrong where.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync.url: {0}")]
    BadUrl(String),
    #[error("the bucket could not be set up: {0}")]
    Setup(object_store::Error),
    #[error("the bucket answered with an error at {path}: {source}")]
    Bucket {
        path: String,
        source: object_store::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading or writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} in the bucket is not valid ({source}); was it written by Farmhand?")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
    #[error("blob {expected} in the bucket has SHA-256 {actual}: the bucket copy is damaged")]
    HashMismatch { expected: String, actual: String },
    #[error("the blob {0} is missing from the bucket: the backup is incomplete")]
    MissingBlob(String),
    #[error("the blob {0} is missing from the local blob folder: run an integrity check")]
    MissingLocalBlob(String),
    #[error("{0} is not empty: restore only into a new, empty data directory")]
    NotEmpty(PathBuf),
    #[error("a background task failed: {0}")]
    Task(String),
}

impl SyncError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SyncError {
        let path = path.into();
        move |source| SyncError::Io { path, source }
    }

    fn bucket(path: &object_store::path::Path) -> impl FnOnce(object_store::Error) -> SyncError {
        let path = path.to_string();
        move |source| SyncError::Bucket { path, source }
    }
}
