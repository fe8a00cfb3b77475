//! The simulated Bambu printer's state, without I/O: requests go in, time passes, and
//! [`SimBambu::report`] is the `print` object it would publish. Like a P1, it publishes the
//! full object on `pushall` and afterwards only the fields that changed ([`delta`]).

use serde_json::{Map, Value, json};

use super::super::protocol::{GcodeState, PRINT_ERROR_CANCELLED, Request, subtask_name};
use crate::mqtt::sim::printer::Plan;

/// A job on the simulated printer.
#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    pub name: String,
    pub plan: Plan,
    pub elapsed_s: f64,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimBambu {
    pub state: GcodeState,
    pub job: Option<SimJob>,
    /// Name and plan of the last job (its FINISH/FAILED stays on show, as on the real thing).
    pub last: Option<(String, Plan, f64)>,
    pub print_error: u64,
    pub hms: Vec<(u32, u32)>,
}

impl Default for SimBambu {
    fn default() -> Self {
        Self {
            state: GcodeState::Idle,
            job: None,
            last: None,
            print_error: 0,
            hms: Vec::new(),
        }
    }
}

/// What the runtime must do after a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    /// Publish a full report.
    FullReport,
    /// Answer the request with `"result": "fail"`.
    Refuse {
        command: &'static str,
        reason: String,
    },
}

impl SimBambu {
    /// A request, with the file already looked up on the SD card for `project_file`
    /// (`Err` = why it cannot be printed).
    pub fn request(&mut self, req: Request, file: Option<Result<Plan, String>>) -> Effect {
        match req {
            Request::PushAll => Effect::FullReport,
            Request::ProjectFile { name } => {
                if self.job.is_some() {
                    return Effect::Refuse {
                        command: "project_file",
                        reason: "the printer is busy".into(),
                    };
                }
                match file {
                    Some(Ok(plan)) => {
                        self.print_error = 0;
                        self.hms.clear();
                        self.state = GcodeState::Prepare;
                        self.job = Some(SimJob {
                            name,
                            plan,
                            elapsed_s: 0.0,
                            paused: false,
                        });
                        Effect::None
                    }
                    Some(Err(reason)) => Effect::Refuse {
                        command: "project_file",
                        reason,
                    },
                    None => Effect::Refuse {
                        command: "project_file",
                        reason: "file not found".into(),
                    },
                }
            }
            Request::Pause => {
                if let Some(j) = self.job.as_mut() {
                    j.paused = true;
                    self.state = GcodeState::Pause;
                }
                Effect::None
            }
            Request::Resume => {
                if let Some(j) = self.job.as_mut() {
                    j.paused = false;
                    self.state = GcodeState::Running;
                }
                Effect::None
            }
            Request::Stop => {
                if self.job.is_some() {
                    // What the firmware does: FAILED with the "cancelled" code.
                    self.end(GcodeState::Failed, PRINT_ERROR_CANCELLED);
                }
                Effect::None
            }
        }
    }

    /// `sim_s` simulated seconds pass. The first 2 % of the plan is PREPARE (heating).
    pub fn advance(&mut self, sim_s: f64) {
        let Some(job) = self.job.as_mut() else { return };
        if job.paused {
            return;
        }
        job.elapsed_s += sim_s;
        if job.elapsed_s >= job.plan.total_s {
            self.end(GcodeState::Finish, 0);
        } else if job.elapsed_s >= job.plan.total_s * 0.02 {
            self.state = GcodeState::Running;
        }
    }

    /// The printer fails on its own with `print_error` `code` and an HMS entry.
    pub fn fail(&mut self, code: u64, hms: (u32, u32)) {
        if self.job.is_some() {
            self.hms = vec![hms];
            self.end(GcodeState::Failed, code);
        }
    }

    fn end(&mut self, state: GcodeState, code: u64) {
        if let Some(j) = self.job.take() {
            self.last = Some((j.name, j.plan, j.elapsed_s));
        }
        self.state = state;
        self.print_error = code;
    }

    /// The full `print` object.
    pub fn report(&self) -> Map<String, Value> {
        let (name, plan, elapsed) = match (&self.job, &self.last) {
            (Some(j), _) => (j.name.clone(), Some(j.plan), j.elapsed_s),
            (None, Some((n, p, e))) => (n.clone(), Some(*p), *e),
            (None, None) => (String::new(), None, 0.0),
        };
        let (percent, remaining_min, layer, total_layers) = match plan {
            Some(p) => {
                let frac = (elapsed / p.total_s.max(1e-9)).clamp(0.0, 1.0);
                let total = p.layers.unwrap_or(0);
                let layer = ((frac * f64::from(total)) as u32 + 1).min(total);
                let left = ((p.total_s - elapsed).max(0.0) / 60.0).ceil() as u32;
                ((frac * 100.0).floor() as u32, left, layer, total)
            }
            None => (0, 0, 0, 0),
        };
        let heating = self.job.as_ref().is_some_and(|j| !j.paused);
        let (nozzle, bed) = if heating { (220.0, 55.0) } else { (0.0, 0.0) };
        let hms: Vec<Value> = self
            .hms
            .iter()
            .map(|(attr, code)| json!({"attr": attr, "code": code}))
            .collect();
        let subtask = subtask_name(&name);
        let value = json!({
            "gcode_state": self.state.as_str(),
            "mc_percent": percent,
            "mc_remaining_time": remaining_min,
            "layer_num": layer,
            "total_layer_num": total_layers,
            "nozzle_temper": f64::max(nozzle, 25.0),
            "nozzle_target_temper": nozzle,
            "bed_temper": f64::max(bed, 25.0),
            "bed_target_temper": bed,
            "chamber_temper": 27.0,
            "print_error": self.print_error,
            "hms": hms,
            "subtask_name": subtask,
            "gcode_file": name,
            "wifi_signal": "-44dBm",
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// The fields of `now` that differ from `before`.
pub fn delta(before: &Map<String, Value>, now: &Map<String, Value>) -> Map<String, Value> {
    now.iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            total_s: 100.0,
            layers: Some(10),
        }
    }

    #[test]
    fn prints_pauses_stops_and_fails_like_the_firmware() {
        let mut p = SimBambu::default();
        let go = |p: &mut SimBambu| {
            p.request(
                Request::ProjectFile {
                    name: "cube.gcode".into(),
                },
                Some(Ok(plan())),
            )
        };
        assert_eq!(go(&mut p), Effect::None);
        assert_eq!(p.state, GcodeState::Prepare);
        assert!(matches!(go(&mut p), Effect::Refuse { .. }), "busy");
        p.advance(50.0);
        let r = p.report();
        assert_eq!(
            (r["gcode_state"].as_str(), r["mc_percent"].as_u64()),
            (Some("RUNNING"), Some(50))
        );
        assert_eq!(r["layer_num"].as_u64(), Some(6));
        p.request(Request::Pause, None);
        p.advance(100.0);
        assert_eq!(p.report()["gcode_state"], "PAUSE");
        p.request(Request::Resume, None);
        p.advance(60.0);
        assert_eq!(p.report()["gcode_state"], "FINISH");
        assert_eq!(p.report()["mc_percent"], 100);

        go(&mut p);
        p.request(Request::Stop, None);
        assert_eq!(p.report()["print_error"], PRINT_ERROR_CANCELLED);
        go(&mut p);
        assert_eq!(p.report()["print_error"], 0, "a new job clears the error");
        p.fail(0x0300_8003, (0x0300_0100, 0x0002_0001));
        let r = p.report();
        assert_eq!(
            (r["gcode_state"].as_str(), r["print_error"].as_u64()),
            (Some("FAILED"), Some(0x0300_8003))
        );
        assert_eq!(r["hms"][0]["attr"], 0x0300_0100);
    }

    #[test]
    fn deltas_hold_only_what_changed() {
        let mut p = SimBambu::default();
        let before = p.report();
        p.request(
            Request::ProjectFile {
                name: "cube.gcode".into(),
            },
            Some(Ok(plan())),
        );
        let d = delta(&before, &p.report());
        assert!(d.contains_key("gcode_state") && d.contains_key("nozzle_target_temper"));
        assert!(!d.contains_key("chamber_temper"));
        assert!(delta(&p.report(), &p.report()).is_empty());
    }
}
