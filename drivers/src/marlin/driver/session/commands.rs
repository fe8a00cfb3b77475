//! Requests from handles while the link is up.

use std::path::Path;

use super::{Conn, MarlinRunner, SessionEnd};
use crate::marlin::driver::Command;
use crate::marlin::driver::job::{Job, JobKind};
use crate::marlin::gcode::strip;
use crate::{DriverError, PrintOutcome, PrinterState};

impl MarlinRunner {
    pub(super) fn on_command(&mut self, cmd: Command, conn: &mut Conn) -> Option<SessionEnd> {
        match cmd {
            Command::Connect(reply) => {
                if conn.ready {
                    let _ = reply.send(Ok(()));
                } else {
                    self.connect_waiters.push(reply);
                }
            }
            Command::Disconnect(reply) => {
                let _ = reply.send(Ok(()));
                return Some(SessionEnd::Disconnected);
            }
            Command::StartJob { file, sd, reply } => {
                let _ = reply.send(self.start_job(conn, &file, sd));
            }
            Command::Pause(reply) => {
                let _ = reply.send(self.pause(conn, true));
            }
            Command::Resume(reply) => {
                let _ = reply.send(self.pause(conn, false));
            }
            Command::Cancel(reply) => {
                let _ = reply.send(self.cancel(conn));
            }
            Command::Gcode(line, reply) => {
                let result = match strip(&line) {
                    Some(code) if conn.ready => {
                        conn.control.push_back(code.to_string());
                        Ok(())
                    }
                    Some(_) => Err(not_ready()),
                    None => Ok(()),
                };
                let _ = reply.send(result);
            }
        }
        None
    }

    fn start_job(&mut self, conn: &mut Conn, file: &Path, sd: bool) -> Result<(), DriverError> {
        if !conn.ready {
            return Err(not_ready());
        }
        if self.job.is_some() || self.tracker.state() != PrinterState::Idle {
            return Err(DriverError::WrongState {
                state: "busy",
                wanted: "idle",
                hint: "wait for the current print to end, or cancel it",
            });
        }
        if sd && conn.caps.sd_card == Some(false) {
            return Err(DriverError::Unsupported {
                capability: "printing from the SD card (the firmware reports no SD card)",
            });
        }
        let size = std::fs::metadata(file)
            .map_err(|e| DriverError::File {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })?
            .len();
        let kind = if sd {
            let name = sd_name(file);
            conn.control.push_back(format!("M28 {name}"));
            JobKind::SdUpload { name }
        } else {
            JobKind::Host
        };
        let job = Job::from_file(kind, file, size);
        self.tracker.job_started(&job);
        self.job = Some(job);
        Ok(())
    }

    fn pause(&mut self, conn: &mut Conn, pause: bool) -> Result<(), DriverError> {
        let Some(job) = self.job.as_mut() else {
            return Err(DriverError::WrongState {
                state: "idle",
                wanted: "printing",
                hint: "there is no print to pause or resume",
            });
        };
        if job.paused == pause {
            return Ok(());
        }
        job.paused = pause;
        if let JobKind::Sd { .. } = job.kind {
            conn.control
                .push_back(if pause { "M25" } else { "M24" }.to_string());
        }
        // Host streaming simply stops feeding lines; the planner runs dry and the head waits
        // where it is, so resuming needs no position restore.
        let state = if pause {
            PrinterState::Paused
        } else {
            PrinterState::Printing
        };
        self.tracker.set_state(state, self.job.as_ref());
        Ok(())
    }

    fn cancel(&mut self, conn: &mut Conn) -> Result<(), DriverError> {
        let Some(job) = self.job.as_ref() else {
            return Err(DriverError::WrongState {
                state: "idle",
                wanted: "printing",
                hint: "there is no print to cancel",
            });
        };
        match job.kind {
            JobKind::Sd { .. } => conn.control.push_back("M524".into()),
            JobKind::SdUpload { .. } => conn.control.push_back("M29".into()),
            JobKind::Host => {}
        }
        conn.control.extend(self.cfg.cancel_gcode.iter().cloned());
        self.finish(PrintOutcome::Cancelled);
        Ok(())
    }
}

fn not_ready() -> DriverError {
    DriverError::WrongState {
        state: "offline",
        wanted: "connected",
        hint: "wait for the printer to connect",
    }
}

/// An 8.3 name for the card (Marlin's SD code is FAT 8.3 unless long names are compiled in).
fn sd_name(file: &Path) -> String {
    let stem: String = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    let stem = if stem.is_empty() {
        "FARMHAND".into()
    } else {
        stem
    };
    format!("{stem}.GCO")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sd_names_are_8_3() {
        let cases = [
            ("/x/20mm-xyz-cube.stl_cura.gcode", "20MMXYZC.GCO"),
            ("/x/a.gcode", "A.GCO"),
            ("/x/---.gcode", "FARMHAND.GCO"),
        ];
        for (path, want) in cases {
            assert_eq!(super::sd_name(std::path::Path::new(path)), want);
        }
    }
}
