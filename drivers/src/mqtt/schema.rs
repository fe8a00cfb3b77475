//! The generic MQTT printer schema, version 1, as Rust types (the wire format is documented in
//! `docs/mqtt-schema.md`; these types are the reference).
//!
//! Two topics under the printer's base topic `T`:
//! - `T/status`: the printer publishes its whole state, **retained**, QoS 1, at least every
//!   second while printing and at once on every change. Its MQTT last will is
//!   `{"v":1,"state":"offline"}` on the same topic, retained, so a dead printer reads offline.
//! - `T/command`: Farmhand publishes `start`/`pause`/`resume`/`cancel`, QoS 1, not retained.
//!
//! Receivers ignore fields they do not know, so a printer may add its own. A message whose `v`
//! is not [`SCHEMA_VERSION`] is refused with a message saying which side to update.

use serde::{Deserialize, Serialize};

use crate::{PrintOutcome, PrinterState, Temperatures};

/// The schema major version both sides must speak.
pub const SCHEMA_VERSION: u32 = 1;

/// `T/status`, published by the printer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMsg {
    pub v: u32,
    pub state: PrinterState,
    /// The running (or paused) job; absent when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobReport>,
    #[serde(default)]
    pub temps: Temperatures,
    /// The printer's own words for its latest problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the most recent job ended; kept until the next job starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<LastJob>,
}

impl StatusMsg {
    /// The last-will payload: what the broker publishes when the printer vanishes.
    pub fn offline() -> Self {
        Self {
            v: SCHEMA_VERSION,
            state: PrinterState::Offline,
            job: None,
            temps: Temperatures::default(),
            error: None,
            last_job: None,
        }
    }
}

/// Progress of the job named by `id` (the `job_id` of the start command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub id: String,
    /// 0–100.
    pub percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_layers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
}

/// The end of a job: `{"id": "...", "outcome": "failed", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastJob {
    pub id: String,
    #[serde(flatten)]
    pub outcome: PrintOutcome,
}

/// `T/command`, published by Farmhand. Every command names the job it is about, so a printer
/// never pauses or cancels a job it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMsg {
    pub v: u32,
    #[serde(flatten)]
    pub cmd: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Command {
    /// Download `url` (plain HTTP GET, no auth: the URL itself is the secret and expires)
    /// and print it. `size` and `sha256` let the printer check the download.
    Start {
        job_id: String,
        url: String,
        name: String,
        size: u64,
        sha256: String,
    },
    Pause {
        job_id: String,
    },
    Resume {
        job_id: String,
    },
    Cancel {
        job_id: String,
    },
}

impl Command {
    pub fn job_id(&self) -> &str {
        match self {
            Command::Start { job_id, .. }
            | Command::Pause { job_id }
            | Command::Resume { job_id }
            | Command::Cancel { job_id } => job_id,
        }
    }
}

pub fn status_topic(base: &str) -> String {
    format!("{}/status", base.trim_end_matches('/'))
}

pub fn command_topic(base: &str) -> String {
    format!("{}/command", base.trim_end_matches('/'))
}

/// Why a received payload was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the printer speaks generic-MQTT schema v{got}, this Farmhand speaks v{SCHEMA_VERSION}: update whichever is older"
    )]
    Version { got: u32 },
    #[error(
        "the printer sent a status that is not schema v1 JSON ({reason}): see docs/mqtt-schema.md"
    )]
    Malformed { reason: String },
}

/// Decode a status payload, checking the version before the rest so a v2 printer gets the
/// version message rather than a field error.
pub fn parse_status(payload: &[u8]) -> Result<StatusMsg, SchemaError> {
    parse_versioned(payload)
}

/// Decode a command payload (the printer side: simulator, bridges written in Rust).
pub fn parse_command(payload: &[u8]) -> Result<CommandMsg, SchemaError> {
    parse_versioned(payload)
}

fn parse_versioned<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, SchemaError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let malformed = |e: serde_json::Error| SchemaError::Malformed {
        reason: e.to_string(),
    };
    let Version { v } = serde_json::from_slice(payload).map_err(malformed)?;
    if v != SCHEMA_VERSION {
        return Err(SchemaError::Version { got: v });
    }
    serde_json::from_slice(payload).map_err(malformed)
}

/// Host and port of an `mqtt://host[:port]` broker URL (1883 when no port is given).
pub fn parse_broker(url: &str) -> Result<(String, u16), String> {
    let rest = if let Some(r) = url.strip_prefix("mqtt://") {
        r
    } else if let Some(r) = url.strip_prefix("tcp://") {
        r
    } else if url.starts_with("mqtts://") || url.starts_with("ssl://") {
        return Err(
            "TLS brokers are not supported for generic MQTT printers yet: use mqtt://".into(),
        );
    } else {
        return Err("it must look like mqtt://host:1883".into());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))?;
            (h, port)
        }
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err("it must look like mqtt://host:1883".into());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_examples_from_the_docs_parse() {
        let cases: &[(&str, PrinterState, Option<f64>)] = &[
            (r#"{"v":1,"state":"offline"}"#, PrinterState::Offline, None),
            (
                r#"{"v":1,"state":"idle","temps":{"tools":[{"actual":24.5,"target":0}]}}"#,
                PrinterState::Idle,
                None,
            ),
            (
                r#"{"v":1,"state":"printing","job":{"id":"j1","percent":37.5,"layer":12,"total_layers":80,"eta_s":950},"fan":100}"#,
                PrinterState::Printing,
                Some(37.5),
            ),
            (
                r#"{"v":1,"state":"error","error":"thermal runaway","last_job":{"id":"j1","outcome":"failed","reason":"thermal runaway"}}"#,
                PrinterState::Error,
                None,
            ),
        ];
        for (json, state, percent) in cases {
            let msg = parse_status(json.as_bytes()).expect(json);
            assert_eq!(msg.state, *state, "{json}");
            assert_eq!(msg.job.map(|j| j.percent), *percent, "{json}");
        }
    }

    #[test]
    fn last_job_outcomes_are_flat() {
        let msg = parse_status(
            br#"{"v":1,"state":"idle","last_job":{"id":"j1","outcome":"failed","reason":"nozzle clog"}}"#,
        )
        .expect("parses");
        assert_eq!(
            msg.last_job,
            Some(LastJob {
                id: "j1".into(),
                outcome: PrintOutcome::Failed {
                    reason: "nozzle clog".into()
                }
            })
        );
    }

    #[test]
    fn wrong_version_names_the_versions() {
        let err = parse_status(br#"{"v":2,"state":"idle","whatever":[]}"#).expect_err("refused");
        assert_eq!(err, SchemaError::Version { got: 2 });
        assert!(err.to_string().contains("v2"));
        assert!(matches!(
            parse_status(b"not json"),
            Err(SchemaError::Malformed { .. })
        ));
    }

    #[test]
    fn commands_round_trip_as_documented() {
        let start = CommandMsg {
            v: 1,
            cmd: Command::Start {
                job_id: "j1".into(),
                url: "http://10.0.0.2:8080/f/abc/cube.gcode".into(),
                name: "cube.gcode".into(),
                size: 12,
                sha256: "00".into(),
            },
        };
        let json = serde_json::to_string(&start).expect("serializes");
        assert_eq!(
            json,
            r#"{"v":1,"cmd":"start","job_id":"j1","url":"http://10.0.0.2:8080/f/abc/cube.gcode","name":"cube.gcode","size":12,"sha256":"00"}"#
        );
        assert_eq!(parse_command(json.as_bytes()), Ok(start));
        let pause = parse_command(br#"{"v":1,"cmd":"pause","job_id":"j1"}"#).expect("parses");
        assert_eq!(pause.cmd.job_id(), "j1");
    }

    /// The examples in `docs/mqtt-schema.md` are what the code accepts.
    #[test]
    fn documented_examples_parse() {
        let doc = include_str!("../../docs/mqtt-schema.md");
        let blocks: Vec<&str> = doc
            .split("```json\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert_eq!(blocks.len(), 2, "a status and a command block");
        let status = parse_status(blocks[0].as_bytes()).expect("status example");
        assert_eq!(status.state, PrinterState::Printing);
        assert_eq!(status.job.map(|j| j.percent), Some(37.5));
        let commands: Vec<CommandMsg> = blocks[1]
            .lines()
            .map(|l| parse_command(l.as_bytes()).expect(l))
            .collect();
        assert_eq!(commands.len(), 4);
        assert!(matches!(
            commands[0].cmd,
            Command::Start { size: 435554, .. }
        ));
    }

    #[test]
    fn broker_urls() {
        let ok: &[(&str, (&str, u16))] = &[
            ("mqtt://127.0.0.1:1883", ("127.0.0.1", 1883)),
            ("mqtt://broker.lab", ("broker.lab", 1883)),
            ("tcp://broker.lab:11883/", ("broker.lab", 11883)),
            ("mqtt://[::1]:1884", ("::1", 1884)),
        ];
        for (url, (host, port)) in ok {
            assert_eq!(parse_broker(url), Ok((host.to_string(), *port)), "{url}");
        }
        for bad in [
            "127.0.0.1:1883",
            "mqtt://:1883",
            "mqtt://h:port",
            "mqtts://h:8883",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
    }
}
