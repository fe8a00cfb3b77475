//! The Bambu Lab LAN protocol as plain data: the `print` report the printer publishes on
//! `device/{serial}/report`, merged from partial reports into one full [`Report`], and the
//! requests Farmhand publishes on `device/{serial}/request`. No I/O: every rule is a table test.
//!
//! P1 and A1 printers send a full report only on `pushall` and then only the fields that changed
//! (`{"print":{"mc_percent":43,"command":"push_status","msg":1}}`); the X1 sends fuller reports
//! but the same merge works for both. Numbers sometimes arrive as strings (`"mc_percent":"43"`),
//! so fields are read leniently.

use serde_json::{Map, Value, json};

/// `gcode_state`, as the firmware spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcodeState {
    Idle,
    /// Heating, levelling, loading: the job has started but not yet laid down plastic.
    Prepare,
    Running,
    Pause,
    /// The last job completed; stays until the next one starts.
    Finish,
    /// The last job ended badly or was stopped; stays until the next one starts.
    Failed,
}

impl GcodeState {
    pub fn parse(s: &str) -> Option<GcodeState> {
        Some(match s {
            "IDLE" => GcodeState::Idle,
            "PREPARE" | "SLICING" | "INIT" => GcodeState::Prepare,
            "RUNNING" => GcodeState::Running,
            "PAUSE" => GcodeState::Pause,
            "FINISH" => GcodeState::Finish,
            "FAILED" => GcodeState::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GcodeState::Idle => "IDLE",
            GcodeState::Prepare => "PREPARE",
            GcodeState::Running => "RUNNING",
            GcodeState::Pause => "PAUSE",
            GcodeState::Finish => "FINISH",
            GcodeState::Failed => "FAILED",
        }
    }

    /// A job is on the printer now (started, printing or paused).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            GcodeState::Prepare | GcodeState::Running | GcodeState::Pause
        )
    }
}

/// One Health Management System entry: `{"attr": 50364416, "code": 131073}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hms {
    pub attr: u32,
    pub code: u32,
}

impl std::fmt::Display for Hms {
    /// The form Bambu's HMS wiki and the printer's screen use: `HMS_0300_0100_0002_0001`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HMS_{:04X}_{:04X}_{:04X}_{:04X}",
            self.attr >> 16,
            self.attr & 0xFFFF,
            self.code >> 16,
            self.code & 0xFFFF
        )
    }
}

/// `print_error` the firmware sets when a job is stopped from the screen, the app or by a
/// `stop` request: the job was cancelled, not failed.
pub const PRINT_ERROR_CANCELLED: u64 = 0x0300_400C;

/// Everything Farmhand reads from the printer, merged over all reports since the last `pushall`.
/// `None` means the printer has not told us yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub gcode_state: Option<GcodeState>,
    pub mc_percent: Option<u32>,
    /// Minutes left.
    pub mc_remaining_time: Option<u32>,
    pub layer_num: Option<u32>,
    pub total_layer_num: Option<u32>,
    pub nozzle_temper: Option<f64>,
    pub nozzle_target_temper: Option<f64>,
    pub bed_temper: Option<f64>,
    pub bed_target_temper: Option<f64>,
    pub chamber_temper: Option<f64>,
    pub print_error: Option<u64>,
    pub hms: Option<Vec<Hms>>,
    /// The job's name (the 3MF's project name or the file name).
    pub subtask_name: Option<String>,
    pub gcode_file: Option<String>,
}

/// What one message on the report topic means.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A (partial) status report, already merged into the caller's [`Report`].
    Status,
    /// The printer's answer to one of our requests (`"result": "fail"` with a reason).
    Rejected { command: String, reason: String },
    /// Anything else (`info`, `system`, accepted replies): nothing to do.
    Other,
}

/// A payload that is not the JSON the printer should send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the printer sent a report that is not JSON ({0}): check that this is a Bambu Lab printer in LAN mode"
)]
pub struct ReportError(String);

impl Report {
    /// Merge one message from `device/{serial}/report` into `self`.
    pub fn apply(&mut self, payload: &[u8]) -> Result<Message, ReportError> {
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| ReportError(e.to_string()))?;
        let Some(print) = value.get("print").and_then(Value::as_object) else {
            return Ok(Message::Other);
        };
        let command = print.get("command").and_then(Value::as_str).unwrap_or("");
        if command != "push_status" && !command.is_empty() {
            let result = print.get("result").and_then(Value::as_str).unwrap_or("");
            if result.eq_ignore_ascii_case("fail") || result.eq_ignore_ascii_case("failed") {
                let reason = print
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                    .unwrap_or("no reason given")
                    .to_string();
                return Ok(Message::Rejected {
                    command: command.to_string(),
                    reason,
                });
            }
            return Ok(Message::Other);
        }
        self.merge(print);
        Ok(Message::Status)
    }

    fn merge(&mut self, p: &Map<String, Value>) {
        if let Some(s) = p.get("gcode_state").and_then(Value::as_str) {
            // An unknown state (new firmware) keeps the last one we understood.
            if let Some(state) = GcodeState::parse(s) {
                self.gcode_state = Some(state);
            }
        }
        set(&mut self.mc_percent, uint(p, "mc_percent"));
        set(&mut self.mc_remaining_time, uint(p, "mc_remaining_time"));
        set(&mut self.layer_num, uint(p, "layer_num"));
        set(&mut self.total_layer_num, uint(p, "total_layer_num"));
        set(&mut self.nozzle_temper, float(p, "nozzle_temper"));
        set(
            &mut self.nozzle_target_temper,
            float(p, "nozzle_target_temper"),
        );
        set(&mut self.bed_temper, float(p, "bed_temper"));
        set(&mut self.bed_target_temper, float(p, "bed_target_temper"));
        set(&mut self.chamber_temper, float(p, "chamber_temper"));
        set(
            &mut self.print_error,
            number(p, "print_error").map(|n| n as u64),
        );
        if let Some(list) = p.get("hms").and_then(Value::as_array) {
            let hms = list
                .iter()
                .filter_map(|h| {
                    let h = h.as_object()?;
                    Some(Hms {
                        attr: number(h, "attr")? as u32,
                        code: number(h, "code")? as u32,
                    })
                })
                .collect();
            self.hms = Some(hms);
        }
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        set(&mut self.subtask_name, text("subtask_name"));
        set(&mut self.gcode_file, text("gcode_file"));
    }

    /// The printer's problem in words, when it reports one: the error code and any HMS entries.
    pub fn problem(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(code) = self.print_error.filter(|c| *c != 0) {
            parts.push(print_error_text(code));
        }
        if let Some(hms) = self.hms.as_ref().filter(|h| !h.is_empty()) {
            let codes: Vec<String> = hms.iter().map(Hms::to_string).collect();
            parts.push(format!("HMS {}", codes.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn set<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

/// A number, or a string holding one (firmwares differ).
fn number(p: &Map<String, Value>, key: &str) -> Option<f64> {
    match p.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn uint(p: &Map<String, Value>, key: &str) -> Option<u32> {
    number(p, key)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.min(f64::from(u32::MAX)) as u32)
}

fn float(p: &Map<String, Value>, key: &str) -> Option<f64> {
    number(p, key).filter(|n| n.is_finite())
}

/// `print_error` as an operator reads it: Bambu's wiki and the screen show the code as
/// `0300_8003`; the few codes whose meaning Farmhand acts on are spelled out.
pub fn print_error_text(code: u64) -> String {
    let shown = format!("{:04X}_{:04X}", (code >> 16) & 0xFFFF, code & 0xFFFF);
    match code {
        PRINT_ERROR_CANCELLED => format!("the print was cancelled (error {shown})"),
        _ => format!(
            "the printer stopped with error {shown}: look the code up in Bambu Lab's HMS wiki and check the printer's screen"
        ),
    }
}

/// The request topic's messages. Each carries a `sequence_id` the printer echoes in its reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Ask for a full report (sent on every (re)connect).
    PushAll,
    /// Print a file already on the printer's storage (uploaded over FTPS).
    ProjectFile {
        name: String,
    },
    Pause,
    Resume,
    Stop,
}

/// How the request for a file on the printer's storage names it: a 3MF is a project whose
/// plate 1 G-code is printed (`url` `ftp:///NAME`, `param` `Metadata/plate_1.gcode`); a plain
/// G-code file is named by its path on the SD card (`file:///sdcard/NAME`).
pub fn file_location(name: &str) -> (String, String) {
    if name.to_ascii_lowercase().ends_with(".3mf") {
        (format!("ftp:///{name}"), "Metadata/plate_1.gcode".into())
    } else {
        (format!("file:///sdcard/{name}"), name.to_string())
    }
}

/// The job name a `project_file` request gives the printer for file `name` (`cube.gcode` →
/// `cube`, `bracket.gcode.3mf` → `bracket`); the printer reports it back as `subtask_name`, so it
/// is the job's id across a restart of Farmhand.
pub fn subtask_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let cut = [".gcode.3mf", ".3mf", ".gcode"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map_or(0, |ext| ext.len());
    name[..name.len() - cut].to_string()
}

impl Request {
    /// The JSON payload, with `seq` as its sequence id.
    pub fn to_json(&self, seq: u64) -> Vec<u8> {
        let seq = seq.to_string();
        let simple =
            |command: &str| json!({"print": {"sequence_id": seq, "command": command, "param": ""}});
        let value = match self {
            Request::PushAll => {
                json!({"pushing": {"sequence_id": seq, "command": "pushall", "version": 1, "push_target": 1}})
            }
            Request::ProjectFile { name } => {
                let (url, param) = file_location(name);
                let subtask = subtask_name(name);
                json!({"print": {
                    "sequence_id": seq,
                    "command": "project_file",
                    "param": param,
                    "url": url,
                    "subtask_name": subtask,
                    "project_id": "0", "profile_id": "0", "task_id": "0", "subtask_id": "0",
                    "use_ams": false,
                    "timelapse": false,
                    "bed_leveling": true,
                    "flow_cali": false,
                    "vibration_cali": false,
                    "layer_inspect": false,
                }})
            }
            Request::Pause => simple("pause"),
            Request::Resume => simple("resume"),
            Request::Stop => simple("stop"),
        };
        serde_json::to_vec(&value).unwrap_or_default() // a json! value always serializes
    }

    /// Parse a request (the simulator's side).
    pub fn parse(payload: &[u8]) -> Option<(Request, String)> {
        let v: Value = serde_json::from_slice(payload).ok()?;
        let obj = v.get("print").or_else(|| v.get("pushing"))?;
        let seq = obj
            .get("sequence_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let req = match obj.get("command")?.as_str()? {
            "pushall" => Request::PushAll,
            "pause" => Request::Pause,
            "resume" => Request::Resume,
            "stop" => Request::Stop,
            "project_file" => {
                let url = obj.get("url")?.as_str()?;
                let name = url
                    .strip_prefix("ftp:///")
                    .or_else(|| url.strip_prefix("file:///sdcard/"))?;
                Request::ProjectFile {
                    name: name.to_string(),
                }
            }
            _ => return None,
        };
        Some((req, seq))
    }
}

#[cfg(test)]
mod tests;
