//! G-code analysis: print time by simulating the firmware's planner, filament, layers,
//! extent, and what the slicer itself claimed.
//!
//! - [`scan`]: chunked line reading and word parsing (constant memory, `f64`).
//! - [`metadata`]: slicer comments (estimates, filament, layer markers).
//! - [`limits`]: machine limits and M201/M203/M204/M205.
//! - [`planner`]: trapezoids, classic-jerk junctions, bounded look-ahead.
//! - [`machine`]: the interpreter that drives the planner and counts.
//! - [`toolpath`]: a bounded sample of extruding moves, for drawing.

pub mod limits;
pub mod machine;
pub mod metadata;
pub mod planner;
pub mod scan;
pub mod toolpath;

use std::io::BufRead;

use limits::Limits;
use machine::Machine;
use planner::{PlanEvent, Planner};

/// A slicer's estimate further than this factor from the simulation is not believed
/// (CuraEngine alone writes `;TIME:6666` as a placeholder).
const PLAUSIBLE_FACTOR: f64 = 3.0;

/// Everything learned from one G-code file.
#[derive(Debug, Clone, PartialEq)]
pub struct GcodeAnalysis {
    /// Simulated print time, seconds.
    pub estimated_time_s: f64,
    /// The slicer's own estimate, when it wrote a believable one.
    pub slicer_estimate_s: Option<f64>,
    /// Filament length, mm (from the moves; from the comments if there are no moves).
    pub filament_mm: Option<f64>,
    /// Filament weight the slicer wrote, g.
    pub slicer_filament_g: Option<f64>,
    /// Layers (from layer comments, else from Z heights).
    pub layers: u64,
    /// Extent of extruding moves (after the first layer comment, when there is one, so
    /// that a purge line does not count): (min, max), mm.
    pub bbox: Option<([f64; 3], [f64; 3])>,
    /// Motion commands.
    pub moves: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Things staff should know.
    pub warnings: Vec<String>,
}

/// Planner events go to the planning thread in batches of this many (~400 kB).
const BATCH: usize = 8192;
/// Batches in flight between the threads: bounds memory whatever the file size.
const BATCHES_IN_FLIGHT: usize = 4;

/// Analyses a G-code stream. Memory does not depend on the length of the stream.
///
/// Two threads form a pipeline: this one reads, parses and interprets lines; a scoped
/// second one runs the planner, the costlier half. On a Pi's four cores that nearly
/// doubles throughput, and the bounded channel keeps memory constant.
pub fn analyze_gcode(input: impl BufRead) -> std::io::Result<GcodeAnalysis> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<PlanEvent>>(BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        let planning = scope.spawn(move || {
            let mut planner = Planner::new(Limits::default());
            for batch in rx {
                batch.into_iter().for_each(|e| planner.apply(e));
            }
            planner.finish()
        });
        let mut machine = Machine::default();
        let read = scan::for_each_line(input, |line| {
            machine.line(line);
            if machine.state.events.len() >= BATCH {
                let batch = std::mem::replace(&mut machine.state.events, Vec::with_capacity(BATCH));
                // A send fails only if the planner thread died; `join` reports that below.
                tx.send(batch).ok();
            }
        });
        tx.send(std::mem::take(&mut machine.state.events)).ok();
        drop(tx);
        let time = planning
            .join()
            .map_err(|_| std::io::Error::other("the G-code planner thread panicked"))?;
        Ok(summarize(machine.state, read?, time))
    })
}

/// Turns the interpreter's tallies and the planned time into the result.
fn summarize(state: machine::State, bytes: u64, estimated_time_s: f64) -> GcodeAnalysis {
    let machine::State { tally, notes, .. } = state;
    let mut warnings = Vec::new();
    if tally.moves == 0 {
        warnings.push("the file contains no moves: it would print nothing".to_string());
    }
    let slicer_estimate_s = notes.estimate_s.filter(|s| {
        let plausible = tally.moves == 0
            || (*s <= estimated_time_s * PLAUSIBLE_FACTOR && *s >= estimated_time_s / PLAUSIBLE_FACTOR);
        if !plausible {
            warnings.push(format!(
                "ignored the slicer's time estimate of {s:.0} s: the moves take about {estimated_time_s:.0} s"
            ));
        }
        plausible
    });
    let filament_mm = if tally.filament_mm > 0.0 {
        Some(tally.filament_mm)
    } else {
        notes.filament_mm
    };
    let layers = if notes.layer_markers > 0 {
        notes.layer_markers
    } else {
        tally.layers_by_z
    };
    GcodeAnalysis {
        estimated_time_s,
        slicer_estimate_s,
        filament_mm,
        slicer_filament_g: notes.filament_g,
        layers,
        bbox: tally.bbox_layers.or(tally.bbox),
        moves: tally.moves,
        bytes,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_estimates_are_dropped() {
        let text = ";TIME:6666\nG1 X0 Y0 F6000\nG1 X100 E5 F3000\n;LAYER:0\n";
        let a = analyze_gcode(text.as_bytes()).expect("analyse");
        assert_eq!(a.slicer_estimate_s, None);
        assert!(
            a.warnings.iter().any(|w| w.contains("6666")),
            "{:?}",
            a.warnings
        );
        assert_eq!(a.layers, 1);
        assert_eq!(a.filament_mm, Some(5.0));
    }

    #[test]
    fn moves_stripped_file_keeps_slicer_figures() {
        let text =
            "; filament used [mm] = 3269.40\n; estimated printing time (normal mode) = 30m 22s\n";
        let a = analyze_gcode(text.as_bytes()).expect("analyse");
        assert_eq!(a.slicer_estimate_s, Some(1822.0));
        assert_eq!(a.filament_mm, Some(3269.4));
        assert_eq!(a.moves, 0);
        assert!(a.warnings[0].contains("no moves"));
    }
}
