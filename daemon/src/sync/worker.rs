//! The sync worker: drains the outbox into the bucket, and snapshots the store.
//!
//! One pass takes the due rows in the order of their latest change. For each job it
//! uploads, in this order, the blobs the job refers to (skipped when the bucket already
//! has them), the artifact copies beside the job, and last `metadata.json`, so the
//! bucket never holds metadata that points at a blob it lacks. The row is removed in
//! one transaction with the record of what was written, and only if no change came
//! in meanwhile.
//!
//! A job changed again right after its upload waits until [`MIN_JOB_INTERVAL`] has
//! passed, so a print's progress updates cost one upload per interval, not one each.
//!
//! When a request fails the row gets its own back-off (1 s, 2 s, 4 s … up to
//! `max_backoff_s`) and the whole worker pauses as long, so an unreachable bucket
//! costs one request per pause, not one per waiting job. The rest of the farm never
//! waits for any of this.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use super::bucket::Bucket;
use super::upload::Uploader;
use super::{SyncError, layout};
use crate::config::SyncConfig;
use crate::model::JobId;
use crate::store::Store;
use crate::store::sync_outbox::SyncEntry;

/// How often an idle worker looks for new rows.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Rows taken per pass.
const BATCH: usize = 16;
/// One job is uploaded at most this often: a printing job's progress changes every
/// few seconds, and each change would otherwise be a new `metadata.json`.
const MIN_JOB_INTERVAL: Duration = Duration::from_secs(5);

/// The wait after the `n`th failure in a row: 1 s, 2 s, 4 s … at most `max`.
pub fn backoff(n: u32, max: Duration) -> Duration {
    let secs = 1u64 << n.saturating_sub(1).min(20);
    Duration::from_secs(secs).min(max)
}

/// What a pass did.
enum Pass {
    Idle,
    Worked,
}

struct Worker {
    store: Store,
    uploader: Uploader,
    snapshot_every: chrono::Duration,
    max_backoff: Duration,
    /// When each job was last uploaded (only the last [`MIN_JOB_INTERVAL`] matters).
    uploaded_at: HashMap<JobId, Instant>,
}

/// Runs until `shutdown`; every error is logged, recorded for `GET /api/v1/sync` and
/// retried.
pub async fn run(store: Store, config: SyncConfig, bucket: Bucket, shutdown: CancellationToken) {
    let mut worker = Worker {
        store,
        uploader: Uploader::new(bucket, config.max_upload_kib_s),
        snapshot_every: chrono::Duration::seconds(config.snapshot_interval_s as i64),
        max_backoff: Duration::from_secs(config.max_backoff_s),
        uploaded_at: HashMap::new(),
    };
    if let Err(e) = worker.adopt_bucket() {
        tracing::error!("cloud sync cannot start: {e}");
        return;
    }
    let mut failures = 0u32;
    loop {
        let pass = tokio::select! {
            _ = shutdown.cancelled() => return,
            pass = worker.pass() => pass,
        };
        let pause = match pass {
            Ok(Pass::Worked) => {
                failures = 0;
                continue;
            }
            Ok(Pass::Idle) => {
                failures = 0;
                IDLE_POLL
            }
            Err(e) => {
                failures += 1;
                let pause = backoff(failures, worker.max_backoff);
                tracing::warn!(
                    "cloud sync to {} failed ({e}); retrying in {pause:?}",
                    worker.uploader.bucket.url
                );
                worker.note_error(&e).ok();
                pause
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

impl Worker {
    /// A bucket this store has not written to yet gets every job.
    fn adopt_bucket(&mut self) -> Result<(), SyncError> {
        let url = self.uploader.bucket.url.clone();
        if self.store.sync_status()?.bucket.as_deref() == Some(url.as_str()) {
            return Ok(());
        }
        let queued = self.store.write(|ctx| {
            ctx.reset_sync(Some(&url))?;
            ctx.queue_all_jobs()
        })?;
        tracing::info!("cloud sync: {url} is new to this farm; {queued} jobs queued");
        Ok(())
    }

    async fn pass(&mut self) -> Result<Pass, SyncError> {
        let now = Utc::now();
        let due = self.store.sync_due(now, BATCH)?;
        self.uploaded_at
            .retain(|_, at| at.elapsed() < MIN_JOB_INTERVAL);
        let waiting = !due.is_empty();
        let due: Vec<_> = due
            .into_iter()
            .filter(|(job, _)| !self.uploaded_at.contains_key(job))
            .collect();
        if due.is_empty() && waiting {
            return Ok(Pass::Idle);
        }
        if due.is_empty() {
            return Ok(if self.maybe_snapshot(now).await? {
                Pass::Worked
            } else {
                Pass::Idle
            });
        }
        for (job, entry) in due {
            match self.sync_job(job).await {
                Ok(written) => {
                    self.finish(job, entry.seq, &written)?;
                    self.uploaded_at.insert(job, Instant::now());
                }
                Err(e) => {
                    self.retry_later(job, entry, &e)?;
                    return Err(e);
                }
            }
        }
        Ok(Pass::Worked)
    }

    /// Uploads one job as it is now; returns the objects written (path, hash).
    async fn sync_job(&mut self, job: JobId) -> Result<Vec<(String, String)>, SyncError> {
        let Some(export) = self.store.export_job(job)? else {
            return Ok(Vec::new());
        };
        let mut written = Vec::new();
        for (hash, _) in export.blob_hashes() {
            if let Some(path) = self.uploader.ensure_blob(&self.store, &hash).await? {
                written.push((path, hash));
            }
        }
        let mut artifacts = export.job.artifacts.clone();
        if export.job.format == "gcode" {
            artifacts
                .entry("gcode".into())
                .or_insert_with(|| export.job.file_hash.clone());
        }
        for (name, hash) in &artifacts {
            let Some(key) = layout::artifact(job, name) else {
                continue;
            };
            if self.store.synced_object(key.as_ref())?.as_deref() != Some(hash.as_str()) {
                self.uploader.copy_blob(&self.store, hash, &key).await?;
                written.push((key.to_string(), hash.clone()));
            }
        }
        let body = serde_json::to_vec_pretty(&export).unwrap_or_default();
        let digest = crate::workflow::sha256_hex(&body);
        let key = layout::metadata(job);
        if self.store.synced_object(key.as_ref())?.as_deref() != Some(digest.as_str()) {
            self.uploader.put_bytes(&key, Bytes::from(body)).await?;
            written.push((key.to_string(), digest));
        }
        Ok(written)
    }

    fn finish(&self, job: JobId, seq: u64, written: &[(String, String)]) -> Result<(), SyncError> {
        self.store.write(|ctx| {
            for (path, hash) in written {
                ctx.record_synced_object(path, hash)?;
            }
            ctx.finish_sync(job, seq)?;
            let mut status = ctx.sync_status()?;
            status.last_success_at = Some(Utc::now());
            ctx.put_sync_status(&status)
        })?;
        Ok(())
    }

    fn retry_later(
        &self,
        job: JobId,
        entry: SyncEntry,
        error: &SyncError,
    ) -> Result<(), SyncError> {
        let now = Utc::now();
        self.store.write(|ctx| {
            // Re-read: a change may have raised the seq since the pass began.
            let mut entry = ctx.sync_entry(job)?.unwrap_or(entry);
            entry.attempts += 1;
            let wait = backoff(entry.attempts, self.max_backoff);
            entry.next_attempt_at =
                now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
            entry.last_error = Some(error.to_string());
            ctx.put_sync_entry(job, &entry)
        })?;
        Ok(())
    }

    fn note_error(&self, error: &SyncError) -> Result<(), SyncError> {
        self.store.write(|ctx| {
            let mut status = ctx.sync_status()?;
            status.last_error = Some(error.to_string());
            status.last_error_at = Some(Utc::now());
            ctx.put_sync_status(&status)
        })?;
        Ok(())
    }

    /// Uploads a snapshot when the interval has passed and something changed since
    /// the last one; keeps the newest [`layout::SNAPSHOTS_KEPT`].
    async fn maybe_snapshot(&mut self, now: DateTime<Utc>) -> Result<bool, SyncError> {
        let status = self.store.sync_status()?;
        let seq = self.store.sync_seq()?;
        let recent = status
            .last_snapshot_at
            .is_some_and(|at| now - at < self.snapshot_every);
        if seq == status.last_snapshot_seq || recent {
            return Ok(false);
        }
        let temp = self
            .store
            .blobs()
            .tmp_dir()
            .join(format!("snapshot-{}.redb", now.timestamp_micros()));
        let (store, path) = (self.store.clone(), temp.clone());
        tokio::task::spawn_blocking(move || store.snapshot_to(&path))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))??;
        let key = layout::snapshot(now);
        let uploaded = self.uploader.put_file(&temp, &key).await;
        std::fs::remove_file(&temp).ok();
        uploaded?;
        self.prune_snapshots().await?;
        self.store.write(|ctx| {
            let mut status = ctx.sync_status()?;
            status.last_snapshot_at = Some(now);
            status.last_snapshot_seq = seq;
            ctx.put_sync_status(&status)
        })?;
        tracing::info!("cloud sync: snapshot {key} uploaded");
        Ok(true)
    }

    async fn prune_snapshots(&self) -> Result<(), SyncError> {
        let root = layout::snapshots_root();
        let bucket = &self.uploader.bucket.store;
        let mut names: Vec<_> = bucket
            .list(Some(&root))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(SyncError::bucket(&root))?;
        names.sort();
        let excess = names.len().saturating_sub(layout::SNAPSHOTS_KEPT);
        for old in names.into_iter().take(excess) {
            bucket.delete(&old).await.map_err(SyncError::bucket(&old))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(u32::MAX, max).as_secs(), 300);
    }
}
