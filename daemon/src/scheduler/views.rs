//! Turning stored jobs, printer records and live driver status into the scheduler's plain
//! views. Pure: the callers read the store and the fleet.

use std::collections::BTreeMap;

use chrono::Duration;
use drivers::PrinterStatus;

use super::{Candidate, Slot};
use crate::config::{DriverKind, PrinterConfig};
use crate::model::{Job, PrinterRecord, PrinterState};

/// A READYTOPRINT job as the scheduler sees it; `has_gcode` says whether the job has a
/// G-code file for connected printers.
pub fn candidate(job: &Job, has_gcode: bool) -> Candidate {
    let analysis = &job.analysis;
    let number = |key: &str| {
        analysis[key]
            .as_f64()
            .or_else(|| analysis["sliced"][key].as_f64())
    };
    let fits: BTreeMap<String, bool> = analysis["fits"]
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(id, v)| v.as_bool().map(|b| (id.clone(), b)))
                .collect()
        })
        .unwrap_or_default();
    let bbox_mm = analysis["bbox_mm"].as_array().and_then(|v| {
        let dims: Vec<f64> = v.iter().filter_map(serde_json::Value::as_f64).collect();
        <[f64; 3]>::try_from(dims).ok()
    });
    let seconds = job
        .time_hours
        .map(|h| h * 3600.0)
        .or_else(|| number("estimated_time_s"))
        .filter(|s| s.is_finite() && *s >= 0.0);
    Candidate {
        id: job.id,
        student: job.student_email.trim().to_lowercase(),
        material: job.material.clone(),
        color: job.color.clone(),
        printer: job.staff_printer.clone(),
        fits,
        bbox_mm,
        nozzle_mm: number("nozzle_mm"),
        duration: seconds.map(|s| Duration::seconds(s.round() as i64)),
        priority: job.priority,
        created_at: job.created_at,
        needs_staff: job.needs_staff.is_some(),
        has_gcode,
    }
}

/// A printer as the scheduler sees it: free only when the store says idle (no bed to
/// clear) and, for a connected printer, the driver says idle too.
pub fn slot(config: &PrinterConfig, record: &PrinterRecord, live: Option<&PrinterStatus>) -> Slot {
    let connected = config.driver != DriverKind::Manual;
    let busy = match record.state {
        PrinterState::Idle if !connected => None,
        PrinterState::Idle => match live.map(|s| s.state) {
            Some(drivers::PrinterState::Idle) => None,
            Some(other) => Some(format!("{other:?}").to_lowercase()),
            None => Some("offline".into()),
        },
        PrinterState::NeedsClearing => Some("needs clearing".into()),
        other => Some(format!("{other:?}").to_lowercase()),
    };
    Slot {
        id: config.id.clone(),
        busy,
        auto_dispatch: config.auto_dispatches(),
        connected,
        build_volume_mm: config.build_volume_mm,
        materials: config.materials.clone(),
        loaded_material: config.loaded_material.clone(),
        loaded_color: config.loaded_color.clone(),
        nozzle_mm: config.nozzle_mm,
        unattended_ok: config.unattended_ok,
    }
}
