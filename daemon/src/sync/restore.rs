//! `farmhand restore --from URL --data-dir DIR`: a working store from the bucket alone.
//!
//! 1. The newest `snapshots/*.redb`, if there is one, becomes the database (it brings
//!    what is not per job: staff, workstations, printers, confirmation links, mail).
//! 2. Every `jobs/{id}/metadata.json` is written over it, ids kept: these are newer
//!    than any snapshot, since the worker uploads them after every change.
//! 3. Every blob the store now refers to is downloaded to `tmp/`, its SHA-256 checked
//!    against its name, fsynced and renamed into place: a damaged copy stops the
//!    restore instead of becoming a job's file.
//!
//! The restored store is marked as in step with the bucket, so the farm started on it
//! uploads only what changes afterwards.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

use super::bucket::Bucket;
use super::{SyncError, layout};
use crate::config::SyncConfig;
use crate::store::Store;
use crate::store::sync_outbox::JobExport;

/// What a restore brought back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreReport {
    pub snapshot: Option<String>,
    pub jobs: u64,
    pub events: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Rebuilds a store in `data_dir` (which must be empty or absent) from the bucket.
pub async fn restore(config: &SyncConfig, data_dir: &Path) -> Result<RestoreReport, SyncError> {
    refuse_non_empty(data_dir)?;
    let bucket = Bucket::open(config)?;
    std::fs::create_dir_all(data_dir).map_err(SyncError::io(data_dir))?;
    let mut report = RestoreReport::default();
    if let Some(snapshot) = newest(&bucket, &layout::snapshots_root()).await? {
        let target = data_dir.join("farmhand.redb");
        download(&bucket, &snapshot, &target).await?;
        report.snapshot = Some(snapshot.to_string());
    }
    let store = Store::open(data_dir)?;
    let jobs: Vec<ObjectPath> = list(&bucket, &layout::jobs_root())
        .await?
        .into_iter()
        .filter(|(path, _)| layout::job_of_metadata(path).is_some())
        .map(|(path, _)| path)
        .collect();
    let bar = progress(jobs.len() as u64, "jobs");
    for path in jobs {
        let bytes = bucket
            .store
            .get(&path)
            .await
            .map_err(SyncError::bucket(&path))?
            .bytes()
            .await
            .map_err(SyncError::bucket(&path))?;
        let export: JobExport =
            serde_json::from_slice(&bytes).map_err(|source| SyncError::Corrupt {
                path: path.to_string(),
                source,
            })?;
        store.write(|ctx| ctx.restore_job(&export))?;
        report.jobs += 1;
        report.events += export.events.len() as u64;
        bar.inc(1);
    }
    bar.finish_and_clear();
    restore_blobs(&bucket, &store, &mut report).await?;
    store.write(|ctx| ctx.reset_sync(Some(&config.url)))?;
    Ok(report)
}

fn refuse_non_empty(data_dir: &Path) -> Result<(), SyncError> {
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(SyncError::NotEmpty(data_dir.to_path_buf())),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SyncError::io(data_dir)(e)),
    }
}

async fn restore_blobs(
    bucket: &Bucket,
    store: &Store,
    report: &mut RestoreReport,
) -> Result<(), SyncError> {
    let sizes: HashMap<String, u64> = list(bucket, &ObjectPath::from("blobs"))
        .await?
        .into_iter()
        .filter_map(|(path, size)| path.filename().map(|name| (name.to_string(), size)))
        .collect();
    let wanted = store.known_blobs()?;
    let total: u64 = wanted
        .iter()
        .map(|(hash, _)| sizes.get(hash).copied().unwrap_or(0))
        .sum();
    let bar = progress(total, "bytes");
    for (hash, _) in wanted {
        let Some(size) = sizes.get(&hash).copied() else {
            return Err(SyncError::MissingBlob(hash));
        };
        if !store.blobs().contains(&hash) {
            let temp = store.blobs().tmp_dir().join(format!("restore-{hash}"));
            let actual = download(bucket, &layout::blob(&hash), &temp).await?;
            if actual != hash {
                std::fs::remove_file(&temp).ok();
                return Err(SyncError::HashMismatch {
                    expected: hash,
                    actual,
                });
            }
            store
                .blobs()
                .commit_temp(&temp, &hash)
                .map_err(SyncError::io(&temp))?;
        }
        store.write(|ctx| ctx.register_blob(&hash, size))?;
        report.blobs += 1;
        report.bytes += size;
        bar.inc(size);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Streams an object to `target` (fsynced); returns the SHA-256 of what was written.
async fn download(bucket: &Bucket, path: &ObjectPath, target: &Path) -> Result<String, SyncError> {
    let mut stream = bucket
        .store
        .get(path)
        .await
        .map_err(SyncError::bucket(path))?
        .into_stream();
    let mut file = std::fs::File::create(target).map_err(SyncError::io(target))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(SyncError::bucket(path))?;
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(SyncError::io(target))?;
    }
    file.sync_all().map_err(SyncError::io(target))?;
    Ok(hex::encode(hasher.finalize()))
}

async fn list(bucket: &Bucket, prefix: &ObjectPath) -> Result<Vec<(ObjectPath, u64)>, SyncError> {
    bucket
        .store
        .list(Some(prefix))
        .map_ok(|meta| (meta.location, meta.size))
        .try_collect()
        .await
        .map_err(SyncError::bucket(prefix))
}

async fn newest(bucket: &Bucket, prefix: &ObjectPath) -> Result<Option<ObjectPath>, SyncError> {
    let mut names: Vec<ObjectPath> = list(bucket, prefix)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    names.sort();
    Ok(names.pop())
}

fn progress(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = match unit {
        "bytes" => "restoring blobs [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
        _ => "restoring jobs  [{bar:40}] {pos}/{len}",
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The data dir as given, made absolute for messages.
pub fn describe(data_dir: &Path) -> PathBuf {
    std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf())
}
