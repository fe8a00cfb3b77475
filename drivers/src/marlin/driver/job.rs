//! A job the driver is running: where its lines come from, and how far it got.

use std::path::Path;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::JobProgress;
use crate::marlin::gcode::{JobLine, M73, ReaderMsg, spawn_reader};

/// Where the commands go and who keeps track of the file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Streamed line by line from the host.
    Host,
    /// Being written to the SD card (`M28 name` … `M29`); printing starts after.
    SdUpload { name: String },
    /// Printing from the SD card; progress from `M27`.
    Sd { name: String },
}

/// Lines from the reader thread, one batch at a time.
pub(crate) struct Source {
    rx: mpsc::Receiver<ReaderMsg>,
    batch: std::vec::IntoIter<JobLine>,
    eof: bool,
}

impl Source {
    /// True when the current batch is used up and the reader may have more.
    pub fn wants_more(&self) -> bool {
        !self.eof && self.batch.len() == 0
    }

    pub fn is_exhausted(&self) -> bool {
        self.eof && self.batch.len() == 0
    }

    pub fn rx(&mut self) -> &mut mpsc::Receiver<ReaderMsg> {
        &mut self.rx
    }
}

pub(crate) struct Job {
    pub kind: JobKind,
    pub source: Option<Source>,
    pub paused: bool,
    started: Instant,
    bytes_done: u64,
    bytes_total: u64,
    layer: Option<u32>,
    total_layers: Option<u32>,
    m73: Option<M73>,
}

impl Job {
    /// A job that streams `file` (for `Host` or `SdUpload`).
    pub fn from_file(kind: JobKind, file: &Path, size: u64) -> Self {
        let mut job = Self::tracking(kind, size);
        job.source = Some(Source {
            rx: spawn_reader(file.to_path_buf()),
            batch: Vec::new().into_iter(),
            eof: false,
        });
        job
    }

    /// A job the printer runs by itself (SD card), known only by its progress reports.
    pub fn tracking(kind: JobKind, bytes_total: u64) -> Self {
        Self {
            kind,
            source: None,
            paused: false,
            started: Instant::now(),
            bytes_done: 0,
            bytes_total,
            layer: None,
            total_layers: None,
            m73: None,
        }
    }

    /// Take in a message from the reader. Returns the failure text if the file broke.
    pub fn on_reader(&mut self, msg: Option<ReaderMsg>) -> Option<String> {
        let src = self.source.as_mut()?;
        match msg {
            Some(ReaderMsg::Meta { total_layers }) => self.total_layers = total_layers,
            Some(ReaderMsg::Lines(lines)) => src.batch = lines.into_iter(),
            Some(ReaderMsg::Failed(text)) => return Some(text),
            None => src.eof = true,
        }
        None
    }

    /// The next command to send, if one is ready; notes its position for progress.
    pub fn next_line(&mut self) -> Option<String> {
        let line = self.source.as_mut()?.batch.next()?;
        self.bytes_done = line.end_offset;
        if line.layer.is_some() {
            self.layer = line.layer;
        }
        if line.m73.is_some() {
            self.m73 = line.m73;
        }
        Some(line.command)
    }

    /// `M27` said `SD printing byte done/total`.
    pub fn sd_progress(&mut self, done: u64, total: u64) {
        self.bytes_done = done;
        self.bytes_total = total;
    }

    pub fn sd_finished(&self) -> bool {
        self.bytes_total > 0 && self.bytes_done >= self.bytes_total
    }

    pub fn progress(&self, now: Instant) -> JobProgress {
        let frac = if self.bytes_total == 0 {
            0.0
        } else {
            (self.bytes_done as f64 / self.bytes_total as f64).min(1.0)
        };
        let percent = self
            .m73
            .and_then(|m| m.percent)
            .filter(|_| self.kind == JobKind::Host)
            .unwrap_or(frac * 100.0);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let eta_s = match self.m73.and_then(|m| m.minutes_left) {
            Some(min) if self.kind == JobKind::Host => Some(min * 60),
            _ if frac > 0.01 => Some((elapsed * (1.0 - frac) / frac) as u64),
            _ => None,
        };
        JobProgress {
            percent,
            layer: self.layer,
            total_layers: self.total_layers,
            eta_s,
            bytes_sent: self.bytes_done,
            bytes_total: self.bytes_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_progress_is_by_bytes_read_from_the_card() {
        let mut job = Job::tracking(
            JobKind::Sd {
                name: "A.GCO".into(),
            },
            0,
        );
        job.sd_progress(250, 1000);
        let p = job.progress(Instant::now());
        assert_eq!((p.percent, p.bytes_sent, p.bytes_total), (25.0, 250, 1000));
        assert!(!job.sd_finished());
        job.sd_progress(1000, 1000);
        assert!(job.sd_finished());
    }

    #[test]
    fn slicer_m73_wins_over_bytes_for_host_jobs() {
        let mut job = Job::tracking(JobKind::Host, 1000);
        job.bytes_done = 100;
        job.m73 = Some(M73 {
            percent: Some(42.0),
            minutes_left: Some(3),
        });
        let p = job.progress(Instant::now());
        assert_eq!((p.percent, p.eta_s), (42.0, Some(180)));
    }
}
