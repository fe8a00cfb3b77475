//! The dashboard's printer tiles and status counts: what the page renders first and
//! what `/ui/stream` pushes (or `/ui/live` answers) after.
//!
//! [`tile`] is pure: the API's printer view plus the job on it in, the tile's words
//! and buttons out, so the formatting is tested without a server.

use serde::Serialize;
use serde_json::Value;

use crate::model::{Job, Status};

/// One printer tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tile {
    pub id: String,
    pub name: String,
    pub driver: String,
    /// The contract's state (`idle`, `printing`, …), also the tile's colour class.
    pub state: String,
    pub state_label: &'static str,
    pub job_id: Option<String>,
    pub job_name: Option<String>,
    pub thumbnail: Option<String>,
    /// 0–100 while a job is on the printer.
    pub percent: Option<f64>,
    pub percent_text: String,
    pub layer_text: String,
    pub eta_text: String,
    pub temps_text: String,
    pub error: Option<String>,
    /// (action, label) of the buttons valid now.
    pub buttons: Vec<(&'static str, &'static str)>,
    /// Changes when the tile needs redrawing rather than its numbers updating.
    pub key: String,
}

/// The tile of a printer view (`http::farm::printer_views`), with its job if any.
/// `jobs_waiting` says whether a READYTOPRINT job exists for "dispatch next".
pub fn tile(view: &Value, job: Option<&Job>, jobs_waiting: bool) -> Tile {
    let text = |key: &str| view[key].as_str().unwrap_or_default().to_string();
    let state = text("state");
    let progress = &view["progress"];
    let percent = progress["percent"]
        .as_f64()
        .or_else(|| (state == "printing" || state == "paused").then_some(0.0))
        .map(|p| p.clamp(0.0, 100.0));
    let layer_text = match (
        progress["layer"].as_u64(),
        progress["total_layers"].as_u64(),
    ) {
        (Some(layer), Some(total)) => format!("layer {layer} / {total}"),
        (Some(layer), None) => format!("layer {layer}"),
        _ => String::new(),
    };
    let eta_text = progress["eta_s"].as_u64().map(eta).unwrap_or_default();
    let error = view["error"]
        .as_str()
        .filter(|e| !e.is_empty())
        .map(str::to_string);
    let buttons = buttons(&state, text("driver") == "manual", jobs_waiting);
    let job_id = job.map(|j| j.id.to_string());
    let key = format!(
        "{state}|{}|{}|{}",
        job_id.as_deref().unwrap_or(""),
        error.as_deref().unwrap_or(""),
        buttons.len()
    );
    Tile {
        id: text("id"),
        name: text("name"),
        driver: text("driver"),
        state_label: state_label(&state),
        state,
        thumbnail: job
            .filter(|j| j.artifacts.contains_key("thumbnail.png"))
            .map(|j| format!("/api/v1/jobs/{}/files/thumbnail.png", j.id)),
        job_name: job.map(|j| j.display_name.clone()),
        job_id,
        percent_text: percent.map(|p| format!("{p:.0}%")).unwrap_or_default(),
        percent,
        layer_text,
        eta_text,
        temps_text: temps(&view["temps"]),
        error,
        buttons,
        key,
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "idle" => "Idle",
        "printing" => "Printing",
        "paused" => "Paused",
        "error" => "Error",
        "needs_clearing" => "Clear the bed",
        _ => "Offline",
    }
}

/// The buttons of a tile: what staff can do to this printer in this state.
fn buttons(state: &str, manual: bool, jobs_waiting: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match state {
        "needs_clearing" => out.push(("clear", "Bed cleared")),
        "printing" if !manual => {
            out.push(("pause", "Pause"));
            out.push(("cancel", "Cancel"));
        }
        "paused" => {
            out.push(("resume", "Resume"));
            out.push(("cancel", "Cancel"));
        }
        "idle" if jobs_waiting => out.push(("dispatch-next", "Dispatch next")),
        _ => {}
    }
    out
}

/// `1 h 05 min left`, `4 min left`.
pub fn eta(seconds: u64) -> String {
    let minutes = seconds.div_ceil(60);
    if minutes >= 60 {
        format!("{} h {:02} min left", minutes / 60, minutes % 60)
    } else {
        format!("{minutes} min left")
    }
}

/// `nozzle 215/215 °C · bed 60/60 °C`; empty when the printer reports none.
pub fn temps(temps: &Value) -> String {
    let one = |t: &Value| -> Option<String> {
        let actual = t["actual"].as_f64()?;
        Some(match t["target"].as_f64().filter(|t| *t > 0.0) {
            Some(target) => format!("{actual:.0}/{target:.0} °C"),
            None => format!("{actual:.0} °C"),
        })
    };
    let mut parts = Vec::new();
    if let Some(tools) = temps["tools"].as_array() {
        for (i, tool) in tools.iter().enumerate() {
            let name = if tools.len() > 1 {
                format!("nozzle {}", i + 1)
            } else {
                "nozzle".to_string()
            };
            parts.extend(one(tool).map(|t| format!("{name} {t}")));
        }
    }
    parts.extend(one(&temps["bed"]).map(|t| format!("bed {t}")));
    parts.extend(one(&temps["chamber"]).map(|t| format!("chamber {t}")));
    parts.join(" · ")
}

/// A status tab: its count and how many of its jobs no staff member has opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub status: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub new: u64,
}

/// The label of a status tab.
pub fn status_label(status: Status) -> &'static str {
    match status {
        Status::Uploaded => "New uploads",
        Status::Pending => "Awaiting student",
        Status::ReadyToPrint => "Ready to print",
        Status::Printing => "Printing",
        Status::Completed => "Ready for pickup",
        Status::PaidPickedUp => "Picked up",
        Status::Rejected => "Rejected",
        Status::Archived => "Archived",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_printing_tile_shows_progress_layer_eta_and_temperatures() {
        let view = json!({
            "id": "mk3-1", "name": "Prusa MK3S", "driver": "marlin", "state": "printing",
            "progress": { "percent": 42.4, "layer": 12, "total_layers": 80, "eta_s": 3900 },
            "temps": { "tools": [{ "actual": 214.6, "target": 215.0 }], "bed": { "actual": 60.0, "target": 60.0 } },
            "error": null,
        });
        let t = tile(&view, None, true);
        assert_eq!(t.percent_text, "42%");
        assert_eq!(t.layer_text, "layer 12 / 80");
        assert_eq!(t.eta_text, "1 h 05 min left");
        assert_eq!(t.temps_text, "nozzle 215/215 °C · bed 60/60 °C");
        assert_eq!(t.buttons, vec![("pause", "Pause"), ("cancel", "Cancel")]);
    }

    #[test]
    fn buttons_follow_the_state() {
        let view = |state: &str, driver: &str| json!({ "state": state, "driver": driver });
        let actions = |t: Tile| t.buttons.into_iter().map(|(a, _)| a).collect::<Vec<_>>();
        assert_eq!(
            actions(tile(&view("needs_clearing", "manual"), None, true)),
            ["clear"]
        );
        assert_eq!(
            actions(tile(&view("idle", "marlin"), None, true)),
            ["dispatch-next"]
        );
        assert!(actions(tile(&view("idle", "marlin"), None, false)).is_empty());
        assert!(actions(tile(&view("printing", "manual"), None, true)).is_empty());
        assert_eq!(
            actions(tile(&view("paused", "marlin"), None, false)),
            ["resume", "cancel"]
        );
        assert_eq!(
            tile(&view("weird", "x"), None, false).state_label,
            "Offline"
        );
    }

    #[test]
    fn eta_and_temperatures_read_naturally() {
        assert_eq!(eta(59), "1 min left");
        assert_eq!(eta(3600), "1 h 00 min left");
        assert_eq!(temps(&json!(null)), "");
        assert_eq!(
            temps(
                &json!({ "tools": [{ "actual": 24.0, "target": 0.0 }, { "actual": 25.2, "target": 200.0 }] })
            ),
            "nozzle 1 24 °C · nozzle 2 25/200 °C"
        );
    }
}
