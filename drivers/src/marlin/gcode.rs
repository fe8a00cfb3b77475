//! Reading a job file for streaming: comments and blank lines stripped (they cost serial time
//! and the firmware ignores them), while the comments that tell progress — layer markers and
//! the slicer's `M73` — are noted on the command that follows them.
//!
//! A reader runs on a blocking thread and hands batches to the driver over a bounded channel,
//! so a 66 MB file never sits in memory and the driver task never waits on the disk.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// One command to send, with what is known about the file at that point.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLine {
    pub command: String,
    /// File offset just after this line: bytes done once it is acknowledged.
    pub end_offset: u64,
    /// 1-based layer this command belongs to, when the file has layer comments.
    pub layer: Option<u32>,
    /// `M73 P<percent> R<minutes left>` when this command is one.
    pub m73: Option<M73>,
}

/// The slicer's progress report (`M73 P45 R12`): percent done, minutes remaining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct M73 {
    pub percent: Option<f64>,
    pub minutes_left: Option<u64>,
}

/// What the reader sends.
#[derive(Debug)]
pub enum ReaderMsg {
    /// Sent first: the file's layer count, from a quick pre-scan.
    Meta {
        total_layers: Option<u32>,
    },
    Lines(Vec<JobLine>),
    /// The file could not be read further; the job must fail with this text.
    Failed(String),
}

/// The command part of a G-code line: comment removed, whitespace trimmed; `None` if empty.
pub fn strip(line: &str) -> Option<&str> {
    let code = line.split(';').next().unwrap_or("").trim();
    (!code.is_empty()).then_some(code)
}

/// `M73 P45 R12` (Marlin/Prusa). Prusa's silent-mode twin `M73 Q.. S..` gives neither field.
pub fn parse_m73(command: &str) -> Option<M73> {
    let rest = command.strip_prefix("M73")?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let mut out = M73 {
        percent: None,
        minutes_left: None,
    };
    for word in rest.split_whitespace() {
        let (key, value) = word.split_at(1);
        match key {
            "P" => out.percent = value.parse().ok(),
            "R" => out.minutes_left = value.parse().ok(),
            _ => {}
        }
    }
    (out.percent.is_some() || out.minutes_left.is_some()).then_some(out)
}

/// Follows layer comments: Cura `;LAYER:n` (0-based) and PrusaSlicer `;LAYER_CHANGE`.
#[derive(Debug, Default, Clone)]
pub struct LayerCounter {
    layer: Option<u32>,
}

impl LayerCounter {
    /// Look at one raw line; returns the current 1-based layer.
    pub fn observe(&mut self, raw: &str) -> Option<u32> {
        let raw = raw.trim_start();
        if let Some(n) = raw.strip_prefix(";LAYER:") {
            if let Ok(n) = n.trim().parse::<i64>() {
                // Cura numbers raft layers negative; clamp them to the first layer.
                self.layer = Some((n + 1).max(1) as u32);
            }
        } else if raw.starts_with(";LAYER_CHANGE") {
            self.layer = Some(self.layer.map_or(1, |l| l + 1));
        }
        self.layer
    }
}

/// Layer count of a file: Cura's `;LAYER_COUNT:n`, else the number of layer markers.
pub fn count_layers(path: &Path) -> std::io::Result<Option<u32>> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut line = Vec::new();
    let mut markers = 0u32;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.starts_with(b";LAYER_COUNT:") {
            let text = String::from_utf8_lossy(&line[13..]);
            if let Ok(n) = text.trim().parse() {
                return Ok(Some(n));
            }
        } else if line.starts_with(b";LAYER_CHANGE") || line.starts_with(b";LAYER:") {
            markers += 1;
        }
    }
    Ok((markers > 0).then_some(markers))
}

const BATCH: usize = 512;

/// Start reading `path` on a blocking thread. Dropping the receiver stops the reader.
pub fn spawn_reader(path: PathBuf) -> mpsc::Receiver<ReaderMsg> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_into(&path, &tx) {
            let _ = tx.blocking_send(ReaderMsg::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    });
    rx
}

fn read_into(path: &Path, tx: &mpsc::Sender<ReaderMsg>) -> std::io::Result<()> {
    let total_layers = count_layers(path)?;
    if tx.blocking_send(ReaderMsg::Meta { total_layers }).is_err() {
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut raw = Vec::new();
    let mut offset = 0u64;
    let mut layers = LayerCounter::default();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        raw.clear();
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let text = String::from_utf8_lossy(&raw);
        let layer = layers.observe(&text);
        if let Some(code) = strip(&text) {
            batch.push(JobLine {
                command: code.to_string(),
                end_offset: offset,
                layer,
                m73: parse_m73(code),
            });
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.blocking_send(ReaderMsg::Lines(full)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(ReaderMsg::Lines(batch));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_stripped() {
        let cases = [
            ("G1 X10 Y20 ; move", Some("G1 X10 Y20")),
            ("; only a comment", None),
            ("   ", None),
            ("M117 Printing...\r", Some("M117 Printing...")),
            (";LAYER:3", None),
        ];
        for (line, want) in cases {
            assert_eq!(strip(line), want, "{line:?}");
        }
    }

    #[test]
    fn m73_progress() {
        // PrusaSlicer writes both; the Q/S twin is for silent mode.
        let normal = parse_m73("M73 P45 R12");
        assert_eq!(
            normal,
            Some(M73 {
                percent: Some(45.0),
                minutes_left: Some(12)
            })
        );
        assert_eq!(parse_m73("M73 Q45 S13"), None);
        assert_eq!(parse_m73("M730"), None);
    }

    #[test]
    fn layers_from_cura_and_prusaslicer() {
        let mut cura = LayerCounter::default();
        assert_eq!(cura.observe(";LAYER:0"), Some(1));
        assert_eq!(cura.observe("G1 X1"), Some(1));
        assert_eq!(cura.observe(";LAYER:-2"), Some(1));
        let mut prusa = LayerCounter::default();
        assert_eq!(prusa.observe("G28"), None);
        prusa.observe(";LAYER_CHANGE");
        assert_eq!(prusa.observe(";LAYER_CHANGE"), Some(2));
    }
}
