//! The durable processing queue: analysis, GLB preview and thumbnail of every upload.
//!
//! Tasks are rows in redb, queued in the same transaction that creates the job, so an
//! acknowledged upload always has its work waiting. [`run`] claims due tasks (analysis
//! first, then oldest) up to a fixed number of workers, runs the slicer-bridge code on
//! blocking threads, and records each result in one transaction: the job's `analysis`
//! or a new artifact blob. A failure is retried after 1 s, 2 s, 4 s …; after
//! `max_attempts` the task is marked failed and its error shows on the job. Tasks left
//! `running` by a crash are queued again at start-up, so a restart loses none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{Actor, EventDraft, EventType, FileVersion, Job, Task, TaskKind, TaskState};
use crate::store::{Store, StoreError, WriteCtx};

/// Attempts before a task is marked failed.
pub const MAX_ATTEMPTS: u32 = 3;
/// Thumbnail edge in pixels.
pub const THUMBNAIL_PX: u32 = 512;

/// The tasks an upload of `job`'s current file needs.
pub fn tasks_for(format: &str) -> &'static [TaskKind] {
    match format {
        "stl" | "obj" | "3mf" => &[TaskKind::Analyze, TaskKind::Thumbnail, TaskKind::Preview],
        "gcode" | "gcode.3mf" => &[TaskKind::Analyze, TaskKind::Thumbnail],
        _ => &[TaskKind::Analyze],
    }
}

/// The slicer profile for a job: its printer's, else the first printer that has one.
pub fn slice_profile(config: &Config, job: &Job) -> Option<PathBuf> {
    let preferred = job.printer.as_deref().and_then(|id| config.printer(id));
    preferred
        .and_then(|p| p.slicer_profile.clone())
        .or_else(|| {
            config
                .printers
                .iter()
                .find_map(|p| p.slicer_profile.clone())
        })
}

/// Queues the tasks for `job`'s current file inside the caller's transaction.
pub fn enqueue(
    ctx: &mut WriteCtx,
    job: &Job,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mesh = tasks_for(&job.format).contains(&TaskKind::Preview);
    let slice = (mesh && slice_profile(config, job).is_some()).then_some(TaskKind::Slice);
    for kind in tasks_for(&job.format).iter().chain(slice.iter()) {
        let task = Task {
            id: ctx.next_id("next_task_id")?,
            job_id: job.id,
            kind: *kind,
            input_hash: job.file_hash.clone(),
            state: TaskState::Queued,
            attempts: 0,
            max_attempts: MAX_ATTEMPTS,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        ctx.put_task(&task)?;
    }
    Ok(())
}

/// Back-off before attempt `attempts + 1`: 1 s, 2 s, 4 s …, at most 10 minutes.
pub fn backoff(attempts: u32) -> chrono::Duration {
    let seconds = 1i64 << attempts.saturating_sub(1).min(10);
    chrono::Duration::seconds(seconds.min(600))
}

/// How many tasks run at once: the Pi has 4 slow cores and must stay responsive.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).clamp(1, 2))
}

/// Runs the queue until `shutdown`, then waits for the tasks in flight.
pub async fn run(
    store: Store,
    config: Arc<Config>,
    wakeup: Arc<Notify>,
    workers: usize,
    shutdown: CancellationToken,
) {
    if let Err(e) = requeue_interrupted(&store) {
        tracing::error!("cannot recover the processing queue: {e}");
    }
    let slots = Arc::new(Semaphore::new(workers.max(1)));
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits();
        let claimed = if free > 0 {
            claim(&store, free, Utc::now())
        } else {
            Ok((vec![], None))
        };
        let next_due = match claimed {
            Ok((tasks, next_due)) => {
                for task in tasks {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (store, config, wakeup) = (store.clone(), config.clone(), wakeup.clone());
                    running.spawn(async move {
                        let outcome = execute(&store, &config, &task).await;
                        if let Err(e) = record(&store, &task, outcome, Utc::now()) {
                            tracing::error!(
                                task = task.id,
                                "cannot record a processing result: {e}"
                            );
                        }
                        drop(permit);
                        wakeup.notify_one();
                    });
                }
                next_due
            }
            Err(e) => {
                tracing::error!("cannot read the processing queue: {e}");
                None
            }
        };
        let wait = next_due.map_or(Duration::from_secs(5), |due| {
            (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_secs(5))
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// Tasks a crash left `running` go back to the queue (the attempt still counts).
fn requeue_interrupted(store: &Store) -> Result<(), StoreError> {
    store.write(|ctx| {
        for mut task in ctx.tasks()? {
            if task.state == TaskState::Running {
                task.state = TaskState::Queued;
                ctx.put_task(&task)?;
            }
        }
        Ok(())
    })
}

/// Marks up to `limit` due tasks running; returns them and when the next one is due.
fn claim(
    store: &Store,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<(Vec<Task>, Option<DateTime<Utc>>), StoreError> {
    store.write(|ctx| {
        let mut queued: Vec<Task> = ctx
            .tasks()?
            .into_iter()
            .filter(|t| t.state == TaskState::Queued)
            .collect();
        queued.sort_by_key(|t| (t.next_attempt_at > now, t.kind.priority(), t.id));
        let mut claimed = Vec::new();
        let mut next_due = None;
        for mut task in queued {
            if task.next_attempt_at > now {
                next_due = Some(next_due.map_or(task.next_attempt_at, |d: DateTime<Utc>| {
                    d.min(task.next_attempt_at)
                }));
                continue;
            }
            if claimed.len() == limit {
                next_due = Some(now);
                continue;
            }
            task.state = TaskState::Running;
            task.updated_at = now;
            ctx.put_task(&task)?;
            claimed.push(task);
        }
        Ok((claimed, next_due))
    })
}

/// What a task made.
enum Output {
    Analysis(Value),
    Artifact {
        name: &'static str,
        hash: String,
    },
    /// Sliced G-code: a new file version, with its own analysis.
    Sliced {
        hash: String,
        size: u64,
        analysis: Value,
    },
}

async fn execute(store: &Store, config: &Config, task: &Task) -> Result<Output, String> {
    let job = store
        .job(task.job_id)
        .map_err(|e| e.to_string())?
        .ok_or("the job is gone")?;
    let input = store.blobs().path(&task.input_hash);
    let material = job.material.clone();
    let opts = crate::tools::analyze_options(Some(config), material.as_deref());
    let profile = slice_profile(config, &job);
    let format = job.format.clone();
    let (kind, store) = (task.kind, store.clone());
    let scratch = store.blobs().tmp_dir().join(format!("task-{}", task.id));
    tokio::task::spawn_blocking(move || -> Result<Output, String> {
        match kind {
            TaskKind::Analyze => {
                let analysis =
                    slicer_bridge::analyze_file(&input, &opts).map_err(|e| e.to_string())?;
                Ok(Output::Analysis(
                    serde_json::to_value(analysis).unwrap_or_default(),
                ))
            }
            TaskKind::Preview => {
                let out = scratch.with_extension("glb");
                slicer_bridge::convert_to_glb(&input, &out).map_err(|e| e.to_string())?;
                Ok(Output::Artifact {
                    name: "preview.glb",
                    hash: commit_artifact(&store, &out)?,
                })
            }
            TaskKind::Thumbnail => {
                let out = scratch.with_extension("png");
                slicer_bridge::render_thumbnail(&input, &out, THUMBNAIL_PX)
                    .map_err(|e| e.to_string())?;
                Ok(Output::Artifact {
                    name: "thumbnail.png",
                    hash: commit_artifact(&store, &out)?,
                })
            }
            TaskKind::Slice => {
                let profile = profile.ok_or("no printer has a slicer_profile any more")?;
                let out = scratch.with_extension("gcode");
                // Slicers pick the reader by extension; blobs have none.
                let named = scratch.with_extension(&format);
                link_or_copy(&input, &named)?;
                let options = slicer_bridge::SliceOptions::new(profile);
                let sliced =
                    slicer_bridge::slice(&named, &out, &options).map_err(|e| e.to_string());
                std::fs::remove_file(&named).ok();
                sliced?;
                let analysis =
                    slicer_bridge::analyze_file(&out, &opts).map_err(|e| e.to_string())?;
                let size = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
                let hash = commit_artifact(&store, &out)?;
                Ok(Output::Sliced {
                    hash,
                    size,
                    analysis: serde_json::to_value(analysis).unwrap_or_default(),
                })
            }
        }
    })
    .await
    .map_err(|e| format!("the task stopped unexpectedly: {e}"))?
}

/// A name for `blob` with an extension: a hard link (same file system), else a copy.
fn link_or_copy(blob: &Path, named: &Path) -> Result<(), String> {
    std::fs::remove_file(named).ok();
    std::fs::hard_link(blob, named)
        .or_else(|_| std::fs::copy(blob, named).map(|_| ()))
        .map_err(|e| format!("could not prepare the model for the slicer: {e}"))
}

/// Fsyncs a made file and moves it into the blob store under its hash.
fn commit_artifact(store: &Store, path: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("could not store the result: {e}");
    let bytes = std::fs::read(path).map_err(fail)?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(fail)?;
    let hash = hex::encode(Sha256::digest(&bytes));
    store.blobs().commit_temp(path, &hash).map_err(fail)?;
    Ok(hash)
}

/// Records a task's outcome and what it made, in one transaction.
fn record(
    store: &Store,
    task: &Task,
    outcome: Result<Output, String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.write(|ctx| {
        let Some(mut task) = ctx.task(task.id)? else { return Ok(()) };
        let Some(mut job) = ctx.job(task.job_id)? else {
            return ctx.remove_task(task.id);
        };
        if job.file_hash != task.input_hash {
            // A newer file version replaced this one: its result no longer applies.
            return ctx.remove_task(task.id);
        }
        task.attempts += 1;
        task.updated_at = now;
        match outcome {
            Ok(Output::Analysis(mut analysis)) => {
                analysis["state"] = json!("done");
                analysis["error"] = Value::Null;
                // Results of other tasks that may have finished first stay.
                for kept in ["sliced", "artifact_errors"] {
                    if !job.analysis[kept].is_null() {
                        analysis[kept] = job.analysis[kept].clone();
                    }
                }
                job.analysis = analysis;
                ctx.remove_task(task.id)?;
            }
            Ok(Output::Sliced { hash, size, analysis }) => {
                add_sliced_version(ctx, &mut job, &hash, size, now)?;
                job.analysis["sliced"] = analysis;
                ctx.remove_task(task.id)?;
            }
            Ok(Output::Artifact { name, hash }) => {
                if let Ok(size) = std::fs::metadata(store.blobs().path(&hash)).map(|m| m.len()) {
                    ctx.register_blob(&hash, size)?;
                }
                job.artifacts.insert(name.to_string(), hash);
                ctx.remove_task(task.id)?;
            }
            Err(error) if task.attempts >= task.max_attempts => {
                tracing::warn!(job = %job.id, task = task.id, "processing failed for good: {error}");
                note_failure(&mut job, task.kind, &error);
                task.state = TaskState::Failed;
                task.last_error = Some(error);
                ctx.put_task(&task)?;
            }
            Err(error) => {
                tracing::info!(job = %job.id, task = task.id, attempts = task.attempts, "processing failed, will retry: {error}");
                task.state = TaskState::Queued;
                task.next_attempt_at = now + backoff(task.attempts);
                task.last_error = Some(error);
                ctx.put_task(&task)?;
            }
        }
        job.updated_at = now;
        ctx.put_job(&job)
    })
}

/// Records sliced G-code as the job's next file version (the model stays current: it
/// is what the student sent and what the preview shows), with a `FileAdded` event.
fn add_sliced_version(
    ctx: &mut WriteCtx,
    job: &mut Job,
    hash: &str,
    size: u64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let version = ctx.last_file_version(job.id)? + 1;
    let stem = job
        .original_filename
        .rsplit_once('.')
        .map_or(job.original_filename.as_str(), |(s, _)| s);
    let file = FileVersion {
        version,
        hash: hash.to_string(),
        filename: format!("{stem}.gcode"),
        size_bytes: size,
        format: "gcode".into(),
        added_at: now,
        added_by: "system:slicer".into(),
    };
    ctx.add_file_version(job.id, &file)?;
    job.artifacts.insert("gcode".into(), hash.to_string());
    let draft = EventDraft {
        event_type: EventType::FileAdded,
        details: json!({ "version": version, "filename": file.filename, "size_bytes": size, "sha256": hash, "made_by": "slicer" }),
    };
    ctx.append_event(
        Some(job.id),
        &Actor::System {
            component: "slicer",
        },
        draft,
        now,
    )?;
    Ok(())
}

/// A failed analysis makes the whole `analysis` failed; a failed preview or thumbnail
/// is noted beside it, since the analysis may still be fine.
fn note_failure(job: &mut Job, kind: TaskKind, error: &str) {
    match kind {
        TaskKind::Analyze => {
            job.analysis = json!({ "state": "failed", "format": job.format, "error": error });
        }
        TaskKind::Preview | TaskKind::Thumbnail | TaskKind::Slice => {
            let name = match kind {
                TaskKind::Preview => "preview.glb",
                TaskKind::Thumbnail => "thumbnail.png",
                _ => "gcode",
            };
            job.analysis["artifact_errors"][name] = json!(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second() {
        let secs: Vec<i64> = (1..=5).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16]);
        assert_eq!(backoff(40).num_seconds(), 600);
    }

    #[test]
    fn every_format_gets_an_analysis_and_models_get_previews() {
        assert_eq!(
            tasks_for("stl"),
            [TaskKind::Analyze, TaskKind::Thumbnail, TaskKind::Preview]
        );
        assert_eq!(tasks_for("gcode"), [TaskKind::Analyze, TaskKind::Thumbnail]);
        assert_eq!(tasks_for("bgcode"), [TaskKind::Analyze]);
    }
}
