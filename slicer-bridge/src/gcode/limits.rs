//! Machine limits as Marlin knows them, and the M-codes that set them.

use super::scan::{Code, Words};

/// Per-axis limits (X, Y, Z, E) and accelerations, in Marlin's units (mm/s, mm/s²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// M203: top speed per axis, mm/s.
    pub max_feedrate: [f64; 4],
    /// M201: top acceleration per axis, mm/s².
    pub max_acceleration: [f64; 4],
    /// M204 P (or S): acceleration of printing moves.
    pub acceleration: f64,
    /// M204 R: acceleration of extruder-only moves (retract, unretract).
    pub retract_acceleration: f64,
    /// M204 T (or S): acceleration of travel moves.
    pub travel_acceleration: f64,
    /// M205 X/Y/Z/E: classic jerk, the speed change allowed without acceleration.
    pub jerk: [f64; 4],
    /// M205 S: the slowest printing speed.
    pub min_feedrate: f64,
    /// M205 T: the slowest travel speed.
    pub min_travel_feedrate: f64,
}

impl Default for Limits {
    /// A Prusa MK3's firmware defaults (normal mode), the most common printer in labs;
    /// files from PrusaSlicer, and most from other slicers, set their own at the start.
    fn default() -> Self {
        Limits {
            max_feedrate: [200.0, 200.0, 12.0, 120.0],
            max_acceleration: [1000.0, 1000.0, 200.0, 5000.0],
            acceleration: 1250.0,
            retract_acceleration: 1250.0,
            travel_acceleration: 1250.0,
            jerk: [8.0, 8.0, 0.4, 4.5],
            min_feedrate: 0.0,
            min_travel_feedrate: 0.0,
        }
    }
}

/// A move's speeds after the machine limits are applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    /// Cruise speed along the move, mm/s.
    pub feedrate: f64,
    /// Its X, Y, Z, E components (signed), mm/s.
    pub axis_feedrate: [f64; 4],
    /// Acceleration along the move, mm/s².
    pub acceleration: f64,
    /// The speed the move may start or end at from standstill (jerk-limited), mm/s.
    pub safe: f64,
}

impl Limits {
    /// Applies the limits to a move of per-axis deltas `d` (XYZ length `xyz`, planning
    /// `distance`) requested at `feedrate` mm/s: the acceleration for its kind (print,
    /// travel, retract), per-axis speed and acceleration caps, and the jerk-safe speed.
    // The four axes are indexed in parallel across several arrays: clearer than zips.
    #[allow(clippy::needless_range_loop)]
    pub fn limit(&self, d: &[f64; 4], xyz: f64, distance: f64, feedrate: f64) -> Limited {
        const E: usize = 3;
        let travel = d[E] == 0.0 || (d[E] < 0.0 && xyz > 1e-9);
        let mut acceleration = if travel {
            self.travel_acceleration
        } else if xyz <= 1e-9 {
            self.retract_acceleration
        } else {
            self.acceleration
        };
        let min = if d[E] == 0.0 {
            self.min_travel_feedrate
        } else {
            self.min_feedrate
        };
        let mut feedrate = feedrate.max(min);
        let inv = 1.0 / distance;
        let mut axis_feedrate: [f64; 4] = std::array::from_fn(|a| feedrate * d[a] * inv);
        let mut factor: f64 = 1.0;
        for a in 0..4 {
            let v = axis_feedrate[a].abs();
            if v > 0.0 && self.max_feedrate[a] > 0.0 {
                factor = factor.min(self.max_feedrate[a] / v);
            }
            let share = d[a].abs() * inv;
            let cap = self.max_acceleration[a];
            if share > 0.0 && cap > 0.0 && acceleration * share > cap {
                acceleration = cap / share;
            }
        }
        feedrate *= factor;
        axis_feedrate.iter_mut().for_each(|v| *v *= factor);
        let mut safe = feedrate;
        for a in 0..4 {
            if axis_feedrate[a].abs() > self.jerk[a] {
                safe = safe.min(self.jerk[a]);
            }
        }
        Limited {
            feedrate,
            axis_feedrate,
            acceleration,
            safe,
        }
    }

    /// Applies M201/M203/M204/M205; returns false for any other code.
    pub fn apply(&mut self, code: Code, w: &Words) -> bool {
        let axes = |target: &mut [f64; 4]| {
            for (i, letter) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
                if let Some(v) = w.get(letter).filter(|v| *v > 0.0) {
                    target[i] = v;
                }
            }
        };
        match (code.letter, code.major) {
            (b'M', 201) => axes(&mut self.max_acceleration),
            (b'M', 203) => axes(&mut self.max_feedrate),
            (b'M', 204) => self.set_accelerations(w),
            (b'M', 205) => {
                axes(&mut self.jerk);
                if let Some(s) = w.get(b'S') {
                    self.min_feedrate = s.max(0.0);
                }
                if let Some(t) = w.get(b'T') {
                    self.min_travel_feedrate = t.max(0.0);
                }
            }
            _ => return false,
        }
        true
    }

    /// Klipper's `SET_VELOCITY_LIMIT VELOCITY=… ACCEL=…` (slicers emit it per feature for
    /// Klipper printers). Klipper's cornering model (square corner velocity) is not
    /// simulated; its jerk stays as set. Returns false for any other line.
    pub fn apply_klipper(&mut self, line: &[u8]) -> bool {
        const COMMAND: &[u8] = b"SET_VELOCITY_LIMIT";
        if line.len() < COMMAND.len() || !line[..COMMAND.len()].eq_ignore_ascii_case(COMMAND) {
            return false;
        }
        let text = String::from_utf8_lossy(&line[COMMAND.len()..]);
        let text = text.split(';').next().unwrap_or_default();
        for pair in text.split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let Some(value) = value.parse::<f64>().ok().filter(|v| *v > 0.0) else {
                continue;
            };
            match key.to_ascii_uppercase().as_str() {
                "VELOCITY" => (self.max_feedrate[0], self.max_feedrate[1]) = (value, value),
                "ACCEL" => (self.acceleration, self.travel_acceleration) = (value, value),
                _ => {}
            }
        }
        true
    }

    /// M204: legacy `S` sets printing and travel acceleration together (MK3, old
    /// Marlin); newer firmware uses `P` (printing), `R` (retract) and `T` (travel).
    fn set_accelerations(&mut self, w: &Words) {
        let positive = |letter| w.get(letter).filter(|v: &f64| *v > 0.0);
        if let Some(s) = positive(b'S') {
            self.acceleration = s;
            self.travel_acceleration = s;
            if let Some(t) = positive(b'T') {
                self.retract_acceleration = t;
            }
            return;
        }
        if let Some(p) = positive(b'P') {
            self.acceleration = p;
        }
        if let Some(r) = positive(b'R') {
            self.retract_acceleration = r;
        }
        if let Some(t) = positive(b'T') {
            self.travel_acceleration = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcode::scan::{Line, parse_line};

    fn apply(limits: &mut Limits, line: &str) {
        let mut w = Words::default();
        let Line::Command(code) = parse_line(line.as_bytes(), &mut w) else {
            panic!("not a command: {line}");
        };
        assert!(limits.apply(code, &w));
    }

    #[test]
    fn klipper_velocity_limits() {
        let mut l = Limits::default();
        assert!(l.apply_klipper(b"SET_VELOCITY_LIMIT ACCEL=5000 ACCEL_TO_DECEL=2500 VELOCITY=300"));
        assert_eq!((l.acceleration, l.travel_acceleration), (5000.0, 5000.0));
        assert_eq!(l.max_feedrate[0], 300.0);
        assert!(!l.apply_klipper(b"PRINT_START BED=60"));
    }

    #[test]
    fn prusaslicer_header_lines() {
        let mut l = Limits::default();
        apply(
            &mut l,
            "M201 X1000 Y1000 Z200 E5000 ; sets maximum accelerations, mm/sec^2",
        );
        apply(&mut l, "M203 X200 Y200 Z12 E120");
        apply(&mut l, "M204 P1250 R1250 T1250");
        apply(&mut l, "M205 X8.00 Y8.00 Z0.40 E4.50");
        apply(&mut l, "M205 S0 T0");
        assert_eq!(l, Limits::default());
        apply(&mut l, "M204 S800");
        assert_eq!(
            (
                l.acceleration,
                l.travel_acceleration,
                l.retract_acceleration
            ),
            (800.0, 800.0, 1250.0)
        );
        apply(&mut l, "M204 P500 T3000");
        assert_eq!((l.acceleration, l.travel_acceleration), (500.0, 3000.0));
    }
}
