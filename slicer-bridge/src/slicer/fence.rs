//! Running a slicer fenced in: `nice`, `prlimit --as`, a wall-clock timeout, output to a
//! log file (a pipe nobody reads would block the slicer once full).

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::AnalysisError;

/// The limits a slicer process runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fence {
    /// Killed after this long.
    pub timeout: Duration,
    /// Address-space limit, bytes.
    pub memory_limit_bytes: u64,
    /// `nice` increment (0–19).
    pub nice: u8,
}

/// Runs `program args…` with `envs` under the fence; stdout and stderr go to
/// `work/slicer.log`, whose path is returned on success.
pub fn run_fenced(
    program: &Path,
    args: &[OsString],
    envs: &[(String, OsString)],
    fence: &Fence,
    work: &Path,
) -> Result<PathBuf, AnalysisError> {
    let log = work.join("slicer.log");
    let log_file = File::create(&log).map_err(|e| AnalysisError::io(&log, e))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| AnalysisError::io(&log, e))?;
    let mut child = Command::new("nice")
        .arg(format!("-n{}", fence.nice.min(19)))
        .arg("prlimit")
        .arg(format!("--as={}", fence.memory_limit_bytes))
        .arg("--")
        .arg(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .map_err(|e| {
            slicer_error(format!(
                "could not start nice/prlimit/{}: {e}",
                program.display()
            ))
        })?;
    let deadline = Instant::now() + fence.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                child.kill().ok();
                child.wait().ok();
                return Err(slicer_error(format!(
                    "the slicer ran longer than {} s and was stopped",
                    fence.timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(slicer_error(format!("lost the slicer process: {e}"))),
        }
    };
    if status.success() {
        Ok(log)
    } else {
        Err(slicer_error(format!(
            "the slicer failed ({status}): {}",
            last_lines(&log)
        )))
    }
}

/// An [`AnalysisError::Slicer`].
pub fn slicer_error(reason: String) -> AnalysisError {
    AnalysisError::Slicer { reason }
}

/// The slicer's last few log lines, for the error shown to staff.
fn last_lines(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "no output".into()
    } else {
        tail.chars().take(600).collect()
    }
}
