//! The one status shape every driver reports, whatever protocol it speaks.
//!
//! The daemon turns changes of this struct into job events (STYLE.md item 13); drivers only
//! describe what the printer is doing right now. `needs_clearing` is the daemon's business: a
//! driver cannot see whether the bed is empty.

use serde::{Deserialize, Serialize};

/// What the printer is doing, as the contract's printer states (lowercase in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrinterState {
    /// No working link to the printer (port missing, unplugged, or not answering).
    #[default]
    Offline,
    /// Connected and ready for a job.
    Idle,
    /// A job is running (streamed by the host or printed from the printer's SD card).
    Printing,
    /// A job is paused and can be resumed.
    Paused,
    /// The firmware stopped itself (thermal runaway, kill()); needs a person at the printer.
    Error,
}

/// A heater's measured and requested temperature in °C.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Temp {
    pub actual: f64,
    /// 0 means the heater is off.
    pub target: f64,
}

/// Every heater the firmware reported; tools in extruder order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Temperatures {
    pub tools: Vec<Temp>,
    pub bed: Option<Temp>,
    pub chamber: Option<Temp>,
}

/// Progress of the running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct JobProgress {
    /// 0–100: the slicer's own `M73 P` figure when the file has one, else bytes sent (host
    /// jobs; at most the in-flight window ahead of the printer) or bytes read from the SD card.
    pub percent: f64,
    /// 1-based layer currently printing, when the file has layer comments.
    pub layer: Option<u32>,
    pub total_layers: Option<u32>,
    /// Seconds left: the slicer's `M73 R` when present, else extrapolated from elapsed time.
    pub eta_s: Option<u64>,
    pub bytes_sent: u64,
    pub bytes_total: u64,
}

/// How the last job ended. Kept until the next job starts so a watcher that looks late still
/// learns the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum PrintOutcome {
    Completed,
    /// The reason quotes the printer's own message when there is one.
    Failed {
        reason: String,
    },
    /// Stopped on request (staff cancel).
    Cancelled,
}

/// A snapshot of one printer, published on a `tokio::sync::watch` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PrinterStatus {
    pub state: PrinterState,
    pub job: Option<JobProgress>,
    pub temps: Temperatures,
    /// The latest problem, in words an operator can act on.
    pub error: Option<String>,
    pub last_outcome: Option<PrintOutcome>,
    /// The printer's own id of the running job or, beside `last_outcome`, of the last one, when
    /// the protocol has ids (generic MQTT). A restarted host uses it to recognise the outcome of
    /// a job it started before the restart.
    #[serde(default)]
    pub job_ref: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_the_contract_spells_them() {
        let names: Vec<String> = [
            PrinterState::Offline,
            PrinterState::Idle,
            PrinterState::Printing,
            PrinterState::Paused,
            PrinterState::Error,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).expect("serializes"))
        .collect();
        assert_eq!(
            names,
            [
                "\"offline\"",
                "\"idle\"",
                "\"printing\"",
                "\"paused\"",
                "\"error\""
            ]
        );
    }

    #[test]
    fn outcome_is_tagged() {
        let failed = PrintOutcome::Failed {
            reason: "Thermal Runaway".into(),
        };
        let json = serde_json::to_string(&failed).expect("serializes");
        assert_eq!(json, r#"{"outcome":"failed","reason":"Thermal Runaway"}"#);
    }
}
