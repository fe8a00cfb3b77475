//! The simulated printer's state, without I/O: commands and downloads go in, time passes, and
//! [`SimPrinter::status`] is what it publishes.

use super::super::schema::{Command, JobReport, LastJob, SCHEMA_VERSION, StatusMsg};
use crate::{PrintOutcome, PrinterState, Temp, Temperatures};

/// A job being downloaded or printed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    pub id: String,
    /// `None` while the file is still downloading.
    pub plan: Option<Plan>,
    /// Simulated seconds printed so far.
    pub elapsed_s: f64,
    pub paused: bool,
}

/// What a downloaded file will take: from the slicer's own estimate when it left one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub total_s: f64,
    pub layers: Option<u32>,
}

/// A download to start: the runtime fetches `url` and calls [`SimPrinter::downloaded`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    pub job_id: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimPrinter {
    pub job: Option<SimJob>,
    pub last_job: Option<LastJob>,
    pub error: Option<String>,
    /// Halted by a failure until [`SimPrinter::clear`].
    pub halted: bool,
}

impl SimPrinter {
    pub fn command(&mut self, cmd: Command) -> Option<Fetch> {
        match cmd {
            Command::Start {
                job_id,
                url,
                size,
                sha256,
                ..
            } => {
                let busy = match (&self.job, self.halted) {
                    (Some(j), _) => Some(format!("busy with job {}", j.id)),
                    (None, true) => Some("halted: clear the printer first".to_string()),
                    (None, false) => None,
                };
                if let Some(why) = busy {
                    self.last_job = Some(LastJob {
                        id: job_id,
                        outcome: PrintOutcome::Failed { reason: why },
                    });
                    return None;
                }
                self.error = None;
                self.last_job = None;
                self.job = Some(SimJob {
                    id: job_id.clone(),
                    plan: None,
                    elapsed_s: 0.0,
                    paused: false,
                });
                Some(Fetch {
                    job_id,
                    url,
                    size,
                    sha256,
                })
            }
            Command::Pause { job_id } => {
                if let Some(j) = self.job.as_mut().filter(|j| j.id == job_id) {
                    j.paused = true;
                }
                None
            }
            Command::Resume { job_id } => {
                if let Some(j) = self.job.as_mut().filter(|j| j.id == job_id) {
                    j.paused = false;
                }
                None
            }
            Command::Cancel { job_id } => {
                if self.job.as_ref().is_some_and(|j| j.id == job_id) {
                    self.end(PrintOutcome::Cancelled);
                }
                None
            }
        }
    }

    /// The download for `job_id` finished: its bytes, or why it failed.
    pub fn downloaded(&mut self, job_id: &str, result: Result<Plan, String>) {
        let Some(job) = self.job.as_mut().filter(|j| j.id == job_id) else {
            return;
        };
        match result {
            Ok(plan) => job.plan = Some(plan),
            Err(reason) => self.end(PrintOutcome::Failed { reason }),
        }
    }

    /// `sim_s` simulated seconds pass.
    pub fn advance(&mut self, sim_s: f64) {
        let Some(job) = self.job.as_mut() else { return };
        let Some(plan) = job.plan else { return };
        if job.paused {
            return;
        }
        job.elapsed_s += sim_s;
        if job.elapsed_s >= plan.total_s {
            self.end(PrintOutcome::Completed);
        }
    }

    /// The printer fails on its own (thermal runaway, clog sensor): halts until cleared.
    pub fn fail(&mut self, reason: String) {
        self.error = Some(reason.clone());
        self.halted = true;
        if self.job.is_some() {
            self.end(PrintOutcome::Failed { reason });
        }
    }

    /// Someone cleared the fault at the printer.
    pub fn clear(&mut self) {
        self.halted = false;
        self.error = None;
    }

    fn end(&mut self, outcome: PrintOutcome) {
        if let Some(job) = self.job.take() {
            self.last_job = Some(LastJob {
                id: job.id,
                outcome,
            });
        }
    }

    pub fn status(&self) -> StatusMsg {
        let state = match (&self.job, self.halted) {
            (_, true) => PrinterState::Error,
            (Some(j), _) if j.paused => PrinterState::Paused,
            (Some(_), _) => PrinterState::Printing,
            (None, false) => PrinterState::Idle,
        };
        let job = self.job.as_ref().map(|j| {
            let (percent, layer, total_layers, eta_s) = match j.plan {
                None => (0.0, None, None, None),
                Some(p) => {
                    let frac = (j.elapsed_s / p.total_s.max(1e-9)).clamp(0.0, 1.0);
                    let layer = p
                        .layers
                        .map(|n| ((frac * f64::from(n)) as u32 + 1).min(n.max(1)));
                    let eta = (p.total_s - j.elapsed_s).max(0.0).round() as u64;
                    (frac * 100.0, layer, p.layers, Some(eta))
                }
            };
            JobReport {
                id: j.id.clone(),
                percent: (percent * 10.0).round() / 10.0,
                layer,
                total_layers,
                eta_s,
            }
        });
        let heating = self.job.as_ref().is_some_and(|j| !j.paused);
        let (tool, bed): (f64, f64) = if heating { (210.0, 60.0) } else { (0.0, 0.0) };
        StatusMsg {
            v: SCHEMA_VERSION,
            state,
            job,
            temps: Temperatures {
                tools: vec![Temp {
                    actual: tool.max(24.0),
                    target: tool,
                }],
                bed: Some(Temp {
                    actual: bed.max(24.0),
                    target: bed,
                }),
                chamber: None,
            },
            error: self.error.clone(),
            last_job: self.last_job.clone(),
        }
    }
}

/// The print time and layer count a slicer wrote into the file (Cura `;TIME:`/`;LAYER_COUNT:`,
/// PrusaSlicer `; estimated printing time (normal mode) = 1h 2m 3s` and `;LAYER_CHANGE`); without
/// them, 0.05 s per command.
pub fn plan_for(gcode: &str) -> Plan {
    let mut total_s = None;
    let mut layers = None;
    let mut layer_changes = 0u32;
    let mut commands = 0u64;
    for line in gcode.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix(";TIME:") {
            total_s = total_s.or(t.trim().parse::<f64>().ok());
        } else if let Some(n) = line.strip_prefix(";LAYER_COUNT:") {
            layers = layers.or(n.trim().parse::<u32>().ok());
        } else if let Some(t) = line.strip_prefix("; estimated printing time (normal mode) =") {
            total_s = total_s.or(parse_dhms(t));
        } else if line == ";LAYER_CHANGE" {
            layer_changes += 1;
        } else if !line.is_empty() && !line.starts_with(';') {
            commands += 1;
        }
    }
    Plan {
        total_s: total_s.unwrap_or(commands as f64 * 0.05).max(1.0),
        layers: layers.or((layer_changes > 0).then_some(layer_changes)),
    }
}

/// `1d 2h 3m 4s` → seconds.
fn parse_dhms(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    for part in text.split_whitespace() {
        let (num, unit) = part.split_at(part.len().checked_sub(1)?);
        let n: f64 = num.parse().ok()?;
        total += n * match unit {
            "d" => 86400.0,
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            _ => return None,
        };
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: &str) -> Command {
        Command::Start {
            job_id: id.into(),
            url: "http://x/f".into(),
            name: "f.gcode".into(),
            size: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn plans_from_slicer_headers() {
        let cases: &[(&str, f64, Option<u32>)] = &[
            // Cura 4.13
            (
                ";FLAVOR:Marlin\n;TIME:1577\n;LAYER_COUNT:100\nG28\n",
                1577.0,
                Some(100),
            ),
            // PrusaSlicer 2.5
            (
                ";LAYER_CHANGE\nG1 Z.2\n;LAYER_CHANGE\nG1 Z.4\n; estimated printing time (normal mode) = 1h 2m 3s\n",
                3723.0,
                Some(2),
            ),
            ("G28\nG1 X1\n", 1.0, None),
        ];
        for (text, total, layers) in cases {
            let p = plan_for(text);
            assert_eq!((p.total_s, p.layers), (*total, *layers), "{text}");
        }
    }

    #[test]
    fn a_job_downloads_prints_pauses_and_completes() {
        let mut p = SimPrinter::default();
        assert!(p.command(start("j1")).is_some());
        assert_eq!(p.status().state, PrinterState::Printing);
        assert_eq!(p.status().job.map(|j| j.percent), Some(0.0));
        assert!(p.command(start("j2")).is_none(), "busy");
        p.downloaded(
            "j1",
            Ok(Plan {
                total_s: 100.0,
                layers: Some(10),
            }),
        );
        p.advance(50.0);
        let job = p.status().job.expect("job");
        assert_eq!(
            (job.percent, job.layer, job.eta_s),
            (50.0, Some(6), Some(50))
        );
        p.command(Command::Pause {
            job_id: "j1".into(),
        });
        p.advance(100.0);
        assert_eq!(p.status().state, PrinterState::Paused);
        p.command(Command::Resume {
            job_id: "j1".into(),
        });
        p.advance(50.0);
        let s = p.status();
        assert_eq!(s.state, PrinterState::Idle);
        assert_eq!(s.last_job.map(|l| l.outcome), Some(PrintOutcome::Completed));
    }

    #[test]
    fn failures_halt_until_cleared() {
        let mut p = SimPrinter::default();
        p.command(start("j1"));
        p.downloaded("j1", Err("sha256 mismatch".into()));
        assert!(matches!(
            p.status().last_job.map(|l| l.outcome),
            Some(PrintOutcome::Failed { .. })
        ));
        p.command(start("j2"));
        p.downloaded(
            "j2",
            Ok(Plan {
                total_s: 10.0,
                layers: None,
            }),
        );
        p.fail("Thermal runaway".into());
        let s = p.status();
        assert_eq!(s.state, PrinterState::Error);
        assert_eq!(s.error.as_deref(), Some("Thermal runaway"));
        assert!(p.command(start("j3")).is_none());
        p.clear();
        assert!(p.command(start("j4")).is_some());
    }
}
