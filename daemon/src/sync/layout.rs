//! Where things live in the bucket (`docs/sync.md` is the reader's version of this).
//!
//! ```text
//! blobs/ab/abcdef…                   every file and artifact, named by its SHA-256
//! jobs/{id}/metadata.json            the job, its events and its file versions
//! jobs/{id}/preview.glb · thumbnail.png · print.gcode   copies of its artifacts
//! snapshots/YYYYMMDDTHHMMSSZ.redb    consistent copies of the whole store
//! ```
//!
//! Pure functions only, so the layout is one place and is tested without a bucket.

use chrono::{DateTime, Utc};
use object_store::path::Path;

use crate::model::JobId;

/// Snapshots kept in the bucket; older ones are deleted after a new one is uploaded.
pub const SNAPSHOTS_KEPT: usize = 24;

/// `blobs/ab/abcdef…`.
pub fn blob(hash: &str) -> Path {
    let prefix = hash.get(..2).unwrap_or("00");
    Path::from(format!("blobs/{prefix}/{hash}"))
}

/// `jobs/{id}/metadata.json`.
pub fn metadata(job: JobId) -> Path {
    Path::from(format!("jobs/{job}/metadata.json"))
}

/// The folder of all jobs (for listing during a restore).
pub fn jobs_root() -> Path {
    Path::from("jobs")
}

/// The file name an artifact gets beside its job's metadata (`None`: not copied).
pub fn artifact_file(name: &str) -> Option<&'static str> {
    match name {
        "preview.glb" => Some("preview.glb"),
        "thumbnail.png" => Some("thumbnail.png"),
        "gcode" => Some("print.gcode"),
        _ => None,
    }
}

/// `jobs/{id}/{file}` for an artifact.
pub fn artifact(job: JobId, name: &str) -> Option<Path> {
    artifact_file(name).map(|file| Path::from(format!("jobs/{job}/{file}")))
}

/// The folder of snapshots.
pub fn snapshots_root() -> Path {
    Path::from("snapshots")
}

/// `snapshots/20260101T120000Z.redb`: names sort by time.
pub fn snapshot(at: DateTime<Utc>) -> Path {
    Path::from(format!("snapshots/{}.redb", at.format("%Y%m%dT%H%M%SZ")))
}

/// The job id of a `jobs/{id}/metadata.json` path, if it is one.
pub fn job_of_metadata(path: &Path) -> Option<JobId> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [jobs, id, file] if jobs.as_ref() == "jobs" && file.as_ref() == "metadata.json" => {
            id.as_ref().parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_as_documented() {
        assert_eq!(blob("abcdef").as_ref(), "blobs/ab/abcdef");
        assert_eq!(metadata(JobId(17)).as_ref(), "jobs/17/metadata.json");
        assert_eq!(
            artifact(JobId(3), "gcode").map(|p| p.to_string()),
            Some("jobs/3/print.gcode".into())
        );
        assert_eq!(artifact(JobId(3), "unknown"), None);
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(snapshot(at).as_ref(), "snapshots/20260102T030405Z.redb");
        assert_eq!(job_of_metadata(&metadata(JobId(9))), Some(JobId(9)));
        assert_eq!(job_of_metadata(&Path::from("jobs/9/preview.glb")), None);
    }
}
