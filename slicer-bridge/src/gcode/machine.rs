//! The interpreter: turns G-code lines into machine state, planned moves and tallies.
//!
//! It tracks what firmware tracks (absolute/relative modes for XYZ and E, `G92`
//! offsets, inches, feed rate and its `M220` override) and hands each move to the
//! planner (as [`PlanEvent`]s). Alongside it counts filament, the bounding box of extruding moves and
//! layers by Z (for files without layer comments).

use super::limits::Limits;
use super::metadata::SlicerNotes;
use super::planner::{Move, PlanEvent};
use super::scan::{Code, Line, Words, parse_line};
use super::toolpath::Toolpath;

/// Longest chord an arc is cut into, mm (Marlin's `MM_PER_ARC_SEGMENT` is 1 mm).
const ARC_SEGMENT_MM: f64 = 1.0;
/// Most segments one arc becomes; beyond this they simply get longer.
const MAX_ARC_SEGMENTS: usize = 256;

/// Tallies gathered while interpreting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Net extruded filament, mm.
    pub filament_mm: f64,
    /// Bounding box of all extruding moves: (min, max).
    pub bbox: Option<([f64; 3], [f64; 3])>,
    /// Bounding box of extruding moves after the first layer comment: leaves out the
    /// purge line that start G-code draws along the bed's edge.
    pub bbox_layers: Option<([f64; 3], [f64; 3])>,
    /// Layers counted from increasing Z heights of extruding moves.
    pub layers_by_z: u64,
    /// Motion commands seen.
    pub moves: u64,
}

/// The interpreter: a parameter buffer reused for every line, and the state it drives.
#[derive(Debug, Default)]
pub struct Machine {
    words: Words,
    /// Firmware state, planner and tallies.
    pub state: State,
}

impl Machine {
    /// Interprets one line.
    pub fn line(&mut self, line: &[u8]) {
        match parse_line(line, &mut self.words) {
            Line::Command(code) => self.state.command(code, &self.words),
            Line::Comment(text) => self.state.notes.comment(text),
            Line::Other => self.state.klipper(line),
        }
    }
}

/// Firmware state plus the planner.
#[derive(Debug)]
pub struct State {
    pos: [f64; 4],
    absolute_xyz: bool,
    absolute_e: bool,
    unit: f64,
    feedrate: f64,
    speed_factor: f64,
    last_layer_z: f64,
    /// Limits as the file has set them so far.
    limits: Limits,
    /// Planner events not yet handed over (the caller drains them).
    pub events: Vec<PlanEvent>,
    /// Filament, extent, layers.
    pub tally: Tally,
    /// What the slicer wrote in comments.
    pub notes: SlicerNotes,
    /// Extruding segments, recorded only when set to `Some` (for thumbnails).
    pub toolpath: Option<Toolpath>,
}

impl Default for State {
    fn default() -> Self {
        State {
            pos: [0.0; 4],
            absolute_xyz: true,
            absolute_e: true,
            unit: 1.0,
            // Marlin's power-on feed rate is modest; slicers always set F before printing.
            feedrate: 25.0,
            speed_factor: 1.0,
            last_layer_z: f64::NEG_INFINITY,
            limits: Limits::default(),
            events: Vec::new(),
            tally: Tally::default(),
            notes: SlicerNotes::default(),
            toolpath: None,
        }
    }
}

impl State {
    fn command(&mut self, code: Code, w: &Words) {
        match (code.letter, code.major) {
            (b'G', 0 | 1) => self.linear(w),
            (b'G', 2 | 3) => self.arc(w, code.major == 2),
            (b'G', 4) => {
                let seconds = w.get(b'S').unwrap_or(0.0) + w.get(b'P').unwrap_or(0.0) / 1000.0;
                self.events.push(PlanEvent::Synchronize(seconds.max(0.0)));
            }
            (b'G', 20) => self.unit = 25.4,
            (b'G', 21) => self.unit = 1.0,
            (b'G', 28) => self.home(w),
            (b'G', 90) => (self.absolute_xyz, self.absolute_e) = (true, true),
            (b'G', 91) => (self.absolute_xyz, self.absolute_e) = (false, false),
            (b'G', 92) => self.set_position(w),
            (b'M', 82) => self.absolute_e = true,
            (b'M', 83) => self.absolute_e = false,
            (b'M', 220) => {
                if let Some(s) = w.get(b'S').filter(|s| *s > 0.0) {
                    self.speed_factor = s / 100.0;
                }
            }
            (b'M', 400) => self.events.push(PlanEvent::Synchronize(0.0)),
            _ => {
                if self.limits.apply(code, w) {
                    self.events.push(PlanEvent::Limits(Box::new(self.limits)));
                }
            }
        }
    }

    /// Klipper commands that change limits; other macros are ignored.
    fn klipper(&mut self, line: &[u8]) {
        if self.limits.apply_klipper(line.trim_ascii_start()) {
            self.events.push(PlanEvent::Limits(Box::new(self.limits)));
        }
    }

    /// Where a move given by `w` ends.
    fn target(&mut self, w: &Words) -> [f64; 4] {
        if let Some(f) = w.get(b'F').filter(|f| *f > 0.0) {
            self.feedrate = f * self.unit / 60.0;
        }
        let mut target = self.pos;
        for (i, letter) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
            if let Some(v) = w.get(letter) {
                let absolute = if i == 3 {
                    self.absolute_e
                } else {
                    self.absolute_xyz
                };
                let v = v * self.unit;
                target[i] = if absolute { v } else { self.pos[i] + v };
            }
        }
        target
    }

    fn linear(&mut self, w: &Words) {
        let target = self.target(w);
        self.tally.moves += 1;
        self.move_to(target);
    }

    /// Plans a straight move to `target` and updates the tallies.
    fn move_to(&mut self, target: [f64; 4]) {
        let delta: [f64; 4] = std::array::from_fn(|a| target[a] - self.pos[a]);
        self.events.push(PlanEvent::Move(Move {
            delta,
            feedrate: self.feedrate * self.speed_factor,
        }));
        self.tally.filament_mm += delta[3];
        if delta[3] > 0.0 && (delta[0] != 0.0 || delta[1] != 0.0) {
            self.extruded(&self.pos.clone(), &target);
        }
        self.pos = target;
    }

    fn extruded(&mut self, from: &[f64; 4], to: &[f64; 4]) {
        grow(&mut self.tally.bbox, from, to);
        if self.notes.layer_markers > 0 {
            grow(&mut self.tally.bbox_layers, from, to);
        }
        if let Some(path) = self.toolpath.as_mut() {
            path.push(from, to, self.notes.layer_markers > 0);
        }
        if to[2] > self.last_layer_z + 1e-4 {
            self.tally.layers_by_z += 1;
            self.last_layer_z = to[2];
        }
    }

    /// G2/G3 in the I/J (centre offset) form, cut into chords like firmware does.
    fn arc(&mut self, w: &Words, clockwise: bool) {
        let target = self.target(w);
        self.tally.moves += 1;
        let (i, j) = (
            w.get(b'I').unwrap_or(0.0) * self.unit,
            w.get(b'J').unwrap_or(0.0) * self.unit,
        );
        let centre = [self.pos[0] + i, self.pos[1] + j];
        let radius = i.hypot(j);
        if radius < 1e-6 {
            self.move_to(target);
            return;
        }
        let start = (self.pos[1] - centre[1]).atan2(self.pos[0] - centre[0]);
        let end = (target[1] - centre[1]).atan2(target[0] - centre[0]);
        let mut sweep = end - start;
        if clockwise && sweep >= -1e-9 {
            sweep -= std::f64::consts::TAU;
        } else if !clockwise && sweep <= 1e-9 {
            sweep += std::f64::consts::TAU;
        }
        let length = (sweep.abs() * radius).hypot(target[2] - self.pos[2]);
        let segments = ((length / ARC_SEGMENT_MM).ceil() as usize).clamp(1, MAX_ARC_SEGMENTS);
        let origin = self.pos;
        for s in 1..=segments {
            let t = s as f64 / segments as f64;
            let mut p = target;
            if s < segments {
                let angle = start + sweep * t;
                p[0] = centre[0] + radius * angle.cos();
                p[1] = centre[1] + radius * angle.sin();
                p[2] = origin[2] + (target[2] - origin[2]) * t;
                p[3] = origin[3] + (target[3] - origin[3]) * t;
            }
            self.move_to(p);
        }
    }

    /// G28: the named axes (all when none is named) are at 0 afterwards. The homing
    /// moves themselves are not timed: their speed is firmware configuration that
    /// G-code does not reveal, and they take seconds.
    fn home(&mut self, w: &Words) {
        self.events.push(PlanEvent::Synchronize(0.0));
        let named: Vec<usize> = [b'X', b'Y', b'Z']
            .iter()
            .enumerate()
            .filter(|(_, l)| w.get(**l).is_some())
            .map(|(i, _)| i)
            .collect();
        let axes = if named.is_empty() {
            vec![0, 1, 2]
        } else {
            named
        };
        for a in axes {
            self.pos[a] = 0.0;
        }
    }

    /// G92: declares the current position to be the given values (no motion).
    fn set_position(&mut self, w: &Words) {
        let mut any = false;
        for (i, letter) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
            if let Some(v) = w.get(letter) {
                self.pos[i] = v * self.unit;
                any = true;
            }
        }
        if !any {
            self.pos = [0.0; 4];
        }
    }
}

fn grow(bbox: &mut Option<([f64; 3], [f64; 3])>, from: &[f64; 4], to: &[f64; 4]) {
    let (mut lo, mut hi) = bbox.unwrap_or(([f64::MAX; 3], [f64::MIN; 3]));
    for p in [from, to] {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    *bbox = Some((lo, hi));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcode::planner::Planner;

    /// Plans everything the machine queued and returns the time.
    fn time(m: &mut Machine) -> f64 {
        let mut planner = Planner::new(Limits::default());
        m.state.events.drain(..).for_each(|e| planner.apply(e));
        planner.finish()
    }

    fn run(text: &str) -> Machine {
        let mut m = Machine::default();
        for line in text.lines() {
            m.line(line.as_bytes());
        }
        m
    }

    #[test]
    fn relative_extrusion_resets_and_bbox() {
        let m = run(
            "G21\nG90\nM83\nG1 Z0.2 F600\nG1 X10 Y10 F3000\nG1 X20 E1.5\nG1 E-0.8\nG1 X0 Y0\nG1 E0.8\nG1 Z0.4\nG1 X10 Y20 E1\n",
        );
        assert!((m.state.tally.filament_mm - 2.5).abs() < 1e-9);
        let (lo, hi) = m.state.tally.bbox.expect("bbox");
        assert_eq!(lo, [0.0, 0.0, 0.2]);
        assert_eq!(hi, [20.0, 20.0, 0.4]);
        assert_eq!(m.state.tally.layers_by_z, 2);
    }

    #[test]
    fn absolute_extrusion_with_g92_and_inches() {
        let m = run("M82\nG92 E0\nG1 X1 E5\nG92 E0\nG1 X2 E3\nG20\nG91\nG1 X1 E1\n");
        assert!((m.state.tally.filament_mm - 33.4).abs() < 1e-9);
    }

    #[test]
    fn arcs_are_measured_along_the_curve() {
        // A half circle of radius 10 at a steady 10 mm/s: π·10 mm → about π s.
        let mut m = run("M205 X100 Y100\nG1 X0 Y0 F600\nG2 X20 Y0 I10 J0 E5");
        let t = time(&mut m);
        assert!((t - std::f64::consts::PI).abs() < 0.2, "{t}");
    }

    #[test]
    fn dwell_adds_time() {
        let mut m = run("G4 P1500\nG4 S2");
        assert!((time(&mut m) - 3.5).abs() < 1e-9);
    }
}
